"""A tiny Chrome DevTools Protocol client for headless Chromium, over ``--remote-debugging-pipe``.

The pipe transport needs no websocket library: Chromium reads NUL-terminated JSON commands from
file descriptor 3 and writes answers and events to file descriptor 4. A ``/bin/sh`` trampoline
maps our stdin/stdout pipes onto those descriptors, so trio's ordinary process pipes carry the
protocol.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio

__all__ = ["Browser", "CDPError", "Page", "find_chromium", "launch"]

#: Flags for a quiet, hermetic headless browser (no network besides the page, no profile).
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-crash-reporter",
    "--disable-dev-shm-usage",
    "--no-default-browser-check",
    "--remote-debugging-pipe",
)
# fd 3 = our stdin pipe (commands), fd 4 = our stdout pipe (answers); the browser's own
# stdin/stdout go nowhere so its chatter cannot corrupt the protocol stream.
_TRAMPOLINE = 'exec "$@" 3<&0 4>&1 0</dev/null 1>/dev/null'


class CDPError(Exception):
    """A DevTools command failed or a page script threw."""


def find_chromium() -> str:
    """The Chromium executable, or skip (fail under ``CI``) when it is not installed."""
    for name in (os.environ.get("CHROMIUM", ""), "chromium", "chromium-browser"):
        path = shutil.which(name) if name else None
        if path:
            return path
    reason = "chromium is not installed (apt-get install -y chromium); browser tests need it"
    if os.environ.get("CI"):
        pytest.fail(reason)
    print(f"SKIP: {reason}")
    pytest.skip(reason)


@dataclass
class Browser:
    """One running Chromium and the DevTools conversation with it."""

    process: trio.Process
    _send: trio.abc.SendStream
    _pending: dict[int, trio.MemorySendChannel[dict[str, Any]]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: trio.Lock = field(default_factory=trio.Lock)
    #: Every event received, in order: ``(session id, method, params)``.
    events: list[tuple[str | None, str, dict[str, Any]]] = field(default_factory=list)

    async def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        """Send one command and wait for its result.

        Raises:
            CDPError: when the browser answers with an error or goes away.
        """
        call_id = next(self._ids)
        message: dict[str, Any] = {"id": call_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        sender, receiver = trio.open_memory_channel[dict[str, Any]](1)
        self._pending[call_id] = sender
        async with self._lock:
            await self._send.send_all(orjson.dumps(message) + b"\0")
        with trio.fail_after(15):
            try:
                answer = await receiver.receive()
            except trio.EndOfChannel:
                raise CDPError(f"{method}: the browser closed the connection") from None
        if "error" in answer:
            raise CDPError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    async def read_loop(self, stream: trio.abc.ReceiveStream) -> None:
        """Dispatch answers to their callers and record events until the pipe closes."""
        buffer = b""
        try:
            async for chunk in stream:
                buffer += chunk
                *messages, buffer = buffer.split(b"\0")
                for raw in messages:
                    self._dispatch(orjson.loads(raw))
        finally:
            for sender in self._pending.values():
                sender.close()
            self._pending.clear()

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "id" in message:
            sender = self._pending.pop(message["id"], None)
            if sender is not None:
                sender.send_nowait(message)
                sender.close()
        else:
            self.events.append((message.get("sessionId"), message["method"], message["params"]))

    async def new_page(self) -> Page:
        """Open a blank tab and attach to it (flat session mode)."""
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        page = Page(self, attached["sessionId"])
        for domain in ("Page", "Runtime", "Log"):
            await page.send(f"{domain}.enable")
        return page


@dataclass
class Page:
    """One tab: navigation, script evaluation and real keyboard/mouse input."""

    browser: Browser
    session: str

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """A command addressed to this tab."""
        return await self.browser.send(method, params, self.session)

    async def goto(self, url: str) -> None:
        """Navigate and wait until the document (and its inline script) has loaded."""
        answer = await self.send("Page.navigate", {"url": url})
        if answer.get("errorText"):
            raise CDPError(f"navigation to {url} failed: {answer['errorText']}")
        await self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'")

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of ``expression`` in the page (promises are awaited)."""
        answer = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in answer:
            details = answer["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CDPError(f"page script failed: {text}")
        return answer["result"].get("value")

    async def wait_for(self, expression: str, within: float = 10.0) -> Any:
        """Poll ``expression`` until it is truthy; its value, or ``trio.TooSlowError``."""
        with trio.fail_after(within):
            while True:
                value = await self.evaluate(expression)
                if value:
                    return value
                await trio.sleep(0.05)

    async def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element ``selector``."""
        box = await self.evaluate(
            f"(() => {{ const r = document.querySelector({orjson.dumps(selector).decode()})"
            ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        x, y = box
        for kind in ("mousePressed", "mouseReleased"):
            await self.send(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1},
            )

    async def type_text(self, text: str) -> None:
        """Type ``text`` into the focused element, as a keyboard would."""
        await self.send("Input.insertText", {"text": text})

    async def press_enter(self) -> None:
        """Press and release Enter (submits the focused form field)."""
        key = {"key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13}
        await self.send("Input.dispatchKeyEvent", {"type": "keyDown", "text": "\r", **key})
        await self.send("Input.dispatchKeyEvent", {"type": "keyUp", **key})

    def errors(self) -> list[str]:
        """Script exceptions, console errors and browser log errors seen in this tab."""
        found: list[str] = []
        for session, method, params in self.browser.events:
            if session != self.session:
                continue
            if method == "Runtime.exceptionThrown":
                found.append(f"exception: {params['exceptionDetails'].get('text')}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                found.append(f"console: {params.get('args')}")
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                entry = params["entry"]
                found.append(f"{entry.get('source')}: {entry.get('text')}")
        return found


def _kill_group(process: trio.Process) -> None:
    # The browser forks renderers and helpers into its own session; end them all with it.
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


@asynccontextmanager
async def launch(nursery: trio.Nursery, executable: str, tmp: Path) -> AsyncIterator[Browser]:
    """Run a fresh headless Chromium for the duration of the block, then kill it for sure.

    The pipe reader runs in ``nursery`` (the test's own), so a failing assertion in the block
    surfaces as itself rather than wrapped in an exception group.
    """
    profile = tmp / "chromium-profile"
    profile.mkdir(parents=True, exist_ok=True)
    command = ["/bin/sh", "-c", _TRAMPOLINE, "sh", executable, *FLAGS]
    command.append(f"--user-data-dir={profile}")
    with (tmp / "chromium.log").open("wb") as log:
        process = await trio.lowlevel.open_process(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
            env={**os.environ, "HOME": str(profile)},
        )
    reader = trio.CancelScope()
    try:
        assert process.stdin is not None
        assert process.stdout is not None
        browser = Browser(process, process.stdin)
        stdout = process.stdout

        async def read() -> None:
            with reader:
                await browser.read_loop(stdout)

        nursery.start_soon(read)
        yield browser
    finally:
        reader.cancel()
        with trio.CancelScope(shield=True):
            # Ask politely first so the browser reaps its own helpers, then kill whatever is
            # left of its process group, whether or not it listened.
            gone = (trio.BrokenResourceError, trio.ClosedResourceError)
            with trio.move_on_after(3), suppress(*gone):
                assert process.stdin is not None
                await process.stdin.send_all(b'{"id": 0, "method": "Browser.close"}\0')
                await process.wait()
            _kill_group(process)
            with trio.move_on_after(5):
                await process.wait()
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    await stream.aclose()
