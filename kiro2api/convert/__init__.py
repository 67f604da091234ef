"""Sans-IO protocol conversion: client requests to the upstream body, upstream events to SSE/JSON.

Nothing in this package performs I/O or imports trio, quart, hypercorn, h2, httpx or socket.
"""

from __future__ import annotations
