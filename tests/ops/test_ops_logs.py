"""Logs of a real server process: request ids, one access line per request, no secret anywhere."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import orjson
import trio
from ops_support import CLIENT_KEY, sim_env, start_server, start_sim, stop_server

from kiro2api.simulator import AccountConfig, Simulator

REFRESH = "aor-ops-logs-refresh-token-7c1d2e3f4a5b"


def _messages(text: str, *, stream: bool = False) -> dict[str, object]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "stream": stream,
        "messages": [{"role": "user", "content": text}],
    }


def _issued(sim: Simulator) -> set[str]:
    """Every credential the simulator has issued so far (access and current refresh tokens)."""
    account = sim.account("a0")
    return {*account.access_tokens, account.refresh_token}


async def test_json_logs_have_ids_access_lines_and_no_secrets(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    sim, sim_url = await start_sim(nursery, AccountConfig(id="a0", refresh_token=REFRESH))
    log_file = tmp_path / "kiro2api.log"
    env = {
        **sim_env(sim_url, (sim.config.accounts[0],), tmp_path),
        "LOG_LEVEL": "debug",
        "LOG_FORMAT": "json",
        "LOG_FILE": str(log_file),
        "LOG_CONSOLE": "false",
    }
    server = await start_server(tmp_path, env)
    secrets = {CLIENT_KEY, REFRESH, *_issued(sim)}
    async with server.client() as client:
        ok = await client.post(
            "/v1/messages",
            json=_messages("[[sim:echo chunks=4]] hi", stream=True),
            headers={"x-request-id": "ops-stream-1"},
        )
        assert ok.status_code == 200
        assert ok.headers["x-request-id"] == "ops-stream-1"
        plain = await client.post("/v1/messages", json=_messages("hello"))
        assert plain.status_code == 200
        generated = plain.headers["x-request-id"]
        assert re.fullmatch(r"req_[0-9a-f]{32}", generated)
        # On a connection of its own: a keep-alive request after an early 401 (body unread)
        # can stall, rarely; that is not what this test is about.
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as stranger:
            refused = await stranger.post(
                "/v1/messages", json=_messages("x"), headers={"x-api-key": CLIENT_KEY + "-wrong"}
            )
        assert refused.status_code == 401
        bad = await client.post(
            "/v1/messages", content=b"{not json", headers={"x-request-id": "ops-bad-json"}
        )
        assert bad.status_code == 400
        failed = await client.post(
            "/v1/messages",
            json=_messages("[[sim:http status=400 reason=INVALID_INPUT]] boom"),
            headers={"x-request-id": "ops-upstream-400"},
        )
        assert failed.status_code == 400
        # The upstream forgets the access token: the proxy refreshes it and retries.
        secrets |= _issued(sim)
        sim.expire_access_tokens("a0")
        refreshed = await client.post(
            "/v1/messages", json=_messages("again"), headers={"x-request-id": "ops-refresh"}
        )
        assert refreshed.status_code == 200, refreshed.text
        secrets |= _issued(sim)
        # A client that goes away mid-stream.
        async with client.stream(
            "POST",
            "/v1/messages",
            json=_messages("[[sim:trickle events=50 interval_ms=50]]", stream=True),
            headers={"x-request-id": "ops-gone"},
        ) as gone:
            async for _ in gone.aiter_bytes():
                break
        secrets |= _issued(sim)
        assert sim.refresh_count("a0") >= 2
        await trio.sleep(0.5)  # the disconnect is logged when the producer notices it
    assert await stop_server(server) == 0

    text = log_file.read_text(encoding="utf-8")
    assert text, "LOG_FILE stayed empty"
    lines = [orjson.loads(line) for line in text.splitlines()]
    for secret in secrets:
        assert secret not in text, f"a secret reached the log: {secret[:4]}…"
        assert secret not in server.stderr

    access = [entry for entry in lines if entry["logger"] == "kiro2api.access"]
    by_id: dict[str, list[dict[str, object]]] = {}
    for entry in access:
        by_id.setdefault(str(entry["request_id"]), []).append(entry)
    for request_id in ("ops-stream-1", generated, "ops-upstream-400", "ops-refresh", "ops-gone"):
        assert len(by_id.get(request_id, [])) == 1, f"{request_id}: {by_id.get(request_id)}"
    stream_line = by_id["ops-stream-1"][0]
    assert stream_line["http_method"] == "POST"
    assert stream_line["path"] == "/v1/messages"
    assert stream_line["status"] == 200
    assert stream_line["model"] == "claude-sonnet-4-5"
    assert stream_line["stream"] is True
    assert isinstance(stream_line["ttfb_ms"], float)
    assert float(str(stream_line["duration_ms"])) >= float(str(stream_line["ttfb_ms"]))
    assert int(str(stream_line["output_tokens"])) > 0
    assert int(str(stream_line["input_tokens"])) > 0
    assert stream_line["client_disconnected"] is False
    account = str(stream_line["account"])
    assert "…" in account  # the account is named by a masked credential preview
    assert by_id[generated][0]["stream"] is False
    assert by_id["ops-upstream-400"][0]["status"] == 400
    assert by_id["ops-gone"][0]["client_disconnected"] is True
    # Refused requests still carry their id in the log.
    assert any(e["request_id"] == "ops-bad-json" for e in lines)


async def test_text_log_line_format(nursery: trio.Nursery, tmp_path: Path) -> None:
    sim, sim_url = await start_sim(nursery, AccountConfig(id="a0", refresh_token=REFRESH))
    log_file = tmp_path / "text.log"
    env = {
        **sim_env(sim_url, (sim.config.accounts[0],), tmp_path),
        "LOG_FORMAT": "text",
        "LOG_FILE": str(log_file),
    }
    server = await start_server(tmp_path, env)
    async with server.client() as client:
        answer = await client.post(
            "/v1/messages", json=_messages("hi"), headers={"x-request-id": "ops-text-1"}
        )
        assert answer.status_code == 200
    assert await stop_server(server) == 0
    text = log_file.read_text(encoding="utf-8")
    assert re.search(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO +kiro2api\.access \[ops-text-1\] "
        r"POST /v1/messages 200 model=claude-sonnet-4-5 account=\S+ \(\S+…\S+\) stream=no "
        r"ttfb=(?:-|[\d.]+ms) duration=[\d.]+ms in=\d+ out=\d+$",
        text,
        re.MULTILINE,
    ), text
    # LOG_CONSOLE defaults to true: the same lines reach stderr.
    assert "[ops-text-1] POST /v1/messages 200" in server.stderr
    assert REFRESH not in text


async def test_request_id_is_returned_on_errors_too(nursery: trio.Nursery, tmp_path: Path) -> None:
    sim, sim_url = await start_sim(nursery, AccountConfig(id="a0", refresh_token=REFRESH))
    server = await start_server(tmp_path, sim_env(sim_url, (sim.config.accounts[0],), tmp_path))
    async with httpx.AsyncClient(base_url=server.url) as client:
        answer = await client.post("/v1/messages", json={}, headers={"x-request-id": "ops-401"})
    assert answer.status_code == 401
    assert answer.headers["x-request-id"] == "ops-401"
    assert answer.json()["request_id"] == "ops-401"
    assert await stop_server(server) == 0
