"""Fixtures for the operational tests (real server processes against an in-process simulator)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

# The in-process stack helpers of the integration suite are reused, not copied.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))


@pytest.fixture(autouse=True)
async def _no_leftover_servers() -> AsyncIterator[None]:
    """A failed test must not leave a server process behind."""
    from ops_support import RUNNING

    yield
    while RUNNING:
        process = RUNNING.pop()
        if process.returncode is None:
            process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()
