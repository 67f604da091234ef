"""The trio + httpx load generator: closed loops, bursts and many slow open streams.

Every request is read to the end as raw bytes (no SSE or EventStream parsing on this side), and
counts as an error unless the status is 200 and the last bytes hold the marker a complete answer
ends with. Time to first byte is measured to the first *body* chunk, on both sides.

The generator runs in the harness process; :class:`LoadResult` reports how much CPU it used
over the measured window, so a run in which the generator itself saturated a core is visible.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import trio
from _h1 import H1Connection, encode_request

__all__ = [
    "HttpxClient",
    "LoadClient",
    "LoadResult",
    "RawH1Client",
    "RequestSpec",
    "Sample",
    "bursts",
    "closed_loop",
    "make_client",
    "open_streams",
    "percentile",
]

_REQUEST_TIMEOUT = 120.0
# Only the end of an answer is kept to look for the completion marker.
_TAIL = 4096


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One request, sent identically many times.

    Attributes:
        method: ``GET`` or ``POST``.
        url: Absolute URL.
        headers: Request headers.
        body: Request body, if any.
        expect: Bytes that must occur in the last 4 KiB of a successful answer.
    """

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    expect: bytes


@dataclass(frozen=True, slots=True)
class Sample:
    """One finished request: seconds to the first body byte and to the last, and success."""

    ttfb: float
    total: float
    ok: bool
    size: int


@dataclass(slots=True)
class LoadResult:
    """Everything one measured run produced."""

    samples: list[Sample] = field(default_factory=list)
    wall: float = 0.0
    loadgen_cpu: float = 0.0
    first_error: str = ""
    errors: int = 0
    probes: list[dict[str, Any]] = field(default_factory=list)
    #: Burst runs: wall time of each burst.
    burst_times: list[float] = field(default_factory=list)

    def record(self, sample: Sample, error: str = "") -> None:
        """Add a sample; keep the first error message for the report."""
        self.samples.append(sample)
        if not sample.ok:
            self.errors += 1
            if not self.first_error:
                self.first_error = error or "unexpected answer"

    def summary(self) -> dict[str, Any]:
        """Requests/s, percentiles in milliseconds, error count and generator CPU use."""
        good = [s for s in self.samples if s.ok]
        ttfb = sorted(s.ttfb for s in good)
        total = sorted(s.total for s in good)
        out: dict[str, Any] = {
            "requests": len(self.samples),
            "errors": self.errors,
            "wall_s": round(self.wall, 3),
            "rps": round(len(good) / self.wall, 2) if self.wall > 0 else 0.0,
            "ttfb_ms": {"p50": _ms(percentile(ttfb, 50)), "p99": _ms(percentile(ttfb, 99))},
            "total_ms": {"p50": _ms(percentile(total, 50)), "p99": _ms(percentile(total, 99))},
            "bytes_per_request": round(sum(s.size for s in good) / len(good)) if good else 0,
            "loadgen_cpu_util": round(self.loadgen_cpu / self.wall, 3) if self.wall > 0 else 0.0,
        }
        if self.burst_times:
            bt = sorted(self.burst_times)
            out["burst_ms"] = {"p50": _ms(percentile(bt, 50)), "p99": _ms(percentile(bt, 99))}
            out["bursts"] = len(bt)
        if self.first_error:
            out["first_error"] = self.first_error
        return out


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of already sorted ``values`` (``None`` when empty)."""
    if not values:
        return None
    rank = max(1, min(len(values), round(pct / 100 * len(values) + 0.5)))
    return values[rank - 1]


class LoadClient:
    """What the loops need: ``fetch`` one request to the end, and ``aclose``."""

    async def fetch(
        self, spec: RequestSpec, on_first: Callable[[], None] | None = None
    ) -> tuple[Sample, str]:
        """Send ``spec`` and read the whole answer; never raises for a failed request."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Close every connection."""

    async def __aenter__(self) -> LoadClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _verdict(spec: RequestSpec, status: int, tail: bytes) -> tuple[bool, str]:
    ok = status == 200 and spec.expect in tail
    return ok, "" if ok else f"HTTP {status}: {tail[-300:].decode('utf-8', 'replace')}"


class _StaleConnection(Exception):
    def __init__(self, started: float) -> None:
        super().__init__("connection closed before the answer")
        self.started = started


class HttpxClient(LoadClient):
    """httpx: for TLS and HTTP/2 (the simulator's ``--tls`` mode)."""

    def __init__(self, *, connections: int, http2: bool, verify: str | bool) -> None:
        self.http = httpx.AsyncClient(
            http2=http2,
            verify=verify,
            timeout=httpx.Timeout(_REQUEST_TIMEOUT, pool=_REQUEST_TIMEOUT),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            trust_env=False,
        )
        #: Requests retried because the server closed their connection before answering.
        self.stale_retries = 0

    async def aclose(self) -> None:
        await self.http.aclose()

    async def fetch(
        self, spec: RequestSpec, on_first: Callable[[], None] | None = None
    ) -> tuple[Sample, str]:
        try:
            return await self._fetch(spec, on_first)
        except _StaleConnection:
            # The server ended the HTTP/2 connection (GOAWAY) under this request before any
            # answer byte: it was not processed, so a client retries it on a new connection.
            self.stale_retries += 1
        try:
            return await self._fetch(spec, on_first)
        except _StaleConnection as exc:
            elapsed = time.perf_counter() - exc.started
            return Sample(elapsed, elapsed, False, 0), f"{type(exc.__cause__).__name__}: {exc}"

    async def _fetch(
        self, spec: RequestSpec, on_first: Callable[[], None] | None
    ) -> tuple[Sample, str]:
        started = time.perf_counter()
        ttfb = 0.0
        size = 0
        tail = b""
        try:
            async with self.http.stream(
                spec.method, spec.url, content=spec.body, headers=spec.headers
            ) as response:
                async for chunk in response.aiter_raw():
                    if not size:
                        ttfb = time.perf_counter() - started
                        if on_first is not None:
                            on_first()
                    size += len(chunk)
                    tail = (tail + chunk)[-_TAIL:]
                status = response.status_code
        except (httpx.RemoteProtocolError, httpx.WriteError) as exc:
            if size:
                elapsed = time.perf_counter() - started
                return Sample(ttfb, elapsed, False, size), f"{type(exc).__name__}: {exc}"
            raise _StaleConnection(started) from exc
        except (httpx.HTTPError, OSError) as exc:
            elapsed = time.perf_counter() - started
            return Sample(ttfb or elapsed, elapsed, False, size), f"{type(exc).__name__}: {exc}"
        ok, error = _verdict(spec, status, tail)
        return Sample(ttfb, time.perf_counter() - started, ok, size), error


class RawH1Client(LoadClient):
    """Plain HTTP/1.1 over trio sockets (see ``_h1.py``): a few times cheaper than httpx."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[H1Connection]] = {}
        self._all: list[H1Connection] = []
        self._encoded: dict[int, tuple[RequestSpec, bytes, tuple[str, int]]] = {}

    async def aclose(self) -> None:
        for conn in self._all:
            with contextlib.suppress(OSError, trio.BrokenResourceError):
                await conn.aclose()

    def _encode(self, spec: RequestSpec) -> tuple[bytes, tuple[str, int]]:
        cached = self._encoded.get(id(spec))
        if cached is None or cached[0] is not spec:
            parts = urlsplit(spec.url)
            address = (parts.hostname or "127.0.0.1", parts.port or 80)
            raw = encode_request(spec.method, spec.url, spec.headers, spec.body)
            cached = self._encoded[id(spec)] = (spec, raw, address)
        return cached[1], cached[2]

    async def fetch(
        self, spec: RequestSpec, on_first: Callable[[], None] | None = None
    ) -> tuple[Sample, str]:
        raw, address = self._encode(spec)
        idle = self._idle.setdefault(address, [])
        if idle:
            conn = idle.pop()
        else:
            conn = H1Connection(*address)
            self._all.append(conn)
        started = time.perf_counter()
        try:
            status, ttfb, size, tail, total = await conn.request(raw, on_first)
        except (OSError, ConnectionError, ValueError, trio.BrokenResourceError) as exc:
            elapsed = time.perf_counter() - started
            return Sample(elapsed, elapsed, False, 0), f"{type(exc).__name__}: {exc}"
        idle.append(conn)
        ok, error = _verdict(spec, status, tail)
        return Sample(ttfb, total, ok, size), error


def make_client(
    *, connections: int, http2: bool = False, verify: str | bool = True, url: str = "http:"
) -> LoadClient:
    """The cheapest client that can talk to ``url``: raw HTTP/1.1 unless TLS or HTTP/2.

    ``BENCH_LOADGEN=httpx`` forces httpx everywhere (to compare the generators' own cost).
    """
    if http2 or url.startswith("https:") or os.environ.get("BENCH_LOADGEN") == "httpx":
        return HttpxClient(connections=connections, http2=http2, verify=verify)
    return RawH1Client()


async def closed_loop(
    client: LoadClient, spec: RequestSpec, *, concurrency: int, duration: float
) -> LoadResult:
    """``concurrency`` workers send ``spec`` back to back for ``duration`` seconds.

    Each worker first sends one unrecorded warm-up request (it opens the connection), then all
    start together. Requests started before the deadline finish and are counted.
    """
    result = LoadResult()
    warmed = trio.Semaphore(0)
    go = trio.Event()
    deadline = [0.0]

    async def worker() -> None:
        await client.fetch(spec)
        warmed.release()
        await go.wait()
        while time.perf_counter() < deadline[0]:
            sample, error = await client.fetch(spec)
            result.record(sample, error)

    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(worker)
        for _ in range(concurrency):
            await warmed.acquire()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        deadline[0] = wall0 + duration
        go.set()
    result.wall = time.perf_counter() - wall0
    result.loadgen_cpu = time.process_time() - cpu0
    return result


async def bursts(
    client: LoadClient, spec: RequestSpec, *, size: int, duration: float
) -> LoadResult:
    """Bursts of ``size`` simultaneous requests, one burst after another, for ``duration`` s."""
    result = LoadResult()

    async def one() -> None:
        sample, error = await client.fetch(spec)
        result.record(sample, error)

    async with trio.open_nursery() as nursery:  # warm-up burst: opens the connections
        for _ in range(size):
            nursery.start_soon(client.fetch, spec)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    while time.perf_counter() < wall0 + duration:
        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(size):
                nursery.start_soon(one)
        result.burst_times.append(time.perf_counter() - started)
    result.wall = time.perf_counter() - wall0
    result.loadgen_cpu = time.process_time() - cpu0
    return result


async def open_streams(
    client: LoadClient,
    spec: RequestSpec,
    *,
    count: int,
    ramp: float,
    probe: Callable[[], dict[str, Any]],
    probe_interval: float = 0.5,
) -> LoadResult:
    """Open ``count`` long streams over ``ramp`` seconds and read them all to the end.

    While they run, ``probe()`` is called every ``probe_interval`` seconds; each reading is
    stored with the number of streams that had delivered their first byte and not yet ended.
    """
    result = LoadResult()
    state = {"open": 0, "done": 0}

    async def stream(delay: float) -> None:
        await trio.sleep(delay)

        def first() -> None:
            state["open"] += 1

        sample, error = await client.fetch(spec, first)
        if sample.size:
            state["open"] -= 1
        state["done"] += 1
        result.record(sample, error)

    async def prober(cancel: trio.CancelScope) -> None:
        while state["done"] < count:
            reading = probe()
            reading["open_streams"] = state["open"]
            reading["t_s"] = round(time.perf_counter() - wall0, 2)
            result.probes.append(reading)
            await trio.sleep(probe_interval)
        cancel.cancel()

    cpu0, wall0 = time.process_time(), time.perf_counter()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(prober, nursery.cancel_scope)
        async with trio.open_nursery() as streams:
            for i in range(count):
                streams.start_soon(stream, ramp * i / count)
        result.probes.append({**probe(), "open_streams": 0, "t_s": -1})
        nursery.cancel_scope.cancel()
    result.wall = time.perf_counter() - wall0
    result.loadgen_cpu = time.process_time() - cpu0
    return result
