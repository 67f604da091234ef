"""Run the real Claude Code CLI against kiro2api and the upstream simulator, all on loopback.

Meant to be started inside a loopback-only network namespace (``unshare -n python
cc_harness.py SPEC REPORT``): it brings ``lo`` up, starts the simulator and the kiro2api server
in-process under trio, runs the CLI once per entry of ``SPEC["runs"]`` (``claude -p`` or the
interactive TUI under tmux) and writes a JSON report to ``REPORT``: each run's exit code, stdout
lines (parsed when they are JSON), stderr and screens, and every ``generateAssistantResponse``
the simulator received (status, reason, parsed body).

The report is written even when something fails (``error`` then says what), so the test can show
what happened. Every wait is bounded; tmux is killed on the way out.

Spec keys (all paths absolute):

* ``claude``: the CLI executable; ``home`` and ``workdir``: the fresh HOME and the cwd.
* ``client_key``: the key the proxy accepts; ``server_env``: extra kiro2api settings;
  ``accounts``: how many upstream accounts the proxy has (default 1).
* ``runs``: a list of runs. A run has ``args`` (after the executable), ``auth`` (``api_key`` or
  ``auth_token``), optional ``key`` (defaults to ``client_key``), ``stdin`` (a file to feed,
  else ``/dev/null``), ``env`` (extra variables), ``timeout`` (seconds) and ``mode``
  (``print`` or ``tmux``). A tmux run also has ``prompt`` (typed into the TUI) and ``expect``
  (text whose appearance on screen ends the run).
"""

from __future__ import annotations

import os
import shlex
import sys
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import trio

from kiro2api.server import Server
from kiro2api.settings import load_settings
from kiro2api.simulator import AccountConfig, Simulator, SimulatorConfig


def upstream_accounts(count: int) -> tuple[AccountConfig, ...]:
    """The upstream accounts the proxy uses; only the simulator ever sees their tokens."""
    return tuple(
        AccountConfig(id=f"acct{i}", kind="social", refresh_token=f"aor-e2e-refresh-{i}-0123456789")
        for i in range(count)
    )


#: How long the whole stack may take to come up.
START_TIMEOUT = 20.0
#: A run that names no timeout gets this many seconds.
DEFAULT_RUN_TIMEOUT = 60.0


def cli_env(spec: Mapping[str, Any], run: Mapping[str, Any], base_url: str) -> dict[str, str]:
    """The CLI's complete environment: nothing is inherited from ours (like ``env -i``).

    Args:
        spec: The harness spec (``home``, ``client_key``).
        run: The run (``auth``, optional ``key`` and ``env``).
        base_url: kiro2api's base URL.
    """
    key = str(run.get("key") or spec["client_key"])
    auth_var = {"api_key": "ANTHROPIC_API_KEY", "auth_token": "ANTHROPIC_AUTH_TOKEN"}[
        str(run.get("auth", "api_key"))
    ]
    env = {
        "HOME": str(spec["home"]),
        "PATH": "/usr/bin:/bin",
        "TERM": "dumb",
        "LANG": "C.UTF-8",
        "ANTHROPIC_BASE_URL": base_url,
        auth_var: key,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
    }
    env.update({str(k): str(v) for k, v in dict(run.get("env") or {}).items()})
    return env


def _lines(raw: bytes) -> list[Any]:
    out: list[Any] = []
    for line in raw.decode("utf-8", "replace").splitlines():
        if not line.strip():
            continue
        try:
            out.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            out.append(line)
    return out


async def run_print(
    spec: Mapping[str, Any], run: Mapping[str, Any], base_url: str
) -> dict[str, Any]:
    """One non-interactive ``claude -p`` run; returns its exit code and output."""
    stdin_path = run.get("stdin") or os.devnull
    started = time.monotonic()
    with open(stdin_path, "rb") as stdin:
        result = await trio.run_process(
            [str(spec["claude"]), *run["args"]],
            stdin=stdin,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            cwd=str(spec["workdir"]),
            env=cli_env(spec, run, base_url),
        )
    return {
        "rc": result.returncode,
        "stdout": _lines(result.stdout),
        "stderr": result.stderr.decode("utf-8", "replace")[-20_000:],
        "seconds": round(time.monotonic() - started, 2),
    }


async def _tmux(socket: Path, *args: str) -> str:
    result = await trio.run_process(
        ["tmux", "-S", str(socket), *args], capture_stdout=True, capture_stderr=True, check=False
    )
    return result.stdout.decode("utf-8", "replace")


def seed_tui_config(spec: Mapping[str, Any], run: Mapping[str, Any]) -> None:
    """Write ``~/.claude.json`` so the TUI skips onboarding, trusts the cwd and the key."""
    key = str(run.get("key") or spec["client_key"])
    config = {
        "hasCompletedOnboarding": True,
        "customApiKeyResponses": {"approved": [key[-20:]], "rejected": []},
        "projects": {str(spec["workdir"]): {"hasTrustDialogAccepted": True}},
    }
    Path(spec["home"], ".claude.json").write_bytes(orjson.dumps(config))


async def run_tmux(
    spec: Mapping[str, Any], run: Mapping[str, Any], base_url: str
) -> dict[str, Any]:
    """The interactive TUI under tmux: type ``prompt``, wait until ``expect`` is on screen."""
    seed_tui_config(spec, run)
    socket = Path(spec["home"]) / "tmux.sock"
    env = cli_env(spec, run, base_url)
    env["TERM"] = "xterm-256color"
    command = ["env", "-i", *(f"{k}={v}" for k, v in env.items()), str(spec["claude"])]
    command += list(run["args"])
    started = time.monotonic()
    screens: list[str] = []
    found = False
    try:
        await _tmux(
            socket, "-f", "/dev/null", "new-session", "-d", "-s", "cc", "-x", "160", "-y", "50",
            "-c", str(spec["workdir"]), shlex.join(command),
        )  # fmt: skip
        # The input box is ready once its prompt marker is drawn.
        screen = ""
        while "❯" not in screen:
            await trio.sleep(0.2)
            screen = await _tmux(socket, "capture-pane", "-p", "-t", "cc")
        screens.append(screen)
        await trio.sleep(0.3)
        await _tmux(socket, "send-keys", "-t", "cc", "-l", str(run["prompt"]))
        await trio.sleep(0.3)
        await _tmux(socket, "send-keys", "-t", "cc", "Enter")
        while not found:
            await trio.sleep(0.25)
            screen = await _tmux(socket, "capture-pane", "-p", "-J", "-t", "cc")
            found = str(run["expect"]) in screen
        screens.append(screen)
    finally:
        with trio.CancelScope(shield=True):
            if not found:
                screens.append(await _tmux(socket, "capture-pane", "-p", "-J", "-t", "cc"))
            await _tmux(socket, "kill-server")
    return {"found": found, "screens": screens, "seconds": round(time.monotonic() - started, 2)}


async def start_server(
    nursery: trio.Nursery, spec: Mapping[str, Any], sim: Simulator, sim_url: str
) -> tuple[Server, str]:
    """Start kiro2api pointing at the simulator; wait for every account's first refresh."""
    auth = [{"auth": "Social", "refreshToken": a.refresh_token} for a in sim.config.accounts]
    environ = {
        "HOST": "127.0.0.1",
        "PORT": "0",
        "KIRO_CLIENT_TOKEN": str(spec["client_key"]),
        "KIRO_AUTH_TOKEN": orjson.dumps(auth).decode(),
        "KIRO_API_URL": f"{sim_url}/generateAssistantResponse",
        "KIRO_USAGE_URL": f"{sim_url}/getUsageLimits",
        "KIRO_SOCIAL_REFRESH_URL": f"{sim_url}/refreshToken",
        "KIRO_IDC_REFRESH_URL": f"{sim_url}/token",
        "KIRO_STATE_DIR": str(Path(spec["home"]).parent / "kiro-state"),
        "KIRO_SHUTDOWN_GRACE": "1",
        **{str(k): str(v) for k, v in dict(spec.get("server_env") or {}).items()},
    }
    server = Server(load_settings(environ, dotenv_path=None))
    url: str = await nursery.start(server.run)
    assert server.state is not None
    pool = server.state.pool
    while any(a.expires_at is None and a.last_error is None for a in pool.snapshot()):
        await trio.sleep(0.01)
    return server, url


def simulator_record(sim: Simulator) -> list[dict[str, Any]]:
    """What the simulator received, in a JSON-friendly shape."""
    return [
        {
            "seq": r.seq,
            "status": r.status,
            "reason": r.reason,
            "raw_size": r.raw_size,
            "account": r.account_id,
            "body": r.body,
        }
        for r in sim.requests
    ]


async def run_all(spec: Mapping[str, Any], url: str, report: dict[str, Any]) -> None:
    """Every run of the spec in order; a run that times out ends the sequence."""
    for run in spec["runs"]:
        runner = run_tmux if run.get("mode") == "tmux" else run_print
        entry: dict[str, Any] = {"mode": run.get("mode", "print")}
        report["runs"].append(entry)
        try:
            with trio.fail_after(float(run.get("timeout", DEFAULT_RUN_TIMEOUT))):
                entry.update(await runner(spec, run, url))
        except trio.TooSlowError:
            entry["timed_out"] = True
            return


async def main(spec: Mapping[str, Any], report: dict[str, Any]) -> None:
    """Bring up loopback, the stack, then every run in order, filling in ``report``."""
    await trio.run_process(["ip", "link", "set", "lo", "up"])
    sim = Simulator(SimulatorConfig(accounts=upstream_accounts(int(spec.get("accounts", 1)))))
    try:
        async with trio.open_nursery() as outer:
            with trio.fail_after(START_TIMEOUT):
                sim_url: str = await outer.start(sim.serve)
            async with trio.open_nursery() as inner:
                with trio.fail_after(START_TIMEOUT):
                    server, url = await start_server(inner, spec, sim, sim_url)
                report["proxy_url"] = url
                try:
                    await run_all(spec, url, report)
                finally:
                    # Graceful stop, but bounded: the process must end either way.
                    server.stop.set()
                    inner.cancel_scope.deadline = trio.current_time() + 5
            outer.cancel_scope.cancel()
    finally:
        report["requests"] = simulator_record(sim)


def entry_point(argv: list[str]) -> int:
    """``cc_harness.py SPEC REPORT``; the exit code is 0 when the report could be written."""
    spec = orjson.loads(Path(argv[1]).read_bytes())
    report: dict[str, Any] = {"runs": [], "requests": []}
    try:
        trio.run(main, spec, report)
    except BaseException as exc:  # noqa: BLE001  (the report must say what went wrong)
        report["error"] = "".join(traceback.format_exception(exc))
    Path(argv[2]).write_bytes(orjson.dumps(report, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(entry_point(sys.argv))
