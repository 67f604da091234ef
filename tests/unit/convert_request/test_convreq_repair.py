"""History repair rules and the request-side pitfalls of protocol.md §9."""

from __future__ import annotations

from typing import Any

import pytest
from convreq_helpers import PNG, build, current, roles, state

from kiro2api.convert.history import (
    ASSISTANT_EMPTY_PLACEHOLDER,
    ASSISTANT_TOOL_PLACEHOLDER,
    EMPTY_RESULT,
    IMAGE_RESULT,
    MISSING_RESULT,
    USER_PLACEHOLDER,
)
from kiro2api.convert.upstream_request import ConvertSettings
from kiro2api.errors import PromptTooLongError

BASH = {
    "name": "Bash",
    "description": "Run a command",
    "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
}


def use(tool_id: str, name: str = "Bash", **input: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_id, "name": name, "input": input}


def result(tool_id: str, content: Any = "ok", **extra: Any) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": tool_id, "content": content, **extra}


def request(
    *messages: dict[str, Any], tools: list[Any] | None = None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "claude-sonnet-4-5", "messages": list(messages), **extra}
    if tools is not None:
        body["tools"] = tools
    return body


def history(out: Any) -> list[dict[str, Any]]:
    items = state(out)["history"] or []
    return [item.get("userInputMessage") or item["assistantResponseMessage"] for item in items]


def test_tool_result_turn_has_empty_content_and_keeps_user_text() -> None:
    # §9 item 16: content "" with toolResults; the accompanying text survives inside the result.
    out = build(
        request(
            {"role": "user", "content": "run it"},
            {"role": "assistant", "content": [use("t1", command="ls")]},
            {
                "role": "user",
                "content": [result("t1", "a.txt"), {"type": "text", "text": "also check b"}],
            },
            tools=[BASH],
        )
    )
    cur = current(out)
    assert cur["content"] == ""
    [res] = cur["userInputMessageContext"]["toolResults"]
    assert res["content"] == [{"text": "a.txt"}, {"text": "also check b"}]


def test_tool_result_in_history_has_empty_content() -> None:
    out = build(
        request(
            {"role": "user", "content": "run it"},
            {"role": "assistant", "content": [use("t1")]},
            {"role": "user", "content": [result("t1")]},
            {"role": "assistant", "content": "done"},
            {"role": "user", "content": "thanks"},
            tools=[BASH],
        )
    )
    msgs = history(out)
    assert msgs[2]["content"] == ""
    assert msgs[2]["userInputMessageContext"]["toolResults"][0]["toolUseId"] == "t1"


def test_orphan_tool_use_gets_synthetic_error_result() -> None:
    out = build(
        request(
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [use("t1"), use("t2")]},
            {"role": "user", "content": [result("t2", "two")]},
            tools=[BASH],
        )
    )
    results = current(out)["userInputMessageContext"]["toolResults"]
    # Answers follow call order; the missing one is an error result.
    assert [r["toolUseId"] for r in results] == ["t1", "t2"]
    assert results[0] == {
        "toolUseId": "t1",
        "content": [{"text": MISSING_RESULT}],
        "status": "error",
        "isError": True,
    }
    assert results[1]["status"] == "success"


def test_orphan_tool_use_before_plain_user_turn() -> None:
    # The user answered with text instead of a result (e.g. after an interrupted run).
    out = build(
        request(
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [use("t1")]},
            {"role": "user", "content": "never mind, stop"},
            tools=[BASH],
        )
    )
    cur = current(out)
    assert cur["content"] == ""
    [res] = cur["userInputMessageContext"]["toolResults"]
    assert res["toolUseId"] == "t1"
    assert res["status"] == "error"
    assert res["content"] == [{"text": MISSING_RESULT}, {"text": "never mind, stop"}]


def test_orphan_tool_result_becomes_text() -> None:
    out = build(
        request(
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": [result("ghost", "stale output", is_error=True)]},
        )
    )
    cur = current(out)
    assert "toolResults" not in cur["userInputMessageContext"]
    assert cur["content"] == "[Tool error result for ghost]\nstale output"


def test_duplicate_tool_result_becomes_text() -> None:
    out = build(
        request(
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [use("t1")]},
            {"role": "user", "content": [result("t1", "first"), result("t1", "second")]},
            tools=[BASH],
        )
    )
    [res] = current(out)["userInputMessageContext"]["toolResults"]
    assert res["content"] == [{"text": "first"}, {"text": "[Tool result for t1]\nsecond"}]


def test_assistant_tool_only_turn_gets_placeholder() -> None:
    out = build(
        request(
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [use("t1")]},
            {"role": "user", "content": [result("t1")]},
            tools=[BASH],
        )
    )
    assert history(out)[1]["content"] == ASSISTANT_TOOL_PLACEHOLDER


def test_empty_assistant_and_empty_user_get_placeholders() -> None:
    out = build(
        request(
            {"role": "user", "content": ""},
            {
                "role": "assistant",
                "content": [{"type": "thinking", "thinking": "hm", "signature": ""}],
            },
            {"role": "user", "content": [{"type": "text", "text": "  "}]},
        )
    )
    assert [m["content"] for m in history(out)] == [USER_PLACEHOLDER, ASSISTANT_EMPTY_PLACEHOLDER]
    assert current(out)["content"] == USER_PLACEHOLDER


def test_current_message_with_tools_and_no_content_gets_placeholder() -> None:
    out = build(request({"role": "user", "content": []}, tools=[BASH]))
    assert current(out)["content"] == USER_PLACEHOLDER


def test_tool_result_without_content_gets_text() -> None:
    out = build(
        request(
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [use("t1")]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]},
            tools=[BASH],
        )
    )
    # §9 item 17: never null/empty content in a tool result.
    [res] = current(out)["userInputMessageContext"]["toolResults"]
    assert res["content"] == [{"text": EMPTY_RESULT}]


def test_tool_result_block_list_content_and_image() -> None:
    # Claude Code's Read on a PNG: the image moves to the user message's images.
    content = [
        {"type": "text", "text": "line 1"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
    ]
    out = build(
        request(
            {"role": "user", "content": "read"},
            {"role": "assistant", "content": [use("t1", "Read", file_path="a.png")]},
            {"role": "user", "content": [result("t1", content)]},
            tools=[BASH],
        )
    )
    cur = current(out)
    assert cur["images"] == [{"format": "png", "source": {"bytes": PNG}}]
    [res] = cur["userInputMessageContext"]["toolResults"]
    assert res["content"] == [{"text": "line 1"}]
    image_only = build(
        request(
            {"role": "user", "content": "read"},
            {"role": "assistant", "content": [use("t1", "Read")]},
            {"role": "user", "content": [result("t1", content[1:])]},
            tools=[BASH],
        )
    )
    [res] = current(image_only)["userInputMessageContext"]["toolResults"]
    assert res["content"] == [{"text": IMAGE_RESULT}]


def test_history_images_are_kept_even_without_text() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    out = build(
        request(
            {"role": "user", "content": [image]},
            {"role": "assistant", "content": "a red square"},
            {"role": "user", "content": "thanks"},
        )
    )
    first = history(out)[0]
    assert first["images"] == [{"format": "png", "source": {"bytes": PNG}}]
    assert first["content"] == USER_PLACEHOLDER
    assert "images" not in history(out)[1]
    assert current(out)["images"] == []


def test_current_images() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    out = build(request({"role": "user", "content": [{"type": "text", "text": "what?"}, image]}))
    assert current(out)["images"] == [{"format": "png", "source": {"bytes": PNG}}]
    assert current(out)["content"] == "what?"


def test_tools_used_in_history_are_declared() -> None:
    # After client-side compaction the tools array is gone but history still calls tools.
    out = build(
        request(
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [use("t1", "Grep", pattern="x")]},
            {"role": "user", "content": [result("t1")]},
            {"role": "assistant", "content": "found"},
            {"role": "user", "content": "ok"},
        )
    )
    [tool] = current(out)["userInputMessageContext"]["tools"]
    assert tool["toolSpecification"]["name"] == "Grep"
    assert tool["toolSpecification"]["description"]
    assert tool["toolSpecification"]["inputSchema"] == {
        "json": {"type": "object", "properties": {}}
    }


def test_web_search_dropped_from_tools_and_history() -> None:
    out = build(
        request(
            {"role": "user", "content": "search"},
            {"role": "assistant", "content": [use("w1", "web_search", query="kiro")]},
            {"role": "user", "content": [result("w1", "results...")]},
            tools=[
                {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
                {"name": "websearch", "description": "d", "input_schema": {"type": "object"}},
                BASH,
            ],
        )
    )
    cur = current(out)
    names = [t["toolSpecification"]["name"] for t in cur["userInputMessageContext"]["tools"]]
    assert names == ["Bash"]
    assert history(out)[1]["toolUses"] is None
    assert "web_search" in history(out)[1]["content"]
    assert "toolResults" not in cur["userInputMessageContext"]
    assert "results..." in cur["content"]


def test_defer_loading_placeholder_dropped() -> None:
    placeholder = {
        "name": "DeferredToolPlaceholder",
        "description": "never call",
        "input_schema": {"type": "object", "properties": {}},
        "defer_loading": True,
    }
    out = build(request({"role": "user", "content": "hi"}, tools=[BASH, placeholder]))
    names = [
        t["toolSpecification"]["name"] for t in current(out)["userInputMessageContext"]["tools"]
    ]
    assert names == ["Bash"]


def test_deferred_tool_is_sent_once_a_tool_search_references_it() -> None:
    deferred = {
        "name": "mcp__db__query",
        "description": "Run SQL",
        "input_schema": {"type": "object", "properties": {"sql": {"type": "string"}}},
        "defer_loading": True,
    }
    search = {"name": "ToolSearch", "description": "find tools", "input_schema": {"type": "object"}}
    first = build(request({"role": "user", "content": "query the db"}, tools=[search, deferred]))
    first_tools = [
        t["toolSpecification"]["name"] for t in current(first)["userInputMessageContext"]["tools"]
    ]
    assert first_tools == ["ToolSearch"]
    reference = {"type": "tool_reference", "tool_name": "mcp__db__query"}
    out = build(
        request(
            {"role": "user", "content": "query the db"},
            {"role": "assistant", "content": [use("s1", "ToolSearch", query="db")]},
            {"role": "user", "content": [result("s1", [reference])]},
            tools=[search, deferred],
        )
    )
    cur = current(out)
    specs = {t["toolSpecification"]["name"]: t for t in cur["userInputMessageContext"]["tools"]}
    assert list(specs) == ["ToolSearch", "mcp__db__query"]
    # The real declaration, not a minimal one.
    assert specs["mcp__db__query"]["toolSpecification"]["description"] == "Run SQL"
    [res] = cur["userInputMessageContext"]["toolResults"]
    assert res["content"] == [{"text": "Tool mcp__db__query is now available."}]


def test_system_role_message_is_folded_not_dropped() -> None:
    out = build(
        request(
            {"role": "user", "content": [{"type": "text", "text": "hello"}]},
            {"role": "system", "content": [{"type": "text", "text": "# Environment\ncwd: /x"}]},
        )
    )
    assert current(out)["content"] == "hello\n\n# Environment\ncwd: /x"
    assert state(out)["history"] is None


def test_system_message_between_tool_turns() -> None:
    out = build(
        request(
            {"role": "user", "content": "go"},
            {"role": "system", "content": "env"},
            {"role": "assistant", "content": [use("t1")]},
            {"role": "system", "content": "reminder"},
            {"role": "user", "content": [result("t1")]},
            tools=[BASH],
        )
    )
    assert roles(out) == ["user", "assistant"]
    assert history(out)[0]["content"] == "go\n\nenv"
    [res] = current(out)["userInputMessageContext"]["toolResults"]
    assert res["content"] == [{"text": "ok"}, {"text": "reminder"}]


@pytest.mark.parametrize(
    ("choice", "trigger"),
    [
        ({"type": "auto"}, "MANUAL"),
        ({"type": "any"}, "AUTO"),
        ({"type": "tool", "name": "Bash"}, "AUTO"),
        ({"type": "none"}, "MANUAL"),
        (None, "MANUAL"),
    ],
)
def test_chat_trigger_type(choice: dict[str, Any] | None, trigger: str) -> None:
    out = build(request({"role": "user", "content": "hi"}, tools=[BASH], tool_choice=choice))
    assert state(out)["chatTriggerType"] == trigger


def test_trigger_type_manual_without_tools() -> None:
    out = build(request({"role": "user", "content": "hi"}, tool_choice={"type": "any"}))
    assert state(out)["chatTriggerType"] == "MANUAL"


def test_payload_limit_raises_prompt_too_long() -> None:
    body = request({"role": "user", "content": "x" * 5000})
    settings = ConvertSettings(max_payload_bytes=4000)
    with pytest.raises(PromptTooLongError) as info:
        build(body, settings=settings)
    assert info.value.message.startswith("prompt is too long")
    assert info.value.status_code == 400


def test_consecutive_tool_result_turns_are_merged() -> None:
    # OpenAI-style: one message per tool result.
    out = build(
        request(
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [use("t1"), use("t2")]},
            {"role": "user", "content": [result("t1", "one")]},
            {"role": "user", "content": [result("t2", "two")]},
            tools=[BASH],
        )
    )
    results = current(out)["userInputMessageContext"]["toolResults"]
    assert [(r["toolUseId"], r["content"]) for r in results] == [
        ("t1", [{"text": "one"}]),
        ("t2", [{"text": "two"}]),
    ]
