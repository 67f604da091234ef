"""The upstream call: ``generateAssistantResponse`` with failover across the account pool.

:meth:`UpstreamClient.connect` sends the converted body with a leased account's token and returns
only once the upstream has answered 200 *and* its first EventStream frame has been decoded. Every
failure before that point can still become a proper HTTP error, or be retried on another account:

* 401/403: the account's token is refreshed once and the request retried; a second failure
  marks the account invalid and moves on;
* a quota error (402, ``MONTHLY_REQUEST_COUNT``): the account is exhausted, move on;
* 429 or a ``ThrottlingException`` as the first frame: cool the account down, move on;
* 5xx or a connection error: move on with a short backoff, up to ``KIRO_MAX_RETRIES``.

After that, :class:`UpstreamStream` yields batches of decoded frames; each read is bounded by
the stream-idle timeout. Foreign exceptions (httpx, trio) are translated here and only here.
"""

from __future__ import annotations

import logging
import random
import ssl
import time
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from pathlib import Path
from typing import TYPE_CHECKING, cast

import httpx
import orjson
import trio

from kiro2api.convert.events import (
    UpstreamEvent,
    UpstreamEventParser,
    UpstreamFailure,
    failure_to_error,
)
from kiro2api.errors import (
    Kiro2ApiError,
    NoAccountAvailableError,
    PromptTooLongError,
    RequestError,
    UpstreamAuthError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamOverloadedError,
    UpstreamQuotaError,
    UpstreamRateLimitError,
    UpstreamTimeoutError,
)
from kiro2api.eventstream import Decoder, Message
from kiro2api.pool import Lease, Outcome

if TYPE_CHECKING:
    from kiro2api.metrics import Metrics
    from kiro2api.pool import AccountPool
    from kiro2api.settings import Settings

__all__ = ["UpstreamClient", "UpstreamStream", "build_http_client", "frames_to_events"]

log = logging.getLogger("kiro2api.upstream")

_KIRO_VERSION = "KiroIDE-0.2.13-66c23a8c5d15afabec89ef9954ef52a119f10d369df04d548fc6c1eac694b0d1"
# What the Kiro IDE sends (protocol.md §2.1); built once, copied per request.
_BASE_HEADERS = {
    "content-type": "application/json",
    "accept": "application/vnd.amazon.eventstream",
    "x-amzn-kiro-agent-mode": "spec",
    "x-amz-user-agent": f"aws-sdk-js/1.0.18 {_KIRO_VERSION}",
    "user-agent": (
        "aws-sdk-js/1.0.18 ua/2.1 os/linux lang/js md/nodejs#20.16.0 "
        f"api/codewhispererstreaming#1.0.18 m/E {_KIRO_VERSION}"
    ),
    "amz-sdk-request": "attempt=1; max=1",
}
#: Upstream error bodies are small JSON; never buffer more than this of one.
_MAX_ERROR_BODY = 64 * 1024


def build_http_client(settings: Settings) -> httpx.AsyncClient:
    """The one shared upstream HTTP client: keep-alive, HTTP/2 where the upstream offers it."""
    verify: ssl.SSLContext | bool = True
    if settings.upstream_ca_file:
        verify = ssl.create_default_context(cafile=settings.upstream_ca_file)
    return httpx.AsyncClient(
        http2=settings.upstream_http2,
        verify=verify,
        # Reads are bounded by our own first-byte and idle timeouts (trio cancel scopes).
        timeout=httpx.Timeout(settings.connect_timeout, read=None, write=60.0, pool=60.0),
        limits=httpx.Limits(max_connections=2000, max_keepalive_connections=256),
        trust_env=False,
    )


class UpstreamStream:
    """An open upstream answer: the leased account, the response, and decoded frames.

    The first batch of frames was read by :meth:`UpstreamClient.connect`. Iterate
    :meth:`batches` for the rest, and always :meth:`aclose` it (that returns the lease).
    """

    def __init__(
        self,
        client: UpstreamClient,
        lease: Lease,
        response: httpx.Response,
        decoder: Decoder,
        first: list[Message],
        chunks: AsyncGenerator[bytes, None],
        first_chunks: list[bytes],
    ) -> None:
        self._client = client
        self.lease = lease
        self._response = response
        self._decoder = decoder
        self._first: list[Message] | None = first
        self._chunks = chunks
        #: SAVE_RAW_DATA: every upstream byte, starting with what connect() already read.
        self._raw = first_chunks if client.settings.save_raw_data else None
        self._closed = False
        self._opened = time.perf_counter()
        #: The outcome reported to the pool on close; callers may downgrade it.
        self.outcome = Outcome.SUCCESS
        self.account_id = lease.account_id

    async def batches(self) -> AsyncGenerator[list[Message], None]:
        """Yield the decoded frames, one list per network read (the first read's included)."""
        if self._first is not None:
            first, self._first = self._first, None
            yield first
        idle = self._client.settings.stream_idle_timeout
        while True:
            try:
                with trio.fail_after(idle):
                    chunk = await self._chunks.__anext__()
            except StopAsyncIteration:
                # Raises EventStreamError when the upstream closed inside a frame.
                self._decoder.close()
                return
            except trio.TooSlowError:
                raise UpstreamTimeoutError(
                    f"the upstream sent nothing for {idle:g} s (KIRO_STREAM_IDLE_TIMEOUT)"
                ) from None
            except httpx.HTTPError as exc:
                raise _map_transport_error(exc) from exc
            if self._raw is not None:
                self._raw.append(chunk)
            messages = self._decoder.feed(chunk)
            if messages:
                yield messages

    async def aclose(self) -> None:
        """Close the response and return the lease (idempotent, safe under cancellation)."""
        if self._closed:
            return
        self._closed = True
        with trio.CancelScope(shield=True):
            with trio.move_on_after(5):
                await self._chunks.aclose()
                await self._response.aclose()
            self._client.pool.release(self.lease, self.outcome)
            log.debug("upstream stream closed: %s, outcome %s", self.account_id, self.outcome.name)
            if self._client.metrics is not None:
                self._client.metrics.upstream_latency.observe(time.perf_counter() - self._opened)
            if self._raw is not None:
                await self._client.save_raw(self._raw)


class UpstreamClient:
    """Sends converted requests upstream with failover; owns no I/O resources itself."""

    def __init__(
        self,
        settings: Settings,
        pool: AccountPool,
        http: httpx.AsyncClient,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.http = http
        self.metrics = metrics
        # URL -> (parsed URL, merged default headers, extensions): see _build_request.
        self._prepared: dict[
            str, tuple[httpx.URL, list[tuple[bytes, bytes]], dict[str, object]]
        ] = {}

    async def connect(self, body: bytes, *, request_id: str) -> UpstreamStream:
        """Send ``body`` and return the stream once its first frame is decoded.

        Raises:
            Kiro2ApiError: the mapped error when every allowed attempt failed, or at once for
                errors that another account cannot fix (a malformed or oversized request).
        """
        excluded: set[int] = set()
        last_error: Kiro2ApiError | None = None
        attempts = self.settings.max_retries + 1
        for attempt in range(attempts):
            try:
                lease = await self.pool.acquire(exclude=frozenset(excluded))
            except NoAccountAvailableError:
                if last_error is not None:
                    raise last_error from None
                raise
            if attempt and self.metrics is not None:
                self.metrics.retries.inc()
            try:
                try:
                    return await self._attempt(lease, body, request_id)
                except UpstreamAuthError:
                    # The token may have been revoked early: refresh once, retry on the same
                    # account; a second rejection marks the account invalid (below).
                    log.warning("upstream rejected %s's token; refreshing it", lease.account_id)
                    if not await self.pool.refresh_now(lease):
                        raise
                    return await self._attempt(lease, body, request_id)
            except UpstreamAuthError as exc:
                last_error = exc
                self.pool.release(lease, Outcome.AUTH_FAILED)
                excluded.add(lease.index)
            except UpstreamQuotaError as exc:
                last_error = exc
                self.pool.release(lease, Outcome.QUOTA_EXCEEDED)
                excluded.add(lease.index)
            except (UpstreamRateLimitError, UpstreamOverloadedError) as exc:
                last_error = exc
                retry_after = getattr(exc, "retry_after", None)
                self.pool.release(lease, Outcome.RATE_LIMITED, retry_after=retry_after)
                excluded.add(lease.index)
            except (UpstreamConnectionError, UpstreamTimeoutError, UpstreamHTTPError) as exc:
                if isinstance(exc, UpstreamHTTPError) and exc.upstream_status < 500:
                    self.pool.release(lease, Outcome.SUCCESS)
                    raise
                last_error = exc
                outcome = (
                    Outcome.SERVER_ERROR
                    if isinstance(exc, UpstreamHTTPError)
                    else Outcome.CONNECTION_ERROR
                )
                self.pool.release(lease, outcome)
                excluded.add(lease.index)
                await trio.sleep(min(2.0, 0.1 * 2**attempt) * random.uniform(0.5, 1.0))
            except BaseException:
                # Client errors (400), cancellation, bugs: the account did nothing wrong.
                self.pool.release(lease, Outcome.SUCCESS)
                raise
            log.info(
                "attempt %d/%d on %s failed: %s",
                attempt + 1,
                attempts,
                lease.account_id,
                last_error,
            )
            if self.metrics is not None:
                self.metrics.failovers.inc()
        assert last_error is not None
        raise last_error

    def _build_request(self, lease: Lease, body: bytes, request_id: str) -> httpx.Request:
        """The upstream request, built without ``AsyncClient.build_request``.

        ``build_request`` re-parses the URL and re-merges the client's default headers on every
        call (about 60 µs, a measurable share of a short request). The result here is the same
        request: the parsed URL and the merged header list are computed once per URL, and only
        the per-request headers are appended. With cookies in the client's jar (the upstream
        sets none) the general path is used, so nothing is lost.
        """
        url = self.settings.upstream_url(self.settings.api_url, lease.region)
        extra = {
            "authorization": f"Bearer {lease.access_token}",
            "amz-sdk-invocation-id": str(uuid.uuid4()),
            "x-request-id": request_id,
        }
        if self.http.cookies:
            return self.http.build_request(
                "POST", url, content=body, headers={**_BASE_HEADERS, **extra}
            )
        prepared = self._prepared.get(url)
        if prepared is None:
            template = self.http.build_request("POST", url, headers=_BASE_HEADERS)
            raw = [(k, v) for k, v in template.headers.raw if k.lower() != b"content-length"]
            prepared = self._prepared[url] = (template.url, raw, dict(template.extensions))
        parsed, raw, extensions = prepared
        headers = raw + [(k.encode(), v.encode()) for k, v in extra.items()]
        return httpx.Request(
            "POST", parsed, content=body, headers=headers, extensions=dict(extensions)
        )

    async def _send(
        self, request: httpx.Request, lease: Lease, body: bytes, request_id: str
    ) -> httpx.Response:
        """Send, retrying once at once when a pooled connection turns out to be dead.

        An HTTP/2 upstream ends a connection with GOAWAY after some number of requests (the
        simulator's hypercorn after 1,000), and a keep-alive HTTP/1.1 connection can be closed
        just as it is reused. Requests already written to such a connection fail before any
        response byte, and the upstream did not process them, so one immediate retry (on a new
        connection) is safe. Without it, one GOAWAY failed every request in flight at once and
        the failover policy cooled down the only account. A second failure is a real one.
        """
        try:
            return await self.http.send(request, stream=True)
        except (httpx.RemoteProtocolError, httpx.WriteError, httpx.ReadError) as exc:
            log.info("upstream connection closed under a request (%s); retrying once", exc)
        return await self.http.send(self._build_request(lease, body, request_id), stream=True)

    async def _attempt(self, lease: Lease, body: bytes, request_id: str) -> UpstreamStream:
        request = self._build_request(lease, body, request_id)
        log.debug("POST %s (%d bytes) with %s", request.url, len(body), lease.account_id)
        started = time.perf_counter()
        timeout = self.settings.first_byte_timeout
        response: httpx.Response | None = None
        chunks: AsyncGenerator[bytes, None] | None = None
        try:
            with trio.fail_after(timeout):
                response = await self._send(request, lease, body, request_id)
                if response.status_code != 200:
                    raise await _status_error(response)
                chunks = raw_chunks = _raw_chunks(response)
                decoder = Decoder()
                first: list[Message] = []
                raw: list[bytes] = []
                async for chunk in raw_chunks:
                    raw.append(chunk)
                    first = decoder.feed(chunk)
                    if first:
                        break
                if self.metrics is not None:
                    self.metrics.upstream_ttfb.observe(time.perf_counter() - started)
                _raise_leading_failure(first)
        except trio.TooSlowError:
            await _close_quietly(response, chunks)
            raise UpstreamTimeoutError(
                f"the upstream sent no first byte within {timeout:g} s (KIRO_FIRST_BYTE_TIMEOUT)"
            ) from None
        except httpx.HTTPError as exc:
            await _close_quietly(response, chunks)
            raise _map_transport_error(exc) from exc
        except BaseException:
            await _close_quietly(response, chunks)
            raise
        return UpstreamStream(self, lease, response, decoder, first, raw_chunks, raw)

    async def save_raw(self, chunks: list[bytes]) -> None:
        """``SAVE_RAW_DATA``: keep the raw EventStream bytes of one request for bug reports."""
        directory = self.settings.raw_data_dir
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.eventstream"
        data = b"".join(chunks)

        def write() -> None:
            directory.mkdir(parents=True, exist_ok=True)
            Path(directory, name).write_bytes(data)

        try:
            await trio.to_thread.run_sync(write)
        except OSError as exc:
            log.warning("SAVE_RAW_DATA: cannot write %s: %s", directory / name, exc)


def _raw_chunks(response: httpx.Response) -> AsyncGenerator[bytes, None]:
    # httpx declares an AsyncIterator, but it is a generator, and we must aclose() it.
    return cast("AsyncGenerator[bytes, None]", response.aiter_raw())


def _raise_leading_failure(first: list[Message]) -> None:
    """An exception frame before any content is still an HTTP-level error (and retryable)."""
    if not first:
        raise UpstreamConnectionError("the upstream closed the stream before its first frame")
    head = first[0]
    if head.message_type == "event":
        return
    for event in frames_to_events(UpstreamEventParser(), [head]):
        if isinstance(event, UpstreamFailure):
            error = failure_to_error(event)
            if isinstance(error, UpstreamOverloadedError | UpstreamRateLimitError):
                raise error


def frames_to_events(parser: UpstreamEventParser, messages: list[Message]) -> list[UpstreamEvent]:
    """Run decoded frames through the event parser (the hot path: no per-frame header dicts)."""
    events: list[UpstreamEvent] = []
    feed = parser.feed
    text_delta = parser.text_delta
    append = events.append
    for message in messages:
        # Exception and error frames name their type in :exception-type / :error-code.
        kind = message.exception_type or message.event_type or ""
        message_type = message.message_type or "event"
        if kind == "assistantResponseEvent" and message_type == "event":
            # Text frames are nearly all of a stream: skip the dispatch and the one-item list.
            delta = text_delta(message.payload)
            if delta is not None:
                append(delta)
        else:
            events.extend(feed(message_type, kind, message.payload))
    return events


async def _close_quietly(
    response: httpx.Response | None, chunks: AsyncGenerator[bytes, None] | None
) -> None:
    with trio.CancelScope(shield=True), trio.move_on_after(5):
        if chunks is not None:
            await chunks.aclose()
        if response is not None:
            await response.aclose()


async def _status_error(response: httpx.Response) -> Kiro2ApiError:
    """Read a bounded error body and map the status (protocol.md §8.9 with the [REC]s)."""
    body = bytearray()
    async with aclosing(_raw_chunks(response)) as chunks:
        async for chunk in chunks:
            body += chunk
            if len(body) > _MAX_ERROR_BODY:
                break
    message, reason = _error_fields(bytes(body))
    status = response.status_code
    detail = f"upstream HTTP {status}: {message}" + (f" ({reason})" if reason else "")
    if status == 400:
        if reason == "CONTENT_LENGTH_EXCEEDS_THRESHOLD":
            return PromptTooLongError("the upstream refused the conversation as too large")
        if reason == "INVALID_MODEL_ID":
            return RequestError(f"the upstream does not serve this model: {message}", param="model")
        return RequestError(f"the upstream rejected the request: {message} ({reason})")
    if status in (401, 403):
        return UpstreamAuthError(detail, upstream_status=status, reason=reason)
    if status == 402 or reason == "MONTHLY_REQUEST_COUNT":
        return UpstreamQuotaError(detail, upstream_status=status, reason=reason)
    if status == 429:
        return UpstreamRateLimitError(
            detail, reason=reason, retry_after=_retry_after(response.headers.get("retry-after"))
        )
    return UpstreamHTTPError(detail, upstream_status=status, reason=reason)


def _error_fields(body: bytes) -> tuple[str, str | None]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return (body[:300].decode("utf-8", "replace") or "(empty body)"), None
    if not isinstance(data, dict):
        return str(data)[:300], None
    message = data.get("message") or data.get("Message") or data.get("error") or "(no message)"
    reason = data.get("reason")
    return str(message)[:300], (str(reason) if reason else None)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _map_transport_error(exc: httpx.HTTPError) -> UpstreamError:
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamTimeoutError(f"upstream timed out: {type(exc).__name__}")
    return UpstreamConnectionError(f"upstream connection failed: {type(exc).__name__}: {exc}")
