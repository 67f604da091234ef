"""Graceful shutdown of a real ``python -m kiro2api serve`` process on SIGTERM."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import trio
from ops_support import sim_env, sse_events, start_server, start_sim, stop_server

from kiro2api.simulator import AccountConfig

REFRESH = "aor-ops-shutdown-refresh-token-0a1b2c3d"


def _stream_body(directive: str) -> dict[str, object]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "stream": True,
        "messages": [{"role": "user", "content": directive}],
    }


async def _stream_then_sigterm(
    tmp_path: Path, nursery: trio.Nursery, grace: str, directive: str
) -> tuple[bytes, int, bool]:
    """Start a stream, SIGTERM the server after its first bytes; return (body, exit, refused)."""
    sim, sim_url = await start_sim(nursery, AccountConfig(id="a0", refresh_token=REFRESH))
    env = {**sim_env(sim_url, sim.config.accounts, tmp_path), "KIRO_SHUTDOWN_GRACE": grace}
    server = await start_server(tmp_path, env)
    body = bytearray()
    refused = False
    async with (
        server.client() as client,
        client.stream("POST", "/v1/messages", json=_stream_body(directive)) as answer,
    ):
        assert answer.status_code == 200
        chunks = answer.aiter_bytes()
        body += await chunks.__anext__()
        server.terminate()
        await trio.sleep(0.3)  # the signal is handled; the listener is closed
        try:
            async with httpx.AsyncClient(base_url=server.url, timeout=2) as fresh:
                await fresh.get("/healthz")
        except httpx.ConnectError:
            refused = True
        async for chunk in chunks:
            body += chunk
    with trio.fail_after(20):
        code = await server.wait()
    return bytes(body), code, refused


async def test_sigterm_lets_a_running_stream_finish(nursery: trio.Nursery, tmp_path: Path) -> None:
    body, code, refused = await _stream_then_sigterm(
        tmp_path, nursery, "10", "[[sim:trickle events=15 interval_ms=100 text=tick]]"
    )
    events = sse_events(body)
    names = [name for name, _ in events if name != "ping"]
    assert names[-1] == "message_stop", names
    text = "".join(
        data["delta"].get("text", "")  # type: ignore[index]
        for name, data in events
        if name == "content_block_delta"
    )
    assert text.count("tick") == 15
    assert refused, "a new connection was accepted after SIGTERM"
    assert code == 0


async def test_streams_past_the_grace_period_end_with_an_error_event(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    body, code, refused = await _stream_then_sigterm(
        tmp_path, nursery, "0.5", "[[sim:trickle events=1000 interval_ms=50]]"
    )
    events = sse_events(body)
    name, data = events[-1]
    assert name == "error", events[-3:]
    assert isinstance(data, dict)
    assert data["type"] == "error"
    assert "shutting down" in data["error"]["message"]
    assert refused
    assert code == 0


async def test_idle_server_exits_zero_on_sigterm(nursery: trio.Nursery, tmp_path: Path) -> None:
    sim, sim_url = await start_sim(nursery, AccountConfig(id="a0", refresh_token=REFRESH))
    server = await start_server(tmp_path, sim_env(sim_url, sim.config.accounts, tmp_path))
    with trio.fail_after(5):
        assert await stop_server(server) == 0
    assert "shutting down gracefully" in server.stderr


@pytest.mark.parametrize("flag", ["--demo"])
async def test_demo_mode_serves_and_stops(tmp_path: Path, flag: str) -> None:
    server = await start_server(tmp_path, {}, args=(flag,))
    key = next(
        line.split("ANTHROPIC_API_KEY=")[1].split()[0]
        for line in server.stderr.splitlines()
        if "ANTHROPIC_API_KEY=" in line
    )
    async with httpx.AsyncClient(base_url=server.url, headers={"x-api-key": key}) as client:
        answer = await client.post(
            "/v1/messages", json=_stream_body("hello demo") | {"stream": False}
        )
    assert answer.status_code == 200
    assert "hello demo" in answer.text
    assert await stop_server(server) == 0
