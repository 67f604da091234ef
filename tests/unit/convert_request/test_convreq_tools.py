"""Tool names, descriptions and schemas as sent upstream."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from convreq_helpers import build, current, state

from kiro2api.convert.tools import clean_schema, truncate_description, upstream_tool_name
from kiro2api.convert.upstream_request import ConvertSettings

LONG_MCP = "mcp__plugin_playwright_browser__browser_take_screenshot_of_the_whole_page_now"


def specs(out: Any) -> list[dict[str, Any]]:
    return [t["toolSpecification"] for t in current(out)["userInputMessageContext"]["tools"]]


@pytest.mark.parametrize("name", ["Bash", "get_weather", "a-b_C9", "x" * 64])
def test_valid_names_are_unchanged(name: str) -> None:
    assert upstream_tool_name(name) == name


@pytest.mark.parametrize("name", [LONG_MCP, "mcp.server:tool", "x" * 65, "名前", "a b"])
def test_invalid_names_are_shortened_stably(name: str) -> None:
    mapped = upstream_tool_name(name)
    assert mapped == upstream_tool_name(name)
    assert len(mapped) <= 64
    assert mapped.endswith("_" + hashlib.sha256(name.encode()).hexdigest()[:8])
    assert all(c.isascii() and (c.isalnum() or c in "_-") for c in mapped)


def test_similar_names_do_not_collide() -> None:
    assert upstream_tool_name("a.b") != upstream_tool_name("a:b")
    assert upstream_tool_name("p" * 70 + "1") != upstream_tool_name("p" * 70 + "2")


def test_renamed_tool_consistent_in_tools_and_history_and_mapped_back() -> None:
    out = build(
        {
            "model": "claude-sonnet-4-5",
            "tools": [
                {"name": LONG_MCP, "description": "shoot", "input_schema": {"type": "object"}},
                {"name": "Bash", "description": "run", "input_schema": {"type": "object"}},
            ],
            "messages": [
                {"role": "user", "content": "go"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t1", "name": LONG_MCP, "input": {}}],
                },
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]},
            ],
        }
    )
    short = upstream_tool_name(LONG_MCP)
    assert [s["name"] for s in specs(out)] == [short, "Bash"]
    history = state(out)["history"]
    assert history[1]["assistantResponseMessage"]["toolUses"][0]["name"] == short
    assert out.tool_names == {short: LONG_MCP}


def test_duplicate_declarations_are_sent_once() -> None:
    tool = {"name": "Bash", "description": "run", "input_schema": {"type": "object"}}
    out = build(
        {
            "model": "claude-sonnet-4-5",
            "tools": [tool, tool],
            "messages": [{"role": "user", "content": "x"}],
        }
    )
    assert [s["name"] for s in specs(out)] == ["Bash"]


def test_empty_description_is_filled() -> None:
    out = build(
        {
            "model": "claude-sonnet-4-5",
            "tools": [{"name": "Bash", "description": "", "input_schema": {"type": "object"}}],
            "messages": [{"role": "user", "content": "x"}],
        }
    )
    assert specs(out)[0]["description"] == "Tool Bash"


def test_description_truncated_on_character_boundary_cjk() -> None:
    text = "天気" * 10  # 3 bytes per character
    assert truncate_description(text, 10) == "天気天"  # 9 bytes; never half a character
    assert truncate_description("short", 10) == "short"
    out = build(
        {
            "model": "claude-sonnet-4-5",
            "tools": [{"name": "W", "description": "é" * 50, "input_schema": {"type": "object"}}],
            "messages": [{"role": "user", "content": "x"}],
        },
        settings=ConvertSettings(max_tool_description_length=7),
    )
    assert specs(out)[0]["description"] == "ééé"


def test_claude_code_schema_is_cleaned() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"command": {"type": "string", "additionalProperties": False}},
        "required": ["command"],
        "additionalProperties": False,
    }
    assert clean_schema(schema) == {
        "type": "object",
        "properties": {"command": {"type": "string", "additionalProperties": False}},
        "required": ["command"],
    }
    # The client's schema object is not modified.
    assert "$schema" in schema


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        (None, {"type": "object", "properties": {}}),
        ({}, {"type": "object", "properties": {}}),
        ({"type": "object"}, {"type": "object", "properties": {}}),
        ({"properties": []}, {"type": "object", "properties": {}}),
        ({"$id": "x", "strict": True, "required": "a"}, {"type": "object", "properties": {}}),
        (
            {"type": "object", "properties": {"a": {}}, "required": ["a", 3, ""]},
            {"type": "object", "properties": {"a": {}}, "required": ["a"]},
        ),
        (
            {"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}, "$defs": {"A": {}}},
            {"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}, "$defs": {"A": {}}},
        ),
    ],
)
def test_schema_defaults(schema: dict[str, Any] | None, expected: dict[str, Any]) -> None:
    assert clean_schema(schema) == expected


def test_anthropic_server_tool_without_schema_gets_default() -> None:
    out = build(
        {
            "model": "claude-sonnet-4-5",
            "tools": [{"type": "bash_20250124", "name": "bash"}],
            "messages": [{"role": "user", "content": "x"}],
        }
    )
    assert specs(out) == [
        {
            "name": "bash",
            "description": "Tool bash",
            "inputSchema": {"json": {"type": "object", "properties": {}}},
        }
    ]
