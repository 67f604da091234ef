"""The whole-request token estimate: protocol.md §7.7 golden values and §9 item 5."""

from __future__ import annotations

from typing import Any

import pytest
from convreq_helpers import PNG, build

from kiro2api.convert.anthropic_request import parse_anthropic_request, parse_count_tokens_request
from kiro2api.convert.request_tokens import estimate_input_tokens

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"location": {"type": "string", "description": "City name"}},
    "required": ["location"],
}
SCHEMA_2_6 = {
    "type": "object",
    "properties": {"location": {"type": "string"}},
    "required": ["location"],
}


def tokens(**body: Any) -> int:
    return estimate_input_tokens(parse_count_tokens_request({"model": "claude-sonnet-4-5", **body}))


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"messages": user("Hello, how are you today?")}, 16),
        ({"messages": user("你好，今天天气怎么样？")}, 17),
        ({"system": "You are a helpful assistant.", "messages": user("Hello!")}, 22),
        (
            {
                "system": [{"type": "text", "text": "You are a helpful assistant."}],
                "messages": user("Hello!"),
            },
            22,
        ),
        ({"messages": user("Hi")}, 8),
        (
            {
                "messages": user("What is the weather?"),
                "tools": [
                    {
                        "name": "get_weather",
                        "description": "Get current weather for a location",
                        "input_schema": WEATHER_SCHEMA,
                    }
                ],
            },
            414,
        ),
        (
            {
                "messages": user("Weather in Tokyo?"),
                "tools": [
                    {
                        "name": "get_weather",
                        "description": "Get weather",
                        "input_schema": SCHEMA_2_6,
                    }
                ],
            },
            395,
        ),
    ],
)
def test_golden_values_section_7_7(body: dict[str, Any], expected: int) -> None:
    assert tokens(**body) == expected


def test_tool_use_and_image_blocks() -> None:
    base = tokens(messages=user("Hi"))
    with_use = tokens(
        messages=[
            {"role": "user", "content": "Hi"},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "t",
                        "name": "get_weather",
                        "input": {"location": "San Francisco"},
                    }
                ],
            },
        ]
    )
    assert with_use - base == 3 + 27  # message overhead + EstimateToolUseTokens golden value
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    with_image = tokens(
        messages=[{"role": "user", "content": [{"type": "text", "text": "Hi"}, image]}]
    )
    assert with_image - base == 1500


def test_unsent_tools_are_not_counted() -> None:
    # §9 item 5: web_search is not sent upstream, so it is not counted (nor the placeholder).
    plain = tokens(messages=user("Hi"))
    assert (
        tokens(
            messages=user("Hi"),
            tools=[
                {"type": "web_search_20250305", "name": "web_search"},
                {"name": "P", "input_schema": {"type": "object"}, "defer_loading": True},
            ],
        )
        == plain
    )


def test_build_reports_the_same_estimate() -> None:
    body = {"model": "claude-sonnet-4-5", "messages": user("Hello, how are you today?")}
    assert build(body).input_tokens == 16
    assert estimate_input_tokens(parse_anthropic_request(body)) == 16
