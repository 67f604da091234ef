"""Fixtures for the operational tests (real server processes against an in-process simulator)."""

from __future__ import annotations

import inspect
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

# The in-process stack helpers of the integration suite are reused, not copied.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))


@pytest.fixture
async def _no_leftover_servers() -> AsyncIterator[None]:
    """A failed test must not leave a server process behind."""
    from ops_support import RUNNING

    yield
    while RUNNING:
        process = RUNNING.pop()
        if process.returncode is None:
            process.kill()
        with trio.CancelScope(shield=True), trio.move_on_after(10):
            await process.wait()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Trio tests of this folder get the clean-up (a trio fixture cannot wrap sync tests)."""
    here = Path(__file__).parent
    for item in items:
        function = getattr(item, "function", None)
        if item.path.parent == here and inspect.iscoroutinefunction(function):
            item.fixturenames.append("_no_leftover_servers")  # type: ignore[attr-defined]
