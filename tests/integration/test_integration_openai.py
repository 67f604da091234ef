"""OpenAI Chat Completions end to end: the real openai SDK, the server and the simulator."""

from __future__ import annotations

import base64
import json
from typing import Any

import openai
import pytest
import trio
from kiro_stack import Stack, parse_sse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

# A valid 1x1 PNG.
PNG_1X1 = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201a5f6e3"
        "a40000000049454e44ae426082"
    )
).decode()

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def sync_client(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.url}/v1", api_key=stack.key, max_retries=0)


async def test_plain_chat_sync(stack: Stack) -> None:
    def call() -> ChatCompletion:
        with sync_client(stack) as client:
            return client.chat.completions.create(
                model="claude-sonnet-4-5",
                messages=[
                    {"role": "system", "content": "You are terse."},
                    {"role": "user", "content": "Hello"},
                ],
            )

    completion = await trio.to_thread.run_sync(call)
    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == "claude-sonnet-4-5"
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.content == "You said: Hello"
    assert completion.usage is not None
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    # The system message reached the upstream as the first history pair (the Go original
    # dropped it).
    body = stack.sim.last_request.body["conversationState"]
    assert body["history"][0]["userInputMessage"]["content"] == "You are terse."


async def test_streaming_with_include_usage_async(stack: Stack) -> None:
    async with openai.AsyncOpenAI(
        base_url=f"{stack.url}/v1", api_key=stack.key, max_retries=0
    ) as client:
        stream = await client.chat.completions.create(
            model="claude-sonnet-4-5",
            messages=[{"role": "user", "content": "Stream me [[sim:echo chunks=5]]"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("You said: Stream me")
    finals = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finals == ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0


async def test_raw_stream_chunks_validate_and_end_with_done(stack: Stack) -> None:
    body = {
        "model": "claude-sonnet-4-5",
        "stream": True,
        "messages": [
            {
                "role": "user",
                "content": 'go [[sim:tool name=get_weather input={"city":"Paris"}]]',
            }
        ],
        "tools": [WEATHER_TOOL],
    }
    async with stack.client() as http:
        response = await http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    events = parse_sse(response.content)
    assert events[-1][1] == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate(data) for _, data in events[:-1]]
    calls = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or []) if c.choices]
    assert calls[0].id
    assert calls[0].function is not None
    assert calls[0].function.name == "get_weather"
    arguments = "".join(tc.function.arguments or "" for tc in calls if tc.function)
    assert json.loads(arguments) == {"city": "Paris"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_tool_calls_over_several_turns(stack: Stack) -> None:
    def conversation() -> tuple[ChatCompletion, ChatCompletion]:
        with sync_client(stack) as client:
            first = client.chat.completions.create(
                model="claude-sonnet-4-5",
                messages=[
                    {
                        "role": "user",
                        "content": 'Weather? [[sim:tool name=get_weather input={"city":"Oslo"}]]',
                    }
                ],
                tools=[WEATHER_TOOL],  # type: ignore[list-item]
            )
            call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
            second = client.chat.completions.create(
                model="claude-sonnet-4-5",
                messages=[
                    {"role": "user", "content": "Weather?"},
                    first.choices[0].message.model_dump(exclude_none=True),  # type: ignore[list-item]
                    {"role": "tool", "tool_call_id": call.id, "content": "Oslo: -3 C, snow"},
                ],
                tools=[WEATHER_TOOL],  # type: ignore[list-item]
            )
            return first, second

    first, second = await trio.to_thread.run_sync(conversation)
    assert first.choices[0].finish_reason == "tool_calls"
    tool_call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert tool_call.type == "function"
    assert json.loads(tool_call.function.arguments) == {"city": "Oslo"}  # type: ignore[union-attr]
    assert second.choices[0].finish_reason == "stop"
    assert "Oslo: -3 C, snow" in (second.choices[0].message.content or "")
    # Upstream saw a proper tool round trip: the call in history, the result in the current turn.
    state = stack.sim.last_request.body["conversationState"]
    current = state["currentMessage"]["userInputMessage"]["userInputMessageContext"]
    assert current["toolResults"][0]["toolUseId"] == tool_call.id
    assert state["history"][-1]["assistantResponseMessage"]["toolUses"][0]["name"] == "get_weather"


async def test_image_part_reaches_the_upstream(stack: Stack) -> None:
    def call() -> ChatCompletion:
        with sync_client(stack) as client:
            return client.chat.completions.create(
                model="claude-sonnet-4-5",
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "What is this?"},
                            {
                                "type": "image_url",
                                "image_url": {"url": f"data:image/png;base64,{PNG_1X1}"},
                            },
                        ],
                    }
                ],
            )

    completion = await trio.to_thread.run_sync(call)
    assert completion.choices[0].finish_reason == "stop"
    current = stack.sim.last_request.body["conversationState"]["currentMessage"]
    images = current["userInputMessage"]["images"]
    assert images == [{"format": "png", "source": {"bytes": PNG_1X1}}]


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"modalities": ["text", "audio"]}, "modalities"),
    ],
)
async def test_unsupported_options_are_openai_shaped_400s(
    stack: Stack, extra: dict[str, Any], param: str
) -> None:
    body = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "x"}], **extra}
    async with stack.client() as http:
        response = await http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


async def test_remote_image_url_is_refused(stack: Stack) -> None:
    body = {
        "model": "claude-sonnet-4-5",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
                ],
            }
        ],
    }
    async with stack.client() as http:
        response = await http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    assert "url" in response.json()["error"]["message"].lower()


async def test_models_list_via_openai_sdk(stack: Stack) -> None:
    def call() -> list[str]:
        with sync_client(stack) as client:
            return [m.id for m in client.models.list()]

    models = await trio.to_thread.run_sync(call)
    assert models
    assert all(isinstance(m, str) for m in models)
