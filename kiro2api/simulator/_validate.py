"""The upstream's request validation, as a pure function (sans-IO).

``generateAssistantResponse`` answers ``400 {"message": "Improperly formed request.", ...}`` to a
family of body shapes. Most user-visible failures of other proxies are exactly these answers,
caused by bad history rebuilding (peers.md §3 item 1), so the simulator rejects the same shapes
and names the rule it applied. :func:`find_violations` is usable directly in tests: feed it what
a converter produced and assert the list is empty.

Every rule below carries its source: a section of ``protocol.md`` or the public issue thread where
users met the upstream rejection.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from kiro2api.simulator._config import DEFAULT_MAX_BODY_BYTES

__all__ = [
    "IMAGE_FORMATS",
    "KNOWN_MODEL_IDS",
    "MAX_TOOL_DESCRIPTION_CHARS",
    "Rule",
    "Violation",
    "error_body",
    "find_violations",
]


class Rule(StrEnum):
    """The rules, as sent in the 400 body's ``reason``."""

    REQUEST_BODY_INVALID = "REQUEST_BODY_INVALID"
    CONTENT_LENGTH_EXCEEDS_THRESHOLD = "CONTENT_LENGTH_EXCEEDS_THRESHOLD"
    INVALID_MODEL_ID = "INVALID_MODEL_ID"
    HISTORY_STARTS_WITH_ASSISTANT = "HISTORY_STARTS_WITH_ASSISTANT"
    HISTORY_NOT_ALTERNATING = "HISTORY_NOT_ALTERNATING"
    EMPTY_USER_CONTENT = "EMPTY_USER_CONTENT"
    EMPTY_ASSISTANT_CONTENT = "EMPTY_ASSISTANT_CONTENT"
    TOOL_USE_RESULT_MISMATCH = "TOOL_USE_RESULT_MISMATCH"
    TOOLS_NOT_DECLARED = "TOOLS_NOT_DECLARED"
    INVALID_TOOL_NAME = "INVALID_TOOL_NAME"
    INVALID_TOOL_DESCRIPTION = "INVALID_TOOL_DESCRIPTION"
    INVALID_IMAGE = "INVALID_IMAGE"


#: protocol.md §2.3.5 (the Go model map's targets) plus the ids current Kiro clients send.
KNOWN_MODEL_IDS = frozenset(
    {
        "auto",
        "CLAUDE_SONNET_4_5_20250929_V1_0",
        "CLAUDE_SONNET_4_20250514_V1_0",
        "CLAUDE_3_7_SONNET_20250219_V1_0",
        "claude-sonnet-4.5",
        "claude-sonnet-4",
        "claude-opus-4.5",
        "claude-opus-4.6",
        "claude-haiku-4.5",
        "claude-3.7-sonnet",
    }
)
#: protocol.md §2.3.4 (Go's MAX_TOOL_DESCRIPTION_LENGTH, commit ebf5ad7).
MAX_TOOL_DESCRIPTION_CHARS = 10_000
#: protocol.md §2.5; https://github.com/kirodotdev/Kiro/issues/8787 (media-type mismatch).
IMAGE_FORMATS = frozenset({"jpeg", "png", "gif", "webp"})
_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")

_MESSAGES = {
    Rule.CONTENT_LENGTH_EXCEEDS_THRESHOLD: "Input is too long.",
    Rule.INVALID_MODEL_ID: "Invalid model. Please select a different model to continue.",
}
_IMPROPER = "Improperly formed request."


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule.

    Attributes:
        rule: Which rule.
        path: Where in the body, e.g. ``conversationState.history[3]``.
        detail: A human-readable explanation naming the rule.
    """

    rule: Rule
    path: str
    detail: str

    def to_json(self) -> dict[str, str]:
        """The violation as a JSON object."""
        return {"rule": self.rule.value, "path": self.path, "detail": self.detail}


def error_body(violations: list[Violation]) -> dict[str, object]:
    """The upstream-style 400 body for ``violations`` (which must not be empty).

    ``message`` and ``reason`` follow upstream; ``detail`` and ``violations`` are the simulator's
    own additions so a failing test points at the rule.
    """
    first = violations[0]
    return {
        "message": _MESSAGES.get(first.rule, _IMPROPER),
        "reason": first.rule.value,
        "detail": f"{first.rule.value} at {first.path}: {first.detail}",
        "violations": [v.to_json() for v in violations],
    }


def find_violations(
    body: object,
    *,
    body_size: int | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> list[Violation]:
    """Every rule ``body`` (a parsed ``generateAssistantResponse`` JSON body) breaks.

    Args:
        body: The parsed JSON body.
        body_size: The raw body's size in bytes, if known; checked against ``max_body_bytes``.
        max_body_bytes: The payload limit.

    Returns:
        The violations in body order; empty when upstream would accept the body. When required
        fields are missing only those are reported (nothing else can be checked sensibly).
    """
    out: list[Violation] = []
    # Payload size. Peers hit 400 CONTENT_LENGTH_EXCEEDS_THRESHOLD well under 200k tokens:
    # https://github.com/hank9999/kiro.rs/issues/67, https://github.com/jwadow/kiro-gateway/issues/10
    if body_size is not None and body_size > max_body_bytes:
        out.append(
            Violation(
                Rule.CONTENT_LENGTH_EXCEEDS_THRESHOLD,
                "$",
                f"body is {body_size} bytes; the limit is {max_body_bytes}",
            )
        )
    shape = list(_check_shape(body))
    if shape:
        return out + shape
    state = body["conversationState"]  # type: ignore[index]
    current = state["currentMessage"]["userInputMessage"]
    history: list[dict[str, Any]] = state.get("history") or []
    ctx = current.get("userInputMessageContext") or {}
    tools = ctx.get("tools") or []
    cur_path = "conversationState.currentMessage.userInputMessage"

    # Model ids: protocol.md §2.3.5; tier removals answer INVALID_MODEL_ID:
    # https://github.com/kirodotdev/Kiro/issues/4943
    if current["modelId"] not in KNOWN_MODEL_IDS:
        out.append(
            Violation(
                Rule.INVALID_MODEL_ID,
                f"{cur_path}.modelId",
                f"unknown modelId {current['modelId']!r}",
            )
        )
    out.extend(_check_tools(tools, f"{cur_path}.userInputMessageContext.tools"))
    out.extend(_check_order(history))
    turns = [(f"conversationState.history[{i}]", item) for i, item in enumerate(history)]
    turns.append((cur_path, {"userInputMessage": current}))
    out.extend(_check_turns(turns, has_tools=bool(tools)))
    return out


def _check_shape(body: object) -> Iterator[Violation]:
    """Required fields and their JSON types (REQUEST_BODY_INVALID)."""
    # protocol.md §2.2 (body shape) and §2.3.7 (Go's own required-field checks).
    bad = Rule.REQUEST_BODY_INVALID
    if not isinstance(body, dict):
        yield Violation(bad, "$", "the body must be a JSON object")
        return
    state = body.get("conversationState")
    if not isinstance(state, dict):
        yield Violation(bad, "conversationState", "missing or not an object")
        return
    current = state.get("currentMessage")
    if not isinstance(current, dict) or not isinstance(current.get("userInputMessage"), dict):
        yield Violation(
            bad, "conversationState.currentMessage.userInputMessage", "missing or not an object"
        )
        return
    path = "conversationState.currentMessage.userInputMessage"
    yield from _check_user_shape(current["userInputMessage"], path, current=True)
    history = state.get("history")
    if history is not None and not isinstance(history, list):
        yield Violation(bad, "conversationState.history", "must be a list or null")
        return
    for i, item in enumerate(history or []):
        hpath = f"conversationState.history[{i}]"
        keys = {"userInputMessage", "assistantResponseMessage"} & set(
            item if isinstance(item, dict) else ()
        )
        if len(keys) != 1:
            yield Violation(
                bad, hpath, "needs exactly one of userInputMessage / assistantResponseMessage"
            )
        elif "userInputMessage" in keys:
            yield from _check_user_shape(
                item["userInputMessage"], f"{hpath}.userInputMessage", current=False
            )
        else:
            yield from _check_assistant_shape(
                item["assistantResponseMessage"], f"{hpath}.assistantResponseMessage"
            )


def _check_user_shape(msg: object, path: str, *, current: bool) -> Iterator[Violation]:
    bad = Rule.REQUEST_BODY_INVALID
    if not isinstance(msg, dict):
        yield Violation(bad, path, "must be an object")
        return
    if not isinstance(msg.get("content"), str):
        yield Violation(bad, f"{path}.content", "missing or not a string")
    if current:
        for key in ("modelId", "origin"):
            if not isinstance(msg.get(key), str) or not msg[key]:
                yield Violation(bad, f"{path}.{key}", "missing or not a non-empty string")
    if "images" in msg and msg["images"] is not None and not isinstance(msg["images"], list):
        yield Violation(bad, f"{path}.images", "must be a list")
    ctx = msg.get("userInputMessageContext")
    if ctx is None:
        return
    if not isinstance(ctx, dict):
        yield Violation(bad, f"{path}.userInputMessageContext", "must be an object")
        return
    for key in ("tools", "toolResults"):
        if ctx.get(key) is not None and not isinstance(ctx[key], list):
            yield Violation(bad, f"{path}.userInputMessageContext.{key}", "must be a list")
    for i, result in enumerate(ctx.get("toolResults") or []):
        rpath = f"{path}.userInputMessageContext.toolResults[{i}]"
        if not isinstance(result, dict) or not isinstance(result.get("toolUseId"), str):
            yield Violation(bad, rpath, "a toolResult needs a string toolUseId")
        elif result.get("content") is not None and not isinstance(result["content"], list):
            yield Violation(bad, f"{rpath}.content", "must be a list of content items")


def _check_assistant_shape(msg: object, path: str) -> Iterator[Violation]:
    bad = Rule.REQUEST_BODY_INVALID
    if not isinstance(msg, dict):
        yield Violation(bad, path, "must be an object")
        return
    if not isinstance(msg.get("content"), str):
        yield Violation(bad, f"{path}.content", "missing or not a string")
    uses = msg.get("toolUses")
    if uses is None:
        return
    if not isinstance(uses, list):
        yield Violation(bad, f"{path}.toolUses", "must be a list or null")
        return
    for i, use in enumerate(uses):
        if not (
            isinstance(use, dict)
            and isinstance(use.get("toolUseId"), str)
            and isinstance(use.get("name"), str)
            and isinstance(use.get("input", {}), dict)
        ):
            yield Violation(
                bad, f"{path}.toolUses[{i}]", "needs string toolUseId and name, object input"
            )


def _check_tools(tools: list[Any], path: str) -> Iterator[Violation]:
    """Declared tool specifications."""
    for i, tool in enumerate(tools):
        tpath = f"{path}[{i}].toolSpecification"
        spec = tool.get("toolSpecification") if isinstance(tool, dict) else None
        if (
            not isinstance(spec, dict)
            or not isinstance(spec.get("name"), str)
            or not isinstance(spec.get("description"), str)
            or not isinstance(spec.get("inputSchema"), dict)
            or not isinstance(spec["inputSchema"].get("json"), dict)
        ):
            yield Violation(
                Rule.REQUEST_BODY_INVALID,
                tpath,
                "needs string name and description and an inputSchema.json object",
            )
            continue
        yield from _check_tool_name(spec["name"], f"{tpath}.name")
        # Empty descriptions: xwteam/kiro2api CHANGELOG v0.11.1. Over-long ones: protocol.md
        # §2.3.4 (Go commit ebf5ad7), https://github.com/justlovemaki/AIClient2API/issues/118
        description: str = spec["description"]
        if not description.strip():
            yield Violation(Rule.INVALID_TOOL_DESCRIPTION, f"{tpath}.description", "is empty")
        elif len(description) > MAX_TOOL_DESCRIPTION_CHARS:
            yield Violation(
                Rule.INVALID_TOOL_DESCRIPTION,
                f"{tpath}.description",
                f"is {len(description)} characters; at most {MAX_TOOL_DESCRIPTION_CHARS}",
            )


def _check_tool_name(name: str, path: str) -> Iterator[Violation]:
    # Names over 64 characters or outside [A-Za-z0-9_-] (MCP plugin tools) are rejected:
    # https://github.com/kirodotdev/Kiro/issues/7684, https://github.com/jwadow/kiro-gateway/pull/104
    if not _TOOL_NAME.fullmatch(name):
        yield Violation(
            Rule.INVALID_TOOL_NAME,
            path,
            f"tool name {name[:80]!r} must be 1-64 characters of [A-Za-z0-9_-]",
        )


def _check_order(history: list[Any]) -> Iterator[Violation]:
    """The history must start with a user turn and alternate, ending before the current user."""
    # protocol.md §2.3.6 ("Resulting invariant"); consecutive same-role turns:
    # https://github.com/hank9999/kiro.rs/issues/79, https://github.com/jwadow/kiro-gateway/issues/60,
    # https://github.com/decolua/9router/pull/524
    roles = ["user" if "userInputMessage" in item else "assistant" for item in history]
    roles.append("user")  # the current message
    if roles[0] != "user":
        yield Violation(
            Rule.HISTORY_STARTS_WITH_ASSISTANT,
            "conversationState.history[0]",
            "the history must start with a user turn",
        )
    for i in range(1, len(roles)):
        if roles[i] == roles[i - 1]:
            where = (
                f"conversationState.history[{i}]"
                if i < len(history)
                else "conversationState.currentMessage"
            )
            yield Violation(
                Rule.HISTORY_NOT_ALTERNATING,
                where,
                f"two {roles[i]} turns in a row (turns {i - 1} and {i}, the current message last)",
            )


def _user_results(msg: Mapping[str, Any]) -> list[Any]:
    return list((msg.get("userInputMessageContext") or {}).get("toolResults") or [])


def _check_turns(
    turns: list[tuple[str, dict[str, Any]]], *, has_tools: bool
) -> Iterator[Violation]:
    """Content, images and tool pairing of every turn (history, then the current message)."""
    previous_uses: list[Any] | None = None
    mentions_tools = False
    for path, item in turns:
        if "assistantResponseMessage" in item:
            msg = item["assistantResponseMessage"]
            uses = msg.get("toolUses") or []
            mentions_tools = mentions_tools or bool(uses)
            # Assistant turns with empty content and no tool uses:
            # https://github.com/hank9999/kiro.rs/pull/32 (xwteam CHANGELOG v0.14.0)
            if not msg["content"].strip() and not uses:
                yield Violation(
                    Rule.EMPTY_ASSISTANT_CONTENT,
                    f"{path}.assistantResponseMessage.content",
                    "an assistant turn needs text or toolUses",
                )
            for i, use in enumerate(uses):
                yield from _check_tool_name(
                    use["name"], f"{path}.assistantResponseMessage.toolUses[{i}].name"
                )
            if previous_uses:
                yield _mismatch(path, "the next turn after a toolUse must be a user toolResult")
            previous_uses = uses
            continue
        msg = item["userInputMessage"]
        upath = path if path.endswith("userInputMessage") else f"{path}.userInputMessage"
        results = _user_results(msg)
        images = msg.get("images") or []
        mentions_tools = mentions_tools or bool(results)
        # Empty user content: protocol.md §2.3.7 (Go refuses it and substitutes a placeholder
        # when tools are present), https://github.com/hank9999/kiro.rs/pull/32
        if not msg["content"].strip() and not results and not images:
            yield Violation(
                Rule.EMPTY_USER_CONTENT,
                f"{upath}.content",
                "a user turn needs text, toolResults or images",
            )
        yield from _check_images(images, f"{upath}.images")
        # toolUse/toolResult pairing: https://github.com/hank9999/kiro.rs/pull/56 (orphaned
        # toolUse), https://github.com/ZyphrZero/kiro.rs/issues/22 (skipped duplicate result)
        used = [u["toolUseId"] for u in previous_uses or []]
        answered = [r["toolUseId"] for r in results]
        if (used or answered) and (sorted(used) != sorted(answered)):
            yield _mismatch(
                f"{upath}.userInputMessageContext.toolResults",
                f"toolResults {sorted(answered)} do not answer the previous assistant's "
                f"toolUses {sorted(used)}",
            )
        previous_uses = None
    # History mentions tools but the request declares none (common after client compaction):
    # https://github.com/decolua/9router/pull/1582, https://github.com/decolua/9router/pull/1209
    if mentions_tools and not has_tools:
        yield Violation(
            Rule.TOOLS_NOT_DECLARED,
            "conversationState.currentMessage.userInputMessage.userInputMessageContext.tools",
            "the conversation contains toolUses/toolResults but no tools are declared",
        )


def _mismatch(path: str, detail: str) -> Violation:
    return Violation(Rule.TOOL_USE_RESULT_MISMATCH, path, detail)


def _check_images(images: list[Any], path: str) -> Iterator[Violation]:
    # protocol.md §2.5 (formats, standard base64); https://github.com/kirodotdev/Kiro/issues/8787
    for i, image in enumerate(images):
        ipath = f"{path}[{i}]"
        if not isinstance(image, dict):
            yield Violation(Rule.INVALID_IMAGE, ipath, "an image must be an object")
            continue
        fmt = image.get("format")
        if fmt not in IMAGE_FORMATS:
            yield Violation(
                Rule.INVALID_IMAGE,
                f"{ipath}.format",
                f"format {fmt!r} is not one of {sorted(IMAGE_FORMATS)}",
            )
        source = image.get("source")
        data = source.get("bytes") if isinstance(source, dict) else None
        if not isinstance(data, str) or not data:
            yield Violation(Rule.INVALID_IMAGE, f"{ipath}.source.bytes", "missing image bytes")
            continue
        try:
            base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            yield Violation(
                Rule.INVALID_IMAGE, f"{ipath}.source.bytes", "bytes are not valid base64"
            )
