"""OpenAI Chat Completions request bodies → :class:`~kiro2api.convert.canonical.CanonicalRequest`.

Unlike the original (protocol.md §4.1 [QUIRK]: roles were not mapped, so system prompts, tool
calls and tool results never reached the upstream), roles are mapped properly ([REC] 11):

* ``system`` and ``developer`` messages → the system prompt (in order, wherever they appear);
* ``user`` → a user turn (string or ``text``/``image_url`` parts; images only as base64 data
  URLs — a remote URL is a 400, the proxy never fetches);
* ``assistant`` → text plus ``tool_calls`` as tool-use blocks (``arguments`` is a JSON string
  and must decode to an object) and the legacy ``function_call``;
* ``tool`` → a tool-result block in a user turn, paired by ``tool_call_id``; the legacy
  ``function`` role is paired by name with the latest unanswered ``function_call``.

``tools`` (``type: function``) and the legacy ``functions`` become tool declarations; a missing
``parameters`` is an empty object schema ([REC] of §4.2). ``tool_choice`` / ``function_call``
are kept in the canonical request. ``n > 1``, ``logprobs``/``top_logprobs`` and audio output
cannot be served and are a 400 naming the parameter; all other unknown fields are accepted and
ignored.
"""

from __future__ import annotations

import orjson

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
    JSONObject,
    TextBlock,
    ToolChoice,
    ToolResultBlock,
    ToolResultPart,
    ToolSpec,
    ToolUseBlock,
    Turn,
)
from kiro2api.convert.images import image_from_data_url
from kiro2api.errors import RequestError

__all__ = ["parse_openai_request"]

_ROLES = ("system", "developer", "user", "assistant", "tool", "function")


class _State:
    """Per-request parsing state: the legacy ``function_call`` ids awaiting an answer."""

    __slots__ = ("pending_functions", "system")

    def __init__(self) -> None:
        self.system: list[str] = []
        # name -> ids of legacy function calls not yet answered, oldest first.
        self.pending_functions: dict[str, list[str]] = {}


def parse_openai_request(body: object) -> CanonicalRequest:
    """Validate a ``POST /v1/chat/completions`` body.

    Args:
        body: The decoded JSON body (``orjson.loads`` output, any type).

    Returns:
        The canonical request. ``tool_choice`` keeps the client's intent; the upstream honours
        only part of it: ``required``/named function switch the upstream's trigger type to
        ``AUTO`` (it is encouraged, not forced, to call a tool) and ``none`` cannot stop it from
        calling one.

    Raises:
        RequestError: Any malformed or unsupported field (``param`` names it).
    """
    if not isinstance(body, dict):
        raise RequestError(
            f"request body must be a JSON object, got {json_type_name(body)}", param=None
        )
    _reject_unsupported(body)
    model = req_str(body.get("model"), "model", non_empty=True)
    messages_raw = body.get("messages")
    if messages_raw is None:
        raise RequestError("messages: field required", param="messages")
    messages = req_list(messages_raw, "messages")
    if not messages:
        raise RequestError("messages: at least one message is required", param="messages")
    state = _State()
    turns: list[Turn] = []
    for i, raw in enumerate(messages):
        turn = _parse_message(raw, f"messages[{i}]", state)
        if turn is not None:
            turns.append(turn)
    stream_options = opt_object(body.get("stream_options"), "stream_options") or {}
    max_tokens = opt_int(body.get("max_completion_tokens"), "max_completion_tokens", minimum=1)
    if max_tokens is None:
        max_tokens = opt_int(body.get("max_tokens"), "max_tokens", minimum=1)
    return CanonicalRequest(
        model=model,
        system="\n".join(state.system),
        system_parts=tuple(state.system),
        turns=tuple(turns),
        tools=_parse_tools(body),
        tool_choice=_parse_tool_choice(body),
        stream=opt_bool(body.get("stream"), "stream"),
        max_tokens=max_tokens,
        stop_sequences=_parse_stop(body.get("stop")),
        temperature=opt_number(body.get("temperature"), "temperature"),
        top_p=opt_number(body.get("top_p"), "top_p"),
        include_usage=opt_bool(stream_options.get("include_usage"), "stream_options.include_usage"),
    )


def _reject_unsupported(body: JSONObject) -> None:
    n = opt_int(body.get("n"), "n", minimum=1)
    if n is not None and n > 1:
        raise RequestError("n: only one choice per request is supported (n must be 1)", param="n")
    if opt_bool(body.get("logprobs"), "logprobs"):
        raise RequestError("logprobs: log probabilities are not supported", param="logprobs")
    if body.get("top_logprobs") is not None:
        raise RequestError(
            "top_logprobs: log probabilities are not supported", param="top_logprobs"
        )
    modalities = body.get("modalities")
    if modalities is not None:
        items = req_list(modalities, "modalities")
        if "audio" in items:
            raise RequestError("modalities: audio output is not supported", param="modalities")
    if body.get("audio") is not None:
        raise RequestError("audio: audio output is not supported", param="audio")


def _parse_stop(raw: object) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        return (raw,)
    items = req_list(raw, "stop")
    return tuple(req_str(s, f"stop[{i}]") for i, s in enumerate(items))


def _text_of(content: object, param: str) -> str:
    """Text-only content (system/developer/tool messages): a string or ``text`` parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = req_list(content, param)
    texts: list[str] = []
    for i, raw in enumerate(parts):
        part = req_object(raw, f"{param}[{i}]")
        kind = part.get("type")
        if kind not in ("text", "refusal"):
            raise RequestError(
                f"{param}[{i}].type: only text parts are supported here, got {kind!r}",
                param=f"{param}[{i}].type",
            )
        texts.append(req_str(part.get(str(kind)), f"{param}[{i}].{kind}"))
    return "\n".join(texts)


def _parse_message(raw: object, param: str, state: _State) -> Turn | None:
    message = req_object(raw, param)
    role = message.get("role")
    if role not in _ROLES:
        raise RequestError(
            f"{param}.role: must be one of {', '.join(_ROLES)}, got {role!r}",
            param=f"{param}.role",
        )
    content = message.get("content")
    if role in ("system", "developer"):
        text = _text_of(content, f"{param}.content")
        if text:
            state.system.append(text)
        return None
    if role == "user":
        return Turn(role="user", blocks=_user_blocks(content, f"{param}.content"))
    if role == "assistant":
        return _assistant_turn(message, param, state)
    if role == "tool":
        tool_call_id = req_str(message.get("tool_call_id"), f"{param}.tool_call_id", non_empty=True)
    else:  # legacy `function` role: answered by name
        name = req_str(message.get("name"), f"{param}.name", non_empty=True)
        pending = state.pending_functions.get(name)
        tool_call_id = pending.pop(0) if pending else f"call_function_{name}_{param}"
    text = _text_of(content, f"{param}.content")
    parts: tuple[ToolResultPart, ...] = (TextBlock(text),) if text else ()
    return Turn(role="user", blocks=(ToolResultBlock(tool_use_id=tool_call_id, content=parts),))


def _user_blocks(content: object, param: str) -> tuple[Block, ...]:
    if isinstance(content, str):
        return (TextBlock(content),) if content else ()
    if content is None:
        raise RequestError(f"{param}: field required", param=param)
    parts = req_list(content, param)
    blocks: list[Block] = []
    for i, raw in enumerate(parts):
        part_param = f"{param}[{i}]"
        part = req_object(raw, part_param)
        kind = part.get("type")
        if kind == "text":
            blocks.append(TextBlock(req_str(part.get("text"), f"{part_param}.text")))
        elif kind == "image_url":
            image = part.get("image_url")
            # The spec says `{"url": ...}`; a bare string is a common client shortcut.
            if isinstance(image, str):
                url, url_param = image, f"{part_param}.image_url"
            else:
                url_param = f"{part_param}.image_url.url"
                url = req_str(req_object(image, f"{part_param}.image_url").get("url"), url_param)
            blocks.append(image_from_data_url(url, param=url_param))
        else:
            raise RequestError(
                f"{part_param}.type: unsupported content part type {kind!r}; "
                "supported: text, image_url",
                param=f"{part_param}.type",
            )
    return tuple(blocks)


def _parse_arguments(raw: object, param: str) -> JSONObject:
    if raw is None:
        return {}
    if isinstance(raw, dict):  # some clients send the object itself
        return raw
    text = req_str(raw, param)
    if not text.strip():
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"{param}: arguments are not valid JSON ({exc})", param=param) from exc
    if not isinstance(value, dict):
        raise RequestError(
            f"{param}: arguments must be a JSON object, got {json_type_name(value)}", param=param
        )
    return value


def _assistant_turn(message: JSONObject, param: str, state: _State) -> Turn:
    blocks: list[Block] = []
    text = _text_of(message.get("content"), f"{param}.content")
    if text:
        blocks.append(TextBlock(text))
    calls_raw = message.get("tool_calls")
    calls = [] if calls_raw is None else req_list(calls_raw, f"{param}.tool_calls")
    for j, raw in enumerate(calls):
        call_param = f"{param}.tool_calls[{j}]"
        call = req_object(raw, call_param)
        kind = call.get("type", "function")
        if kind != "function":
            raise RequestError(
                f"{call_param}.type: only function tool calls are supported, got {kind!r}",
                param=f"{call_param}.type",
            )
        function = req_object(call.get("function"), f"{call_param}.function")
        blocks.append(
            ToolUseBlock(
                id=req_str(call.get("id"), f"{call_param}.id", non_empty=True),
                name=req_str(function.get("name"), f"{call_param}.function.name", non_empty=True),
                input=_parse_arguments(
                    function.get("arguments"), f"{call_param}.function.arguments"
                ),
            )
        )
    legacy = opt_object(message.get("function_call"), f"{param}.function_call")
    if legacy is not None:
        name = req_str(legacy.get("name"), f"{param}.function_call.name", non_empty=True)
        call_id = f"call_function_{name}_{param}"
        state.pending_functions.setdefault(name, []).append(call_id)
        arguments = _parse_arguments(legacy.get("arguments"), f"{param}.function_call.arguments")
        blocks.append(ToolUseBlock(id=call_id, name=name, input=arguments))
    return Turn(role="assistant", blocks=tuple(blocks))


def _function_spec(function: JSONObject, param: str) -> ToolSpec:
    return ToolSpec(
        name=req_str(function.get("name"), f"{param}.name", non_empty=True),
        description=opt_str(function.get("description"), f"{param}.description") or "",
        input_schema=opt_object(function.get("parameters"), f"{param}.parameters")
        or {"type": "object", "properties": {}},
    )


def _parse_tools(body: JSONObject) -> tuple[ToolSpec, ...]:
    tools: list[ToolSpec] = []
    raw_tools = body.get("tools")
    for i, raw in enumerate([] if raw_tools is None else req_list(raw_tools, "tools")):
        param = f"tools[{i}]"
        tool = req_object(raw, param)
        kind = tool.get("type", "function")
        if kind != "function":
            raise RequestError(
                f"{param}.type: unsupported tool type {kind!r}; supported: function",
                param=f"{param}.type",
            )
        tools.append(
            _function_spec(
                req_object(tool.get("function"), f"{param}.function"), f"{param}.function"
            )
        )
    raw_functions = body.get("functions")
    for i, raw in enumerate([] if raw_functions is None else req_list(raw_functions, "functions")):
        tools.append(_function_spec(req_object(raw, f"functions[{i}]"), f"functions[{i}]"))
    return tuple(tools)


def _named_choice(value: JSONObject, param: str) -> ToolChoice:
    function = value.get("function")
    # `{"type":"function","function":{"name":...}}`; legacy `function_call` is `{"name":...}`.
    holder = req_object(function, f"{param}.function") if function is not None else value
    name_param = f"{param}.function.name" if function is not None else f"{param}.name"
    return ToolChoice(type="tool", name=req_str(holder.get("name"), name_param, non_empty=True))


def _parse_tool_choice(body: JSONObject) -> ToolChoice | None:
    for key in ("tool_choice", "function_call"):
        raw = body.get(key)
        if raw is None:
            continue
        if raw == "auto":
            return ToolChoice(type="auto")
        if raw == "none":
            return ToolChoice(type="none")
        if raw in ("required", "any"):
            return ToolChoice(type="any")
        if isinstance(raw, dict):
            return _named_choice(raw, key)
        raise RequestError(
            f"{key}: must be 'auto', 'none', 'required' or a named function, got {raw!r}",
            param=key,
        )
    return None
