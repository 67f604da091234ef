"""OpenAI ``chat.completion.chunk`` streams produced from upstream events.

Each chunk is validated with ``openai.types.chat.ChatCompletionChunk`` and the stream is
accumulated the way an OpenAI client does (see ``translate_support.read_openai_sse``).
"""

from __future__ import annotations

import orjson
import pytest
from translate_support import (
    context_usage,
    exception,
    openai_stream,
    read_openai_sse,
    text,
    tool,
    weather_call,
)

from kiro2api.convert.estimate import estimate_text_tokens, estimate_tool_use_tokens
from kiro2api.convert.events import UpstreamEventParser
from kiro2api.errors import UpstreamTimeoutError


def test_text_only_stream() -> None:
    data, translator = openai_stream([text("Hello"), text(", world")])
    result = read_openai_sse(data)
    assert result.role == "assistant"
    assert result.content == "Hello, world"
    assert result.finish_reason == "stop"
    assert result.tool_calls == {}
    completion = estimate_text_tokens("Hello, world")
    assert result.usage == {
        "prompt_tokens": 17,
        "completion_tokens": completion,
        "total_tokens": 17 + completion,
    }
    # The first chunk carries the role with empty content; the last real chunk an empty delta.
    assert result.chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert result.chunks[-2]["choices"][0] == {
        "index": 0,
        "delta": {},
        "finish_reason": "stop",
        "logprobs": None,
    }
    assert all(
        c["created"] == 1_760_876_577 and c["model"] == translator.model for c in result.chunks
    )


def test_text_then_tool_calls() -> None:
    messages = [text("Checking."), *weather_call("call_1"), *weather_call("call_2")]
    result = read_openai_sse(openai_stream(messages)[0])
    assert result.content == "Checking."
    assert result.finish_reason == "tool_calls"
    assert result.tool_calls == {
        0: {"id": "call_1", "name": "get_weather", "arguments": '{"location": "Tokyo"}'},
        1: {"id": "call_2", "name": "get_weather", "arguments": '{"location": "Tokyo"}'},
    }
    first = next(c for c in result.chunks if "tool_calls" in c["choices"][0]["delta"])
    assert first["choices"][0]["delta"]["tool_calls"] == [
        {
            "index": 0,
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        }
    ]


@pytest.mark.parametrize(
    "messages",
    [
        [tool("t1", "list_files"), tool("t1", "list_files", stop=True)],
        [tool("t1", "list_files", {}, stop=True)],
    ],
    ids=["no-input", "empty-object"],
)
def test_tool_without_arguments_gets_parseable_arguments(
    messages: list[tuple[str, str, bytes]],
) -> None:
    result = read_openai_sse(openai_stream(messages)[0])
    assert orjson.loads(result.tool_calls[0]["arguments"]) == {}


def test_tool_names_are_mapped_back() -> None:
    result = read_openai_sse(
        openai_stream(
            [tool("t1", "short_1", '{"a": 1}', stop=True)],
            tool_names={"short_1": "a_very_long_name"},
        )[0]
    )
    assert result.tool_calls[0]["name"] == "a_very_long_name"


def test_no_usage_chunk_unless_asked() -> None:
    result = read_openai_sse(openai_stream([text("x")], include_usage=False)[0])
    assert result.usage is None
    assert result.finish_reason == "stop"


def test_usage_counts_tokens_and_context_usage() -> None:
    messages = [text("Checking."), *weather_call(), context_usage(2.0)]
    result = read_openai_sse(openai_stream(messages)[0])
    completion = estimate_text_tokens("Checking.") + estimate_tool_use_tokens(
        "get_weather", {"location": "Tokyo"}
    )
    assert result.usage == {
        "prompt_tokens": 4000,
        "completion_tokens": completion,
        "total_tokens": 4000 + completion,
    }


def test_content_length_exceeded_is_length() -> None:
    messages = [text("A long"), exception("ContentLengthExceededException")]
    result = read_openai_sse(openai_stream(messages)[0])
    assert result.finish_reason == "length"
    assert result.error is None


def test_upstream_failure_is_an_error_chunk_then_done() -> None:
    data, translator = openai_stream(
        [text("Partial"), exception("ThrottlingException", "slow down")]
    )
    result = read_openai_sse(data)
    assert result.content == "Partial"
    assert result.finish_reason is None
    assert result.error is not None
    assert result.error["code"] == "overloaded"
    assert result.error["type"] == "server_error"
    assert "slow down" in result.error["message"]
    assert data.count(b"data: [DONE]") == 1
    assert translator.finish() == b""


def test_app_reported_failure() -> None:
    data, translator = openai_stream([text("Partial")], finish=False)
    data += translator.fail(UpstreamTimeoutError("upstream stalled"))
    result = read_openai_sse(data)
    assert result.error == {
        "message": "upstream stalled",
        "type": "server_error",
        "param": None,
        "code": "timeout",
    }


def test_empty_upstream_answer() -> None:
    result = read_openai_sse(openai_stream([])[0])
    assert result.role == "assistant"
    assert result.content == ""
    assert result.finish_reason == "stop"
    assert result.usage is not None
    assert result.usage["completion_tokens"] == 0


def test_start_is_sent_once() -> None:
    _, translator = openai_stream([], finish=False)
    assert translator.start() == b""
    assert translator.feed([]) == b""


def test_context_overflow_before_output_is_context_length_exceeded() -> None:
    result = read_openai_sse(openai_stream([exception("ContentLengthExceededException")])[0])
    assert result.error is not None
    assert result.error["code"] == "context_length_exceeded"
    assert result.error["message"].startswith("prompt is too long")
    assert result.finish_reason is None


def test_ping_keeps_the_stream_alive_without_changing_it() -> None:
    from kiro2api.convert.openai_stream import OpenAIStreamTranslator

    translator = OpenAIStreamTranslator(
        model="m",
        completion_id="chatcmpl-test",
        created=1,
        input_tokens=1,
        context_window=0,
        tool_names={},
        include_usage=False,
    )
    # Before anything else a ping sends the first chunk; later ones are SSE comments.
    data = translator.ping() + translator.ping()
    data += translator.feed(UpstreamEventParser().feed(*text("hi")))
    data += translator.ping() + translator.finish()
    assert data.count(b": ping\n\n") == 2
    result = read_openai_sse(
        b"".join(f + b"\n\n" for f in data.split(b"\n\n") if f and not f.startswith(b":"))
    )
    assert result.role == "assistant"
    assert result.content == "hi"
    assert translator.ping() == b""
