"""One structured-concurrency nursery per client stream.

Theory of operation. A streaming route first calls :meth:`UpstreamClient.connect`, which
returns only after the upstream answered and its first frame was decoded, so every failure up
to that point is still a proper HTTP error. Then :meth:`StreamRegistry.respond` starts a
*producer* task in the server's stream nursery (never fire-and-forget). The producer opens the
stream's own nursery with two children:

* the pump: reads upstream frames, translates them to SSE bytes, puts them on a channel;
* the pinger: sends a keep-alive ``ping`` while the upstream is silent (Claude Code and
  reverse proxies drop idle connections).

The HTTP response body is a plain async generator that only *receives* from the channel; it
opens no nursery and holds no cancel scope across ``yield`` (the trio rule for generators).
When the client disconnects, the generator's ``finally`` closes the channel and cancels the
producer's scope; the producer's own ``finally`` closes the upstream response and returns the
account lease, shielded and with its own deadline. On shutdown the registry first waits for
streams to finish, then aborts the rest with a proper SSE error event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio
from quart import Response

from kiro2api.convert.events import UpstreamEvent, UpstreamEventParser
from kiro2api.errors import Kiro2ApiError, UpstreamError, UpstreamTimeoutError
from kiro2api.logs import ACCESS_LOG, request_id_var
from kiro2api.metrics import Metrics
from kiro2api.pool import Outcome
from kiro2api.upstream import UpstreamStream, frames_to_events

__all__ = [
    "Aggregator",
    "RequestContext",
    "ShuttingDownError",
    "StreamRegistry",
    "StreamTranslator",
]

log = logging.getLogger("kiro2api.stream")

#: Chunks queued between the producer and the socket writer. Small: back-pressure reaches the
#: upstream read quickly when the client is slow, so memory per stream stays bounded.
_CHANNEL_DEPTH = 32

SSE_HEADERS = {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    "x-accel-buffering": "no",
}


class ShuttingDownError(UpstreamError):
    """The server is shutting down and the stream could not finish within the grace period."""

    status_code = 503
    error_type = "overloaded_error"
    openai_code = "server_shutting_down"


class _Usage(Protocol):
    """Token counts every translator and aggregator reports (for the access log)."""

    @property
    def input_tokens(self) -> int: ...
    @property
    def output_tokens(self) -> int: ...


class StreamTranslator(_Usage, Protocol):
    """What the producer needs from the Anthropic and OpenAI stream translators."""

    @property
    def finished(self) -> bool: ...
    def feed(self, events: Iterable[UpstreamEvent]) -> bytes: ...
    def finish(self) -> bytes: ...
    def fail(self, error: Kiro2ApiError) -> bytes: ...
    def ping(self) -> bytes: ...


class Aggregator(_Usage, Protocol):
    """What non-streaming requests need from the aggregators."""

    def feed(self, events: Iterable[UpstreamEvent]) -> None: ...
    def result(self) -> dict[str, Any]: ...


@dataclass(slots=True)
class RequestContext:
    """Facts about one request, filled in as it goes, for the access log and metrics."""

    request_id: str
    method: str
    path: str
    route: str
    model: str = "-"
    stream: bool = False
    started: float = field(default_factory=time.perf_counter)
    ttfb: float | None = None
    account: str = "-"
    status: int = 200
    input_tokens: int = 0
    output_tokens: int = 0
    disconnected: bool = False
    error: str = ""

    def log_access(self, metrics: Metrics | None) -> None:
        """Write the one access line of this request and count it."""
        duration = time.perf_counter() - self.started
        ttfb = f"{self.ttfb * 1000:.1f}ms" if self.ttfb is not None else "-"
        ACCESS_LOG.info(
            "%s %s %d model=%s account=%s stream=%s ttfb=%s duration=%.1fms in=%d out=%d%s%s",
            self.method,
            self.path,
            self.status,
            self.model,
            self.account,
            "yes" if self.stream else "no",
            ttfb,
            duration * 1000,
            self.input_tokens,
            self.output_tokens,
            " client_disconnected" if self.disconnected else "",
            f" error={self.error!r}" if self.error else "",
            extra={
                "http_method": self.method,
                "path": self.path,
                "status": self.status,
                "model": self.model,
                "account": self.account,
                "stream": self.stream,
                "ttfb_ms": None if self.ttfb is None else round(self.ttfb * 1000, 2),
                "duration_ms": round(duration * 1000, 2),
                "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens,
                "client_disconnected": self.disconnected,
            },
        )
        if metrics is not None:
            metrics.requests.labels(self.route, str(self.status), self.model).inc()
            metrics.tokens.labels("input").inc(self.input_tokens)
            metrics.tokens.labels("output").inc(self.output_tokens)
            if self.ttfb is not None:
                metrics.client_ttfb.observe(self.ttfb)


@dataclass(slots=True, eq=False)  # identity-hashed: entries live in a set
class _Entry:
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    aborted: bool = False
    done: trio.Event = field(default_factory=trio.Event)


class StreamRegistry:
    """Runs client streams in the server's stream nursery and drains them on shutdown."""

    def __init__(self, *, ping_interval: float, request_timeout: float, metrics: Metrics) -> None:
        self.ping_interval = ping_interval
        self.request_timeout = request_timeout
        self.metrics = metrics
        self._nursery: trio.Nursery | None = None
        self._entries: set[_Entry] = set()

    def attach(self, nursery: trio.Nursery) -> None:
        """Give the registry the nursery its producers run in (the server owns it)."""
        self._nursery = nursery

    @property
    def active(self) -> int:
        """Streams currently open."""
        return len(self._entries)

    async def respond(
        self,
        stream: UpstreamStream,
        translator: StreamTranslator,
        preamble: bytes,
        ctx: RequestContext,
        *,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """Start streaming ``stream`` through ``translator``; return the SSE response."""
        if self._nursery is None:
            await stream.aclose()
            raise RuntimeError("StreamRegistry.attach() was not called")
        send, receive = trio.open_memory_channel[bytes](_CHANNEL_DEPTH)
        entry = _Entry()
        self._entries.add(entry)
        self.metrics.active_streams.inc()
        ctx.account = stream.account_id
        self._nursery.start_soon(self._produce, stream, translator, preamble, send, entry, ctx)
        response = Response(
            _body(receive, entry, ctx), status=200, headers={**SSE_HEADERS, **(headers or {})}
        )
        response.timeout = None  # Quart's RESPONSE_TIMEOUT would cut long streams silently.
        return response

    async def collect(
        self, stream: UpstreamStream, aggregator: Aggregator, ctx: RequestContext
    ) -> dict[str, Any]:
        """Read a whole upstream answer into ``aggregator`` (non-streaming requests)."""
        ctx.account = stream.account_id
        parser = UpstreamEventParser()
        try:
            with trio.fail_after(self.request_timeout):
                async with aclosing(stream.batches()) as batches:
                    async for batch in batches:
                        aggregator.feed(frames_to_events(parser, batch))
            result = aggregator.result()
        except trio.TooSlowError:
            stream.outcome = Outcome.SERVER_ERROR
            raise UpstreamTimeoutError(
                "the upstream answer took longer than REQUEST_TIMEOUT_MINUTES"
            ) from None
        except trio.Cancelled:
            stream.outcome = Outcome.CLIENT_CANCELLED
            ctx.disconnected = True
            raise
        finally:
            await stream.aclose()
        ctx.ttfb = time.perf_counter() - ctx.started  # non-streaming: the whole body is first
        ctx.input_tokens, ctx.output_tokens = aggregator.input_tokens, aggregator.output_tokens
        return result

    async def _produce(
        self,
        stream: UpstreamStream,
        translator: StreamTranslator,
        preamble: bytes,
        send: trio.MemorySendChannel[bytes],
        entry: _Entry,
        ctx: RequestContext,
    ) -> None:
        token = request_id_var.set(ctx.request_id)
        last_sent = [trio.current_time()]

        async def emit(data: bytes) -> None:
            if not data:
                return
            if ctx.ttfb is None:
                await send.send(data)  # the first bytes: a checkpoint lets the writer run now
                ctx.ttfb = time.perf_counter() - ctx.started
            else:
                # No checkpoint of its own while the channel has room: the pump's next upstream
                # read is one anyway, and what the writer finds queued by then goes out in one
                # write. Awaiting here cost a scheduler round and often a separate socket write
                # per batch, and every 64 KiB read comes in two batches (the upstream's chunk
                # boundary splits it). The channel still bounds how far the pump runs ahead.
                try:
                    send.send_nowait(data)
                except trio.WouldBlock:
                    await send.send(data)
            last_sent[0] = trio.current_time()

        async def pinger() -> None:
            while True:
                await trio.sleep_until(last_sent[0] + self.ping_interval)
                if trio.current_time() >= last_sent[0] + self.ping_interval:
                    await emit(translator.ping())

        async def pump(nursery: trio.Nursery) -> None:
            parser = UpstreamEventParser()
            first = True
            with trio.fail_after(self.request_timeout):
                async with aclosing(stream.batches()) as batches:
                    async for batch in batches:
                        out = translator.feed(frames_to_events(parser, batch))
                        if first:
                            out, first = preamble + out, False
                        await emit(out)
                        if translator.finished:
                            break
            await emit(translator.finish())
            nursery.cancel_scope.cancel()

        try:
            async with send:
                try:
                    with entry.scope:
                        async with trio.open_nursery() as nursery:
                            nursery.start_soon(pump, nursery)
                            nursery.start_soon(pinger)
                except* (trio.BrokenResourceError, trio.ClosedResourceError):
                    ctx.disconnected = True
                    stream.outcome = Outcome.CLIENT_CANCELLED
                except* trio.TooSlowError:
                    timeout = UpstreamTimeoutError("the stream exceeded REQUEST_TIMEOUT_MINUTES")
                    await _send_final(send, translator.fail(timeout), ctx)
                except* Kiro2ApiError as group:
                    error = group.exceptions[0]
                    assert isinstance(error, Kiro2ApiError)
                    log.warning("stream failed after the first byte: %s", error)
                    ctx.error = error.message
                    await _send_final(send, translator.fail(error), ctx)
                except* Exception as group:
                    log.error("bug while streaming", exc_info=group.exceptions[0])
                    ctx.error = "internal error"
                    await _send_final(
                        send, translator.fail(UpstreamError("internal error in the proxy")), ctx
                    )
                if entry.scope.cancelled_caught:
                    if entry.aborted:
                        ctx.error = "server shutting down"
                        await _send_final(
                            send,
                            translator.fail(ShuttingDownError("the server is shutting down")),
                            ctx,
                        )
                    else:
                        ctx.disconnected = True
                        stream.outcome = Outcome.CLIENT_CANCELLED
        finally:
            with trio.CancelScope(shield=True):
                await stream.aclose()
            ctx.input_tokens, ctx.output_tokens = translator.input_tokens, translator.output_tokens
            self._entries.discard(entry)
            self.metrics.active_streams.dec()
            entry.done.set()
            ctx.log_access(self.metrics)
            request_id_var.reset(token)

    async def drain(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for open streams, then abort the rest with an error."""
        with trio.move_on_after(grace):
            while self._entries:
                await next(iter(self._entries)).done.wait()
        remaining = list(self._entries)
        if remaining:
            log.warning("aborting %d stream(s) still open after %.0f s", len(remaining), grace)
        for entry in remaining:
            entry.aborted = True
            entry.scope.cancel()
        with trio.move_on_after(5):
            for entry in remaining:
                await entry.done.wait()


async def _send_final(
    send: trio.MemorySendChannel[bytes], data: bytes, ctx: RequestContext
) -> None:
    """Best-effort last words: never block long on a client that stopped reading."""
    # Shielded (the producer may be cancelled) but with its own deadline.
    with trio.CancelScope(shield=True, deadline=trio.current_time() + 2):
        try:
            await send.send(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            ctx.disconnected = True


async def _body(
    receive: trio.MemoryReceiveChannel[bytes], entry: _Entry, ctx: RequestContext
) -> AsyncIterator[bytes]:
    """The response body: receive only (no nursery across ``yield``), coalescing queued chunks."""
    try:
        async for chunk in receive:
            parts = [chunk]
            ended = False
            while True:
                try:
                    parts.append(receive.receive_nowait())
                except trio.WouldBlock:
                    break
                except trio.EndOfChannel:
                    ended = True
                    break
            yield parts[0] if len(parts) == 1 else b"".join(parts)
            if ended:
                return
    finally:
        receive.close()
        if not entry.done.is_set():
            # The client went away (or the server cut the connection): stop the producer.
            entry.scope.cancel()
