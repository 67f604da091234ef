"""Golden conversions: protocol.md §2.6 worked example and the §2.3.6 history examples."""

from __future__ import annotations

import orjson
from convreq_helpers import CONT_ID, CONV_ID, build, current, roles, state

from kiro2api.convert.history import SYSTEM_ACK, USER_PLACEHOLDER

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"location": {"type": "string"}},
    "required": ["location"],
}
TOOL_ID = "tooluse_Ab12Cd34Ef56Gh78Ij90Kl"


def test_worked_example_section_2_6() -> None:
    body = {
        "model": "claude-sonnet-4-20250514",
        "max_tokens": 1024,
        "system": [{"type": "text", "text": "You are terse."}],
        "tools": [
            {"name": "get_weather", "description": "Get weather", "input_schema": WEATHER_SCHEMA}
        ],
        "messages": [
            {"role": "user", "content": "Weather in Tokyo?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {
                        "type": "tool_use",
                        "id": TOOL_ID,
                        "name": "get_weather",
                        "input": {"location": "Tokyo"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": TOOL_ID, "content": "22°C, sunny"}
                ],
            },
        ],
    }
    model = "claude-sonnet-4"
    expected = {
        "conversationState": {
            "agentContinuationId": CONT_ID,
            "agentTaskType": "vibe",
            "chatTriggerType": "MANUAL",
            "currentMessage": {
                "userInputMessage": {
                    "userInputMessageContext": {
                        "toolResults": [
                            {
                                "toolUseId": TOOL_ID,
                                "content": [{"text": "22°C, sunny"}],
                                "status": "success",
                            }
                        ],
                        "tools": [
                            {
                                "toolSpecification": {
                                    "name": "get_weather",
                                    "description": "Get weather",
                                    "inputSchema": {"json": WEATHER_SCHEMA},
                                }
                            }
                        ],
                    },
                    "content": "",
                    "modelId": model,
                    "images": [],
                    "origin": "AI_EDITOR",
                }
            },
            "conversationId": CONV_ID,
            "history": [
                {
                    "userInputMessage": {
                        "content": "You are terse.",
                        "modelId": model,
                        "origin": "AI_EDITOR",
                        "userInputMessageContext": {},
                    }
                },
                {"assistantResponseMessage": {"content": "OK", "toolUses": None}},
                {
                    "userInputMessage": {
                        "content": "Weather in Tokyo?",
                        "modelId": model,
                        "origin": "AI_EDITOR",
                        "userInputMessageContext": {},
                    }
                },
                {
                    "assistantResponseMessage": {
                        "content": "Checking.",
                        "toolUses": [
                            {
                                "toolUseId": TOOL_ID,
                                "name": "get_weather",
                                "input": {"location": "Tokyo"},
                            }
                        ],
                    }
                },
            ],
        }
    }
    out = build(body)
    assert orjson.loads(out.body) == expected
    # Field order as §2.2 (upstream is fine either way, but it keeps diffs readable).
    assert list(orjson.loads(out.body)["conversationState"]) == list(expected["conversationState"])
    assert out.model_id == model
    assert out.tool_names == {}
    assert out.context_window == 200_000
    assert out.input_tokens > 0


def test_minimal_request_has_null_history() -> None:
    out = build(
        {"model": "claude-sonnet-4-20250514", "messages": [{"role": "user", "content": "Hi"}]}
    )
    st = state(out)
    assert st["history"] is None
    assert current(out) == {
        "userInputMessageContext": {},
        "content": "Hi",
        "modelId": "claude-sonnet-4",
        "images": [],
        "origin": "AI_EDITOR",
    }


def _texts(out: object) -> list[str]:
    items = state(out)["history"] or []  # type: ignore[arg-type]
    return [
        (item.get("userInputMessage") or item.get("assistantResponseMessage"))["content"]
        for item in items
    ]


def test_orphan_users_before_current_get_merged() -> None:
    # §2.3.6 example [U1, A1, U2, U3] with system S: U2 and U3 are consecutive users, so they
    # merge into the current message (Go instead paired U2 with a synthetic "OK").
    out = build(
        {
            "model": "claude-sonnet-4-5",
            "system": "S",
            "messages": [
                {"role": "user", "content": "U1"},
                {"role": "assistant", "content": "A1"},
                {"role": "user", "content": "U2"},
                {"role": "user", "content": "U3"},
            ],
        }
    )
    assert _texts(out) == ["S", SYSTEM_ACK, "U1", "A1"]
    assert current(out)["content"] == "U2\n\nU3"


def test_leading_assistant_gets_synthetic_user_turn() -> None:
    out = build(
        {
            "model": "claude-sonnet-4-5",
            "messages": [
                {"role": "assistant", "content": "A0"},
                {"role": "user", "content": "U1"},
            ],
        }
    )
    assert roles(out) == ["user", "assistant"]
    assert _texts(out) == [USER_PLACEHOLDER, "A0"]
    assert current(out)["content"] == "U1"


def test_consecutive_assistants_are_merged_not_dropped() -> None:
    out = build(
        {
            "model": "claude-sonnet-4-5",
            "messages": [
                {"role": "user", "content": "U1"},
                {"role": "assistant", "content": "A1"},
                {"role": "assistant", "content": "A2"},
                {"role": "user", "content": "U2"},
            ],
        }
    )
    assert _texts(out) == ["U1", "A1\n\nA2"]
    assert current(out)["content"] == "U2"


def test_trailing_assistant_prefill_goes_to_history() -> None:
    out = build(
        {
            "model": "claude-sonnet-4-5",
            "messages": [
                {"role": "user", "content": "Write a haiku"},
                {"role": "assistant", "content": "Autumn"},
            ],
        }
    )
    assert _texts(out) == ["Write a haiku", "Autumn"]
    assert current(out)["content"] == USER_PLACEHOLDER
