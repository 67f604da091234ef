"""Serving modes: TLS with HTTP/2 through ALPN, the command line, and accounts files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import orjson
import pytest
import trio
from sim_support import API_KEY, Answer, accounts_config, body, generate, start

from kiro2api.errors import ConfigError, EventStreamError
from kiro2api.simulator import DEMO_REFRESH_TOKEN, Simulator, SimulatorConfig

ROOT = Path(__file__).resolve().parents[2]


async def test_tls_with_http2(nursery: trio.Nursery) -> None:
    sim = await start(nursery, accounts_config(tls=True))
    assert sim.url is not None
    assert sim.url.startswith("https://127.0.0.1:")
    assert sim.ca_pem_path is not None
    assert sim.ca_pem_path.read_text().startswith("-----BEGIN CERTIFICATE-----")
    async with httpx.AsyncClient(verify=sim.client_ssl_context(), http2=True) as client:
        answer = await generate(client, sim.url, API_KEY, body("over h2"))
        assert answer.text() == "You said: over h2"
        response = await client.get(f"{sim.url}/")
        assert response.http_version == "HTTP/2"
        # Over h2 a truncated stream ends cleanly, but in the middle of a frame.
        cut = await generate(client, sim.url, API_KEY, body("[[sim:truncate after=1]] cut me"))
        with pytest.raises(EventStreamError):
            cut.messages()
    async with httpx.AsyncClient(verify=sim.client_ssl_context()) as client:
        response = await client.get(f"{sim.url}/")
        assert response.http_version == "HTTP/1.1"


async def test_tls_context_needs_tls() -> None:
    with pytest.raises(ConfigError):
        Simulator(accounts_config()).client_ssl_context()


async def test_serve_stops_when_cancelled() -> None:
    sim = Simulator(accounts_config())
    with trio.move_on_after(5) as outer:
        async with trio.open_nursery() as nursery:
            url = await nursery.start(sim.serve)
            async with httpx.AsyncClient() as client:
                assert (await client.get(f"{url}/")).status_code == 200
            nursery.cancel_scope.cancel()
    assert not outer.cancelled_caught
    assert sim.url is None


def test_accounts_file_accepts_proxy_style_entries(tmp_path: Path) -> None:
    path = tmp_path / "accounts.json"
    path.write_bytes(
        orjson.dumps(
            [
                {"auth": "Social", "refreshToken": "aorFILE-social-0001"},
                {
                    "auth": "IdC",
                    "refreshToken": "aorFILE-idc-0002",
                    "clientId": "cid",
                    "clientSecret": "csecret",
                    "description": "ignored",
                },
                {"id": "key", "kind": "apikey", "apiKey": "ksk_file", "faults": "http status=429"},
            ]
        )
    )
    config = SimulatorConfig.from_file(path, max_body_bytes=1234)
    assert [(a.id, a.kind) for a in config.accounts] == [
        ("acct-1", "social"),
        ("acct-2", "idc"),
        ("key", "apikey"),
    ]
    assert config.accounts[2].faults == ("http status=429",)
    assert config.max_body_bytes == 1234


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ([{"refreshToken": "a", "colour": "red"}], "unknown key"),
        ([{"auth": "Magic", "refreshToken": "a"}], "unknown kind"),
        ([{"auth": "IdC", "refreshToken": "a"}], "client_id"),
        ([{"refreshToken": "a"}, {"refreshToken": "a"}], "unique"),
        ([{"refreshToken": "a", "usageLimit": "lots"}], "wrong type"),
        (["nope"], "JSON object"),
    ],
)
def test_bad_accounts_data(data: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        SimulatorConfig.from_accounts_data(data)


def test_missing_accounts_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        SimulatorConfig.from_file(tmp_path / "missing.json")


def test_command_line_prints_url_and_demo_credentials() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "kiro2api.simulator", "--port", "0", "--log-level", "warning"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first, second = proc.stdout.readline(), proc.stdout.readline()
        url = first.strip().rsplit(" ", 1)[1]
        assert url.startswith("http://127.0.0.1:")
        assert DEMO_REFRESH_TOKEN in second
        with httpx.Client(base_url=url) as client:
            refreshed = client.post("/refreshToken", json={"refreshToken": DEMO_REFRESH_TOKEN})
            token = refreshed.json()["accessToken"]
            response = client.post(
                "/generateAssistantResponse",
                json=body("from the cli"),
                headers={"authorization": f"Bearer {token}"},
            )
        answer = Answer(response.status_code, response.headers, response.content)
        assert answer.text() == "You said: from the cli"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
