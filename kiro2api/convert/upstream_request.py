"""Canonical request → ``generateAssistantResponse`` JSON body (protocol.md §2.2–§2.3).

The body shape and field order follow §2.2 (the shape proven to work upstream):
``history`` is ``null`` when empty, assistant ``toolUses`` is ``null`` when there are none,
``currentMessage.userInputMessage.images`` is always present, history user messages omit
``images`` when there are none, ``userInputMessageContext`` is always present and never carries
``tools`` in history. The conversation itself is repaired by :mod:`kiro2api.convert.history`;
tool names, descriptions and schemas by :mod:`kiro2api.convert.tools`.

Beyond that, this module makes sure every tool the history calls is declared: clients often
drop the ``tools`` array after compaction while history still holds tool calls, which the
upstream rejects (peers.md §3 item 1, 9router PRs 1209/1582). Such tools get a minimal
declaration (empty object schema).

The body is checked against ``max_payload_bytes`` before anything is sent: the upstream rejects
bodies over about 615 KB with an unhelpful 400, while :class:`~kiro2api.errors.PromptTooLongError`
("prompt is too long...") makes Claude Code compact the conversation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from kiro2api.convert.canonical import (
    CanonicalRequest,
    ImageBlock,
    JSONObject,
    TextBlock,
    ToolResultBlock,
)
from kiro2api.convert.history import AssistantMessage, UserMessage, build_conversation
from kiro2api.convert.models import ModelMap
from kiro2api.convert.request_tokens import estimate_input_tokens
from kiro2api.convert.tools import (
    ToolNames,
    clean_schema,
    tool_specification,
    upstream_tools,
)
from kiro2api.errors import PromptTooLongError

__all__ = ["ConvertSettings", "UpstreamRequest", "build_upstream_request"]

_ORIGIN = "AI_EDITOR"
_AGENT_TASK_TYPE = "vibe"


@dataclass(frozen=True, slots=True)
class ConvertSettings:
    """Conversion knobs (from the proxy's configuration).

    Attributes:
        model_map: Client model names → upstream ids.
        max_tool_description_length: Tool descriptions are cut to this many UTF-8 bytes, on a
            character boundary (``MAX_TOOL_DESCRIPTION_LENGTH``, default 10,000).
        max_payload_bytes: Larger bodies are refused with ``PromptTooLongError`` (peers use
            600,000 against the upstream's limit of about 615 KB).
    """

    model_map: ModelMap = field(default_factory=ModelMap.default)
    max_tool_description_length: int = 10_000
    max_payload_bytes: int = 600_000


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """A request ready to send.

    Attributes:
        body: The JSON body (orjson bytes).
        model_id: The upstream model id sent.
        tool_names: Upstream tool name → the client's original name, only for renamed tools;
            the response side maps tool calls back with it.
        input_tokens: The estimated input tokens (protocol.md §7.2).
        context_window: The model's input limit in tokens.
    """

    body: bytes
    model_id: str
    tool_names: dict[str, str]
    input_tokens: int
    context_window: int


def _image(image: ImageBlock) -> JSONObject:
    return {"format": image.format, "source": {"bytes": image.data}}


def _tool_result(result: ToolResultBlock) -> JSONObject:
    # history guarantees text-only, non-empty content.
    out: JSONObject = {
        "toolUseId": result.tool_use_id,
        "content": [{"text": p.text} for p in result.content if isinstance(p, TextBlock)],
        "status": "error" if result.is_error else "success",
    }
    if result.is_error:
        out["isError"] = True
    return out


def _context(message: UserMessage) -> JSONObject:
    if message.tool_results:
        return {"toolResults": [_tool_result(r) for r in message.tool_results]}
    return {}


def _history_user(message: UserMessage, model_id: str) -> JSONObject:
    inner: JSONObject = {
        "content": message.content,
        "modelId": model_id,
        "origin": _ORIGIN,
    }
    if message.images:
        inner["images"] = [_image(i) for i in message.images]
    inner["userInputMessageContext"] = _context(message)
    return {"userInputMessage": inner}


def _history_assistant(message: AssistantMessage, names: ToolNames) -> JSONObject:
    tool_uses = [
        {"toolUseId": use.id, "name": names.upstream(use.name), "input": use.input}
        for use in message.tool_uses
    ]
    return {
        "assistantResponseMessage": {
            "content": message.content,
            "toolUses": tool_uses or None,
        }
    }


def _trigger_type(req: CanonicalRequest, has_tools: bool) -> str:
    # §2.3.2: AUTO iff tools are offered and the client demands a tool call (`any`/`tool`;
    # OpenAI `required`/named function). It nudges; the upstream cannot be forced.
    choice = req.tool_choice
    if has_tools and choice is not None and choice.type in ("any", "tool"):
        return "AUTO"
    return "MANUAL"


def build_upstream_request(
    req: CanonicalRequest,
    settings: ConvertSettings,
    *,
    conversation_id: str,
    continuation_id: str,
) -> UpstreamRequest:
    """Render a canonical request into the upstream body.

    ``tool_choice`` is honoured only as far as the upstream allows: ``any``/``tool`` set
    ``chatTriggerType`` to ``AUTO``; ``none`` cannot keep the model from calling a tool (the
    tools must stay declared because history may reference them).

    Args:
        req: The validated request.
        settings: Model map and size limits.
        conversation_id: The upstream ``conversationId`` (see :mod:`kiro2api.convert.ids`).
        continuation_id: The upstream ``agentContinuationId``.

    Returns:
        The body and what the response side needs to know about it.

    Raises:
        RequestError: Unknown model (``param="model"``).
        PromptTooLongError: The body exceeds ``settings.max_payload_bytes``.
    """
    model_id = settings.model_map.resolve(req.model)
    names = ToolNames()
    conversation = build_conversation(req.system, req.turns, rename=names.upstream)
    limit = settings.max_tool_description_length

    tools: list[JSONObject] = []
    declared: set[str] = set()
    for tool in upstream_tools(req):
        name = names.upstream(tool.name)
        if name in declared:  # a duplicate declaration is another upstream 400
            continue
        declared.add(name)
        schema = clean_schema(tool.input_schema)
        tools.append(
            tool_specification(name, tool.description, schema, max_description_bytes=limit)
        )

    history: list[JSONObject] = []
    for message in conversation.history:
        if isinstance(message, UserMessage):
            history.append(_history_user(message, model_id))
            continue
        history.append(_history_assistant(message, names))
        for use in message.tool_uses:
            name = names.upstream(use.name)
            if name not in declared:
                declared.add(name)
                tools.append(
                    tool_specification(name, "", clean_schema(None), max_description_bytes=limit)
                )

    current = conversation.current
    context = _context(current)
    if tools:
        context["tools"] = tools
    body = {
        "conversationState": {
            "agentContinuationId": continuation_id,
            "agentTaskType": _AGENT_TASK_TYPE,
            "chatTriggerType": _trigger_type(req, bool(tools)),
            "currentMessage": {
                "userInputMessage": {
                    "userInputMessageContext": context,
                    "content": current.content,
                    "modelId": model_id,
                    "images": [_image(i) for i in current.images],
                    "origin": _ORIGIN,
                }
            },
            "conversationId": conversation_id,
            "history": history or None,
        }
    }
    encoded = orjson.dumps(body)
    if len(encoded) > settings.max_payload_bytes:
        raise PromptTooLongError(
            f"the request is {len(encoded):,} bytes after conversion; the upstream accepts at "
            f"most {settings.max_payload_bytes:,}. Shorten the conversation or remove images."
        )
    return UpstreamRequest(
        body=encoded,
        model_id=model_id,
        tool_names=dict(names.renamed),
        input_tokens=estimate_input_tokens(req),
        context_window=settings.model_map.context_window(req.model),
    )
