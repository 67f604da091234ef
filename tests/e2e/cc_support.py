"""Claude Code end-to-end support: the pinned CLI, the namespace check and the harness runner.

The CLI is installed with npm into a cache folder outside the repository and reused across runs.
Each test runs ``cc_harness.py`` under ``unshare -n`` (a loopback-only network namespace) and
asserts on the JSON report it writes.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import orjson
import pytest

#: The Claude Code release these tests pin (clients-and-oracles.md §3 describes it).
CLAUDE_CODE_VERSION = "2.1.330"
PACKAGE = "@anthropic-ai/claude-code"

ROOT = Path(__file__).resolve().parents[2]
HARNESS = Path(__file__).with_name("cc_harness.py")

#: The key kiro2api accepts from the CLI. Not a secret: it opens only the test proxy.
CLIENT_KEY = "sk-e2e-client-key-0123456789abcdef"

NPM_TIMEOUT = 300.0
#: Extra seconds the harness gets on top of its runs (start-up, teardown).
HARNESS_SLACK = 30.0


def cache_dir() -> Path:
    """Where the pinned CLI lives: ``$KIRO2API_E2E_CACHE`` or ``~/.cache/kiro2api-e2e``."""
    base = os.environ.get("KIRO2API_E2E_CACHE") or Path.home() / ".cache" / "kiro2api-e2e"
    return Path(base) / f"claude-code-{CLAUDE_CODE_VERSION}"


def unavailable(reason: str) -> NoReturn:
    """Fail under CI (``CI`` set), skip elsewhere; never pass silently."""
    if os.environ.get("CI"):
        pytest.fail(f"Claude Code e2e cannot run: {reason}", pytrace=False)
    pytest.skip(f"Claude Code e2e cannot run: {reason}")


def _binary_candidates(folder: Path) -> Iterator[Path]:
    modules = folder / "node_modules" / "@anthropic-ai"
    # install.cjs links the native program here; with scripts disabled only the platform
    # package's own copy exists.
    yield modules / "claude-code" / "bin" / "claude.exe"
    yield modules / "claude-code-linux-x64" / "claude"


def _installed(folder: Path) -> Path | None:
    for candidate in _binary_candidates(folder):
        if not os.access(candidate, os.X_OK):
            continue
        try:
            version = subprocess.run(
                [str(candidate), "--version"],
                capture_output=True,
                timeout=30,
                check=False,
                env={"PATH": "/usr/bin:/bin", "HOME": str(folder)},
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if version.returncode == 0 and version.stdout.startswith(CLAUDE_CODE_VERSION.encode()):
            return candidate
    return None


def ensure_claude_code() -> Path:
    """The pinned CLI's executable, installing it with npm on first use.

    Concurrent test processes wait for one another on a lock file instead of installing twice.
    """
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "wb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = _installed(folder)
        if found is not None:
            return found
        npm = shutil.which("npm")
        if npm is None:
            unavailable(f"npm is not installed (needed once to install {PACKAGE})")
        manifest = {
            "name": "kiro2api-e2e-claude-code",
            "private": True,
            "dependencies": {PACKAGE: CLAUDE_CODE_VERSION},
        }
        (folder / "package.json").write_bytes(orjson.dumps(manifest))
        try:
            done = subprocess.run(
                [npm, "install", "--no-audit", "--no-fund"],
                cwd=folder,
                capture_output=True,
                timeout=NPM_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            unavailable(f"npm install of {PACKAGE}@{CLAUDE_CODE_VERSION} took over {NPM_TIMEOUT}s")
        found = _installed(folder)
        if done.returncode != 0 or found is None:
            tail = (done.stdout + done.stderr).decode("utf-8", "replace")[-2000:]
            unavailable(
                f"npm install of {PACKAGE}@{CLAUDE_CODE_VERSION} in {folder} failed "
                f"(rc {done.returncode}):\n{tail}"
            )
        return found


def check_namespace() -> None:
    """Make sure ``unshare -n`` can make a loopback-only network namespace here."""
    unshare = shutil.which("unshare")
    ip = shutil.which("ip") or next(
        (p for p in ("/usr/sbin/ip", "/sbin/ip") if Path(p).exists()), None
    )
    if unshare is None or ip is None:
        unavailable(
            "unshare (util-linux) and ip (iproute2) are needed for a loopback-only namespace"
        )
    try:
        probe = subprocess.run(
            [unshare, "-n", ip, "link", "set", "lo", "up"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except subprocess.TimeoutExpired:
        unavailable("unshare -n did not finish within 10 s")
    if probe.returncode != 0:
        detail = probe.stderr.decode("utf-8", "replace").strip()
        unavailable(f"unshare -n does not work here (needs root or user namespaces): {detail}")


@dataclass
class Report:
    """What one harness run produced."""

    data: dict[str, Any]
    log: str

    @property
    def runs(self) -> list[dict[str, Any]]:
        """One entry per CLI run: ``rc``, ``stdout`` (parsed lines), ``stderr``, ``seconds``."""
        runs: list[dict[str, Any]] = self.data["runs"]
        return runs

    @property
    def requests(self) -> list[dict[str, Any]]:
        """What the simulator received: ``status``, ``reason``, ``raw_size``, ``body``."""
        requests: list[dict[str, Any]] = self.data["requests"]
        return requests

    def lines(self, run: int = 0, kind: str | None = None) -> list[dict[str, Any]]:
        """A run's stream-json lines (``kind`` filters on ``type``)."""
        return [
            line
            for line in self.runs[run].get("stdout", [])
            if isinstance(line, dict) and (kind is None or line.get("type") == kind)
        ]

    def result(self, run: int = 0) -> dict[str, Any]:
        """A run's final ``{"type": "result"}`` line."""
        results = self.lines(run, "result")
        assert len(results) == 1, f"run {run} has {len(results)} result lines\n{self.describe()}"
        return results[0]

    def init(self, run: int = 0) -> dict[str, Any]:
        """A run's ``system/init`` line."""
        (init,) = [x for x in self.lines(run, "system") if x.get("subtype") == "init"]
        return init

    def assert_success(self, run: int = 0) -> str:
        """Assert the run ended well; return its final answer text."""
        entry = self.runs[run]
        assert not entry.get("timed_out"), f"run {run} timed out\n{self.describe()}"
        result = self.result(run)
        assert entry["rc"] == 0, self.describe()
        assert result["subtype"] == "success", self.describe()
        assert result["is_error"] is False, self.describe()
        text: str = result["result"]
        return text

    def describe(self) -> str:
        """A readable account of the run for assertion messages."""
        parts = [f"error: {self.data.get('error')}"] if self.data.get("error") else []
        for i, entry in enumerate(self.runs):
            parts.append(f"--- run {i}: rc={entry.get('rc')} timed_out={entry.get('timed_out')}")
            for line in entry.get("stdout", []):
                parts.append(orjson.dumps(line).decode()[:600])
            if entry.get("stderr"):
                parts.append(f"stderr: {entry['stderr'][-2000:]}")
            for screen in entry.get("screens", []):
                parts.append(f"screen:\n{screen}")
        for req in self.requests:
            parts.append(
                f"--- upstream #{req['seq']} ({req['account']}): {req['status']} {req['reason']} "
                f"{req['raw_size']} B"
            )
        parts.append(f"--- harness log (tail):\n{self.log[-4000:]}")
        return "\n".join(parts)


def run_harness(
    tmp: Path,
    claude: Path,
    runs: Sequence[Mapping[str, Any]],
    *,
    server_env: Mapping[str, str] | None = None,
    accounts: int = 1,
) -> Report:
    """Run ``runs`` against a fresh simulator + kiro2api inside ``unshare -n``.

    ``tmp/home`` is the CLI's fresh HOME and ``tmp/work`` its working directory; both exist
    before the harness starts, so a test can put files there.

    Args:
        tmp: A per-test folder.
        claude: The CLI executable.
        runs: The runs (see ``cc_harness.py`` for their keys).
        server_env: Extra kiro2api settings.
        accounts: How many upstream accounts kiro2api gets.
    """
    home, work = tmp / "home", tmp / "work"
    home.mkdir(exist_ok=True)
    work.mkdir(exist_ok=True)
    spec = {
        "claude": str(claude),
        "home": str(home),
        "workdir": str(work),
        "client_key": CLIENT_KEY,
        "server_env": dict(server_env or {}),
        "accounts": accounts,
        "runs": list(runs),
    }
    spec_path, report_path, log_path = tmp / "spec.json", tmp / "report.json", tmp / "harness.log"
    spec_path.write_bytes(orjson.dumps(spec))
    timeout = sum(float(r.get("timeout", 60)) for r in runs) + HARNESS_SLACK
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT),
        "LANG": "C.UTF-8",
    }
    command = ["unshare", "-n", sys.executable, str(HARNESS), str(spec_path), str(report_path)]
    with open(log_path, "wb") as log:
        # Its own session, so a stuck run can be killed with everything it started.
        proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.write(f"\n[harness killed after {timeout:.0f} s]\n".encode())
        finally:
            # Sweep the whole session: whatever the CLI started (shells, tools) goes too.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            # tmux daemonises out of the session; its socket is reachable from here.
            socket = home / "tmux.sock"
            if socket.exists():
                subprocess.run(
                    ["tmux", "-S", str(socket), "kill-server"],
                    capture_output=True,
                    timeout=10,
                    check=False,
                )
    text = log_path.read_text("utf-8", "replace")
    if not report_path.exists():
        pytest.fail(f"the harness wrote no report (rc {proc.returncode}):\n{text[-4000:]}")
    return Report(orjson.loads(report_path.read_bytes()), text)


def print_run(
    prompt: str | None, *extra: str, auth: str = "api_key", **options: Any
) -> dict[str, Any]:
    """A ``claude -p PROMPT --output-format stream-json --verbose`` run.

    With ``prompt=None`` the CLI reads the prompt from the run's ``stdin`` file.
    """
    head = ["-p"] if prompt is None else ["-p", prompt]
    args = [*head, "--output-format", "stream-json", "--verbose", *extra]
    return {"args": args, "auth": auth, "timeout": 60, **options}


def user_texts(body: Mapping[str, Any]) -> str:
    """All text the upstream body carries as user or assistant content (current and history)."""
    state = body["conversationState"]
    parts = [orjson.dumps(state.get("history") or []).decode()]
    parts.append(orjson.dumps(state["currentMessage"]).decode())
    return "\n".join(parts)


def tool_results(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The tool results in the upstream body's current message."""
    message = body["conversationState"]["currentMessage"]["userInputMessage"]
    results: list[dict[str, Any]] = (
        message.get("userInputMessageContext", {}).get("toolResults") or []
    )
    return results
