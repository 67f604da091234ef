"""``/metrics``, ``/healthz``, ``/readyz`` and ``SAVE_RAW_DATA`` on an in-process server."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import orjson
import trio
from kiro_stack import messages_body, social_account, start_stack
from ops_support import free_port

from kiro2api.eventstream import Decoder
from kiro2api.simulator import Simulator, SimulatorConfig


def _value(metrics: str, name: str, **labels: str) -> float:
    """The sample ``name{labels}`` (label order as exported: sorted by prometheus_client)."""
    for line in metrics.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)", line)
        if not match or match[1] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match[2] or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match[3])
    raise AssertionError(f"no sample {name}{labels}")


async def test_metrics_cover_requests_latency_streams_accounts_and_failover(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    accounts = (
        social_account(0, faults=("http status=429",)),  # always throttled: fails over
        social_account(1),
        social_account(2, refresh_faults=("http status=500",)),  # never refreshes
    )
    stack = await start_stack(nursery, tmp_path, accounts=accounts)
    async with stack.client() as client:
        plain = await client.post("/v1/messages", json=messages_body("one"))
        assert plain.status_code == 200
        streamed = await client.post("/v1/messages", json=messages_body("two", stream=True))
        assert streamed.status_code == 200
        bad = await client.post(
            "/v1/messages", json={"model": "claude-sonnet-4-5", "messages": "nope"}
        )
        assert bad.status_code == 400
        async with client.stream(
            "POST",
            "/v1/messages",
            json=messages_body("[[sim:trickle events=40 interval_ms=50]]", stream=True),
        ) as slow:
            async for _ in slow.aiter_bytes():
                break
            during = (await client.get("/metrics")).text
        await trio.sleep(0.2)
        answer = await client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    metrics = answer.text

    assert _value(during, "kiro2api_active_streams") == 1.0
    assert _value(metrics, "kiro2api_active_streams") == 0.0
    route = {"route": "/v1/messages", "model": "claude-sonnet-4-5"}
    assert _value(metrics, "kiro2api_requests_total", status="200", **route) >= 2
    assert _value(metrics, "kiro2api_requests_total", status="400") == 1
    assert _value(metrics, "kiro2api_upstream_ttfb_seconds_count") >= 3
    assert _value(metrics, "kiro2api_ttfb_seconds_count") >= 2
    _value(metrics, "kiro2api_upstream_duration_seconds_count")  # exported
    assert _value(metrics, "kiro2api_upstream_failovers_total") >= 1
    assert _value(metrics, "kiro2api_upstream_retries_total") >= 1
    assert _value(metrics, "kiro2api_tokens_total", direction="input") > 0
    assert _value(metrics, "kiro2api_tokens_total", direction="output") > 0
    assert _value(metrics, "kiro2api_account_state", account="1", state="active") == 1.0
    assert _value(metrics, "kiro2api_account_refresh_successes", account="1") >= 1
    assert _value(metrics, "kiro2api_account_refresh_failures", account="2") >= 1
    assert _value(metrics, "kiro2api_account_refresh_failures", account="1") == 0
    for secret in ("refresh-token-", stack.key):
        assert secret not in metrics


async def test_readyz_waits_for_a_usable_account(nursery: trio.Nursery, tmp_path: Path) -> None:
    port = free_port()  # nothing listens here yet: every token refresh fails
    refresh_url = f"http://127.0.0.1:{port}/refreshToken"
    stack = await start_stack(nursery, tmp_path, env={"KIRO_SOCIAL_REFRESH_URL": refresh_url})
    async with httpx.AsyncClient(base_url=stack.url) as client:
        assert (await client.get("/healthz")).status_code == 200
        not_ready = await client.get("/readyz")
        assert not_ready.status_code == 503
        assert not_ready.json()["ready"] is False
        # The token service comes up: the refresher's next attempt succeeds.
        auth = Simulator(SimulatorConfig(accounts=(social_account(0),), port=port))
        await nursery.start(auth.serve)
        with trio.fail_after(20):
            while (ready := await client.get("/readyz")).status_code != 200:
                await trio.sleep(0.1)
        assert ready.json()["ready"] is True
        metrics = (await client.get("/metrics")).text
    assert _value(metrics, "kiro2api_account_refresh_failures", account="0") >= 1
    assert _value(metrics, "kiro2api_account_refresh_successes", account="0") == 1


async def test_save_raw_data_keeps_decodable_upstream_bytes(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    raw_dir = tmp_path / "raw"
    stack = await start_stack(
        nursery, tmp_path, env={"SAVE_RAW_DATA": "true", "KIRO_RAW_DATA_DIR": str(raw_dir)}
    )
    async with stack.client() as client:
        for body in (
            messages_body("[[sim:echo chunks=6]] first"),
            messages_body("second", stream=True),
        ):
            assert (await client.post("/v1/messages", json=body)).status_code == 200
    with trio.fail_after(5):
        while len(list(raw_dir.glob("*.eventstream"))) < 2:
            await trio.sleep(0.05)
    files = sorted(raw_dir.glob("*.eventstream"))
    assert len(files) == 2
    texts = set()
    for path in files:
        decoder = Decoder()
        messages = decoder.feed(path.read_bytes())
        decoder.close()  # the whole stream: no partial frame left over
        kinds = [m.event_type for m in messages]
        assert kinds[-2:] == ["meteringEvent", "contextUsageEvent"]
        texts.add(
            "".join(
                orjson.loads(m.payload)["content"]
                for m in messages
                if m.event_type == "assistantResponseEvent"
            )
        )
    assert texts == {"You said: first", "You said: second"}


async def test_raw_data_is_off_by_default(nursery: trio.Nursery, tmp_path: Path) -> None:
    raw_dir = tmp_path / "raw"
    stack = await start_stack(nursery, tmp_path, env={"KIRO_RAW_DATA_DIR": str(raw_dir)})
    async with stack.client() as client:
        assert (await client.post("/v1/messages", json=messages_body("hi"))).status_code == 200
    await trio.sleep(0.2)
    assert not raw_dir.exists()
