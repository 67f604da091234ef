"""A minimal HTTP/1.1 client over trio sockets: the cheap path of the load generator.

httpx costs the load generator about as much CPU per request as the simulator spends answering
it, so with httpx the generator, not the server, set the direct-to-simulator throughput on two
cores. This client sends pre-encoded request bytes on a persistent connection and reads the
answer with the least parsing that still proves it complete: the status line, the
``Content-Length`` or chunked framing, and the tail of the decoded body. It speaks only what the
two servers here answer (hypercorn: fixed length or chunked, keep-alive).
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import trio

__all__ = ["H1Connection", "encode_request"]

_RECV = 65536
_TAIL = 4096


def encode_request(method: str, url: str, headers: dict[str, str], body: bytes | None) -> bytes:
    """The request as bytes on the wire (``Host`` and ``Content-Length`` added)."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {target or '/'} HTTP/1.1", f"host: {parts.netloc}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body is not None:
        lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


class H1Connection:
    """One keep-alive connection; :meth:`request` sends one request and reads it to the end."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._stream: trio.SocketStream | None = None
        self._buf = bytearray()

    async def aclose(self) -> None:
        """Close the socket."""
        if self._stream is not None:
            await self._stream.aclose()
            self._stream = None

    async def _fill(self) -> None:
        assert self._stream is not None
        data = await self._stream.receive_some(_RECV)
        if not data:
            raise ConnectionError("connection closed by the server")
        self._buf += data

    async def request(
        self, raw: bytes, on_first: object = None
    ) -> tuple[int, float, int, bytes, float]:
        """Send ``raw``; return status, seconds to first body byte, body size, tail, total.

        ``on_first`` (a callable) is invoked when the first body byte arrives.
        """
        started = time.perf_counter()
        if self._stream is None:
            self._stream = await trio.open_tcp_stream(self.host, self.port)
            self._buf.clear()
        try:
            return await self._exchange(raw, started, on_first)
        except BaseException:
            await self.aclose()
            raise

    async def _exchange(
        self, raw: bytes, started: float, on_first: object
    ) -> tuple[int, float, int, bytes, float]:
        assert self._stream is not None
        await self._stream.send_all(raw)
        buf = self._buf
        while (end := buf.find(b"\r\n\r\n")) < 0:
            await self._fill()
        head = bytes(buf[:end]).decode("latin-1").split("\r\n")
        del buf[: end + 4]
        status = int(head[0].split(" ", 2)[1])
        length: int | None = None
        chunked = False
        close = False
        for line in head[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            elif name == "connection" and "close" in value.lower():
                close = True
        if not buf:
            await self._fill()
        ttfb = time.perf_counter() - started
        if callable(on_first):
            on_first()
        size, tail = await (self._chunked() if chunked else self._sized(length))
        total = time.perf_counter() - started
        if close:
            await self.aclose()
        return status, ttfb, size, tail, total

    async def _sized(self, length: int | None) -> tuple[int, bytes]:
        buf = self._buf
        if length is None:  # read to close
            try:
                while True:
                    await self._fill()
            except ConnectionError:
                pass
            body = bytes(buf)
            buf.clear()
            await self.aclose()
            return len(body), body[-_TAIL:]
        while len(buf) < length:
            await self._fill()
        body = bytes(buf[:length])
        del buf[:length]
        return length, body[-_TAIL:]

    async def _chunked(self) -> tuple[int, bytes]:
        buf = self._buf
        size = 0
        tail = b""
        while True:
            while (eol := buf.find(b"\r\n")) < 0:
                await self._fill()
            chunk_len = int(bytes(buf[:eol]).split(b";", 1)[0], 16)
            del buf[: eol + 2]
            if chunk_len == 0:
                while (eol := buf.find(b"\r\n")) < 0:
                    await self._fill()
                # Trailers are not used here; the empty line ends the message.
                del buf[: eol + 2]
                return size, tail
            while len(buf) < chunk_len + 2:
                await self._fill()
            data = bytes(buf[:chunk_len])
            del buf[: chunk_len + 2]
            size += chunk_len
            tail = (tail + data)[-_TAIL:]
