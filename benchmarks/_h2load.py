"""nghttp2's ``h2load``: a C load tool, for requests/s and time to first byte over HTTP/1.1 and 2.

h2load cannot check an answer's content, so it only complements the trio load generator: a
second opinion on throughput and latency from a client that costs next to no CPU. It reports
time to first byte as a per-connection mean (no percentiles); ``--log-file`` gives the total time
of every request, from which the percentiles here are computed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from _load import RequestSpec, percentile

__all__ = ["h2load_available", "h2load_version", "run_h2load"]

_FINISHED = re.compile(r"finished in [\d.]+\w*, ([\d.]+) req/s")
_REQUESTS = re.compile(
    r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored"
)
_STATUS = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")
_TTFB = re.compile(r"time to 1st byte:\s+([\d.]+)(\w+)\s+([\d.]+)(\w+)\s+([\d.]+)(\w+)")
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def h2load_available() -> bool:
    """Whether ``h2load`` is on ``PATH`` (Debian: ``apt-get install nghttp2-client``)."""
    return shutil.which("h2load") is not None


def h2load_version() -> str:
    """``h2load --version`` (empty when absent)."""
    if not h2load_available():
        return ""
    out = subprocess.run(["h2load", "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip()


def run_h2load(spec: RequestSpec, *, clients: int, requests: int, http1: bool) -> dict[str, Any]:
    """Send ``requests`` requests over ``clients`` connections, one request in flight each.

    h2load's timing mode (``-D``) reports no time to first byte and, like its HTTP/1.1 client
    in every mode, no status codes for these servers' chunked answers, so the request-count
    mode is used and the caller sizes ``requests`` from the rate it measured itself.

    Args:
        spec: The request (its ``expect`` marker is not checked).
        clients: Concurrent connections.
        requests: Requests in all.
        http1: Force HTTP/1.1; otherwise HTTP/2 (ALPN over TLS, prior knowledge over cleartext).

    Returns:
        Requests/s, errors, mean time to first byte, total-time percentiles.
    """
    with tempfile.TemporaryDirectory(prefix="h2load-") as tmp:
        log = Path(tmp, "requests.log")
        # hypercorn ends an HTTP/2 connection with GOAWAY after 1,000 requests and h2load does
        # not reconnect (it stalls), so each connection is kept under that.
        requests = max(clients, min(requests, clients * 900))
        args = ["h2load", "-c", str(clients), "-m", "1", "-n", str(requests)]
        args.append(f"--log-file={log}")
        if http1:
            args.append("--h1")
        for name, value in spec.headers.items():
            args += ["-H", f"{name}: {value}"]
        if spec.body is not None:
            body = Path(tmp, "body")
            body.write_bytes(spec.body)
            args += ["-d", str(body)]
        args.append(spec.url)
        proc = subprocess.run(args, capture_output=True, text=True, check=False, timeout=120)
        totals = (
            sorted(
                int(line.split("\t")[2]) / 1000.0
                for line in log.read_text().splitlines()
                if line.count("\t") >= 2
            )
            if log.exists()
            else []
        )
    out = proc.stdout
    result: dict[str, Any] = {"protocol": "http/1.1" if http1 else "h2", "clients": clients}
    if (m := _FINISHED.search(out)) is not None:
        result["rps"] = float(m.group(1))
    if (m := _REQUESTS.search(out)) is not None:
        result["requests"] = int(m.group(3))
        # Over HTTP/1.1 h2load parses no status here (every answer counts as "failed"), so
        # only transport errors count; the trio generator checks status and content.
        failed = int(m.group(5)) + (0 if http1 else int(m.group(4)))
    else:
        failed = 1
    non2xx = 0
    if not http1 and (m := _STATUS.search(out)) is not None:
        non2xx = sum(int(m.group(i)) for i in (2, 3, 4))
    result["errors"] = failed + non2xx
    if (m := _TTFB.search(out)) is not None:
        result["ttfb_mean_ms"] = round(float(m.group(5)) * _UNITS.get(m.group(6), 1.0), 3)
    result["total_ms"] = {"p50": percentile(totals, 50), "p99": percentile(totals, 99)}
    if proc.returncode != 0 or "rps" not in result:
        result["errors"] = max(1, result["errors"])
        result["first_error"] = (proc.stderr or out)[-300:]
    return result
