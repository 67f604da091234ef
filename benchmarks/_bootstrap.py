"""Make ``kiro2api`` importable from a plain checkout (``make install`` is not required).

Imported first by ``run_all.py``; the child processes get the same root through ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["ROOT"]

#: The repository root (the directory holding the ``kiro2api`` package).
ROOT = Path(__file__).resolve().parents[1]

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
_paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
if str(ROOT) not in _paths:
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *_paths])
