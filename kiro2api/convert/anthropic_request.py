"""Anthropic Messages request bodies → :class:`~kiro2api.convert.canonical.CanonicalRequest`.

Validation is complete and typed: every malformed field is a
:class:`~kiro2api.errors.RequestError` (400) whose ``param`` is the JSON path of the field.
What is accepted beyond the original (protocol.md §2–§3 and the [REC]s of §11.3):

* ``system`` as a string or a list of text blocks ([REC] 1);
* ``role: "system"`` messages inside ``messages`` — Claude Code sends one on every run (its
  environment block). They become user text turns, so the builder merges them into the adjacent
  user turn: never dropped silently;
* ``thinking``/``redacted_thinking`` blocks echoed back by clients are dropped (the upstream has
  no place for them), ``cache_control`` and other unknown fields of known blocks are ignored;
* unknown top-level fields (``thinking``, ``output_config``, ``context_management``,
  ``safeguards``, ``metadata``, ``service_tier``...) are accepted and ignored.

What is refused with a 400: unknown content block types (``document``...), images by URL
(we never fetch), malformed images (§2.5), blocks in the wrong role (``tool_use`` from the
user, ``tool_result`` from the assistant).
"""

from __future__ import annotations

from kiro2api.convert._validate import (
    json_type_name,
    opt_bool,
    opt_int,
    opt_number,
    opt_object,
    opt_str,
    req_list,
    req_object,
    req_str,
)
from kiro2api.convert.canonical import (
    Block,
    CanonicalRequest,
    ImageBlock,
    JSONObject,
    TextBlock,
    ToolChoice,
    ToolReferenceBlock,
    ToolResultBlock,
    ToolResultPart,
    ToolSpec,
    ToolUseBlock,
    Turn,
)
from kiro2api.convert.images import image_from_base64
from kiro2api.errors import RequestError

__all__ = ["parse_anthropic_request", "parse_count_tokens_request"]

# Echoed back by clients; meaningless upstream, harmless to drop.
_DROPPED_BLOCK_TYPES = frozenset({"thinking", "redacted_thinking"})

_ALLOWED_BLOCKS: dict[str, frozenset[str]] = {
    "user": frozenset({"text", "image", "tool_result"}),
    "assistant": frozenset({"text", "tool_use"}),
    "system": frozenset({"text"}),
}

_TOOL_CHOICE_TYPES = ("auto", "any", "tool", "none")


def parse_anthropic_request(body: object) -> CanonicalRequest:
    """Validate a ``POST /v1/messages`` body.

    Args:
        body: The decoded JSON body (``orjson.loads`` output, any type).

    Returns:
        The canonical request.

    Raises:
        RequestError: Any malformed or unsupported field (``param`` names it).
    """
    return _parse(body, count_tokens=False)


def parse_count_tokens_request(body: object) -> CanonicalRequest:
    """Validate a ``POST /v1/messages/count_tokens`` body.

    The same shape as a messages request; ``max_tokens`` and ``stream`` are neither required
    nor looked at.

    Raises:
        RequestError: Any malformed or unsupported field (``param`` names it).
    """
    return _parse(body, count_tokens=True)


def _parse(body: object, *, count_tokens: bool) -> CanonicalRequest:
    if not isinstance(body, dict):
        raise RequestError(
            f"request body must be a JSON object, got {json_type_name(body)}", param=None
        )
    model = req_str(body.get("model"), "model", non_empty=True)
    messages = body.get("messages")
    if messages is None:
        raise RequestError("messages: field required", param="messages")
    messages = req_list(messages, "messages")
    if not messages:
        raise RequestError("messages: at least one message is required", param="messages")
    turns = tuple(_parse_message(raw, f"messages[{i}]") for i, raw in enumerate(messages))
    system_parts = _parse_system(body.get("system"))
    tools_raw = body.get("tools")
    tools = () if tools_raw is None else _parse_tools(req_list(tools_raw, "tools"))
    stop_raw = body.get("stop_sequences")
    stop: tuple[str, ...] = ()
    if stop_raw is not None:
        items = req_list(stop_raw, "stop_sequences")
        stop = tuple(req_str(s, f"stop_sequences[{i}]") for i, s in enumerate(items))
    return CanonicalRequest(
        model=model,
        system="\n".join(system_parts),
        system_parts=system_parts,
        turns=turns,
        tools=tools,
        tool_choice=_parse_tool_choice(body.get("tool_choice")),
        stream=False if count_tokens else opt_bool(body.get("stream"), "stream"),
        max_tokens=None
        if count_tokens
        else opt_int(body.get("max_tokens"), "max_tokens", minimum=1),
        stop_sequences=stop,
        temperature=opt_number(body.get("temperature"), "temperature"),
        top_p=opt_number(body.get("top_p"), "top_p"),
    )


def _parse_system(raw: object) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        return (raw,) if raw else ()
    if not isinstance(raw, list):
        raise RequestError(
            f"system: expected a string or an array of text blocks, got {json_type_name(raw)}",
            param="system",
        )
    parts: list[str] = []
    for i, item in enumerate(raw):
        param = f"system[{i}]"
        block = req_object(item, param)
        kind = block.get("type", "text")
        if kind != "text":
            raise RequestError(
                f"{param}.type: only text blocks are supported in system, got {kind!r}",
                param=f"{param}.type",
            )
        text = req_str(block.get("text"), f"{param}.text")
        if text:
            parts.append(text)
    return tuple(parts)


def _parse_message(raw: object, param: str) -> Turn:
    message = req_object(raw, param)
    role = message.get("role")
    if role not in ("user", "assistant", "system"):
        raise RequestError(
            f"{param}.role: must be 'user', 'assistant' or 'system', got {role!r}",
            param=f"{param}.role",
        )
    assert isinstance(role, str)
    content = message.get("content")
    content_param = f"{param}.content"
    if isinstance(content, str):
        blocks: tuple[Block, ...] = (TextBlock(content),) if content else ()
    elif isinstance(content, list):
        parsed = (
            _parse_block(item, role, f"{content_param}[{j}]") for j, item in enumerate(content)
        )
        blocks = tuple(b for b in parsed if b is not None)
    else:
        raise RequestError(
            f"{content_param}: expected a string or an array of content blocks, "
            f"got {json_type_name(content)}",
            param=content_param,
        )
    # A system message is conversation text from the client's side: a user turn.
    return Turn(role="assistant" if role == "assistant" else "user", blocks=blocks)


def _block_type(block: JSONObject, param: str) -> str:
    kind = block.get("type")
    if not isinstance(kind, str) or not kind:
        raise RequestError(f"{param}.type: content block type required", param=f"{param}.type")
    return kind


def _parse_block(raw: object, role: str, param: str) -> Block | None:
    block = req_object(raw, param)
    kind = _block_type(block, param)
    if kind in _DROPPED_BLOCK_TYPES:
        return None
    if kind == "document" and role == "user":
        return _parse_document(block, param)
    allowed = _ALLOWED_BLOCKS[role]
    if kind not in allowed:
        known = _ALLOWED_BLOCKS["user"] | _ALLOWED_BLOCKS["assistant"]
        if kind in known:
            detail = f"a {kind} block is not allowed in a {role} message"
        else:
            detail = f"unsupported content block type {kind!r}"
        supported = ", ".join(sorted(allowed))
        raise RequestError(
            f"{param}.type: {detail}; supported in {role} messages: {supported} "
            "(thinking blocks are accepted and ignored)",
            param=f"{param}.type",
        )
    if kind == "text":
        return TextBlock(req_str(block.get("text"), f"{param}.text"))
    if kind == "image":
        return _parse_image(block, param)
    if kind == "tool_use":
        return _parse_tool_use(block, param)
    return _parse_tool_result(block, param)


def _parse_document(block: JSONObject, param: str) -> TextBlock:
    """A document block as text: the upstream takes only text and images.

    Plain-text documents (``source.type`` ``text`` or ``content``) keep their text. Others (a
    PDF a client read, say) become a short notice instead of a 400: clients resend the whole
    history every turn, so refusing one would break every later turn of the conversation.
    """
    source = req_object(block.get("source"), f"{param}.source")
    title = opt_str(block.get("title"), f"{param}.title")
    kind = req_str(source.get("type"), f"{param}.source.type", non_empty=True)
    if kind == "text":
        return TextBlock(req_str(source.get("data"), f"{param}.source.data"))
    items = source.get("content")
    if kind == "content" and isinstance(items, list):
        texts = [
            item["text"]
            for item in items
            if isinstance(item, dict) and isinstance(item.get("text"), str)
        ]
        return TextBlock("\n".join(texts))
    media_type = source.get("media_type")
    what = f"document {title!r}" if title else "a document"
    kind_text = media_type if isinstance(media_type, str) else kind
    return TextBlock(
        f"[{what} ({kind_text}) was left out: the upstream accepts only text and images]"
    )


def _parse_image(block: JSONObject, param: str) -> ImageBlock:
    source_param = f"{param}.source"
    source = req_object(block.get("source"), source_param)
    kind = source.get("type")
    if kind == "url":
        raise RequestError(
            f"{source_param}.type: image URLs are not supported (the proxy never fetches "
            "URLs); send the image as a base64 source",
            param=f"{source_param}.type",
        )
    if kind != "base64":
        raise RequestError(
            f"{source_param}.type: unsupported image source {kind!r}; supported: base64",
            param=f"{source_param}.type",
        )
    media_type = req_str(source.get("media_type"), f"{source_param}.media_type")
    data = req_str(source.get("data"), f"{source_param}.data")
    return image_from_base64(media_type, data, param=source_param)


def _parse_tool_use(block: JSONObject, param: str) -> ToolUseBlock:
    tool_id = req_str(block.get("id"), f"{param}.id", non_empty=True)
    name = req_str(block.get("name"), f"{param}.name", non_empty=True)
    raw_input = block.get("input")
    tool_input = {} if raw_input is None else req_object(raw_input, f"{param}.input")
    return ToolUseBlock(id=tool_id, name=name, input=tool_input)


def _parse_tool_result(block: JSONObject, param: str) -> ToolResultBlock:
    tool_use_id = req_str(block.get("tool_use_id"), f"{param}.tool_use_id", non_empty=True)
    content = block.get("content")
    content_param = f"{param}.content"
    parts: tuple[ToolResultPart, ...]
    if content is None:
        parts = ()
    elif isinstance(content, str):
        parts = (TextBlock(content),) if content else ()
    elif isinstance(content, list):
        parts = tuple(
            _parse_tool_result_part(item, f"{content_param}[{k}]") for k, item in enumerate(content)
        )
    else:
        raise RequestError(
            f"{content_param}: expected a string or an array of content blocks, "
            f"got {json_type_name(content)}",
            param=content_param,
        )
    return ToolResultBlock(
        tool_use_id=tool_use_id,
        content=parts,
        is_error=opt_bool(block.get("is_error"), f"{param}.is_error"),
    )


def _parse_tool_result_part(raw: object, param: str) -> ToolResultPart:
    block = req_object(raw, param)
    kind = _block_type(block, param)
    if kind == "text":
        return TextBlock(req_str(block.get("text"), f"{param}.text"))
    if kind == "image":
        return _parse_image(block, param)
    if kind == "tool_reference":
        name = req_str(block.get("tool_name"), f"{param}.tool_name", non_empty=True)
        return ToolReferenceBlock(name)
    if kind == "document":
        return _parse_document(block, param)
    raise RequestError(
        f"{param}.type: unsupported tool result content type {kind!r}; "
        "supported: document, image, text, tool_reference",
        param=f"{param}.type",
    )


def _parse_tools(items: list[object]) -> tuple[ToolSpec, ...]:
    tools: list[ToolSpec] = []
    for i, raw in enumerate(items):
        param = f"tools[{i}]"
        tool = req_object(raw, param)
        kind = opt_str(tool.get("type"), f"{param}.type")
        tools.append(
            ToolSpec(
                name=req_str(tool.get("name"), f"{param}.name", non_empty=True),
                description=opt_str(tool.get("description"), f"{param}.description") or "",
                input_schema=opt_object(tool.get("input_schema"), f"{param}.input_schema"),
                server_type=None if kind in (None, "custom") else kind,
                defer_loading=opt_bool(tool.get("defer_loading"), f"{param}.defer_loading"),
            )
        )
    return tuple(tools)


def _parse_tool_choice(raw: object) -> ToolChoice | None:
    choice = opt_object(raw, "tool_choice")
    if choice is None:
        return None
    kind = choice.get("type")
    if kind not in _TOOL_CHOICE_TYPES:
        raise RequestError(
            f"tool_choice.type: must be one of {', '.join(_TOOL_CHOICE_TYPES)}, got {kind!r}",
            param="tool_choice.type",
        )
    if kind == "tool":
        name = req_str(choice.get("name"), "tool_choice.name", non_empty=True)
        return ToolChoice(type="tool", name=name)
    if kind == "any":
        return ToolChoice(type="any")
    return ToolChoice(type="none" if kind == "none" else "auto")
