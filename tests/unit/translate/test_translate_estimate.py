"""Golden values for the local token estimators (the numbers clients see as usage)."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiro2api.convert.estimate import (
    compact_json,
    estimate_text_tokens,
    estimate_tool_name_tokens,
    estimate_tool_use_tokens,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        ("Hello, how are you today?", 9),
        ("你", 2),
        ("你好", 3),
        ("你好hello", 4),
        ("a" * 120, 43),
        # Full-width punctuation is not CJK: 8 ideographs + ceil(3 / 2.8).
        ("你好，今天天气怎么样？", 10),
        ("Let me check.", 5),
        ("a", 1),
    ],
)
def test_text_tokens_golden(text: str, expected: int) -> None:
    assert estimate_text_tokens(text) == expected


def test_text_tokens_long_texts_are_scaled_down() -> None:
    # 1000 ASCII chars: ceil(1000 / 2.5) = 400, times 0.6.
    assert estimate_text_tokens("x" * 1000) == 240


@pytest.mark.parametrize(
    ("name", "expected"),
    [("", 0), ("get_weather", 7), ("mcp__Playwright__browser_navigate", 22), ("a", 2), ("ls", 2)],
)
def test_tool_name_tokens_golden(name: str, expected: int) -> None:
    assert estimate_tool_name_tokens(name) == expected


@pytest.mark.parametrize(
    ("name", "args", "expected"),
    [
        ("get_weather", {"location": "San Francisco"}, 27),
        ("get_weather", {"location": "Tokyo"}, 25),
        ("get_time", {}, 19),
        ("ping", None, 16),
        # 9 bytes of arguments round up to 3 tokens, not down to 2.
        ("ping", {"a": 1}, 13 + 2 + 2),
    ],
)
def test_tool_use_tokens_golden(name: str, args: object, expected: int) -> None:
    assert estimate_tool_use_tokens(name, args) == expected


def test_compact_json_matches_go_encoding() -> None:
    value = {"b": "<a & b>", "a": {"z": 1, "y": [1.5, None, True]}, "é": "日本"}
    assert compact_json(value) == (
        b'{"a":{"y":[1.5,null,true],"z":1},"b":"\\u003ca \\u0026 b\\u003e",'
        + '"é":"日本"}'.encode()
    )


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
        max_leaves=20,
    )
)
def test_compact_json_round_trips(value: object) -> None:
    assert orjson.loads(compact_json(value)) == value


@given(st.text())
def test_text_tokens_positive_for_non_empty(text: str) -> None:
    tokens = estimate_text_tokens(text)
    assert (tokens == 0) == (text == "")
