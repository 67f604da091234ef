"""Properties: any conversation shape yields an accepted body; any JSON parses or is a 400."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from convreq_helpers import PNG, assert_accepted
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiro2api.convert.anthropic_request import parse_anthropic_request
from kiro2api.convert.canonical import CanonicalRequest
from kiro2api.convert.openai_request import parse_openai_request
from kiro2api.convert.upstream_request import ConvertSettings, build_upstream_request
from kiro2api.errors import RequestError

T = TypeVar("T")

IDS = st.sampled_from(["t1", "t2", "t3"])
NAMES = st.sampled_from(["Bash", "Read", "web_search", "mcp.server/" + "x" * 70])
TEXT = st.sampled_from(["", " ", "hello", "多言語 text", "<system-reminder>x</system-reminder>"])
IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}

user_block = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, TEXT),
    st.just(IMAGE),
    st.builds(
        lambda i, c, e: {"type": "tool_result", "tool_use_id": i, "content": c, "is_error": e},
        IDS,
        st.one_of(TEXT, st.just([IMAGE]), st.just([{"type": "text", "text": "out"}])),
        st.booleans(),
    ),
)
assistant_block = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, TEXT),
    st.builds(lambda i, n: {"type": "tool_use", "id": i, "name": n, "input": {"a": 1}}, IDS, NAMES),
    st.just({"type": "thinking", "thinking": "hm", "signature": ""}),
)
message = st.one_of(
    st.builds(
        lambda c: {"role": "user", "content": c}, st.one_of(TEXT, st.lists(user_block, max_size=4))
    ),
    st.builds(
        lambda c: {"role": "assistant", "content": c},
        st.one_of(TEXT, st.lists(assistant_block, max_size=4)),
    ),
    st.builds(lambda t: {"role": "system", "content": t}, TEXT),
)
tool = st.builds(
    lambda n, d: {"name": n, "description": d, "input_schema": {"type": "object"}}, NAMES, TEXT
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    messages=st.lists(message, min_size=1, max_size=8),
    tools=st.lists(tool, max_size=3),
    system=TEXT,
)
def test_any_conversation_builds_an_accepted_body(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]], system: str
) -> None:
    body = {"model": "claude-sonnet-4-5", "system": system, "messages": messages, "tools": tools}
    req = parse_anthropic_request(body)
    out = build_upstream_request(req, ConvertSettings(), conversation_id="c", continuation_id="a")
    assert_accepted(out.body)
    for short, original in out.tool_names.items():
        assert len(short) <= 64
        assert short != original


KEYS = st.sampled_from(
    [
        "model",
        "messages",
        "role",
        "content",
        "type",
        "text",
        "tool_use_id",
        "id",
        "name",
        "input",
        "source",
        "system",
        "tools",
        "tool_calls",
        "function",
        "arguments",
        "tool_choice",
        "image_url",
        "url",
        "stop",
        "n",
        "media_type",
        "data",
        "is_error",
    ]
)
json_value = st.recursive(
    # Bounded like orjson.loads output (64-bit integers).
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "model",
                    "messages",
                    "role",
                    "content",
                    "type",
                    "text",
                    "tool_use_id",
                    "id",
                    "name",
                    "input",
                    "source",
                    "system",
                    "tools",
                    "tool_calls",
                    "function",
                    "arguments",
                    "tool_choice",
                    "image_url",
                    "url",
                    "stop",
                    "n",
                ]
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)


BLOCK_TYPES = ["text", "image", "tool_use", "tool_result", "thinking", "image_url", "document"]
block = st.builds(
    lambda kind, rest: {**rest, "type": kind},
    st.sampled_from(BLOCK_TYPES),
    st.dictionaries(KEYS, json_value, max_size=4),
)
structured = st.fixed_dictionaries(
    {
        "model": st.just("claude-sonnet-4-5"),
        "messages": st.lists(
            st.fixed_dictionaries(
                {
                    "role": st.sampled_from(
                        ["user", "assistant", "system", "tool", "function", "developer"]
                    ),
                    "content": json_value | st.lists(block, max_size=3),
                },
                optional={"tool_calls": json_value, "tool_call_id": json_value, "name": json_value},
            ),
            max_size=4,
        ),
    },
    optional={"tools": json_value, "system": json_value, "tool_choice": json_value},
)


@settings(max_examples=400, deadline=None)
@given(body=json_value | structured)
def test_arbitrary_json_parses_or_is_a_request_error(body: object) -> None:
    parsers: list[Callable[[object], CanonicalRequest]] = [
        parse_anthropic_request,
        parse_openai_request,
    ]
    for parse in parsers:
        req = _outcome(partial(parse, body))
        if isinstance(req, RequestError):
            assert req.status_code == 400
            continue
        # Whatever parses also builds (or is refused as a client error, e.g. the model).
        build = partial(
            build_upstream_request,
            req,
            ConvertSettings(),
            conversation_id="c",
            continuation_id="a",
        )
        out = _outcome(build)
        if isinstance(out, RequestError):
            assert out.status_code == 400
        else:
            assert_accepted(out.body)


def _outcome(call: Callable[[], T]) -> T | RequestError:
    """The call's result, or the RequestError it raised (anything else propagates)."""
    try:
        return call()
    except RequestError as exc:
        return exc
