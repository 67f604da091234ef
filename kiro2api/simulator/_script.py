"""From a validated request and its directives to a :class:`Plan`: what to send, and when.

Sans-IO: the plan is data (an optional HTTP error, delays and byte segments); the app only
executes it. Content directives (``echo``/``text``, ``tool``, ``long``, ``trickle``) produce
event frames in the order they are written; fault directives (``exception``, ``error``,
``truncate``, ``badcrc``) then act at the frame position given by ``after=K`` (default 1: after
the first content frame). Every stream that is not cut short ends with ``meteringEvent`` and
``contextUsageEvent``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import orjson

from kiro2api.errors import RequestError
from kiro2api.simulator._directives import CONTENT_KINDS, Directive, strip_directives
from kiro2api.simulator._frames import (
    corrupt_crc,
    error_frame,
    event_frame,
    exception_frame,
    text_frame,
    tool_use_id,
)

__all__ = ["HttpAnswer", "Plan", "build_plan", "directive_source", "http_answer"]

#: Bytes per network write when nothing asks for pacing: big enough to make long answers cheap,
#: small enough that a client sees the stream progress.
SEGMENT_BYTES = 64 * 1024
_LOREM = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
    "incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud "
    "exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat. "
)
#: ``x-amzn-errortype`` per status, as AWS services name their errors.
_ERROR_TYPES = {
    400: "ValidationException",
    402: "ServiceQuotaExceededException",
    403: "AccessDeniedException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}
_HTTP_MESSAGES = {
    400: "Improperly formed request.",
    402: "You have reached the limit for monthly requests.",
    403: "The bearer token included in the request is invalid.",
    429: "Too many requests, please wait before trying again.",
    500: "Encountered an unexpected error when processing the request, please try again.",
    503: "Service is temporarily unavailable. Please try again later.",
}


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """A non-streaming answer: status, JSON body and extra headers."""

    status: int
    body: Mapping[str, object]
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(slots=True)
class Plan:
    """What the app sends for one ``generateAssistantResponse`` request.

    Attributes:
        http: When set, answer this instead of a stream.
        head_delay: Seconds to wait before the response headers.
        segments: ``(delay_before, bytes)`` pairs making up the body.
        abort: Close the connection after the segments instead of ending the body.
        credits: The metered cost, added to the account's usage.
    """

    http: HttpAnswer | None = None
    head_delay: float = 0.0
    segments: list[tuple[float, bytes]] = field(default_factory=list)
    abort: bool = False
    credits: float = 0.0


def http_answer(
    status: int,
    *,
    reason: str | None = None,
    message: str | None = None,
    retry_after: float | None = None,
) -> HttpAnswer:
    """An upstream-style JSON error answer (``{"message": ..., "reason": ...}``)."""
    if status == 402 and reason is None:
        reason = "MONTHLY_REQUEST_COUNT"
    body = {"message": message or _HTTP_MESSAGES.get(status, f"HTTP {status}"), "reason": reason}
    headers: list[tuple[str, str]] = []
    if status in _ERROR_TYPES:
        headers.append(("x-amzn-errortype", _ERROR_TYPES[status]))
    if retry_after is not None:
        headers.append(("retry-after", f"{retry_after:g}"))
    return HttpAnswer(status, body, tuple(headers))


def _result_text(results: Sequence[Any]) -> str:
    parts: list[str] = []
    for result in results:
        for item in result.get("content") or []:
            if isinstance(item, dict) and isinstance(item.get("text"), str):
                parts.append(item["text"])
            elif isinstance(item, dict) and "json" in item:
                parts.append(orjson.dumps(item["json"]).decode())
            else:
                parts.append(orjson.dumps(item).decode())
    return "\n".join(parts)


def _current(body: Mapping[str, Any]) -> Mapping[str, Any]:
    message: Mapping[str, Any] = body["conversationState"]["currentMessage"]["userInputMessage"]
    return message


def _results(body: Mapping[str, Any]) -> list[Any]:
    return list((_current(body).get("userInputMessageContext") or {}).get("toolResults") or [])


def directive_source(body: Mapping[str, Any]) -> str:
    """The text directives are read from: the current message, plus its tool results' text.

    History is never read, on purpose: a ``tool`` directive there would make every tool round
    trip call the tool again, forever.
    """
    text: str = _current(body)["content"]
    results = _results(body)
    return f"{text}\n{_result_text(results)}" if results else text


def _default_text(body: Mapping[str, Any]) -> str:
    results = _results(body)
    if results:
        return "Tool said: " + strip_directives(_result_text(results))
    return "You said: " + strip_directives(_current(body)["content"])


def _split(text: str, chunks: int) -> list[str]:
    size = max(1, math.ceil(len(text) / chunks))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _text_frames(text: str, chunks: int | None) -> list[bytes]:
    # Upstream sends text in many small fragments; ~10 characters each by default.
    count = chunks or min(32, max(1, math.ceil(len(text) / 10)))
    return [text_frame(part) for part in _split(text, count)]


@lru_cache(maxsize=16)
def _long_frames(events: int, size: int) -> tuple[bytes, ...]:
    """Pre-encoded frames of a long answer; cached so benchmarks measure the proxy, not us."""
    text = _LOREM * (events * size // len(_LOREM) + 1)
    return tuple(text_frame(text[i * size : (i + 1) * size]) for i in range(events))


def _filler_input(size: int) -> str:
    """A JSON object of about ``size`` bytes, like a file-writing tool call."""
    lines = _LOREM * (size // len(_LOREM) + 1)
    content = "\n".join(lines[i : i + 79] for i in range(0, len(lines), 79))
    encoded = orjson.dumps({"file_path": "/tmp/simulated.txt", "content": content})
    while len(encoded) > size and content:
        content = content[: max(0, len(content) - (len(encoded) - size))]
        encoded = orjson.dumps({"file_path": "/tmp/simulated.txt", "content": content})
    return encoded.decode()


def _tool_frames(d: Directive, seed: str) -> list[bytes]:
    name = d.text("name")
    if not name:
        raise RequestError(f"{d.source}: option name is required", param="name")
    size = d.integer("size", None, minimum=2)
    raw = d.options.get("input")
    if size is not None:
        text = _filler_input(size)
    elif isinstance(raw, str):
        text = raw  # verbatim, so a test can send broken JSON on purpose
    elif raw is not None:
        text = orjson.dumps(raw).decode()
    else:
        text = "{}"
    fragment = d.integer("fragment", 64, minimum=1) or 64
    use_id = d.text("id") or tool_use_id(seed)
    head = {"name": name, "toolUseId": use_id}
    frames = [event_frame("toolUseEvent", head)]
    frames.extend(
        event_frame("toolUseEvent", {**head, "input": text[i : i + fragment]})
        for i in range(0, len(text), fragment)
    )
    frames.append(event_frame("toolUseEvent", {**head, "stop": True}))
    return frames


def _content(
    directives: Sequence[Directive], body: Mapping[str, Any], seq: int
) -> list[tuple[float, bytes]]:
    content = [d for d in directives if d.kind in CONTENT_KINDS]
    if not content:
        return [(0.0, f) for f in _text_frames(_default_text(body), None)]
    out: list[tuple[float, bytes]] = []
    for index, d in enumerate(content):
        if d.kind in ("echo", "text"):
            text = d.text("text") or _default_text(body)
            out.extend((0.0, f) for f in _text_frames(text, d.integer("chunks", None, minimum=1)))
        elif d.kind == "tool":
            out.extend((0.0, f) for f in _tool_frames(d, f"{seq}:{index}"))
        elif d.kind == "long":
            events = d.integer("events", 200, minimum=1) or 200
            out.extend(
                (0.0, f) for f in _long_frames(events, d.integer("size", 16, minimum=1) or 16)
            )
        else:  # trickle
            events = d.integer("events", 10, minimum=1) or 10
            interval = (d.number("interval_ms", 100.0) or 0.0) / 1000
            word = d.text("text") or "tick"
            out.extend(
                (0.0 if i == 0 else interval, text_frame(f"{word} {i} ")) for i in range(events)
            )
    return out


def _apply_faults(
    directives: Sequence[Directive], events: list[tuple[float, bytes]], tail: list[bytes]
) -> bool:
    """Apply stream faults in place; return whether the connection must be aborted."""
    for d in directives:
        if d.kind not in ("exception", "error", "truncate", "badcrc"):
            continue
        at = min(d.integer("after", 1) or 0, len(events))
        if d.kind == "badcrc":
            part = d.choice("part", "message", frozenset({"message", "prelude"}))
            if at < len(events):
                delay, frame = events[at]
                events[at] = (delay, corrupt_crc(frame, part))
            elif tail:
                tail[0] = corrupt_crc(tail[0], part)
            continue
        following = events[at][1] if at < len(events) else (tail[0] if tail else b"")
        del events[at:]
        tail.clear()
        if d.kind == "exception":
            name = d.text("type", "ThrottlingException") or "ThrottlingException"
            message = d.text("message") or f"Simulated {name}"
            events.append((0.0, exception_frame(name, message)))
            return False
        if d.kind == "error":
            code = d.text("code", "InternalServerError") or "InternalServerError"
            events.append((0.0, error_frame(code, d.text("message") or f"Simulated {code}")))
            return False
        # truncate: half of the frame that was due next, then the connection closes
        events.append((0.0, following[: len(following) // 2]))
        return True
    return False


def _segments(events: list[tuple[float, bytes]], tail: list[bytes]) -> list[tuple[float, bytes]]:
    """Coalesce unpaced frames into segments of about :data:`SEGMENT_BYTES`."""
    out: list[tuple[float, bytes]] = []
    pending: list[bytes] = []
    pending_delay = 0.0
    pending_size = 0
    for delay, frame in [*events, *((0.0, f) for f in tail)]:
        if pending and (delay > 0 or pending_size >= SEGMENT_BYTES):
            out.append((pending_delay, b"".join(pending)))
            pending, pending_size = [], 0
        if not pending:
            pending_delay = delay
        pending.append(frame)
        pending_size += len(frame)
    if pending:
        out.append((pending_delay, b"".join(pending)))
    return out


def build_plan(
    body: Mapping[str, Any],
    directives: Sequence[Directive],
    *,
    seq: int,
    body_size: int,
    context_window_tokens: int,
) -> Plan:
    """Turn a validated body and the directives that apply to it into a :class:`Plan`.

    Raises:
        RequestError: when a directive option has a bad value.
    """
    plan = Plan()
    for d in directives:
        if d.kind == "http" and plan.http is None:
            status = d.integer("status", 500, minimum=100) or 500
            retry = d.number("retry_after", 1.0 if status == 429 else None)
            plan.http = http_answer(
                status, reason=d.text("reason"), message=d.text("message"), retry_after=retry
            )
        elif d.kind == "quota" and plan.http is None:
            plan.http = http_answer(402)
        elif d.kind == "delay":
            seconds = d.number("seconds", 1.0) or 0.0
            if d.choice("where", "headers", frozenset({"headers", "body"})) == "headers":
                plan.head_delay += seconds
            else:
                plan.segments.append((seconds, b""))
    if plan.http is not None:
        return plan
    events = _content(directives, body, seq)
    output = sum(len(f) for _, f in events)
    # ~4 bytes per token against the context window (the upstream's own display uses tokens).
    percent = min(100.0, body_size / 4 / context_window_tokens * 100)
    plan.credits = round(0.01 + (body_size + output) / 1_000_000, 6)
    tail = [
        event_frame(
            "meteringEvent", {"unit": "credit", "unitPlural": "credits", "usage": plan.credits}
        ),
        event_frame("contextUsageEvent", {"contextUsagePercentage": round(percent, 4)}),
    ]
    plan.abort = _apply_faults(directives, events, tail)
    body_delay = sum(delay for delay, _ in plan.segments)
    plan.segments = _segments(events, tail)
    if body_delay and plan.segments:
        first_delay, first = plan.segments[0]
        plan.segments[0] = (first_delay + body_delay, first)
    return plan
