"""``python -m kiro2api``: the same command line as ``kiro2api``."""

from __future__ import annotations

from kiro2api.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
