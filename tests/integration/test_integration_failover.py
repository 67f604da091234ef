"""Upstream failures: failover before the first byte, error events after it, disconnects."""

from __future__ import annotations

from contextlib import aclosing
from pathlib import Path

import trio
from kiro_stack import BASH_TOOL, Stack, messages_body, parse_sse, social_account, start_stack


def _accounts_used(stack: Stack) -> list[str | None]:
    return [r.account_id for r in stack.sim.requests]


async def test_429_with_one_account_is_a_429_with_retry_after(stack: Stack) -> None:
    async with stack.client() as http:
        response = await http.post(
            "/v1/messages", json=messages_body("x [[sim:http status=429 retry_after=7]]")
        )
    assert response.status_code == 429
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert response.headers["retry-after"] == "7"


async def test_server_error_fails_over_to_the_next_account(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    accounts = (social_account(0, faults=("http status=500",)), social_account(1))
    stack = await start_stack(nursery, tmp_path, accounts=accounts)
    async with stack.client() as http:
        response = await http.post("/v1/messages", json=messages_body("hello"))
    assert response.status_code == 200
    assert response.json()["content"][0]["text"] == "You said: hello"
    assert _accounts_used(stack) == ["acct0", "acct1"]


async def test_quota_exhausted_account_is_skipped_afterwards(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    accounts = (social_account(0, exhausted=True), social_account(1))
    stack = await start_stack(nursery, tmp_path, accounts=accounts)
    async with stack.client() as http:
        for _ in range(3):
            response = await http.post("/v1/messages", json=messages_body("hi"))
            assert response.status_code == 200
    # The pool learnt from the usage limits that acct0 is exhausted and never sent it traffic.
    assert _accounts_used(stack) == ["acct1", "acct1", "acct1"]


async def test_revoked_token_is_refreshed_once_and_retried(stack: Stack) -> None:
    async with stack.client() as http:
        assert (await http.post("/v1/messages", json=messages_body("one"))).status_code == 200
        refreshes = stack.sim.refresh_count("acct0")
        stack.sim.expire_access_tokens()
        response = await http.post("/v1/messages", json=messages_body("two"))
    assert response.status_code == 200
    assert stack.sim.refresh_count("acct0") == refreshes + 1
    assert [r.status for r in stack.sim.requests] == [200, 403, 200]


async def test_leading_throttling_frame_is_an_http_529(stack: Stack) -> None:
    async with stack.client() as http:
        response = await http.post(
            "/v1/messages",
            json=messages_body("x [[sim:exception type=ThrottlingException after=0]]", stream=True),
        )
    assert response.status_code == 529
    assert response.json()["error"]["type"] == "overloaded_error"
    assert not response.headers["content-type"].startswith("text/event-stream")


async def test_mid_stream_throttling_becomes_an_sse_error_event(stack: Stack) -> None:
    body = messages_body(
        'x [[sim:text text="partial answer" chunks=2]] '
        "[[sim:exception type=ThrottlingException after=2]]",
        stream=True,
    )
    async with stack.client() as http:
        response = await http.post("/v1/messages", json=body)
    assert response.status_code == 200
    events = parse_sse(response.content)
    types = [data["type"] for _, data in events]
    assert types[0] == "message_start"
    assert types[-1] == "error"
    assert events[-1][1]["error"]["type"] == "overloaded_error"
    assert "message_delta" not in types


async def test_corrupt_frame_mid_stream_is_an_api_error_event(stack: Stack) -> None:
    body = messages_body("x [[sim:echo chunks=4]] [[sim:badcrc after=2]]", stream=True)
    async with stack.client() as http:
        response = await http.post("/v1/messages", json=body)
    # Whether the corrupt frame arrives in the first read (then nothing was sent yet and it
    # is a real HTTP 502) or later (an SSE error event) depends on TCP; both must be clean.
    if response.headers["content-type"].startswith("text/event-stream"):
        error = parse_sse(response.content)[-1][1]
        assert error["type"] == "error"
    else:
        assert response.status_code == 502
        error = response.json()
    assert error["error"]["type"] == "api_error"
    assert "checksum" in error["error"]["message"].lower()


async def test_truncated_stream_is_an_error_event(stack: Stack) -> None:
    body = messages_body("x [[sim:echo chunks=4]] [[sim:truncate after=2]]", stream=True)
    async with stack.client() as http:
        response = await http.post("/v1/messages", json=body)
    events = parse_sse(response.content)
    assert events[-1][1]["type"] == "error"


async def test_client_disconnect_closes_upstream_and_returns_the_lease(stack: Stack) -> None:
    assert stack.server.state is not None
    state = stack.server.state
    body = messages_body("x [[sim:trickle events=200 interval_ms=50]]", stream=True)
    async with stack.client() as http, http.stream("POST", "/v1/messages", json=body) as response:
        async with aclosing(response.aiter_bytes()) as chunks:
            async for chunk in chunks:
                assert b"message_start" in chunk
                break
        assert state.streams.active == 1
    # The client is gone: within a second the stream task ends and the lease is back.
    with trio.fail_after(1):
        while state.streams.active or any(a.in_flight for a in state.pool.snapshot()):
            await trio.sleep(0.01)


async def test_keepalive_pings_while_the_upstream_is_silent(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    stack = await start_stack(nursery, tmp_path, env={"KIRO_PING_INTERVAL": "0.1"})
    body = messages_body(
        "x [[sim:trickle events=3 interval_ms=400]]", stream=True, tools=[BASH_TOOL]
    )
    async with stack.client() as http:
        response = await http.post("/v1/messages", json=body)
    types = [data["type"] for _, data in parse_sse(response.content)]
    assert types.count("ping") >= 3
    assert types[-1] == "message_stop"
