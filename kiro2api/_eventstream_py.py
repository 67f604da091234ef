"""Pure-Python AWS EventStream codec: the readable twin of ``_eventstream.pyx``.

Frame layout (all integers big-endian)::

    0    total_length:u32   whole frame, both CRCs included
    4    headers_length:u32
    8    prelude_crc:u32    CRC32 of bytes [0, 8)
    12   headers            headers_length bytes
    ..   payload            total_length - headers_length - 16 bytes
    T-4  message_crc:u32    CRC32 of bytes [0, T-4)

Strategy. The decoder keeps at most one *partial* frame in a bytearray; complete frames are
parsed straight out of the caller's chunk through a memoryview, so every input byte is copied
at most once and the cost stays linear however the stream is split. The prelude is validated
(lengths, then CRC) the moment its 12 bytes are in: a corrupt length fails at once instead of
waiting for bytes that never come. A frame is checked against its message CRC before its
headers are read. Consecutive frames usually carry the same header block, so validated blocks
are cached by their bytes and the hot-path strings are reused.

After an error the decoder is dead: every later call raises the same error class at the same
offset. EventStream has no sync marker, so guessing a resync point would only invent frames.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping
from typing import Final

from kiro2api._eventstream_types import (
    MAX_HEADER_NAME_LENGTH,
    MAX_HEADER_VALUE_LENGTH,
    MAX_HEADERS_LENGTH,
    MAX_MESSAGE_LENGTH,
    MIN_MESSAGE_LENGTH,
    PRELUDE_LENGTH,
    EventStreamMessage,
    HeaderType,
    HeaderValue,
    decode_headers,
    pack_value,
    string_fields,
    typed_headers,
)
from kiro2api.errors import (
    EventStreamError,
    FrameLengthError,
    MessageChecksumError,
    PreludeChecksumError,
)

__all__ = ["Decoder", "Message", "encode_message"]

_PRELUDE: Final = struct.Struct(">III")
_LENGTHS: Final = struct.Struct(">II")
_U32: Final = struct.Struct(">I")
#: Distinct header blocks remembered per decoder. Upstream streams use a handful.
_CACHE_SIZE: Final = 32

_Fields = tuple[dict[str, HeaderValue], str | None, str | None, str | None]


class Message:
    """One decoded (or to-be-encoded) EventStream message.

    Equality is by content: the same payload and the same headers with the same wire types.
    A message from the compiled codec equals one from this module when their content does.

    Args:
        headers: name → value (see :data:`~kiro2api.eventstream.HeaderValue`).
        payload: the message body.
    """

    __slots__ = (
        "_event_type",
        "_exception_type",
        "_headers",
        "_message_crc",
        "_message_type",
        "_payload",
        "_prelude_crc",
        "_raw",
    )

    _payload: bytes
    _message_type: str | None
    _event_type: str | None
    _exception_type: str | None
    _headers: dict[str, HeaderValue]
    _raw: bytes
    _prelude_crc: int
    _message_crc: int

    def __init__(
        self, headers: Mapping[str, HeaderValue] | None = None, payload: bytes = b""
    ) -> None:
        self._headers = dict(headers) if headers else {}
        self._payload = bytes(payload)
        self._message_type, self._event_type, self._exception_type = string_fields(self._headers)
        self._raw = _encode_headers(self._headers)  # rejects what cannot be encoded, now
        frame = self.to_bytes()
        self._prelude_crc = _U32.unpack_from(frame, 8)[0]
        self._message_crc = _U32.unpack_from(frame, len(frame) - 4)[0]

    @classmethod
    def _decoded(
        cls, fields: _Fields, raw: bytes, payload: bytes, prelude_crc: int, message_crc: int
    ) -> Message:
        self = object.__new__(cls)
        self._headers, self._message_type, self._event_type, self._exception_type = fields
        self._raw = raw
        self._payload = payload
        self._prelude_crc = prelude_crc
        self._message_crc = message_crc
        return self

    @property
    def headers(self) -> dict[str, HeaderValue]:
        """All headers, name → typed value (a fresh dict on every access)."""
        return dict(self._headers)

    @property
    def payload(self) -> bytes:
        """The message body."""
        return self._payload

    @property
    def message_type(self) -> str | None:
        """``:message-type`` (``event``, ``exception`` or ``error``) if present as a string."""
        return self._message_type

    @property
    def event_type(self) -> str | None:
        """``:event-type`` (e.g. ``assistantResponseEvent``) if present as a string."""
        return self._event_type

    @property
    def exception_type(self) -> str | None:
        """``:exception-type``, else ``:error-code``, if present as a string header."""
        return self._exception_type

    @property
    def headers_length(self) -> int:
        """Size of the encoded header block."""
        return len(self._raw)

    @property
    def total_length(self) -> int:
        """Size of the whole encoded frame."""
        return MIN_MESSAGE_LENGTH + self.headers_length + len(self.payload)

    @property
    def prelude_crc(self) -> int:
        """CRC32 of the first 8 bytes of the frame (as received, for decoded messages)."""
        return self._prelude_crc

    @property
    def message_crc(self) -> int:
        """CRC32 of the frame without its last 4 bytes (as received, for decoded messages)."""
        return self._message_crc

    def to_bytes(self) -> bytes:
        """The encoded frame; for a decoded message, byte for byte what was received."""
        return _frame(self._raw, self._payload)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EventStreamMessage):
            return NotImplemented
        return self._payload == other.payload and typed_headers(self._headers) == typed_headers(
            other.headers
        )

    def __hash__(self) -> int:
        return hash(self._payload)

    def __repr__(self) -> str:
        return f"Message(headers={self._headers!r}, payload={self._payload!r})"


EventStreamMessage.register(Message)


def _encode_headers(headers: Mapping[str, HeaderValue]) -> bytes:
    out = bytearray()
    for name, value in headers.items():
        if not isinstance(name, str):
            raise TypeError(f"header names are str, got {type(name).__name__}")
        raw_name = name.encode("utf-8")
        if len(raw_name) > MAX_HEADER_NAME_LENGTH:
            raise ValueError(f"header name {name[:40]!r}... is longer than 255 bytes")
        kind, data = pack_value(value)
        out.append(len(raw_name))
        out += raw_name
        out.append(kind)
        if kind is HeaderType.STRING or kind is HeaderType.BYTE_ARRAY:
            if len(data) > MAX_HEADER_VALUE_LENGTH:
                raise ValueError(f"value of header {name!r} is longer than 65535 bytes")
            out += len(data).to_bytes(2, "big")
        out += data
    if len(out) > MAX_HEADERS_LENGTH:
        raise ValueError(f"header block of {len(out)} bytes exceeds {MAX_HEADERS_LENGTH}")
    return bytes(out)


def _frame(raw_headers: bytes, payload: bytes) -> bytes:
    total = MIN_MESSAGE_LENGTH + len(raw_headers) + len(payload)
    if total > MAX_MESSAGE_LENGTH:
        raise ValueError(f"frame of {total} bytes exceeds {MAX_MESSAGE_LENGTH}")
    lengths = _LENGTHS.pack(total, len(raw_headers))
    prelude_crc = _U32.pack(zlib.crc32(lengths))
    crc = zlib.crc32(payload, zlib.crc32(raw_headers, zlib.crc32(prelude_crc, zlib.crc32(lengths))))
    return b"".join((lengths, prelude_crc, raw_headers, payload, _U32.pack(crc)))


def encode_message(
    headers: Mapping[str, HeaderValue], payload: bytes | bytearray | memoryview
) -> bytes:
    """Encode one EventStream frame.

    Args:
        headers: name → value, sent in iteration order. ``str`` is sent as a string, ``bytes``
            as a byte array, ``bool`` as bool true/false, ``uuid.UUID`` as a uuid; integers must
            be wrapped (:class:`Int8`, :class:`Int16`, :class:`Int32`, :class:`Int64`,
            :class:`Timestamp`).
        payload: the message body.

    Returns:
        The complete frame, prelude and both CRCs included.

    Raises:
        TypeError: a header value of an unsupported type (plain ``int`` included).
        ValueError: a name over 255 bytes, a value over 65535 bytes, a header block over
            128 KiB or a frame over 16 MiB; the decoder would reject any of these.
    """
    return _frame(_encode_headers(headers), bytes(payload))


class Decoder:
    """Incremental EventStream decoder: feed it bytes, get the complete messages back."""

    __slots__ = ("_buf", "_cache", "_error", "_frame_total", "_offset")

    def __init__(self) -> None:
        #: The bytes of the one frame that is not complete yet.
        self._buf = bytearray()
        #: total_length of that frame once its prelude is validated, else 0.
        self._frame_total = 0
        #: Stream offset of the first byte not yet consumed into a message or ``_buf``.
        self._offset = 0
        self._error: EventStreamError | None = None
        self._cache: dict[bytes, _Fields] = {}

    @property
    def pending(self) -> int:
        """Number of buffered bytes that do not form a complete message yet."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Message]:
        """Add bytes from the stream and return the messages they complete.

        Args:
            data: the next chunk, split anywhere; ``b""`` is allowed.

        Returns:
            Every message completed by ``data``, in stream order (often an empty list).

        Raises:
            EventStreamError: a frame is corrupt (one of the subclasses, with the stream
                offset). Messages completed earlier in the same call are dropped with it:
                the stream cannot be trusted past that point. Every later call raises the
                same error class again.
        """
        if self._error is not None:
            self._fail_again()
        try:
            return self._feed(memoryview(data).cast("B"))
        except EventStreamError as exc:
            self._error = exc
            raise

    def close(self) -> None:
        """Declare the end of the stream.

        Raises:
            EventStreamError: the stream ended inside a frame, or the decoder failed before.
        """
        if self._error is not None:
            self._fail_again()
        if self._buf:
            self._error = EventStreamError(
                f"stream ended inside a frame ({len(self._buf)} bytes buffered)",
                offset=self._offset - len(self._buf),
            )
            raise self._error

    def _fail_again(self) -> None:
        assert self._error is not None
        raise type(self._error)(
            f"decoder already failed: {self._error.message}", offset=self._error.offset
        )

    def _feed(self, data: memoryview) -> list[Message]:
        out: list[Message] = []
        size = len(data)
        base = self._offset  # stream offset of data[0]
        self._offset = base + size
        pos = 0
        buf = self._buf
        if buf:
            # Complete the pending frame with as few bytes as it needs, no more.
            start = base - len(buf)
            if len(buf) < PRELUDE_LENGTH:
                pos = min(PRELUDE_LENGTH - len(buf), size)
                buf += data[:pos]
                if len(buf) < PRELUDE_LENGTH:
                    return out
                self._frame_total = self._check_prelude(buf, 0, start)
            take = min(self._frame_total - len(buf), size - pos)
            buf += data[pos : pos + take]
            pos += take
            if len(buf) < self._frame_total:
                return out
            frame = bytes(buf)
            buf.clear()
            out.append(self._message(frame, 0, self._frame_total, start))
        while size - pos >= PRELUDE_LENGTH:
            total = self._check_prelude(data, pos, base + pos)
            if size - pos < total:
                self._frame_total = total
                break
            out.append(self._message(data, pos, total, base + pos))
            pos += total
        if pos < size:
            buf += data[pos:]
        return out

    @staticmethod
    def _check_prelude(data: bytes | bytearray | memoryview, pos: int, offset: int) -> int:
        total, headers_length, prelude_crc = _PRELUDE.unpack_from(data, pos)
        if total < MIN_MESSAGE_LENGTH or total > MAX_MESSAGE_LENGTH:
            raise FrameLengthError(
                f"total_length {total} is outside [{MIN_MESSAGE_LENGTH}, {MAX_MESSAGE_LENGTH}]",
                offset=offset,
            )
        if headers_length > total - MIN_MESSAGE_LENGTH:
            raise FrameLengthError(
                f"headers_length {headers_length} does not fit in total_length {total}",
                offset=offset,
            )
        if headers_length > MAX_HEADERS_LENGTH:
            raise FrameLengthError(
                f"headers_length {headers_length} exceeds {MAX_HEADERS_LENGTH}", offset=offset
            )
        actual = zlib.crc32(data[pos : pos + 8])
        if actual != prelude_crc:
            raise PreludeChecksumError(
                f"prelude checksum mismatch: frame says 0x{prelude_crc:08x}, "
                f"bytes give 0x{actual:08x}",
                offset=offset,
            )
        return int(total)

    def _message(self, data: bytes | memoryview, pos: int, total: int, offset: int) -> Message:
        headers_length, prelude_crc = _PRELUDE.unpack_from(data, pos)[1:]
        end = pos + total - 4
        (message_crc,) = _U32.unpack_from(data, end)
        # The prelude CRC is verified to be the CRC of bytes [0, 8): continue from it.
        actual = zlib.crc32(data[pos + 8 : end], prelude_crc)
        if actual != message_crc:
            raise MessageChecksumError(
                f"message checksum mismatch: frame says 0x{message_crc:08x}, "
                f"bytes give 0x{actual:08x}",
                offset=offset,
            )
        split = pos + PRELUDE_LENGTH + headers_length
        raw = bytes(data[pos + PRELUDE_LENGTH : split])
        fields = self._cache.get(raw)
        if fields is None:
            headers = decode_headers(raw, offset + PRELUDE_LENGTH)
            fields = (headers, *string_fields(headers))
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
            self._cache[raw] = fields
        return Message._decoded(fields, raw, bytes(data[split:end]), prelude_crc, message_crc)
