"""Non-streaming responses: Anthropic ``Message`` and OpenAI ``chat.completion`` bodies.

Results are validated with ``anthropic.types.Message`` and ``openai.types.chat.ChatCompletion``,
and compared with what the streaming translators deliver for the same upstream answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import pytest
from translate_support import (
    MODEL,
    Raw,
    anthropic_final,
    anthropic_stream,
    context_usage,
    exception,
    openai_stream,
    read_openai_sse,
    text,
    tool,
    weather_call,
)

from kiro2api.convert.anthropic_response import AnthropicAggregator
from kiro2api.convert.events import UpstreamEventParser
from kiro2api.convert.openai_response import OpenAIAggregator
from kiro2api.errors import PromptTooLongError, UpstreamOverloadedError, UpstreamProtocolError


def anthropic_result(messages: Sequence[Raw], **kwargs: Any) -> dict[str, Any]:
    import anthropic.types

    parser = UpstreamEventParser()
    aggregator = AnthropicAggregator(
        model=MODEL,
        message_id="msg_test",
        input_tokens=395,
        context_window=200_000,
        tool_names=kwargs.get("tool_names", {}),
    )
    for message in messages:
        aggregator.feed(parser.feed(*message))
    result: dict[str, Any] = aggregator.result()
    anthropic.types.Message.model_validate(result)
    # JSON-ready: orjson must serialise it as is.
    orjson.dumps(result)
    return result


def openai_result(messages: Sequence[Raw]) -> dict[str, Any]:
    from openai.types.chat import ChatCompletion

    parser = UpstreamEventParser()
    aggregator = OpenAIAggregator(
        model=MODEL,
        completion_id="chatcmpl-test",
        created=1_760_876_577,
        input_tokens=17,
        context_window=200_000,
        tool_names={},
    )
    for message in messages:
        aggregator.feed(parser.feed(*message))
    result: dict[str, Any] = aggregator.result()
    ChatCompletion.model_validate(result)
    orjson.dumps(result)
    return result


SCENARIOS: dict[str, list[Raw]] = {
    "text": [text("Hello "), text("world")],
    "tool-only": weather_call(),
    "text-tool": [text("Let me check."), *weather_call()],
    "text-after-tool": [text("a"), *weather_call(), text("b")],
    "several-tools": [*weather_call("t1"), tool("t2", "noargs", stop=True), *weather_call("t3")],
    "one-shot": [tool("t1", "calc", {"x": [1, 2, {"y": "日本"}]}, stop=True)],
    "max-tokens": [text("cut"), exception("ContentLengthExceededException")],
    "empty": [],
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_anthropic_aggregate_equals_accumulated_stream(name: str) -> None:
    messages = SCENARIOS[name]
    result = anthropic_result(messages)
    streamed = anthropic_final(anthropic_stream(messages)[0])
    assert result["content"] == [block.to_dict() for block in streamed.content]
    assert result["stop_reason"] == streamed.stop_reason
    assert result["usage"] == streamed.usage.to_dict()


@pytest.mark.parametrize("name", SCENARIOS)
def test_openai_aggregate_equals_accumulated_stream(name: str) -> None:
    messages = SCENARIOS[name]
    result = openai_result(messages)
    streamed = read_openai_sse(openai_stream(messages)[0])
    (choice,) = result["choices"]
    message = choice["message"]
    assert (message["content"] or "") == streamed.content
    calls = message.get("tool_calls", [])
    assert [orjson.loads(c["function"]["arguments"]) for c in calls] == [
        orjson.loads(c["arguments"]) for c in streamed.tool_calls.values()
    ]
    assert [(c["id"], c["function"]["name"]) for c in calls] == [
        (c["id"], c["name"]) for c in streamed.tool_calls.values()
    ]
    assert choice["finish_reason"] == streamed.finish_reason
    assert result["usage"] == streamed.usage


def test_anthropic_message_shape() -> None:
    result = anthropic_result([text("Let me check."), *weather_call()])
    assert result == {
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [
            {"type": "text", "text": "Let me check."},
            {
                "type": "tool_use",
                "id": "tooluse_Ab12Cd34Ef56Gh78Ij90Kl",
                "name": "get_weather",
                "input": {"location": "Tokyo"},
            },
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 395,
            "output_tokens": 30,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }


def test_anthropic_empty_answer_has_empty_content_list() -> None:
    result = anthropic_result([])
    assert result["content"] == []
    assert result["stop_reason"] == "end_turn"


def test_anthropic_tool_order_is_upstream_order() -> None:
    ids = [f"tooluse_{i}" for i in range(8)]
    messages = [tool(i, "t", {"n": n}, stop=True) for n, i in enumerate(ids)]
    result = anthropic_result(messages)
    assert [b["id"] for b in result["content"]] == ids


def test_anthropic_context_usage_sets_input_tokens() -> None:
    result = anthropic_result([text("x"), context_usage(10.0)])
    assert result["usage"]["input_tokens"] == 20_000


def test_invalid_tool_json_is_a_protocol_error() -> None:
    with pytest.raises(UpstreamProtocolError, match="tooluse_bad"):
        anthropic_result([tool("tooluse_bad", "w", '{"a": ', stop=True)])
    with pytest.raises(UpstreamProtocolError):
        openai_result([tool("tooluse_bad", "w", "[1, 2]", stop=True)])


def test_upstream_failure_raises_the_mapped_error() -> None:
    with pytest.raises(UpstreamOverloadedError):
        anthropic_result([text("partial"), exception("ThrottlingException")])
    with pytest.raises(UpstreamOverloadedError):
        openai_result([exception("ThrottlingException", header=False)])


def test_context_overflow_before_output_is_prompt_too_long() -> None:
    with pytest.raises(PromptTooLongError, match=r"^prompt is too long"):
        anthropic_result([exception("ContentLengthExceededException")])


def test_max_tokens_keeps_what_was_received() -> None:
    result = anthropic_result([text("so far"), exception("ContentLengthExceededException")])
    assert result["stop_reason"] == "max_tokens"
    assert result["content"] == [{"type": "text", "text": "so far"}]
    assert (
        openai_result([text("so far"), exception("ContentLengthExceededException")])["choices"][0][
            "finish_reason"
        ]
        == "length"
    )


def test_openai_completion_shape() -> None:
    result = openai_result([text("Checking."), *weather_call()])
    assert result == {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_760_876_577,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Checking.",
                    "tool_calls": [
                        {
                            "id": "tooluse_Ab12Cd34Ef56Gh78Ij90Kl",
                            "type": "function",
                            "function": {
                                "name": "get_weather",
                                "arguments": '{"location":"Tokyo"}',
                            },
                        }
                    ],
                },
                "finish_reason": "tool_calls",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 17, "completion_tokens": 29, "total_tokens": 46},
    }


def test_openai_tool_only_has_null_content_and_text_only_has_no_tool_calls() -> None:
    tool_only = openai_result(weather_call())["choices"][0]["message"]
    assert tool_only["content"] is None
    text_only = openai_result([text("hi")])["choices"][0]["message"]
    assert text_only == {"role": "assistant", "content": "hi"}
    empty = openai_result([])["choices"][0]["message"]
    assert empty == {"role": "assistant", "content": ""}


def test_result_is_repeatable() -> None:
    aggregator = AnthropicAggregator(
        model=MODEL, message_id="msg_1", input_tokens=1, context_window=0, tool_names={}
    )
    aggregator.feed(UpstreamEventParser().feed(*text("x")))
    assert aggregator.result() == aggregator.result()
