"""Builders for upstream messages and readers for the SSE the translators emit.

The readers validate every frame with the SDKs' own pydantic types and check the event order a
client relies on, so each test only has to state what is specific to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import orjson

from kiro2api.convert.anthropic_stream import AnthropicStreamTranslator
from kiro2api.convert.events import UpstreamEventParser
from kiro2api.convert.openai_stream import OpenAIStreamTranslator

#: One upstream message as the app hands it over: (message type, event type, payload).
Raw = tuple[str, str, bytes]

MODEL = "claude-sonnet-4-20250514"
#: Accepted Claude Code SSE samples, beside the checkout.
SAMPLES = Path(__file__).resolve().parents[3].parent / "shared/testdata/claude-code/2.1.330"


# ---------------------------------------------------------------------------- upstream side


def text(content: str) -> Raw:
    """An ``assistantResponseEvent``."""
    return ("event", "assistantResponseEvent", orjson.dumps({"content": content}))


def tool(
    tool_id: str, name: str, input: object = None, *, stop: bool = False, omit_input: bool = True
) -> Raw:
    """A ``toolUseEvent``; ``input`` is left out when ``None`` (unless ``omit_input`` is off)."""
    body: dict[str, object] = {"name": name, "toolUseId": tool_id}
    if input is not None or not omit_input:
        body["input"] = input
    if stop:
        body["stop"] = True
    return ("event", "toolUseEvent", orjson.dumps(body))


def exception(exception_type: str, message: str = "boom", *, header: bool = True) -> Raw:
    """An exception frame, typed by header (or only by the payload's ``__type``)."""
    payload = {"message": message}
    if not header:
        payload["__type"] = f"com.amazon.aws.codewhisperer#{exception_type}"
    return ("exception", exception_type if header else "", orjson.dumps(payload))


def context_usage(percentage: float) -> Raw:
    """A ``contextUsageEvent``."""
    return ("event", "contextUsageEvent", orjson.dumps({"contextUsagePercentage": percentage}))


def weather_call(tool_id: str = "tooluse_Ab12Cd34Ef56Gh78Ij90Kl") -> list[Raw]:
    """The protocol sheet's typical four-event tool call (get_weather, Tokyo)."""
    return [
        tool(tool_id, "get_weather"),
        tool(tool_id, "get_weather", '{"location":'),
        tool(tool_id, "get_weather", ' "Tokyo"}'),
        tool(tool_id, "get_weather", stop=True),
    ]


# ---------------------------------------------------------------------------- Anthropic


def anthropic_stream(
    messages: Iterable[Raw],
    *,
    input_tokens: int = 395,
    context_window: int = 200_000,
    tool_names: dict[str, str] | None = None,
    finish: bool = True,
) -> tuple[bytes, AnthropicStreamTranslator]:
    """Run upstream messages through the parser and the Anthropic translator, like the app."""
    parser = UpstreamEventParser()
    translator = AnthropicStreamTranslator(
        model=MODEL,
        message_id="msg_test",
        input_tokens=input_tokens,
        context_window=context_window,
        tool_names=tool_names or {},
    )
    out = [translator.message_start(), translator.ping()]
    for message in messages:
        out.append(translator.feed(parser.feed(*message)))
    if finish:
        out.append(translator.finish())
    return b"".join(out), translator


def parse_anthropic_sse(data: bytes) -> list[dict[str, Any]]:
    """Split Anthropic SSE bytes into event objects, checking the framing of each."""
    assert data.endswith(b"\n\n")
    events = []
    for frame in data[:-2].split(b"\n\n"):
        event_line, data_line = frame.split(b"\n")
        assert event_line.startswith(b"event: ")
        assert data_line.startswith(b"data: ")
        event = orjson.loads(data_line[len(b"data: ") :])
        assert event["type"] == event_line[len(b"event: ") :].decode()
        events.append(event)
    return events


def validate_anthropic(events: Sequence[dict[str, Any]]) -> None:
    """Validate with the SDK types and check the order Claude Code relies on."""
    import anthropic.types
    import pydantic

    adapter = pydantic.TypeAdapter(anthropic.types.RawMessageStreamEvent)
    for event in events:
        if event["type"] == "error":
            anthropic.types.ErrorResponse.model_validate(event)
        elif event["type"] != "ping":
            adapter.validate_python(event)

    types = [e["type"] for e in events]
    assert types[0] in ("message_start", "error")
    terminal = types[-1]
    assert terminal in ("message_stop", "error")
    assert types.count("message_delta") == (1 if terminal == "message_stop" else 0)
    assert types.count("error") == (1 if terminal == "error" else 0)
    if terminal == "message_stop":
        assert types[-2] == "message_delta"
    open_index: int | None = None
    next_index = 0
    for event in events:
        kind = event["type"]
        if kind == "content_block_start":
            assert open_index is None, "a block starts while another is open"
            assert event["index"] == next_index, "block indices must be consecutive"
            if event["content_block"]["type"] == "tool_use":
                assert event["content_block"]["input"] == {}
            open_index = next_index
            next_index += 1
        elif kind == "content_block_delta":
            assert event["index"] == open_index
        elif kind == "content_block_stop":
            assert event["index"] == open_index
            open_index = None
        elif kind in ("message_delta", "error"):
            assert open_index is None, "blocks must be closed before the end"


def accumulate_anthropic(events: Sequence[dict[str, Any]]) -> Any:
    """Feed the events through the SDK's own stream accumulator; return its final message."""
    from anthropic.lib.streaming._messages import accumulate_event

    snapshot = None
    json_bufs: dict[int, bytes] = {}
    for event in events:
        if event["type"] in ("ping", "error"):
            continue
        snapshot = accumulate_event(
            event=cast(Any, event), current_snapshot=snapshot, json_bufs=json_bufs
        )
    return snapshot


def anthropic_final(data: bytes) -> Any:
    """Parse, validate and accumulate an Anthropic stream."""
    events = parse_anthropic_sse(data)
    validate_anthropic(events)
    return accumulate_anthropic(events)


# ---------------------------------------------------------------------------- OpenAI


def openai_stream(
    messages: Iterable[Raw],
    *,
    include_usage: bool = True,
    tool_names: dict[str, str] | None = None,
    finish: bool = True,
) -> tuple[bytes, OpenAIStreamTranslator]:
    """Run upstream messages through the parser and the OpenAI translator."""
    parser = UpstreamEventParser()
    translator = OpenAIStreamTranslator(
        model=MODEL,
        completion_id="chatcmpl-test",
        created=1_760_876_577,
        input_tokens=17,
        context_window=200_000,
        tool_names=tool_names or {},
        include_usage=include_usage,
    )
    out = [translator.start()]
    for message in messages:
        out.append(translator.feed(parser.feed(*message)))
    if finish:
        out.append(translator.finish())
    return b"".join(out), translator


@dataclass
class OpenAIResult:
    """What an OpenAI streaming client ends up with."""

    role: str | None = None
    content: str = ""
    tool_calls: dict[int, dict[str, str]] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: dict[str, int] | None = None
    error: dict[str, Any] | None = None
    chunks: list[dict[str, Any]] = field(default_factory=list)


def read_openai_sse(data: bytes) -> OpenAIResult:
    """Parse, validate (``ChatCompletionChunk``) and accumulate an OpenAI stream."""
    from openai.types.chat import ChatCompletionChunk

    assert data.endswith(b"data: [DONE]\n\n")
    frames = data[:-2].split(b"\n\n")
    assert frames[-1] == b"data: [DONE]"
    result = OpenAIResult()
    for frame in frames[:-1]:
        assert frame.startswith(b"data: ")
        assert b"\n" not in frame
        chunk = orjson.loads(frame[len(b"data: ") :])
        if "error" in chunk:
            assert set(chunk["error"]) == {"message", "type", "param", "code"}
            assert frame is frames[-2], "nothing but [DONE] may follow an error"
            result.error = chunk["error"]
            continue
        ChatCompletionChunk.model_validate(chunk)
        result.chunks.append(chunk)
        assert chunk["id"] == "chatcmpl-test"
        assert chunk["object"] == "chat.completion.chunk"
        if not chunk["choices"]:
            assert result.usage is None
            result.usage = chunk["usage"]
            continue
        assert result.usage is None, "the usage chunk comes last"
        assert result.finish_reason is None, "nothing after the finish chunk but usage"
        (choice,) = chunk["choices"]
        assert choice["index"] == 0
        assert choice["logprobs"] is None
        delta = choice["delta"]
        if "role" in delta:
            assert result.role is None
            result.role = delta["role"]
        result.content += delta.get("content") or ""
        for call in delta.get("tool_calls", []):
            slot = result.tool_calls.setdefault(call["index"], {"arguments": ""})
            if "id" in call:
                assert "id" not in slot
                slot["id"] = call["id"]
                slot["name"] = call["function"]["name"]
            slot["arguments"] += call["function"].get("arguments") or ""
        result.finish_reason = choice["finish_reason"]
    return result
