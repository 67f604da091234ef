"""Dashboard tests reuse the integration suite's stack helpers (simulator + server)."""

from __future__ import annotations

import sys
from pathlib import Path

# ``kiro_stack`` lives beside the integration tests; make it importable from here too.
_INTEGRATION = str(Path(__file__).resolve().parent.parent / "integration")
if _INTEGRATION not in sys.path:
    sys.path.append(_INTEGRATION)
