"""The upstream event parser and the mapping of in-stream upstream failures to our errors."""

from __future__ import annotations

import orjson
import pytest
from translate_support import exception, text, tool

from kiro2api.convert.events import (
    ContextUsage,
    Metering,
    TextDelta,
    ToolUseInput,
    ToolUseStart,
    ToolUseStop,
    UpstreamEvent,
    UpstreamEventParser,
    UpstreamFailure,
    failure_to_error,
)
from kiro2api.errors import (
    Kiro2ApiError,
    PromptTooLongError,
    RequestError,
    UpstreamOverloadedError,
    UpstreamProtocolError,
    UpstreamQuotaError,
    UpstreamStreamError,
)


def _feed_all(*messages: tuple[str, str, bytes]) -> list[UpstreamEvent]:
    parser = UpstreamEventParser()
    return [event for message in messages for event in parser.feed(*message)]


def test_text_events_plain_and_wrapped() -> None:
    wrapped = orjson.dumps({"assistantResponseEvent": {"content": "wrapped", "messageId": "m"}})
    assert _feed_all(
        text("Hello"),
        ("event", "assistantResponseEvent", wrapped),
        text(""),  # empty content produces nothing
        ("event", "assistantResponseEvent", b'{"messageStatus": "COMPLETED"}'),
    ) == [TextDelta("Hello"), TextDelta("wrapped")]


def test_tool_lifecycle_events() -> None:
    assert _feed_all(
        tool("t1", "get_weather"),
        tool("t1", "get_weather", '{"location":'),
        tool("t1", "get_weather", ' "Tokyo"}'),
        tool("t1", "get_weather", stop=True),
    ) == [
        ToolUseStart("t1", "get_weather"),
        ToolUseInput("t1", '{"location":'),
        ToolUseInput("t1", ' "Tokyo"}'),
        ToolUseStop("t1"),
    ]


def test_one_shot_object_input_yields_start_input_stop_once() -> None:
    args = {"b": 1, "a": "<&>", "nested": {"x": [1.5, None]}}
    events = _feed_all(tool("t1", "calc", args, stop=True))
    assert events[0] == ToolUseStart("t1", "calc")
    assert isinstance(events[1], ToolUseInput)
    assert orjson.loads(events[1].fragment) == args
    assert events[2:] == [ToolUseStop("t1")]


def test_first_and_stop_event_input_fragments_are_kept() -> None:
    assert _feed_all(
        tool("t1", "w", '{"a":'),
        tool("t1", "w", "1}", stop=True),
    ) == [
        ToolUseStart("t1", "w"),
        ToolUseInput("t1", '{"a":'),
        ToolUseInput("t1", "1}"),
        ToolUseStop("t1"),
    ]


def test_braces_only_count_before_any_real_input() -> None:
    # "{}" alone is a complete no-argument input; after real fragments it is filler.
    assert _feed_all(tool("t1", "noargs", "{}", stop=True)) == [
        ToolUseStart("t1", "noargs"),
        ToolUseInput("t1", "{}"),
        ToolUseStop("t1"),
    ]
    assert _feed_all(tool("t2", "w", '{"a": 1}'), tool("t2", "w", "{}", stop=True)) == [
        ToolUseStart("t2", "w"),
        ToolUseInput("t2", '{"a": 1}'),
        ToolUseStop("t2"),
    ]


def test_null_input_and_missing_id_add_nothing() -> None:
    assert _feed_all(tool("t1", "w", None, omit_input=False)) == [ToolUseStart("t1", "w")]
    assert _feed_all(("event", "toolUseEvent", b'{"name": "w", "input": "x"}')) == []


def test_events_after_stop_are_ignored_per_id() -> None:
    parser = UpstreamEventParser()
    assert parser.feed(*tool("t1", "w", "{}", stop=True))
    assert parser.feed(*tool("t1", "w", '{"again": 1}', stop=True)) == []
    # Another id with the same tool name is a new call.
    assert parser.feed(*tool("t2", "w")) == [ToolUseStart("t2", "w")]


def test_usage_events() -> None:
    assert _feed_all(
        ("event", "contextUsageEvent", b'{"contextUsagePercentage": 12.5}'),
        ("event", "meteringEvent", b'{"unit": "credit", "unitPlural": "credits", "usage": 0.07}'),
        ("event", "meteringEvent", b'{"unit": "credit"}'),
        ("event", "contextUsageEvent", b'{"contextUsagePercentage": "lots"}'),
    ) == [ContextUsage(12.5), Metering(0.07)]


@pytest.mark.parametrize(
    "event_type",
    [
        "messageMetadataEvent",
        "codeReferenceEvent",
        "supplementaryWebLinksEvent",
        "followupPromptEvent",
        "invalidStateEvent",
        "somethingNewEvent",
    ],
)
def test_unknown_event_types_are_ignored_even_with_garbage(event_type: str) -> None:
    assert _feed_all(("event", event_type, b"\x00not json")) == []


def test_unknown_message_type_is_ignored() -> None:
    assert _feed_all(("heartbeat", "", b"")) == []


@pytest.mark.parametrize("event_type", ["assistantResponseEvent", "toolUseEvent"])
def test_malformed_json_in_a_known_event_is_a_protocol_error(event_type: str) -> None:
    with pytest.raises(UpstreamProtocolError, match=event_type):
        UpstreamEventParser().feed("event", event_type, b'{"content": "cut')


def test_exception_type_from_header_or_payload() -> None:
    (by_header,) = _feed_all(exception("ThrottlingException", "slow"))
    (by_payload,) = _feed_all(exception("ThrottlingException", "slow", header=False))
    assert by_header == by_payload == UpstreamFailure("exception", "ThrottlingException", "slow")


def test_error_frame_with_raw_text_and_capitalised_message() -> None:
    (raw,) = _feed_all(("error", "InternalFailure", b"  something broke  "))
    assert raw == UpstreamFailure("error", "InternalFailure", "something broke")
    (cap,) = _feed_all(
        ("exception", "", b'{"__type": "a.b#ValidationException", "Message": "bad"}')
    )
    assert cap == UpstreamFailure("exception", "ValidationException", "bad")
    (quota,) = _feed_all(
        (
            "exception",
            "",
            b'{"__type": "ServiceQuotaExceededException", "reason": "MONTHLY_REQUEST_COUNT"}',
        )
    )
    assert isinstance(quota, UpstreamFailure)
    assert quota.reason == "MONTHLY_REQUEST_COUNT"


def test_long_failure_messages_are_cut() -> None:
    (failure,) = _feed_all(("error", "X", b"y" * 10_000))
    assert isinstance(failure, UpstreamFailure)
    assert len(failure.message) <= 501


@pytest.mark.parametrize(
    ("failure", "cls", "status", "error_type"),
    [
        (
            UpstreamFailure("exception", "ThrottlingException", "slow"),
            UpstreamOverloadedError,
            529,
            "overloaded_error",
        ),
        (
            UpstreamFailure("exception", "ServiceQuotaExceededException", "q"),
            UpstreamQuotaError,
            429,
            "rate_limit_error",
        ),
        (
            UpstreamFailure(
                "exception", "ServiceQuotaExceededException", "q", "MONTHLY_REQUEST_COUNT"
            ),
            UpstreamQuotaError,
            429,
            "rate_limit_error",
        ),
        (
            UpstreamFailure("error", "MONTHLY_REQUEST_COUNT", ""),
            UpstreamQuotaError,
            429,
            "rate_limit_error",
        ),
        (
            UpstreamFailure("exception", "ContentLengthExceededException", "too long"),
            PromptTooLongError,
            400,
            "invalid_request_error",
        ),
        (
            UpstreamFailure("exception", "ValidationException", "Improperly formed request."),
            RequestError,
            400,
            "invalid_request_error",
        ),
        (
            UpstreamFailure("exception", "InternalServerException", "x"),
            UpstreamStreamError,
            502,
            "api_error",
        ),
        (UpstreamFailure("error", "", ""), UpstreamStreamError, 502, "api_error"),
    ],
)
def test_failure_to_error(
    failure: UpstreamFailure, cls: type[Kiro2ApiError], status: int, error_type: str
) -> None:
    error = failure_to_error(failure)
    assert type(error) is cls
    assert error.status_code == status
    assert error.error_type == error_type
    assert error.message


def test_prompt_too_long_message_triggers_compaction() -> None:
    error = failure_to_error(UpstreamFailure("exception", "ContentLengthExceededException", ""))
    # Claude Code compacts the conversation on exactly this prefix.
    assert error.message.startswith("prompt is too long")


def test_stream_error_keeps_the_upstream_name() -> None:
    error = failure_to_error(UpstreamFailure("exception", "InternalServerException", "x"))
    assert isinstance(error, UpstreamStreamError)
    assert error.exception_type == "InternalServerException"
