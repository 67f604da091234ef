"""Shared test configuration. Suite-specific fixtures live beside their tests."""

from __future__ import annotations

from pathlib import Path

#: The repository root and the shared reference data beside the checkout.
ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
