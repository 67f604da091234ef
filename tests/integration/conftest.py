"""A real stack per test: the upstream simulator and the kiro2api server, both on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
from kiro_stack import Stack, start_stack


@pytest.fixture
async def stack(nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[Stack]:
    running = await start_stack(nursery, tmp_path)
    yield running
    running.server.stop.set()
