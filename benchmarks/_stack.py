"""The processes under test: the upstream simulator and the proxy, each in its own process.

Separate processes let the harness charge CPU time and resident memory to the right side, and
keep the load generator (the harness process itself) from sharing an interpreter with either.
Output of both goes to log files in the run's work directory, never to an unread pipe.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import psutil  # type: ignore[import-untyped]

from kiro2api.simulator import DEMO_REFRESH_TOKEN

__all__ = [
    "CLIENT_KEY",
    "DIRECT_REFRESH_TOKEN",
    "ProcessStats",
    "ProxyConfig",
    "Stack",
    "raise_fd_limit",
    "running_stack",
]

#: The key the load generator presents to the proxy.
CLIENT_KEY = "sk-bench-client-key-0123456789abcdef"
#: The simulator account the harness uses for direct requests (the proxy uses the demo one), so
#: neither side's token rotation invalidates the other's.
DIRECT_REFRESH_TOKEN = "aor-bench-direct-account-refresh-token"
#: Credits enough for any run: the simulator meters every answer against the account.
_USAGE_LIMIT = 1e12
_STARTUP_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """One way of running the pair.

    Attributes:
        name: Short label used in tables (``h1``, ``tls-h2``, ``h1-noext``).
        tls: The simulator serves HTTPS with HTTP/2 (the proxy trusts its CA); else plain HTTP/1.1.
        no_extensions: The proxy runs with ``KIRO2API_NO_EXTENSIONS=1`` (pure-Python codec).
    """

    name: str
    tls: bool = False
    no_extensions: bool = False

    @property
    def upstream(self) -> str:
        """The direct-to-simulator configuration this one is compared with."""
        return "tls-h2" if self.tls else "h1"


def raise_fd_limit(wanted: int) -> int:
    """Raise the soft open-files limit towards ``wanted`` (children inherit it); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return int(soft)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(slots=True)
class ProcessStats:
    """CPU and memory figures of one child process, read from ``/proc`` through psutil."""

    proc: psutil.Process

    def cpu_seconds(self) -> float:
        """User plus system CPU time so far."""
        times = self.proc.cpu_times()
        return float(times.user + times.system)

    def rss(self) -> int:
        """Resident set size now, in bytes."""
        return int(self.proc.memory_info().rss)

    def reset_peak(self) -> None:
        """Reset the kernel's peak-RSS mark (``VmHWM``) so the next reading covers one run."""
        with contextlib.suppress(OSError):
            Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")

    def peak_rss(self) -> int:
        """Peak resident set size since the last :meth:`reset_peak` (``VmHWM``), in bytes."""
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return self.rss()


@dataclass(slots=True)
class Stack:
    """A running simulator and (optionally) proxy, with what clients need to reach them."""

    config: ProxyConfig
    sim_url: str
    proxy_url: str
    ca_file: str | None
    access_token: str
    sim: ProcessStats
    proxy: ProcessStats | None
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def verify(self) -> str | bool:
        """What an httpx client needs to trust the simulator."""
        return self.ca_file or True


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            args, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )


def _wait_for(predicate: object, what: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + _STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited at start-up:\n{log.read_text()[-2000:]}")
        if callable(predicate) and predicate():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not start within {_STARTUP_TIMEOUT:g} s")


def _start_simulator(work: Path, tls: bool) -> tuple[subprocess.Popen[bytes], str, str | None]:
    accounts = [
        {"id": "proxy", "refreshToken": DEMO_REFRESH_TOKEN, "usageLimit": _USAGE_LIMIT},
        {"id": "direct", "refreshToken": DIRECT_REFRESH_TOKEN, "usageLimit": _USAGE_LIMIT},
    ]
    accounts_file = work / "accounts.json"
    accounts_file.write_bytes(orjson.dumps(accounts))
    args = [sys.executable, "-m", "kiro2api.simulator", "--port", "0"]
    args += ["--accounts", str(accounts_file), "--log-level", "warning"]
    if tls:
        args.append("--tls")
    log = work / f"simulator{'-tls' if tls else ''}.log"
    proc = _spawn(args, dict(os.environ), log)
    found: dict[str, str] = {}

    def ready() -> bool:
        for line in log.read_text(errors="replace").splitlines():
            if " simulator on " in line:
                found["url"] = line.rsplit(" ", 1)[1]
            elif "trust this CA: " in line:
                found["ca"] = line.split("trust this CA: ", 1)[1].strip()
        return "url" in found and (not tls or "ca" in found)

    _wait_for(ready, "the simulator", proc, log)
    return proc, found["url"], found.get("ca")


def _access_token(sim_url: str, verify: str | bool) -> str:
    with httpx.Client(verify=verify, timeout=10) as client:
        reply = client.post(f"{sim_url}/refreshToken", json={"refreshToken": DIRECT_REFRESH_TOKEN})
        reply.raise_for_status()
        token: str = reply.json()["accessToken"]
        return token


def _start_proxy(
    work: Path, config: ProxyConfig, sim_url: str, ca_file: str | None, profile: Path | None
) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    state_dir = work / f"state-{config.name}"
    state_dir.mkdir(exist_ok=True)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("KIRO", "LOG_", "PORT", "HOST"))
    }
    env.update(
        {
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "KIRO_CLIENT_TOKEN": CLIENT_KEY,
            "KIRO_AUTH_TOKEN": orjson.dumps(
                [{"auth": "Social", "refreshToken": DEMO_REFRESH_TOKEN}]
            ).decode(),
            "KIRO_API_URL": f"{sim_url}/generateAssistantResponse",
            "KIRO_USAGE_URL": f"{sim_url}/getUsageLimits",
            "KIRO_SOCIAL_REFRESH_URL": f"{sim_url}/refreshToken",
            "KIRO_IDC_REFRESH_URL": f"{sim_url}/token",
            "KIRO_STATE_DIR": str(state_dir),
            "KIRO_SHUTDOWN_GRACE": "1",
            "LOG_LEVEL": "info",
        }
    )
    if ca_file:
        env["KIRO_UPSTREAM_CA_FILE"] = ca_file
    env.pop("KIRO2API_NO_EXTENSIONS", None)
    if config.no_extensions:
        env["KIRO2API_NO_EXTENSIONS"] = "1"
    log = work / f"proxy-{config.name}.log"
    command = [sys.executable, "-m", "kiro2api", "serve"]
    if profile is not None and profile.suffix == ".pstats":
        # cProfile: exact CPU per function (tottime), written when the proxy exits on SIGTERM.
        command[1:1] = ["-m", "cProfile", "-o", str(profile)]
    elif profile is not None:
        # pyinstrument samples the proxy's main thread (wall clock, awaits included) and
        # writes its report when the proxy exits on SIGTERM.
        command[1:1] = ["-m", "pyinstrument", "-i", "0.0005", "-r", "text", "-o", str(profile)]
    proc = _spawn(command, env, log)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    _wait_for(ready, "the proxy", proc, log)
    return proc, url


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextlib.contextmanager
def running_stack(
    work: Path, config: ProxyConfig, *, proxy: bool = True, profile: Path | None = None
) -> Iterator[Stack]:
    """Start the simulator (and the proxy in front of it), stop both on exit.

    Args:
        work: A directory for logs, the accounts file and the proxy's state.
        config: Which upstream transport and codec to use.
        proxy: Start the proxy too (direct-only runs leave it out).
        profile: Run the proxy under a profiler and write its report here: cProfile stats
            for a ``.pstats`` path, else pyinstrument's text report.
    """
    procs: list[subprocess.Popen[bytes]] = []
    try:
        sim_proc, sim_url, ca_file = _start_simulator(work, config.tls)
        procs.append(sim_proc)
        token = _access_token(sim_url, ca_file or True)
        proxy_stats: ProcessStats | None = None
        proxy_url = ""
        if proxy:
            proxy_proc, proxy_url = _start_proxy(work, config, sim_url, ca_file, profile)
            procs.append(proxy_proc)
            proxy_stats = ProcessStats(psutil.Process(proxy_proc.pid))
        yield Stack(
            config=config,
            sim_url=sim_url,
            proxy_url=proxy_url,
            ca_file=ca_file,
            access_token=token,
            sim=ProcessStats(psutil.Process(sim_proc.pid)),
            proxy=proxy_stats,
            procs=procs,
        )
    finally:
        for proc in reversed(procs):
            _stop(proc)
