"""Fixtures for the operational tests (real server processes against an in-process simulator)."""

from __future__ import annotations

import sys
from pathlib import Path

# The in-process stack helpers of the integration suite are reused, not copied.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))
