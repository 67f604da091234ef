"""The content-block state machine: its table, and random upstream event sequences.

Two properties beyond the table check:

* whatever the upstream sends (interleaved tools, stray fragments, failures, unknown events),
  the translators never raise and always emit a well-formed stream;
* for well-formed upstream answers, the non-streaming aggregators return exactly what an SDK
  accumulates from the corresponding stream.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from translate_support import (
    MODEL,
    Raw,
    accumulate_anthropic,
    anthropic_stream,
    context_usage,
    exception,
    openai_stream,
    parse_anthropic_sse,
    read_openai_sse,
    text,
    tool,
    validate_anthropic,
)

from kiro2api.convert.anthropic_response import AnthropicAggregator
from kiro2api.convert.blocks import TRANSITIONS, Input, State, next_state
from kiro2api.convert.events import UpstreamEventParser
from kiro2api.convert.openai_response import OpenAIAggregator
from kiro2api.errors import Kiro2ApiError


@given(st.sampled_from(State), st.sampled_from(Input))
def test_every_pair_transitions_or_raises_our_error(state: State, inp: Input) -> None:
    if (state, inp) in TRANSITIONS:
        assert isinstance(next_state(state, inp), State)
        assert next_state(state, inp) is TRANSITIONS[(state, inp)]
    else:
        with pytest.raises(Kiro2ApiError, match=state.value):
            next_state(state, inp)


def test_terminal_states_have_no_way_out() -> None:
    assert not [pair for pair in TRANSITIONS if pair[0] in (State.DONE, State.FAILED)]


def test_every_state_is_reachable_from_idle() -> None:
    reached = {State.IDLE}
    frontier = [State.IDLE]
    while frontier:
        state = frontier.pop()
        for (source, _), target in TRANSITIONS.items():
            if source is state and target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(State)


# ---------------------------------------------------------------------------- arbitrary input

_IDS = st.sampled_from(["t1", "t2", "t3"])
_ANY_MESSAGE: st.SearchStrategy[Raw] = st.one_of(
    st.text(max_size=8).map(text),
    st.builds(lambda i: tool(i, f"tool_{i}"), _IDS),
    st.builds(lambda i, f: tool(i, f"tool_{i}", f), _IDS, st.text(max_size=6)),
    st.builds(lambda i: tool(i, f"tool_{i}", stop=True), _IDS),
    st.builds(lambda i: tool(i, f"tool_{i}", {"k": i}, stop=True), _IDS),
    st.floats(0, 100).map(context_usage),
    st.sampled_from(
        [
            exception("ThrottlingException"),
            exception("ContentLengthExceededException"),
            exception("InternalServerException", header=False),
            ("event", "messageMetadataEvent", b"{}"),
            ("event", "meteringEvent", b'{"usage": 0.5}'),
        ]
    ),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(_ANY_MESSAGE, max_size=25))
def test_any_upstream_sequence_gives_a_well_formed_anthropic_stream(messages: list[Raw]) -> None:
    data, translator = anthropic_stream(messages)
    validate_anthropic(parse_anthropic_sse(data))
    assert translator.finished
    assert (translator.stop_reason is None) == (translator.error is not None)


@settings(max_examples=100, deadline=None)
@given(st.lists(_ANY_MESSAGE, max_size=25))
def test_any_upstream_sequence_gives_a_well_formed_openai_stream(messages: list[Raw]) -> None:
    data, translator = openai_stream(messages)
    result = read_openai_sse(data)
    assert (result.error is None) == (result.finish_reason is not None)
    assert translator.finished


# ---------------------------------------------------------------------------- well-formed answers


@st.composite
def _answers(draw: st.DrawFn) -> list[Raw]:
    """A realistic answer: text and sequential tool calls with arbitrarily split arguments."""
    messages: list[Raw] = []
    for n in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            messages += [
                text(t) for t in draw(st.lists(st.text(min_size=1, max_size=5), max_size=3))
            ]
            continue
        tool_id = f"tooluse_{n}"
        args = draw(
            st.dictionaries(
                st.text(max_size=3), st.integers(-(2**53), 2**53) | st.text(max_size=4), max_size=3
            )
        )
        keep_braces = draw(st.booleans())  # an empty object sent as "{}" or as nothing
        raw = orjson.dumps(args).decode() if args or keep_braces else ""
        cuts = sorted(draw(st.lists(st.integers(0, len(raw)), max_size=4)))
        pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
        messages.append(tool(tool_id, "fn", pieces[0] or None))
        messages += [tool(tool_id, "fn", p) for p in pieces[1:-1] if p]
        # Text may arrive while the tool is open; it must not cut the arguments.
        if draw(st.booleans()):
            messages.append(text("aside"))
        messages.append(
            tool(tool_id, "fn", pieces[-1] if len(pieces) > 1 and pieces[-1] else None, stop=True)
        )
    if draw(st.booleans()):
        messages.append(context_usage(draw(st.floats(0.1, 100))))
    return messages


def _aggregate(cls: Any, messages: list[Raw], **kwargs: Any) -> dict[str, Any]:
    parser = UpstreamEventParser()
    aggregator = cls(model=MODEL, input_tokens=395, context_window=200_000, tool_names={}, **kwargs)
    for message in messages:
        aggregator.feed(parser.feed(*message))
    result: dict[str, Any] = aggregator.result()
    return result


@settings(max_examples=100, deadline=None)
@given(_answers())
def test_anthropic_aggregate_matches_the_sdk_accumulated_stream(messages: list[Raw]) -> None:
    import anthropic.types

    events = parse_anthropic_sse(anthropic_stream(messages)[0])
    validate_anthropic(events)
    streamed = accumulate_anthropic(events)
    result = _aggregate(AnthropicAggregator, messages, message_id="msg_test")
    anthropic.types.Message.model_validate(result)
    assert result["content"] == [block.to_dict() for block in streamed.content]
    assert result["stop_reason"] == streamed.stop_reason
    assert result["usage"] == streamed.usage.to_dict()


@settings(max_examples=100, deadline=None)
@given(_answers())
def test_openai_aggregate_matches_the_stream(messages: list[Raw]) -> None:
    streamed = read_openai_sse(openai_stream(messages)[0])
    result = _aggregate(OpenAIAggregator, messages, completion_id="chatcmpl-test", created=1)
    message = result["choices"][0]["message"]
    assert (message["content"] or "") == streamed.content
    assert [orjson.loads(c["function"]["arguments"]) for c in message.get("tool_calls", [])] == [
        orjson.loads(c["arguments"]) for c in streamed.tool_calls.values()
    ]
    assert result["choices"][0]["finish_reason"] == streamed.finish_reason
