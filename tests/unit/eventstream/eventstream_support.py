"""Frame builders and outcome helpers shared by the EventStream codec tests."""

from __future__ import annotations

import itertools
import struct
import uuid
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from kiro2api.errors import EventStreamError

#: The official AWS vectors (``shared/`` beside the checkout, as in tests/conftest.py).
VECTORS = Path(__file__).resolve().parents[3].parent / "shared" / "testdata" / "eventstream"

KIRO_HEADERS = {
    ":event-type": "assistantResponseEvent",
    ":content-type": "application/json",
    ":message-type": "event",
}


def prelude(total: int, headers_length: int) -> bytes:
    """A 12-byte prelude with a correct CRC, whatever the lengths say."""
    head = struct.pack(">II", total, headers_length)
    return head + struct.pack(">I", zlib.crc32(head))


def raw_frame(header_block: bytes, payload: bytes = b"") -> bytes:
    """A frame around an arbitrary (possibly malformed) header block, with correct CRCs."""
    body = prelude(16 + len(header_block) + len(payload), len(header_block))
    body += header_block + payload
    return body + struct.pack(">I", zlib.crc32(body))


def header(name: bytes, kind: int, value: bytes = b"") -> bytes:
    """One raw header: name length, name, type byte, then ``value`` as given."""
    return bytes([len(name)]) + name + bytes([kind]) + value


def string_header(name: bytes, value: bytes) -> bytes:
    """A raw type-7 header with its u16 length prefix."""
    return header(name, 7, struct.pack(">H", len(value)) + value)


def split(data: bytes, points: Iterable[int]) -> list[bytes]:
    """``data`` cut at the given offsets (out-of-range and repeated points are fine)."""
    cuts = sorted({min(max(p, 0), len(data)) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(cuts)]


def byte_by_byte(data: bytes) -> list[bytes]:
    """``data`` as one-byte chunks."""
    return [data[i : i + 1] for i in range(len(data))]


def decode_all(impl: ModuleType, chunks: Sequence[bytes]) -> list[Any]:
    """Feed every chunk to a fresh decoder of ``impl`` and return all messages."""
    decoder = impl.Decoder()
    messages: list[Any] = []
    for chunk in chunks:
        messages.extend(decoder.feed(chunk))
    return messages


def outcome(impl: ModuleType, chunks: Sequence[bytes]) -> tuple[list[Any], EventStreamError | None]:
    """Messages decoded before the first error, and that error (or ``None``)."""
    decoder = impl.Decoder()
    messages: list[Any] = []
    try:
        for chunk in chunks:
            messages.extend(decoder.feed(chunk))
    except EventStreamError as exc:
        return messages, exc
    return messages, None


def botocore_value(value: object) -> object:
    """Our typed header value as botocore represents it (plain ints, uuid as 16 bytes)."""
    if isinstance(value, uuid.UUID):
        return value.bytes
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    return value


def botocore_outcome(chunks: Sequence[bytes]) -> tuple[list[tuple[dict[str, object], bytes]], bool]:
    """(headers, payload) pairs botocore decodes, and whether it raised (anything)."""
    from botocore.eventstream import EventStreamBuffer

    buffer = EventStreamBuffer()
    messages: list[tuple[dict[str, object], bytes]] = []
    try:
        for chunk in chunks:
            buffer.add_data(chunk)
            messages.extend((m.headers, m.payload) for m in buffer)
    except Exception:  # noqa: BLE001 - the oracle fails with whatever it hits (KeyError, ...)
        return messages, True
    return messages, False


def as_botocore(message: Any) -> tuple[dict[str, object], bytes]:
    """One of our messages in botocore's shape."""
    return {k: botocore_value(v) for k, v in message.headers.items()}, message.payload
