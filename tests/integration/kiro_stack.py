"""Integration-test helpers: the upstream simulator and kiro2api, both on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import trio

from kiro2api.server import Server
from kiro2api.settings import load_settings
from kiro2api.simulator import AccountConfig, Simulator, SimulatorConfig

#: The shared reference data beside the checkout.
SHARED = Path(__file__).resolve().parents[3] / "shared"

CLIENT_KEY = "sk-test-client-key-0123456789"


@dataclass
class Stack:
    """What a test talks to."""

    url: str
    key: str
    sim: Simulator
    server: Server
    tmp: Path

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        headers = {"x-api-key": self.key, **kwargs.pop("headers", {})}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30, **kwargs)


def social_account(index: int, **extra: Any) -> AccountConfig:
    return AccountConfig(
        id=f"acct{index}", kind="social", refresh_token=f"refresh-token-{index}-abcdef", **extra
    )


async def start_stack(
    nursery: trio.Nursery,
    tmp: Path,
    *,
    accounts: tuple[AccountConfig, ...] | None = None,
    env: Mapping[str, str] | None = None,
    sim_options: Mapping[str, Any] | None = None,
) -> Stack:
    """Start a simulator with ``accounts`` and a server pointing at it."""
    accounts = accounts or (social_account(0),)
    sim = Simulator(SimulatorConfig(accounts=accounts, **dict(sim_options or {})))
    sim_url: str = await nursery.start(sim.serve)
    auth = [
        {"auth": "Social", "refreshToken": a.refresh_token}
        if a.kind == "social"
        else {
            "auth": "IdC",
            "refreshToken": a.refresh_token,
            "clientId": a.client_id,
            "clientSecret": a.client_secret,
        }
        if a.kind == "idc"
        else {"auth": "ApiKey", "apiKey": a.api_key}
        for a in accounts
    ]
    environ = {
        "PORT": "0",
        "KIRO_CLIENT_TOKEN": CLIENT_KEY,
        "KIRO_AUTH_TOKEN": orjson.dumps(auth).decode(),
        "KIRO_API_URL": f"{sim_url}/generateAssistantResponse",
        "KIRO_USAGE_URL": f"{sim_url}/getUsageLimits",
        "KIRO_SOCIAL_REFRESH_URL": f"{sim_url}/refreshToken",
        "KIRO_IDC_REFRESH_URL": f"{sim_url}/token",
        "KIRO_STATE_DIR": str(tmp / "state"),
        "KIRO_SHUTDOWN_GRACE": "2",
        **dict(env or {}),
    }
    server = Server(load_settings(environ, dotenv_path=None))
    url: str = await nursery.start(server.run)
    # Let every account finish its first refresh, so which account serves first is deterministic.
    assert server.state is not None
    pool = server.state.pool
    with trio.fail_after(10):
        while any(a.expires_at is None and a.last_error is None for a in pool.snapshot()):
            await trio.sleep(0.01)
    return Stack(url=url, key=CLIENT_KEY, sim=sim, server=server, tmp=tmp)


def parse_sse(raw: bytes) -> list[tuple[str | None, Any]]:
    """Split an SSE body into (event name, parsed data) pairs."""
    events: list[tuple[str | None, Any]] = []
    for block in raw.split(b"\n\n"):
        if not block.strip():
            continue
        name: str | None = None
        data = b""
        for line in block.split(b"\n"):
            if line.startswith(b"event: "):
                name = line[7:].decode()
            elif line.startswith(b"data: "):
                data += line[6:]
        events.append((name, data.decode() if data == b"[DONE]" else orjson.loads(data)))
    return events


def messages_body(text: str, *, stream: bool = False, **extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "stream": stream,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


BASH_TOOL = {
    "name": "Bash",
    "description": "Run a shell command",
    "input_schema": {
        "type": "object",
        "properties": {"command": {"type": "string"}},
        "required": ["command"],
    },
}
