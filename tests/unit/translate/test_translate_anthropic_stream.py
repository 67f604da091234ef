"""Anthropic SSE produced from upstream events: what Claude Code and the SDKs receive.

Every stream here is validated with the anthropic SDK's pydantic types and accumulated with the
SDK's own stream accumulator (see ``translate_support``).
"""

from __future__ import annotations

import time

import orjson
import pytest
from translate_support import (
    SAMPLES,
    anthropic_final,
    anthropic_stream,
    context_usage,
    exception,
    parse_anthropic_sse,
    text,
    tool,
    validate_anthropic,
    weather_call,
)

from kiro2api.convert.anthropic_stream import AnthropicStreamTranslator
from kiro2api.convert.estimate import estimate_text_tokens, estimate_tool_use_tokens
from kiro2api.convert.events import TextDelta, UpstreamEventParser, UpstreamFailure
from kiro2api.errors import Kiro2ApiError, UpstreamOverloadedError, UpstreamTimeoutError


def test_protocol_transcript_text_then_tool() -> None:
    # protocol.md §6.7, minus the original's empty "" text delta.
    data, translator = anthropic_stream([text("Let me check."), *weather_call()])
    events = parse_anthropic_sse(data)
    validate_anthropic(events)
    usage = {
        "input_tokens": 395,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    tool_id = "tooluse_Ab12Cd34Ef56Gh78Ij90Kl"
    assert events == [
        {
            "type": "message_start",
            "message": {
                "id": "msg_test",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": "claude-sonnet-4-20250514",
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {**usage, "output_tokens": 0},
            },
        },
        {"type": "ping"},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Let me check."},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {
                "type": "tool_use",
                "id": tool_id,
                "name": "get_weather",
                "input": {},
            },
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"location":'},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": ' "Tokyo"}'},
        },
        {"type": "content_block_stop", "index": 1},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            # "Let me check." (5) + get_weather {"location":"Tokyo"} (25)
            "usage": {**usage, "output_tokens": 30},
        },
        {"type": "message_stop"},
    ]
    assert translator.stop_reason == "tool_use"
    assert translator.output_tokens == 30
    assert translator.finished


def _types(data: bytes) -> list[str]:
    return [e["type"] for e in parse_anthropic_sse(data)]


def test_text_only_matches_accepted_claude_code_sample() -> None:
    sample = (SAMPLES / "sse-text-response-accepted.txt").read_bytes()
    data, _ = anthropic_stream([text(t) for t in ("Hello ", "from ", "the ", "fake ", "server.")])
    assert _types(data) == _types(sample)
    message = anthropic_final(data)
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "Hello from the fake server."
    assert message.stop_reason == "end_turn"


def test_text_and_tool_match_accepted_claude_code_sample() -> None:
    sample = (SAMPLES / "sse-tool-use-response-accepted.txt").read_bytes()
    args = '{"command": "echo kiro-ok", "description": "Print a marker"}'
    pieces = [args[i : i + 10] for i in range(0, len(args), 10)]
    messages = [text("Running "), text("a "), text("command.")]
    messages += [tool("toolu_1", "Bash")]
    messages += [tool("toolu_1", "Bash", piece) for piece in pieces]
    messages += [tool("toolu_1", "Bash", stop=True)]
    data, _ = anthropic_stream(messages)
    assert _types(data) == _types(sample)
    message = anthropic_final(data)
    assert message.content[1].input == {"command": "echo kiro-ok", "description": "Print a marker"}


def test_tool_only_answer_has_no_empty_text_block() -> None:
    data, _ = anthropic_stream(weather_call())
    message = anthropic_final(data)
    assert [b.type for b in message.content] == ["tool_use"]
    assert message.content[0].input == {"location": "Tokyo"}
    assert message.stop_reason == "tool_use"
    starts = [e for e in parse_anthropic_sse(data) if e["type"] == "content_block_start"]
    assert len(starts) == 1


def test_several_tools_in_sequence_each_get_their_block() -> None:
    messages = [
        text("Two lookups."),
        *weather_call("tooluse_1"),
        tool("tooluse_2", "get_time", '{"tz": "Asia/Tokyo"}'),
        tool("tooluse_2", "get_time", stop=True),
        *weather_call("tooluse_3"),
    ]
    message = anthropic_final(anthropic_stream(messages)[0])
    assert [(b.type, getattr(b, "id", None)) for b in message.content] == [
        ("text", None),
        ("tool_use", "tooluse_1"),
        ("tool_use", "tooluse_2"),
        ("tool_use", "tooluse_3"),
    ]
    assert message.content[2].input == {"tz": "Asia/Tokyo"}
    # The same tool twice is two calls (de-duplication is by id, never by name).
    assert message.content[1].input == message.content[3].input == {"location": "Tokyo"}


def test_text_after_a_tool_opens_a_new_block() -> None:
    messages = [text("Before."), *weather_call(), text("After "), text("the tool.")]
    message = anthropic_final(anthropic_stream(messages)[0])
    assert [b.type for b in message.content] == ["text", "tool_use", "text"]
    assert message.content[2].text == "After the tool."
    # Any tool block means the client must run tools.
    assert message.stop_reason == "tool_use"


def test_text_while_a_tool_is_open_is_deferred_not_lost() -> None:
    tool_id = "tooluse_X"
    messages = [
        tool(tool_id, "get_weather", '{"location":'),
        text("thinking aloud"),
        tool(tool_id, "get_weather", ' "Tokyo"}'),
        tool(tool_id, "get_weather", stop=True),
        text(" and more"),
    ]
    message = anthropic_final(anthropic_stream(messages)[0])
    assert [b.type for b in message.content] == ["tool_use", "text"]
    assert message.content[0].input == {"location": "Tokyo"}
    assert message.content[1].text == "thinking aloud and more"


def test_one_shot_tool_is_processed_once() -> None:
    # Object input and stop in the first and only event (the original duplicated the JSON).
    args = {"path": "/tmp/a.txt", "lines": [1, 2], "note": "日本語"}
    data, _ = anthropic_stream([tool("tooluse_1", "read_file", args, stop=True)])
    events = parse_anthropic_sse(data)
    deltas = [e for e in events if e["type"] == "content_block_delta"]
    assert len(deltas) == 1
    assert orjson.loads(deltas[0]["delta"]["partial_json"]) == args
    assert anthropic_final(data).content[0].input == args


def test_input_on_first_and_stop_events_is_kept() -> None:
    messages = [
        tool("tooluse_1", "write", '{"path": "a",'),
        tool("tooluse_1", "write", ' "body": "x'),
        tool("tooluse_1", "write", 'yz"}', stop=True),
    ]
    message = anthropic_final(anthropic_stream(messages)[0])
    assert message.content[0].input == {"path": "a", "body": "xyz"}


@pytest.mark.parametrize(
    "messages",
    [
        [tool("t1", "list_files"), tool("t1", "list_files", stop=True)],
        [tool("t1", "list_files", stop=True)],
        [tool("t1", "list_files", ""), tool("t1", "list_files", "", stop=True)],
        [tool("t1", "list_files", "{}", stop=True)],
        [tool("t1", "list_files", {}, stop=True)],
    ],
    ids=["no-input", "one-shot-no-input", "empty-strings", "braces-string", "empty-object"],
)
def test_tool_without_arguments_gets_empty_input(messages: list[tuple[str, str, bytes]]) -> None:
    message = anthropic_final(anthropic_stream(messages)[0])
    assert message.content[0].type == "tool_use"
    assert message.content[0].input == {}


def test_stop_without_input_does_not_append_braces() -> None:
    messages = [
        tool("t1", "todo", '{"todos": [1, 2]}'),
        tool("t1", "todo", "{}"),  # stray filler after a complete buffer
        tool("t1", "todo", stop=True),
    ]
    data, _ = anthropic_stream(messages)
    partial = "".join(
        e["delta"]["partial_json"]
        for e in parse_anthropic_sse(data)
        if e["type"] == "content_block_delta"
    )
    assert partial == '{"todos": [1, 2]}'
    assert anthropic_final(data).content[0].input == {"todos": [1, 2]}


def test_events_for_a_stopped_tool_are_ignored() -> None:
    messages = [*weather_call("t1"), *weather_call("t1"), tool("t1", "get_weather", "junk")]
    message = anthropic_final(anthropic_stream(messages)[0])
    assert len(message.content) == 1
    assert message.content[0].input == {"location": "Tokyo"}


def test_unfinished_tool_is_closed_at_end_of_stream() -> None:
    messages = [tool("t1", "get_weather", '{"location": "Oslo"}')]
    message = anthropic_final(anthropic_stream(messages)[0])
    assert message.content[0].input == {"location": "Oslo"}
    assert message.stop_reason == "tool_use"


def test_unknown_events_and_message_types_are_ignored() -> None:
    messages = [
        ("event", "messageMetadataEvent", b'{"conversationId": "c1"}'),
        text("Hi"),
        ("event", "codeReferenceEvent", b'{"references": []}'),
        ("event", "followupPromptEvent", b"not even json"),
        ("event", "meteringEvent", b'{"unit": "credit", "usage": 0.25}'),
        ("heartbeat", "", b""),
        text(" there"),
    ]
    data, translator = anthropic_stream(messages)
    message = anthropic_final(data)
    assert message.content[0].text == "Hi there"
    assert translator.credits == 0.25


def test_tool_names_are_mapped_back_to_the_clients_names() -> None:
    long_name = "mcp__some_server__" + "x" * 60
    messages = [tool("t1", "mcp_short_1a2b", '{"q": 1}', stop=True)]
    message = anthropic_final(
        anthropic_stream(messages, tool_names={"mcp_short_1a2b": long_name})[0]
    )
    assert message.content[0].name == long_name


@pytest.mark.parametrize("header", [True, False], ids=["header-type", "payload-type"])
def test_content_length_exceeded_mid_answer_is_max_tokens(header: bool) -> None:
    messages = [
        text("A long answer"),
        tool("t1", "write", '{"body": "trunc'),
        exception("ContentLengthExceededException", "too long", header=header),
        text("ignored"),
    ]
    data, translator = anthropic_stream(messages)
    events = parse_anthropic_sse(data)
    validate_anthropic(events)
    assert "error" not in [e["type"] for e in events]
    message = anthropic_final(data)
    assert message.stop_reason == "max_tokens"
    assert message.content[0].text == "A long answer"
    assert translator.stop_reason == "max_tokens"


def test_content_length_exceeded_before_output_is_prompt_too_long() -> None:
    data, translator = anthropic_stream([exception("ContentLengthExceededException")])
    events = parse_anthropic_sse(data)
    validate_anthropic(events)
    assert events[-1]["error"]["type"] == "invalid_request_error"
    assert events[-1]["error"]["message"].startswith("prompt is too long")
    assert translator.stop_reason is None


def test_throttling_mid_stream_is_an_overloaded_error_event() -> None:
    data, translator = anthropic_stream(
        [text("Partial"), tool("t1", "x", '{"a"'), exception("ThrottlingException", "slow down")]
    )
    events = parse_anthropic_sse(data)
    validate_anthropic(events)
    types = [e["type"] for e in events]
    # The open tool block is closed, then the error, and nothing after it (no message_delta).
    assert types[-3:] == ["content_block_delta", "content_block_stop", "error"]
    assert events[-1]["error"]["type"] == "overloaded_error"
    assert "slow down" in events[-1]["error"]["message"]
    assert isinstance(translator.error, UpstreamOverloadedError)
    assert translator.finished
    assert translator.feed([TextDelta("late")]) == b""
    assert translator.finish() == b""
    assert translator.ping() == b""


def test_app_reported_failure_closes_blocks_then_error() -> None:
    data, translator = anthropic_stream([text("Partial")], finish=False)
    data += translator.fail(UpstreamTimeoutError("upstream stalled"))
    events = parse_anthropic_sse(data)
    validate_anthropic(events)
    assert [e["type"] for e in events][-2:] == ["content_block_stop", "error"]
    assert events[-1]["error"] == {"type": "timeout_error", "message": "upstream stalled"}
    assert translator.fail(UpstreamTimeoutError("again")) == b""


def test_other_upstream_exception_is_api_error() -> None:
    failure = UpstreamFailure("exception", "InternalServerException", "oops")
    _, translator = anthropic_stream([], finish=False)
    events = parse_anthropic_sse(translator.feed([failure]))
    assert events == [
        {
            "type": "error",
            "error": {
                "type": "api_error",
                "message": "upstream exception InternalServerException: oops",
            },
        }
    ]


def test_usage_from_context_usage_and_output_estimated_per_block() -> None:
    fragments = ["a"] * 100  # 100 one-character fragments
    data, translator = anthropic_stream(
        [text(f) for f in fragments] + [context_usage(1.5)], context_window=200_000
    )
    message = anthropic_final(data)
    assert message.usage.input_tokens == 3000  # 1.5 % of 200k
    # Estimated on the whole block, not ≥1 per fragment (which would be 100).
    assert message.usage.output_tokens == estimate_text_tokens("a" * 100) == 36
    assert translator.input_tokens == 3000


def test_output_tokens_count_every_block() -> None:
    messages = [text("Let me check."), *weather_call(), text("Done.")]
    data, translator = anthropic_stream(messages)
    expected = (
        estimate_text_tokens("Let me check.")
        + estimate_tool_use_tokens("get_weather", {"location": "Tokyo"})
        + estimate_text_tokens("Done.")
    )
    assert anthropic_final(data).usage.output_tokens == expected == translator.output_tokens


def test_empty_answer_ends_cleanly() -> None:
    data, translator = anthropic_stream([text("")])
    events = parse_anthropic_sse(data)
    validate_anthropic(events)
    assert [e["type"] for e in events] == ["message_start", "ping", "message_delta", "message_stop"]
    assert translator.output_tokens == 0
    assert anthropic_final(data).stop_reason == "end_turn"


def test_non_ascii_text_passes_unchanged() -> None:
    pieces = ["你好，", "世界 🌍 ", "<b>&amp;</b>", "\u2028line"]
    message = anthropic_final(anthropic_stream([text(p) for p in pieces])[0])
    assert message.content[0].text == "".join(pieces)


def test_misuse_raises_our_error() -> None:
    translator = AnthropicStreamTranslator(
        model="m", message_id="msg_1", input_tokens=1, context_window=0, tool_names={}
    )
    with pytest.raises(Kiro2ApiError):
        translator.feed([TextDelta("before message_start")])
    translator.message_start()
    with pytest.raises(Kiro2ApiError):
        translator.message_start()
    assert translator.finish().endswith(b'data: {"type":"message_stop"}\n\n')
    assert translator.finish() == b""


def test_five_thousand_events_translate_fast() -> None:
    parser_messages = [text(f"word{i} ") for i in range(4000)]
    parser_messages += [tool("t1", "write", '{"body": "')]
    parser_messages += [tool("t1", "write", "x" * 20) for _ in range(998)]
    parser_messages += [tool("t1", "write", '"}', stop=True)]
    parser = UpstreamEventParser()
    events = [parser.feed(*m) for m in parser_messages]
    translator = AnthropicStreamTranslator(
        model="m", message_id="msg_1", input_tokens=1, context_window=0, tool_names={}
    )
    start = time.perf_counter()
    out = [translator.message_start()]
    out += [translator.feed(batch) for batch in events]
    out.append(translator.finish())
    elapsed = time.perf_counter() - start
    data = b"".join(out)
    assert data.count(b"event: content_block_delta") == 4000 + 1000
    # About 10 ms on a laptop; the bound leaves room for a loaded CI machine.
    assert elapsed < 0.5
    validate_anthropic(parse_anthropic_sse(data))
