"""OpenAI Chat Completions parsing: role mapping, legacy function forms, refusals."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from convreq_helpers import PNG, build, current, state

from kiro2api.convert.canonical import (
    ImageBlock,
    TextBlock,
    ToolChoice,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
    Turn,
)
from kiro2api.convert.openai_request import parse_openai_request
from kiro2api.errors import RequestError

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        "strict": True,
    },
}


def base(**extra: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}], **extra}


def test_role_mapping_with_tool_calls() -> None:
    req = parse_openai_request(
        {
            "model": "claude-sonnet-4-5",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "developer", "content": [{"type": "text", "text": "no emoji"}]},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "weather?"},
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                    ],
                },
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            ],
            "tools": [WEATHER],
            "tool_choice": "required",
            "max_completion_tokens": 100,
            "max_tokens": 5,
            "stop": "END",
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": 0.2,
            "top_p": 0.9,
            "n": 1,
            "user": "ignored",
            "seed": 7,
        }
    )
    assert req.system == "be brief\nno emoji"
    assert req.turns == (
        Turn("user", (TextBlock("weather?"), ImageBlock("image/png", PNG))),
        Turn("assistant", (ToolUseBlock("call_1", "get_weather", {"city": "Paris"}),)),
        Turn("user", (ToolResultBlock("call_1", (TextBlock("sunny"),)),)),
    )
    assert req.tools == (
        ToolSpec(
            "get_weather",
            "Get weather",
            {"type": "object", "properties": {"city": {"type": "string"}}},
        ),
    )
    assert req.tool_choice == ToolChoice("any")
    assert req.max_tokens == 100
    assert req.stop_sequences == ("END",)
    assert req.stream
    assert req.include_usage
    assert req.temperature == 0.2
    assert req.top_p == 0.9


def test_openai_conversation_builds_a_valid_body() -> None:
    out = build(
        {
            "model": "claude-sonnet-4-5",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "weather in Paris and Rome?"},
                {
                    "role": "assistant",
                    "content": "Checking both.",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        },
                        {
                            "id": "c2",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
                {
                    "role": "tool",
                    "tool_call_id": "c2",
                    "content": [{"type": "text", "text": "rain"}],
                },
            ],
            "tools": [WEATHER],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        },
        openai=True,
    )
    st = state(out)
    assert st["chatTriggerType"] == "AUTO"
    assert st["history"][0]["userInputMessage"]["content"] == "be brief"
    uses = st["history"][3]["assistantResponseMessage"]["toolUses"]
    assert [u["input"] for u in uses] == [{"city": "Paris"}, {"city": "Rome"}]
    results = current(out)["userInputMessageContext"]["toolResults"]
    assert [(r["toolUseId"], r["content"]) for r in results] == [
        ("c1", [{"text": "sunny"}]),
        ("c2", [{"text": "rain"}]),
    ]
    # `strict` is an OpenAI-only schema flag; it must not reach the upstream schema.
    schema = current(out)["userInputMessageContext"]["tools"][0]["toolSpecification"]["inputSchema"]
    assert schema == {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}


def test_legacy_functions_and_function_role() -> None:
    req = parse_openai_request(
        {
            "model": "m",
            "messages": [
                {"role": "user", "content": "time?"},
                {
                    "role": "assistant",
                    "content": None,
                    "function_call": {"name": "now", "arguments": ""},
                },
                {"role": "function", "name": "now", "content": "12:00"},
            ],
            "functions": [{"name": "now", "description": "time"}],
            "function_call": {"name": "now"},
        }
    )
    call = req.turns[1].blocks[0]
    assert isinstance(call, ToolUseBlock)
    assert call.name == "now"
    assert call.input == {}
    answer = req.turns[2].blocks[0]
    assert isinstance(answer, ToolResultBlock)
    assert answer.tool_use_id == call.id
    assert req.tools == (ToolSpec("now", "time", {"type": "object", "properties": {}}),)
    assert req.tool_choice == ToolChoice("tool", "now")


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", ToolChoice("auto")),
        ("none", ToolChoice("none")),
        ("required", ToolChoice("any")),
        ({"type": "function", "function": {"name": "f"}}, ToolChoice("tool", "f")),
        (None, None),
    ],
)
def test_tool_choice_mapping(choice: object, expected: ToolChoice | None) -> None:
    assert parse_openai_request(base(tool_choice=choice)).tool_choice == expected


def test_defaults() -> None:
    req = parse_openai_request(base())
    assert req.stream is False
    assert req.include_usage is False
    assert req.max_tokens is None
    assert req.stop_sequences == ()
    assert req.tool_choice is None
    assert req.system == ""


def test_stop_list_and_null_content_system() -> None:
    req = parse_openai_request(
        base(
            stop=["a", "b"],
            messages=[{"role": "system", "content": None}, {"role": "user", "content": "x"}],
        )
    )
    assert req.stop_sequences == ("a", "b")
    assert req.system == ""


BAD_CASES: list[tuple[object, str]] = [
    ("body", ""),
    (base(n=2), "n"),
    (base(n="2"), "n"),
    (base(logprobs=True), "logprobs"),
    (base(top_logprobs=3), "top_logprobs"),
    (base(modalities=["text", "audio"]), "modalities"),
    (base(audio={"voice": "alloy", "format": "mp3"}), "audio"),
    (base(model=None), "model"),
    (base(messages=[]), "messages"),
    (base(messages=[{"role": "robot", "content": "x"}]), "messages[0].role"),
    (base(messages=[{"role": "user"}]), "messages[0].content"),
    (
        base(messages=[{"role": "user", "content": [{"type": "input_audio"}]}]),
        "messages[0].content[0].type",
    ),
    (
        base(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}
                    ],
                }
            ]
        ),
        "messages[0].content[0].image_url.url",
    ),
    (
        base(
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "data:image/png,abc"}}],
                }
            ]
        ),
        "messages[0].content[0].image_url.url",
    ),
    (
        base(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,%%%"}}
                    ],
                }
            ]
        ),
        "messages[0].content[0].image_url.url",
    ),
    (
        base(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]),
        "messages[0].content[0].image_url.url",
    ),
    (
        base(
            messages=[
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"type": "function", "function": {"name": "f", "arguments": "{"}, "id": "c"}
                    ],
                }
            ]
        ),
        "messages[0].tool_calls[0].function.arguments",
    ),
    (
        base(
            messages=[
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "type": "function",
                            "function": {"name": "f", "arguments": "[1]"},
                            "id": "c",
                        }
                    ],
                }
            ]
        ),
        "messages[0].tool_calls[0].function.arguments",
    ),
    (
        base(
            messages=[
                {
                    "role": "assistant",
                    "tool_calls": [{"type": "function", "function": {"name": "f"}}],
                }
            ]
        ),
        "messages[0].tool_calls[0].id",
    ),
    (
        base(
            messages=[
                {"role": "assistant", "tool_calls": [{"id": "c", "type": "custom", "custom": {}}]}
            ]
        ),
        "messages[0].tool_calls[0].type",
    ),
    (
        base(messages=[{"role": "assistant", "tool_calls": {"id": "c"}}]),
        "messages[0].tool_calls",
    ),
    (base(messages=[{"role": "tool", "content": "x"}]), "messages[0].tool_call_id"),
    (base(messages=[{"role": "function", "content": "x"}]), "messages[0].name"),
    (
        base(messages=[{"role": "system", "content": [{"type": "image_url"}]}]),
        "messages[0].content[0].type",
    ),
    (base(tools=[{"type": "retrieval"}]), "tools[0].type"),
    (base(tools=[{"type": "function"}]), "tools[0].function"),
    (base(tools=[{"type": "function", "function": {"name": ""}}]), "tools[0].function.name"),
    (
        base(tools=[{"type": "function", "function": {"name": "f", "parameters": []}}]),
        "tools[0].function.parameters",
    ),
    (base(functions=[{"description": "x"}]), "functions[0].name"),
    (base(tool_choice="sometimes"), "tool_choice"),
    (base(tool_choice={"type": "function", "function": {}}), "tool_choice.function.name"),
    (base(function_call={"arguments": "{}"}), "function_call.name"),
    (base(stop=[1]), "stop[0]"),
    (base(stream_options={"include_usage": "yes"}), "stream_options.include_usage"),
    (base(stream_options=[]), "stream_options"),
    (base(max_completion_tokens=-1), "max_completion_tokens"),
]


@pytest.mark.parametrize(("body", "param"), BAD_CASES)
def test_bad_input_is_a_400_naming_the_field(body: object, param: str) -> None:
    with pytest.raises(RequestError) as info:
        parse_openai_request(copy.deepcopy(body))
    assert info.value.status_code == 400
    assert (info.value.param or "") == param
