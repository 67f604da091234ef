"""Helpers for the operational tests: a real ``python -m kiro2api serve`` process on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import trio

from kiro2api.simulator import AccountConfig, Simulator

ROOT = Path(__file__).resolve().parents[2]
CLIENT_KEY = "sk-ops-client-key-5f1e9c0a7b3d"


#: Server processes started by the current test; the conftest kills any left running.
RUNNING: list[trio.Process] = []


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env(tmp: Path, **extra: str) -> dict[str, str]:
    """A clean environment for a kiro2api process (nothing leaks in from the caller's)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp),
        "PYTHONPATH": str(ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
        **extra,
    }


def run_cli(
    args: list[str], env: Mapping[str, str], cwd: Path, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m kiro2api ARGS`` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "kiro2api", *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def sim_env(sim_url: str, accounts: tuple[AccountConfig, ...], tmp: Path) -> dict[str, str]:
    """The settings that point kiro2api at a simulator holding ``accounts``."""
    auth = [{"auth": "Social", "refreshToken": a.refresh_token} for a in accounts]
    return {
        "KIRO_CLIENT_TOKEN": CLIENT_KEY,
        "KIRO_AUTH_TOKEN": orjson.dumps(auth).decode(),
        "KIRO_API_URL": f"{sim_url}/generateAssistantResponse",
        "KIRO_USAGE_URL": f"{sim_url}/getUsageLimits",
        "KIRO_SOCIAL_REFRESH_URL": f"{sim_url}/refreshToken",
        "KIRO_IDC_REFRESH_URL": f"{sim_url}/token",
        "KIRO_STATE_DIR": str(tmp / "state"),
    }


@dataclass
class ServerProcess:
    """A running ``python -m kiro2api serve``."""

    process: trio.Process
    url: str
    stderr_path: Path

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def client(self, **kwargs: object) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url, headers={"x-api-key": CLIENT_KEY}, timeout=30, **kwargs
        )

    def terminate(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)

    async def wait(self) -> int:
        return await self.process.wait()


async def start_server(
    tmp: Path, env: Mapping[str, str], *, wait_ready: bool = True, args: tuple[str, ...] = ()
) -> ServerProcess:
    """Start the server on a free port and wait until ``/healthz`` (and ``/readyz``) answer."""
    port = free_port()
    stderr_path = tmp / f"server-{port}.stderr"
    with stderr_path.open("wb") as stderr:
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "kiro2api", "serve", *args],
            env=base_env(tmp, PORT=str(port), **dict(env)),
            cwd=tmp,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    RUNNING.append(process)
    server = ServerProcess(process, f"http://127.0.0.1:{port}", stderr_path)
    path = "/readyz" if wait_ready else "/healthz"
    async with httpx.AsyncClient(base_url=server.url, timeout=2) as client:
        with trio.fail_after(20):
            while True:
                if process.returncode is not None:
                    raise AssertionError(f"server exited early:\n{server.stderr}")
                try:
                    if (await client.get(path)).status_code == 200:
                        return server
                except httpx.TransportError:
                    pass
                await trio.sleep(0.05)


async def stop_server(server: ServerProcess) -> int:
    """SIGTERM, then wait for the exit code (SIGKILL if it hangs)."""
    server.terminate()
    try:
        with trio.fail_after(20):
            return await server.wait()
    except trio.TooSlowError:
        server.process.kill()
        await server.process.wait()
        raise


def sse_events(raw: bytes) -> list[tuple[str | None, object]]:
    """(event name, parsed data) of every SSE block (comments skipped)."""
    events: list[tuple[str | None, object]] = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        name: str | None = None
        data = b""
        for line in block.split(b"\n"):
            if line.startswith(b"event: "):
                name = line[7:].decode()
            elif line.startswith(b"data: "):
                data += line[6:]
        if name is not None or data:
            events.append((name, orjson.loads(data) if data and data != b"[DONE]" else None))
    return events


async def start_sim(nursery: trio.Nursery, *accounts: AccountConfig) -> tuple[Simulator, str]:
    """An in-process simulator on 127.0.0.1 (the server process reaches it over TCP)."""
    from kiro2api.simulator import SimulatorConfig

    sim = Simulator(SimulatorConfig(accounts=accounts))
    url: str = await nursery.start(sim.serve)
    return sim, url
