"""The real Claude Code CLI (pinned) through kiro2api to the upstream simulator.

Everything runs in a loopback-only network namespace (``unshare -n``): the CLI, kiro2api and the
simulator, so nothing can leave the machine whatever the CLI tries. Each test asserts on what
the user sees (the CLI's stream-json result, files on disk, the TUI screen) and on what reached
the upstream (the simulator's record).

The simulator is scripted by ``[[sim:...]]`` directives in the prompt: Claude Code sends the
prompt as the current user message (next to its ``<system-reminder>`` blocks), and the
simulator reads directives from exactly that text.
"""

from __future__ import annotations

import base64
import random
import shutil
import struct
import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest
from cc_support import (
    CLIENT_KEY,
    Report,
    check_namespace,
    ensure_claude_code,
    print_run,
    run_harness,
    tool_results,
    unavailable,
    user_texts,
)


@pytest.fixture(scope="module")
def claude() -> Path:
    """The pinned CLI, once the namespace is known to work."""
    check_namespace()
    return ensure_claude_code()


def sim(kind: str, **options: Any) -> str:
    """A simulator directive; values are written as JSON unless they are bare words."""
    parts = [kind]
    for key, value in options.items():
        bare = isinstance(value, int) or (isinstance(value, str) and value.isidentifier())
        parts.append(f"{key}={value}" if bare else f"{key}={orjson.dumps(value).decode()}")
    return f"[[sim:{' '.join(parts)}]]"


def answered(report: Report) -> list[dict[str, Any]]:
    """The upstream requests that got a 200, in order."""
    return [r for r in report.requests if r["status"] == 200]


def test_plain_answer(claude: Path, tmp_path: Path) -> None:
    report = run_harness(tmp_path, claude, [print_run("Please repeat e2e-plain-7431")])
    answer = report.assert_success()
    # The simulator echoes the current user message: the prompt made it through unchanged.
    assert "You said:" in answer
    assert "e2e-plain-7431" in answer
    assert report.init()["apiKeySource"] == "ANTHROPIC_API_KEY"
    (request,) = report.requests
    assert request["status"] == 200
    current = request["body"]["conversationState"]["currentMessage"]["userInputMessage"]
    assert "e2e-plain-7431" in current["content"]
    # Claude Code's tools arrive as upstream tool specifications; its deferred-tool placeholder
    # is not a tool upstream could call, so it stays behind.
    names = {t["toolSpecification"]["name"] for t in current["userInputMessageContext"]["tools"]}
    assert {"Bash", "Read", "Write"} <= names
    assert "DeferredToolPlaceholder" not in names
    # The environment block Claude Code sends as a role "system" message (cwd, platform) is
    # kept, not dropped.
    assert str(tmp_path / "work") in user_texts(request["body"])


def test_bash_tool_round_trip(claude: Path, tmp_path: Path) -> None:
    # The shell drops the quotes, so "e2e-tool-ok" can only come from really running it.
    command = "echo e2e-tool-'ok'"
    prompt = f"Run this for me. {sim('tool', name='Bash', input={'command': command})}"
    report = run_harness(tmp_path, claude, [print_run(prompt, "--allowedTools", "Bash(echo *)")])
    answer = report.assert_success()
    assert answer == "Tool said: e2e-tool-ok"
    first, second = report.requests
    assert first["status"] == second["status"] == 200
    (result,) = tool_results(second["body"])
    assert result["status"] == "success"
    assert result["content"] == [{"text": "e2e-tool-ok"}]
    # The assistant's tool call is echoed back in the history with its input intact.
    assert command in user_texts(second["body"])


def test_read_file_in_workdir(claude: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    secret_line = "kiro2api reads: e2e-read-5521 ✓"
    (work / "notes.txt").write_text(f"first line\n{secret_line}\n", "utf-8")
    prompt = f"Show notes. {sim('tool', name='Read', input={'file_path': str(work / 'notes.txt')})}"
    report = run_harness(tmp_path, claude, [print_run(prompt)])
    answer = report.assert_success()
    assert answer.startswith("Tool said:")
    assert secret_line in answer
    (result,) = tool_results(report.requests[-1]["body"])
    assert result["status"] == "success"
    assert secret_line in orjson.dumps(result["content"]).decode()


def test_continue_resumes_the_session(claude: Path, tmp_path: Path) -> None:
    report = run_harness(
        tmp_path,
        claude,
        [
            print_run("Remember the word e2e-first-turn-kiwi"),
            print_run("What did I ask before? e2e-second-turn", "--continue"),
        ],
    )
    report.assert_success(0)
    answer = report.assert_success(1)
    assert "e2e-second-turn" in answer
    assert report.result(0)["session_id"] == report.result(1)["session_id"]
    first, second = report.requests
    history = orjson.dumps(second["body"]["conversationState"]["history"]).decode()
    # The second turn carries the first prompt and the first answer as history.
    assert "e2e-first-turn-kiwi" in history
    assert "You said:" in history
    assert (
        "e2e-first-turn-kiwi"
        not in orjson.dumps(first["body"]["conversationState"].get("history") or []).decode()
    )


@pytest.mark.parametrize(
    ("auth", "source"),
    # Claude Code reports a bearer token (ANTHROPIC_AUTH_TOKEN) as no API key at all.
    [("api_key", "ANTHROPIC_API_KEY"), ("auth_token", "none")],
)
def test_auth_styles(claude: Path, tmp_path: Path, auth: str, source: str) -> None:
    report = run_harness(
        tmp_path,
        claude,
        [
            print_run(f"Hello via {auth} e2e-auth-ok", auth=auth),
            # Claude Code retries a 401 up to 10 times with backoff; once is enough here.
            print_run(
                "Hello with a wrong key",
                auth=auth,
                key="sk-wrong-key-000000000000",
                env={"CLAUDE_CODE_MAX_RETRIES": "1"},
            ),
        ],
    )
    assert "e2e-auth-ok" in report.assert_success(0)
    assert report.init(0)["apiKeySource"] == source
    # A wrong key is refused by the proxy: the CLI reports an error, the upstream sees nothing.
    wrong = report.result(1)
    assert wrong["is_error"] is True, report.describe()
    assert report.runs[1]["rc"] != 0
    assert retried_statuses(report, 1) == [401]
    assert len(report.requests) == 1, report.describe()
    # Neither key shows up in what the CLI printed or in kiro2api's log.
    for key in (CLIENT_KEY, "sk-wrong-key-000000000000"):
        assert key not in orjson.dumps(report.runs).decode()
        assert key not in report.log


def retried_statuses(report: Report, run: int = 0) -> list[int]:
    """The HTTP statuses Claude Code reported retrying (its ``system/api_retry`` lines)."""
    return [
        x["error_status"] for x in report.lines(run, "system") if x.get("subtype") == "api_retry"
    ]


def test_upstream_429_is_retried_by_the_cli(claude: Path, tmp_path: Path) -> None:
    prompt = f"{sim('http', status=429, retry_after=1, times=1)} Throttled once e2e-429"
    report = run_harness(tmp_path, claude, [print_run(prompt)])
    answer = report.assert_success()
    assert "e2e-429" in answer
    # kiro2api has no other account to fail over to, so the 429 reaches the CLI, which waits and
    # sends the same request again.
    assert retried_statuses(report) == [429], report.describe()
    assert [r["status"] for r in report.requests] == [429, 200], report.describe()


def test_throttling_before_output_fails_over(claude: Path, tmp_path: Path) -> None:
    # A ThrottlingException as the very first frame: nothing has reached the client yet, so
    # kiro2api cools that account down and serves the request from the next one.
    fault = sim("exception", type="ThrottlingException", after=0, times=1)
    report = run_harness(
        tmp_path, claude, [print_run(f"{fault} Busy upstream e2e-busy")], accounts=2
    )
    answer = report.assert_success()
    assert "e2e-busy" in answer
    assert retried_statuses(report) == [], report.describe()
    first, second = report.requests
    assert first["account"] != second["account"]
    # The same conversation went to the second account.
    assert first["body"] == second["body"]


def test_midstream_throttling_is_resumed_by_the_cli(claude: Path, tmp_path: Path) -> None:
    fault = sim("exception", type="ThrottlingException", after=1, times=1)
    prompt = f"{fault} A long enough sentence to span several frames e2e-throttle"
    report = run_harness(tmp_path, claude, [print_run(prompt)])
    report.assert_success()
    assert len(report.requests) == 2, report.describe()
    first, second = report.requests
    # The first stream broke after its first text frame. Claude Code keeps what arrived and asks
    # the model to resume in a new turn: the partial text is now the last assistant message.
    partial = second["body"]["conversationState"]["history"][-1]["assistantResponseMessage"]
    assert partial["content"].startswith("You said:")
    assert "e2e-throttle" not in partial["content"]
    current = second["body"]["conversationState"]["currentMessage"]["userInputMessage"]
    assert "cut off" in current["content"], report.describe()
    assert first["status"] == second["status"] == 200


def test_large_write_arrives_intact(claude: Path, tmp_path: Path) -> None:
    rng = random.Random(1234)
    words = ["kiro", "stream", "frame", "upstream", 'quote"d', "back\\slash", "tab\tbed", "ünï"]
    lines = [" ".join(rng.choice(words) for _ in range(12)) for _ in range(1800)]
    content = "\n".join(f"{i:05d} {line}" for i, line in enumerate(lines)) + "\n"
    assert len(content.encode()) > 100_000
    target = tmp_path / "work" / "big.txt"
    directive = sim("tool", name="Write", input={"file_path": str(target), "content": content})
    # Over 128 KiB a single argv string is refused by the kernel; the prompt goes on stdin.
    prompt_file = tmp_path / "prompt.txt"
    prompt_file.write_text(f"Write the file. {directive}", "utf-8")
    run = print_run(None, "--allowedTools", "Write", stdin=str(prompt_file))
    report = run_harness(tmp_path, claude, [run])
    answer = report.assert_success()
    assert answer.startswith("Tool said:"), report.describe()
    assert target.read_text("utf-8") == content
    second = report.requests[-1]["body"]
    (result,) = tool_results(second)
    assert result["status"] == "success"
    # The call Claude Code echoes back in the history carries the whole input too.
    call = second["conversationState"]["history"][-1]["assistantResponseMessage"]["toolUses"][0]
    assert call["name"] == "Write"
    assert call["input"] == {"file_path": str(target), "content": content}


def test_tui_tool_round_trip(claude: Path, tmp_path: Path) -> None:
    if shutil.which("tmux") is None:
        unavailable("tmux is not installed (needed for the interactive TUI case)")
    command = "echo e2e-tui-'done'"
    run = {
        "mode": "tmux",
        "args": ["--allowedTools", "Bash(echo *)"],
        "auth": "api_key",
        "prompt": f"Go. {sim('tool', name='Bash', input={'command': command})}",
        "expect": "Tool said: e2e-tui-done",
        "timeout": 45,
    }
    report = run_harness(tmp_path, claude, [run])
    entry = report.runs[0]
    assert entry.get("found") is True, report.describe()
    assert [r["status"] for r in report.requests] == [200, 200], report.describe()
    (result,) = tool_results(report.requests[-1]["body"])
    assert result["content"] == [{"text": "e2e-tui-done"}]


def png(width: int, height: int) -> bytes:
    """A valid RGB PNG of one colour."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x20\x80\xc0" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_read_image_reaches_upstream_as_image(claude: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "pixel.png").write_bytes(png(8, 8))
    prompt = f"Look. {sim('tool', name='Read', input={'file_path': str(work / 'pixel.png')})}"
    report = run_harness(tmp_path, claude, [print_run(prompt)])
    answer = report.assert_success()
    assert answer.startswith("Tool said:")
    # Claude Code sends the image inside the tool result; upstream takes images only on the
    # user message, so kiro2api moves it there, byte for byte.
    message = report.requests[-1]["body"]["conversationState"]["currentMessage"]
    (image,) = message["userInputMessage"]["images"]
    assert image["format"] == "png"
    assert base64.b64decode(image["source"]["bytes"]) == (work / "pixel.png").read_bytes()
    (result,) = tool_results(report.requests[-1]["body"])
    assert result["status"] == "success"
