"""The Anthropic Messages API end to end: the real anthropic SDK, the server and the simulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import httpx
import orjson
import pydantic
import pytest
import trio
from anthropic.types import Message, RawMessageStreamEvent
from kiro_stack import BASH_TOOL, SHARED, Stack, messages_body, parse_sse, start_stack

EVENT = pydantic.TypeAdapter(RawMessageStreamEvent)
CAPTURES = sorted((SHARED / "testdata" / "claude-code" / "2.1.330").glob("*.json"))


def sync_client(stack: Stack) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=stack.url, api_key=stack.key, max_retries=0)


async def test_sdk_create_sync(stack: Stack) -> None:
    def call() -> Message:
        with sync_client(stack) as client:
            return client.messages.create(
                model="claude-sonnet-4-5",
                max_tokens=100,
                messages=[{"role": "user", "content": "Hello there"}],
            )

    message = await trio.to_thread.run_sync(call)
    assert message.id.startswith("msg_")
    assert message.model == "claude-sonnet-4-5"
    assert message.stop_reason == "end_turn"
    assert message.content[0].type == "text"
    assert message.content[0].text == "You said: Hello there"
    assert message.usage.input_tokens > 0
    assert message.usage.output_tokens > 0
    # What the upstream got: the converted body, with the mapped model id and our token.
    received = stack.sim.last_request
    assert received.status == 200
    current = received.body["conversationState"]["currentMessage"]["userInputMessage"]
    assert current["content"] == "Hello there"
    assert current["modelId"] == "claude-sonnet-4.5"


async def test_sdk_stream_tool_call_async_get_final_message(stack: Stack) -> None:
    directive = (
        '[[sim:text text="Let me run it."]] [[sim:tool name=Bash input={"command":"echo hi"}]]'
    )
    client = anthropic.AsyncAnthropic(base_url=stack.url, api_key=stack.key, max_retries=0)
    async with (
        client,
        client.messages.stream(
            model="claude-sonnet-4-5",
            max_tokens=200,
            tools=[BASH_TOOL],  # type: ignore[list-item]
            messages=[{"role": "user", "content": f"run it {directive}"}],
        ) as stream,
    ):
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert kinds[0] == "message_start"
    assert final.stop_reason == "tool_use"
    assert [block.type for block in final.content] == ["text", "tool_use"]
    tool = final.content[1]
    assert tool.type == "tool_use"
    assert tool.name == "Bash"
    assert tool.input == {"command": "echo hi"}
    assert tool.id.startswith("tooluse_")


async def test_every_sse_event_is_a_valid_sdk_type(stack: Stack) -> None:
    body = messages_body(
        'x [[sim:text text="a"]] [[sim:tool name=Bash input={"command":"ls"}]] '
        '[[sim:text text="after"]]',
        stream=True,
        tools=[BASH_TOOL],
    )
    async with stack.client() as http:
        response = await http.post("/v1/messages?beta=true", json=body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.content)
    for name, data in events:
        EVENT.validate_python(data)
        assert name == data["type"]
    types = [data["type"] for _, data in events]
    assert types.count("message_delta") == 1
    assert types[-1] == "message_stop"
    # Text after a tool opens a new block instead of being lost.
    starts = [d["content_block"]["type"] for _, d in events if d["type"] == "content_block_start"]
    assert starts == ["text", "tool_use", "text"]


async def test_count_tokens_and_models_via_sdk(stack: Stack) -> None:
    def calls() -> tuple[int, list[str]]:
        with sync_client(stack) as client:
            return _count_and_list(client)

    tokens, models = await trio.to_thread.run_sync(calls)
    assert tokens == 16  # protocol.md §7.7 golden value
    assert "claude-sonnet-4-5" in models or "claude-sonnet-4.5" in models


def _count_and_list(client: anthropic.Anthropic) -> tuple[int, list[str]]:
    count = client.messages.count_tokens(
        model="claude-sonnet-4-5",
        messages=[{"role": "user", "content": "Hello, how are you today?"}],
    )
    return count.input_tokens, [m.id for m in client.models.list()]


async def test_count_tokens_burst_of_26(stack: Stack) -> None:
    capture = orjson.loads(
        (SHARED / "testdata/claude-code/2.1.330/count-tokens-tools.json").read_bytes()
    )
    results: list[int] = []
    async with stack.client() as http:

        async def one() -> None:
            response = await http.post("/v1/messages/count_tokens?beta=true", json=capture["body"])
            assert response.status_code == 200
            results.append(response.json()["input_tokens"])

        async with trio.open_nursery() as nursery:
            for _ in range(26):
                nursery.start_soon(one)
    assert len(results) == 26
    assert len(set(results)) == 1
    assert results[0] > 0


@pytest.mark.parametrize(
    "capture",
    [
        c
        for c in CAPTURES
        if json.loads(c.read_text())["path"].startswith("/v1/messages?")
        or json.loads(c.read_text())["path"] == "/v1/messages"
    ],
    ids=lambda p: p.stem,
)
async def test_claude_code_captures_are_accepted(stack: Stack, capture: Path) -> None:
    recorded: dict[str, Any] = json.loads(capture.read_text())
    headers = {
        k: v
        for k, v in recorded["headers"].items()
        if k.lower() in {"anthropic-version", "anthropic-beta", "user-agent", "x-app"}
    }
    async with stack.client(headers=headers) as http:
        response = await http.post(recorded["path"], json=recorded["body"])
    assert response.status_code == 200, response.text
    events = parse_sse(response.content)
    for _, data in events:
        EVENT.validate_python(data)
    assert events[-1][1]["type"] == "message_stop"
    # The simulator validates like the real upstream: it accepted the rebuilt history.
    assert stack.sim.last_request.status == 200


@pytest.mark.parametrize(
    ("body", "param_hint"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": []}', "messages"),
        (b'{"model": 5, "max_tokens": 10, "messages": [{"role":"user","content":"x"}]}', "model"),
        (
            b'{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user",'
            b'"content":[{"type":"hologram","data":1}]}]}',
            "hologram",
        ),
        (
            b'{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":'
            b'[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"@@@"}}]}]}',
            "base64",
        ),
        (
            b'{"model":"gpt-nonsense","max_tokens":10,"messages":[{"role":"user","content":"x"}]}',
            "model",
        ),
        (b"[]", "object"),
    ],
)
async def test_bad_input_is_a_clear_400(stack: Stack, body: bytes, param_hint: str) -> None:
    async with stack.client() as http:
        response = await http.post(
            "/v1/messages", content=body, headers={"content-type": "application/json"}
        )
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    assert param_hint.lower() in error["error"]["message"].lower()


async def test_oversize_body_is_413(nursery: trio.Nursery, tmp_path: Path) -> None:
    stack = await start_stack(nursery, tmp_path, env={"KIRO_MAX_BODY_BYTES": "2048"})
    async with stack.client() as http:
        response = await http.post("/v1/messages", json=messages_body("x" * 5000))
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "request_too_large"


async def test_client_auth_styles(stack: Stack) -> None:
    body = messages_body("hi")
    async with httpx.AsyncClient(base_url=stack.url) as http:
        missing = await http.post("/v1/messages", json=body)
        wrong = await http.post("/v1/messages", json=body, headers={"x-api-key": "nope"})
        bearer = await http.post(
            "/v1/messages", json=body, headers={"authorization": f"Bearer {stack.key}"}
        )
        x_api_key = await http.post("/v1/messages", json=body, headers={"x-api-key": stack.key})
        health = await http.get("/healthz")
        head = await http.head("/")
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "authentication_error"
    assert wrong.status_code == 401
    assert bearer.status_code == 200
    assert x_api_key.status_code == 200
    assert health.status_code == 200
    assert head.status_code == 200
    assert "x-request-id" in bearer.headers


async def test_request_id_is_kept(stack: Stack) -> None:
    async with stack.client() as http:
        response = await http.post(
            "/v1/messages", json=messages_body("hi"), headers={"x-request-id": "abc-123"}
        )
    assert response.headers["x-request-id"] == "abc-123"
