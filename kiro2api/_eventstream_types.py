"""Types, limits and the reference header reader shared by both EventStream codecs.

The compiled codec (``_eventstream.pyx``) and its pure-Python twin (``_eventstream_py.py``)
import everything here, so both hand out the very same value types and raise the very same
errors. Only the hot paths (framing, checksums, validation) are written twice.

Wire format of one header (AWS ``application/vnd.amazon.eventstream``)::

    name_len:u8  name:utf-8[name_len]  type:u8  value

where the value layout depends on ``type`` (see :class:`HeaderType`). Integers are
big-endian and signed; byte arrays and strings carry a ``u16`` length prefix.
"""

from __future__ import annotations

import abc
import struct
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import IntEnum
from typing import Final, Self, TypeAlias

from kiro2api.errors import HeaderError

__all__ = [
    "MAX_HEADERS_LENGTH",
    "MAX_HEADER_NAME_LENGTH",
    "MAX_HEADER_VALUE_LENGTH",
    "MAX_MESSAGE_LENGTH",
    "MIN_MESSAGE_LENGTH",
    "PRELUDE_LENGTH",
    "EventStreamMessage",
    "HeaderType",
    "HeaderValue",
    "Int8",
    "Int16",
    "Int32",
    "Int64",
    "Timestamp",
    "decode_headers",
    "header_type",
    "pack_value",
    "string_fields",
    "typed_headers",
]

#: total_length, headers_length and prelude CRC, 4 bytes each.
PRELUDE_LENGTH: Final = 12
#: Prelude plus the trailing message CRC: a frame with no headers and no payload.
MIN_MESSAGE_LENGTH: Final = 16
#: Upper bound on total_length. The AWS SDKs and the original Go proxy both stop at 16 MiB;
#: checking it against the prelude keeps a corrupt length from making us buffer gigabytes.
MAX_MESSAGE_LENGTH: Final = 16 * 1024 * 1024
#: Upper bound on headers_length, as in the AWS SDKs (botocore ``_MAX_HEADERS_LENGTH``).
MAX_HEADERS_LENGTH: Final = 128 * 1024
#: A header name's length is one unsigned byte.
MAX_HEADER_NAME_LENGTH: Final = 255
#: Byte-array and string values carry an unsigned 16-bit length.
MAX_HEADER_VALUE_LENGTH: Final = 65535


class HeaderType(IntEnum):
    """The wire type byte of a header value."""

    BOOL_TRUE = 0
    BOOL_FALSE = 1
    BYTE = 2
    SHORT = 3
    INTEGER = 4
    LONG = 5
    BYTE_ARRAY = 6
    STRING = 7
    TIMESTAMP = 8
    UUID = 9


class _SizedInt(int):
    """An ``int`` that remembers which fixed-width EventStream integer type it travels as."""

    __slots__ = ()
    _bits: int = 64

    def __new__(cls, value: int = 0) -> Self:
        self = super().__new__(cls, value)
        limit = 1 << (cls._bits - 1)
        if not -limit <= self < limit:
            raise ValueError(f"{cls.__name__} must be in [{-limit}, {limit - 1}], got {int(self)}")
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({int(self)})"


class Int8(_SizedInt):
    """A header value sent as type 2 (byte, signed 8-bit)."""

    __slots__ = ()
    _bits = 8


class Int16(_SizedInt):
    """A header value sent as type 3 (short, signed 16-bit)."""

    __slots__ = ()
    _bits = 16


class Int32(_SizedInt):
    """A header value sent as type 4 (integer, signed 32-bit)."""

    __slots__ = ()
    _bits = 32


class Int64(_SizedInt):
    """A header value sent as type 5 (long, signed 64-bit)."""

    __slots__ = ()
    _bits = 64


class Timestamp(_SizedInt):
    """A header value sent as type 8: signed 64-bit milliseconds since the Unix epoch."""

    __slots__ = ()
    _bits = 64

    @classmethod
    def from_datetime(cls, moment: datetime) -> Timestamp:
        """Build a timestamp from a timezone-aware datetime (sub-millisecond part dropped).

        Raises:
            ValueError: ``moment`` is naive.
        """
        if moment.tzinfo is None:
            raise ValueError("a naive datetime has no defined epoch offset; attach a tzinfo")
        delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
        return cls(delta // _ONE_MS)

    def to_datetime(self) -> datetime:
        """The timestamp as an aware UTC datetime."""
        return datetime(1970, 1, 1, tzinfo=UTC) + int(self) * _ONE_MS


_ONE_MS: Final = datetime(1970, 1, 1, 0, 0, 0, 1000) - datetime(1970, 1, 1)

#: What a header value can be. Plain ``int`` is deliberately absent: the wire has five integer
#: types, so the caller says which one (:class:`Int32` etc.).
HeaderValue: TypeAlias = bool | Int8 | Int16 | Int32 | Int64 | Timestamp | bytes | str | uuid.UUID

# Exact-type dispatch; bool must never fall into the int branch, so no isinstance() here.
_TYPE_OF: Final[dict[type, HeaderType]] = {
    bool: HeaderType.BOOL_TRUE,  # refined by value in header_type()
    Int8: HeaderType.BYTE,
    Int16: HeaderType.SHORT,
    Int32: HeaderType.INTEGER,
    Int64: HeaderType.LONG,
    Timestamp: HeaderType.TIMESTAMP,
    bytes: HeaderType.BYTE_ARRAY,
    str: HeaderType.STRING,
    uuid.UUID: HeaderType.UUID,
}


def header_type(value: object) -> HeaderType:
    """The wire type a header value is sent as.

    Raises:
        TypeError: ``value`` is not a :data:`HeaderValue` (plain ``int`` included).
    """
    kind = _TYPE_OF.get(type(value))
    if kind is None:
        if isinstance(value, str):
            return HeaderType.STRING
        if isinstance(value, bytes | bytearray | memoryview):
            return HeaderType.BYTE_ARRAY
        if isinstance(value, uuid.UUID):
            return HeaderType.UUID
        if isinstance(value, int) and not isinstance(value, bool):
            raise TypeError(
                f"plain int header value {value!r}: wrap it as Int8, Int16, Int32, Int64 "
                "or Timestamp to say which wire type it is"
            )
        raise TypeError(f"unsupported header value type {type(value).__name__}")
    if kind is HeaderType.BOOL_TRUE and value is False:
        return HeaderType.BOOL_FALSE
    return kind


def pack_value(value: object) -> tuple[HeaderType, bytes]:
    """The wire type of a header value and its value bytes.

    Byte arrays and strings come without their u16 length prefix (the caller checks the
    length and writes it).

    Raises:
        TypeError: as :func:`header_type`.
        UnicodeEncodeError: a string with lone surrogates.
    """
    kind = header_type(value)
    if isinstance(value, str):
        return kind, value.encode("utf-8")
    if isinstance(value, bytes | bytearray | memoryview):
        return kind, bytes(value)
    if isinstance(value, uuid.UUID):
        return kind, value.bytes
    if kind <= HeaderType.BOOL_FALSE:
        return kind, b""
    return kind, _INTS[kind][1].pack(value)


def typed_headers(headers: Mapping[str, object]) -> dict[str, tuple[HeaderType, object]]:
    """Headers keyed with their wire type, so ``Int8(1)``, ``Int32(1)`` and ``True`` differ."""
    return {name: (header_type(value), value) for name, value in headers.items()}


def string_fields(headers: Mapping[str, object]) -> tuple[str | None, str | None, str | None]:
    """The hot-path fields: ``:message-type``, ``:event-type`` and the exception name.

    The exception name is ``:exception-type``, else ``:error-code``. A header that is absent
    or not a string gives ``None``.
    """

    def text(name: str) -> str | None:
        value = headers.get(name)
        return value if isinstance(value, str) else None

    exception = text(":exception-type")
    if exception is None:
        exception = text(":error-code")
    return text(":message-type"), text(":event-type"), exception


class EventStreamMessage(abc.ABC):
    """Marker ABC: both implementations' ``Message`` classes are registered with it.

    It lets a message from the compiled codec compare equal to one from the twin.
    """

    __slots__ = ()

    # For type checkers only: what every registered class provides.
    payload: bytes
    headers: dict[str, HeaderValue]


_FIXED_SIZES: Final = (0, 0, 1, 2, 4, 8, -1, -1, 8, 16)  # -1: u16 length prefix
_INTS: Final[dict[int, tuple[type[_SizedInt], struct.Struct]]] = {
    HeaderType.BYTE: (Int8, struct.Struct(">b")),
    HeaderType.SHORT: (Int16, struct.Struct(">h")),
    HeaderType.INTEGER: (Int32, struct.Struct(">i")),
    HeaderType.LONG: (Int64, struct.Struct(">q")),
    HeaderType.TIMESTAMP: (Timestamp, struct.Struct(">q")),
}


def decode_headers(raw: bytes, offset: int = 0) -> dict[str, HeaderValue]:
    """Decode and validate a frame's header block (the reference implementation).

    Args:
        raw: the ``headers_length`` bytes after the prelude.
        offset: stream offset of ``raw[0]``, used in error messages.

    Returns:
        name → value, in wire order.

    Raises:
        HeaderError: truncated header, name or string that is not UTF-8, unknown type byte
            or duplicate name. ``offset`` is the stream offset of the offending header's
            first byte.
    """
    headers: dict[str, HeaderValue] = {}
    end = len(raw)
    pos = 0
    while pos < end:
        start = pos
        name_end = pos + 1 + raw[pos]
        if name_end >= end:  # the type byte must follow the name
            raise HeaderError(
                "header name or type byte runs past the header block", offset=offset + start
            )
        try:
            name = raw[pos + 1 : name_end].decode("utf-8")
        except UnicodeDecodeError:
            raise HeaderError("header name is not valid UTF-8", offset=offset + start) from None
        kind = raw[name_end]
        pos = name_end + 1
        if kind > 9:
            raise HeaderError(f"unknown header value type {kind}", offset=offset + start)
        size = _FIXED_SIZES[kind]
        if size < 0:
            if pos + 2 > end:
                raise HeaderError("header value runs past the header block", offset=offset + start)
            size = (raw[pos] << 8) | raw[pos + 1]
            pos += 2
        if pos + size > end:
            raise HeaderError("header value runs past the header block", offset=offset + start)
        chunk = raw[pos : pos + size]
        pos += size
        value: HeaderValue
        if kind <= 1:
            value = kind == 0
        elif kind == 7:
            try:
                value = chunk.decode("utf-8")
            except UnicodeDecodeError:
                raise HeaderError(
                    "string header value is not valid UTF-8", offset=offset + start
                ) from None
        elif kind == 6:
            value = chunk
        elif kind == 9:
            value = uuid.UUID(bytes=chunk)
        else:
            int_type, layout = _INTS[kind]
            value = int_type(layout.unpack(chunk)[0])  # type: ignore[assignment]
        if name in headers:
            raise HeaderError(f"duplicate header name {name!r}", offset=offset + start)
        headers[name] = value
    return headers
