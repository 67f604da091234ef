# cython: language_level=3
"""Compiled AWS EventStream codec; same API and behaviour as ``_eventstream_py.py``.

The twin's module docstring describes the frame layout and the decoding strategy; this module
follows it step for step (same checks, same order, same offsets), only in C:

* the caller's buffer is read through a raw pointer; only a frame cut by the chunk boundary
  is copied, into a malloc'd buffer that holds that one partial frame;
* CRC32 is zlib's C ``crc32``, run once over each frame: the message CRC continues from the
  (already verified) prelude CRC;
* a header block is validated without creating Python objects (C UTF-8 check, names compared
  with memcmp); the few distinct blocks of a stream are cached, so most frames cost a memcmp,
  a payload ``bytes`` and a ``Message``. The full ``headers`` dict is built only on request.
"""

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_AsUTF8AndSize, PyUnicode_DecodeUTF8
from libc.stdint cimport uint32_t, uint64_t
from libc.stdlib cimport free, realloc
from libc.string cimport memcmp, memcpy

from kiro2api._eventstream_types import (
    MAX_HEADERS_LENGTH,
    MAX_MESSAGE_LENGTH,
    EventStreamMessage,
    decode_headers,
    pack_value,
    string_fields,
    typed_headers,
)
from kiro2api.errors import (
    EventStreamError,
    FrameLengthError,
    HeaderError,
    MessageChecksumError,
    PreludeChecksumError,
)

__all__ = ["Decoder", "Message", "encode_message"]

cdef extern from "zlib.h":
    unsigned long crc32(unsigned long crc, const unsigned char *buf, unsigned int len) nogil

cdef enum:
    PRELUDE = 12
    MIN_FRAME = 16
    # Distinct header blocks remembered per decoder (the twin uses the same bound).
    CACHE_SIZE = 32
    # Names are compared pairwise up to this many headers; a set takes over beyond it.
    SMALL_HEADER_COUNT = 16
    # A partial-frame buffer bigger than this is freed once its frame completes.
    KEEP_BUFFER = 256 * 1024

# The limits of _eventstream_types, as C values.
cdef uint32_t MAX_FRAME = MAX_MESSAGE_LENGTH
cdef uint32_t MAX_HEADERS = MAX_HEADERS_LENGTH
# Value size per type byte; -1: u16 length prefix (byte array, string).
cdef int[10] FIXED_SIZES = [0, 0, 1, 2, 4, 8, -1, -1, 8, 16]


cdef inline uint32_t _be32(const unsigned char* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef inline void _put32(unsigned char* p, uint32_t v) noexcept nogil:
    p[0] = v >> 24
    p[1] = (v >> 16) & 0xFF
    p[2] = (v >> 8) & 0xFF
    p[3] = v & 0xFF


@cython.boundscheck(False)
@cython.wraparound(False)
cdef bint _utf8_valid(const unsigned char* s, Py_ssize_t n) noexcept nogil:
    """Strict UTF-8, exactly as ``bytes.decode("utf-8")`` accepts it (no surrogates, no
    overlongs, nothing above U+10FFFF)."""
    cdef Py_ssize_t i = 0
    cdef uint64_t word
    cdef unsigned char c, lo, hi
    cdef int follow
    while i < n:
        if i + 8 <= n:
            memcpy(&word, s + i, 8)
            if (word & 0x8080808080808080ULL) == 0:
                i += 8
                continue
        c = s[i]
        if c < 0x80:
            i += 1
            continue
        if c < 0xC2 or c > 0xF4:  # continuation byte, overlong lead, or beyond U+10FFFF
            return False
        follow = 1 if c < 0xE0 else (2 if c < 0xF0 else 3)
        # The second byte's range rules out overlongs (E0, F0), surrogates (ED) and > U+10FFFF.
        lo = 0xA0 if c == 0xE0 else (0x90 if c == 0xF0 else 0x80)
        hi = 0x9F if c == 0xED else (0x8F if c == 0xF4 else 0xBF)
        if i + follow >= n or s[i + 1] < lo or s[i + 1] > hi:
            return False
        if (follow >= 2 and (s[i + 2] & 0xC0) != 0x80) or (
            follow == 3 and (s[i + 3] & 0xC0) != 0x80
        ):
            return False
        i += follow + 1
    return True


@cython.final
cdef class _Entry:
    """One header block: its bytes, its hot-path strings and (lazily) its decoded dict."""

    cdef bytes raw
    cdef dict headers
    cdef object message_type
    cdef object event_type
    cdef object exception_type

    cdef bytes get_raw(self):
        if self.raw is None:
            self.raw = _encode_header_block(self.headers)
        return self.raw

    cdef dict get_headers(self):
        if self.headers is None:
            self.headers = decode_headers(self.raw, 0)
        return self.headers


# --------------------------------------------------------------------------- encoder


cdef inline unsigned char* _grow(bytearray out, Py_ssize_t extra) except NULL:
    """Extend ``out`` by ``extra`` bytes (amortised, as bytearray does); return their start."""
    cdef Py_ssize_t size = PyByteArray_GET_SIZE(out)
    PyByteArray_Resize(out, size + extra)
    return <unsigned char*>PyByteArray_AS_STRING(out) + size


cdef bytes _encode_header_block(object headers):
    cdef bytearray out = bytearray()
    cdef const char* name_p
    cdef const char* value_p = NULL
    cdef Py_ssize_t name_len, value_len, prefix
    cdef unsigned char* w
    cdef int kind
    for name, value in headers.items():
        if not isinstance(name, str):
            raise TypeError(f"header names are str, got {type(name).__name__}")
        name_p = PyUnicode_AsUTF8AndSize(name, &name_len)
        if name_len > 255:
            raise ValueError(f"header name {name[:40]!r}... is longer than 255 bytes")
        t = type(value)
        # The usual types straight from their buffers; the rest through the shared packer.
        if t is str:
            kind = 7
            value_p = PyUnicode_AsUTF8AndSize(value, &value_len)
        elif t is bool:
            kind = 0 if value else 1
            value_len = 0
        else:
            kind, packed = pack_value(value)
            value_p = PyBytes_AS_STRING(packed)
            value_len = PyBytes_GET_SIZE(packed)
        prefix = 2 if kind == 6 or kind == 7 else 0
        if prefix and value_len > 65535:
            raise ValueError(f"value of header {name!r} is longer than 65535 bytes")
        w = _grow(out, 2 + name_len + prefix + value_len)
        w[0] = <unsigned char>name_len
        memcpy(w + 1, name_p, name_len)
        w[1 + name_len] = <unsigned char>kind
        w += 2 + name_len
        if prefix:
            w[0] = <unsigned char>(value_len >> 8)
            w[1] = <unsigned char>(value_len & 0xFF)
        if value_len:
            memcpy(w + prefix, value_p, value_len)
    if PyByteArray_GET_SIZE(out) > MAX_HEADERS:
        raise ValueError(f"header block of {len(out)} bytes exceeds {MAX_HEADERS}")
    return bytes(out)


cdef bytes _frame(bytes header_block, const unsigned char* body, Py_ssize_t body_len):
    cdef const unsigned char* head = <const unsigned char*>PyBytes_AS_STRING(header_block)
    cdef Py_ssize_t head_len = PyBytes_GET_SIZE(header_block)
    cdef Py_ssize_t total = MIN_FRAME + head_len + body_len
    if total > MAX_FRAME:
        raise ValueError(f"frame of {total} bytes exceeds {MAX_FRAME}")
    cdef bytes frame = PyBytes_FromStringAndSize(NULL, total)
    cdef unsigned char* w = <unsigned char*>PyBytes_AS_STRING(frame)
    cdef unsigned long crc
    _put32(w, <uint32_t>total)
    _put32(w + 4, <uint32_t>head_len)
    crc = crc32(0, w, 8)
    _put32(w + 8, <uint32_t>crc)
    if head_len:
        memcpy(w + PRELUDE, head, head_len)
    if body_len:
        memcpy(w + PRELUDE + head_len, body, body_len)
    crc = crc32(crc, w + 8, <unsigned int>(total - 12))
    _put32(w + total - 4, <uint32_t>crc)
    return frame


def encode_message(headers, payload):
    """Encode one EventStream frame (see ``kiro2api._eventstream_py.encode_message``)."""
    cdef Py_buffer view
    cdef bytes header_block = _encode_header_block(headers)
    PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE)
    try:
        return _frame(header_block, <const unsigned char*>view.buf, view.len)
    finally:
        PyBuffer_Release(&view)


# --------------------------------------------------------------------------- messages


cdef _Entry _entry_for(dict headers):
    cdef _Entry entry = _Entry.__new__(_Entry)
    entry.headers = headers
    entry.message_type, entry.event_type, entry.exception_type = string_fields(headers)
    return entry


@cython.freelist(64)
@cython.final
cdef class Message:
    """One decoded (or to-be-encoded) EventStream message (see the twin's ``Message``)."""

    cdef _Entry _entry
    cdef bytes _payload
    cdef uint32_t _prelude_crc
    cdef uint32_t _message_crc

    def __init__(self, headers=None, payload=b""):
        cdef bytes frame
        self._entry = _entry_for(dict(headers) if headers else {})
        self._payload = bytes(payload)
        frame = self.to_bytes()  # also rejects what cannot be encoded, now
        self._prelude_crc = _be32(<const unsigned char*>PyBytes_AS_STRING(frame) + 8)
        self._message_crc = _be32(
            <const unsigned char*>PyBytes_AS_STRING(frame) + PyBytes_GET_SIZE(frame) - 4
        )

    @property
    def payload(self):
        """The message body."""
        return self._payload

    @property
    def headers(self):
        """All headers, name → typed value (a fresh dict on every access)."""
        return dict(self._entry.get_headers())

    @property
    def message_type(self):
        """``:message-type`` if present as a string header."""
        return self._entry.message_type

    @property
    def event_type(self):
        """``:event-type`` if present as a string header."""
        return self._entry.event_type

    @property
    def exception_type(self):
        """``:exception-type``, else ``:error-code``, if present as a string header."""
        return self._entry.exception_type

    @property
    def headers_length(self):
        """Size of the encoded header block."""
        return PyBytes_GET_SIZE(self._entry.get_raw())

    @property
    def total_length(self):
        """Size of the whole encoded frame."""
        return MIN_FRAME + PyBytes_GET_SIZE(self._entry.get_raw()) + PyBytes_GET_SIZE(self._payload)

    @property
    def prelude_crc(self):
        """CRC32 of the first 8 bytes of the frame."""
        return self._prelude_crc

    @property
    def message_crc(self):
        """CRC32 of the frame without its last 4 bytes."""
        return self._message_crc

    def to_bytes(self):
        """The encoded frame; for a decoded message, byte for byte what was received."""
        return _frame(self._entry.get_raw(), <const unsigned char*>PyBytes_AS_STRING(self._payload),
                      PyBytes_GET_SIZE(self._payload))

    def __eq__(self, other):
        if not isinstance(other, EventStreamMessage):
            return NotImplemented
        return self._payload == other.payload and (
            typed_headers(self._entry.get_headers()) == typed_headers(other.headers)
        )

    def __ne__(self, other):
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    def __hash__(self):
        return hash(self._payload)

    def __repr__(self):
        return f"Message(headers={self._entry.get_headers()!r}, payload={self._payload!r})"


EventStreamMessage.register(Message)


# --------------------------------------------------------------------------- decoder


cdef inline bint _same_block(_Entry entry, const unsigned char* head, Py_ssize_t n):
    return PyBytes_GET_SIZE(entry.raw) == n and memcmp(PyBytes_AS_STRING(entry.raw), head, n) == 0


cdef bytes _name_bytes(const unsigned char* header):
    return PyBytes_FromStringAndSize(<const char*>header + 1, header[0])


cdef object _duplicate(const unsigned char* header, long long offset):
    name = PyUnicode_DecodeUTF8(<const char*>header + 1, header[0], NULL)
    return HeaderError(f"duplicate header name {name!r}", offset=offset)


cdef class Decoder:
    """Incremental EventStream decoder (see ``kiro2api._eventstream_py.Decoder``)."""

    cdef unsigned char* _buf
    cdef Py_ssize_t _buf_len
    cdef Py_ssize_t _buf_cap
    cdef uint32_t _frame_total
    cdef long long _offset
    cdef object _error
    cdef _Entry _last
    cdef list _cache

    def __cinit__(self):
        self._cache = []  # C fields start at 0/NULL, objects at None

    def __dealloc__(self):
        free(self._buf)

    @property
    def pending(self):
        """Number of buffered bytes that do not form a complete message yet."""
        return self._buf_len

    def feed(self, data):
        """Add bytes from the stream and return the messages they complete."""
        cdef Py_buffer view
        if self._error is not None:
            self._fail_again()
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            return self._feed(<const unsigned char*>view.buf, view.len)
        except EventStreamError as exc:
            self._error = exc
            raise
        finally:
            PyBuffer_Release(&view)

    def close(self):
        """Declare the end of the stream; raises if it ended inside a frame."""
        if self._error is not None:
            self._fail_again()
        if self._buf_len:
            self._error = EventStreamError(
                f"stream ended inside a frame ({self._buf_len} bytes buffered)",
                offset=self._offset - self._buf_len,
            )
            raise self._error

    cdef _fail_again(self):
        err = self._error
        raise type(err)(f"decoder already failed: {err.message}", offset=err.offset)

    cdef int _append(self, const unsigned char* data, Py_ssize_t n) except -1:
        cdef Py_ssize_t want = self._buf_len + n
        cdef Py_ssize_t cap
        cdef unsigned char* grown
        if want > self._buf_cap:
            cap = max(want, self._buf_cap * 2, 4096)
            if self._buf_len >= PRELUDE and cap > self._frame_total:
                cap = max(want, <Py_ssize_t>self._frame_total)
            grown = <unsigned char*>realloc(self._buf, cap)
            if grown == NULL:
                raise MemoryError()
            self._buf = grown
            self._buf_cap = cap
        memcpy(self._buf + self._buf_len, data, n)
        self._buf_len = want
        return 0

    cdef list _feed(self, const unsigned char* data, Py_ssize_t size):
        cdef list out = []
        cdef long long base = self._offset
        cdef long long start
        cdef Py_ssize_t pos = 0
        cdef Py_ssize_t take
        cdef uint32_t total
        self._offset = base + size
        if self._buf_len:
            # Complete the pending frame with as few bytes as it needs, no more.
            start = base - self._buf_len
            if self._buf_len < PRELUDE:
                pos = min(PRELUDE - self._buf_len, size)
                self._append(data, pos)
                if self._buf_len < PRELUDE:
                    return out
                self._frame_total = self._check_prelude(self._buf, start)
            take = min(<Py_ssize_t>self._frame_total - self._buf_len, size - pos)
            self._append(data + pos, take)
            pos += take
            if self._buf_len < self._frame_total:
                return out
            out.append(self._message(self._buf, self._frame_total, start))
            self._buf_len = 0
            if self._buf_cap > KEEP_BUFFER:
                free(self._buf)
                self._buf = NULL
                self._buf_cap = 0
        while size - pos >= PRELUDE:
            total = self._check_prelude(data + pos, base + pos)
            if size - pos < total:
                self._frame_total = total
                break
            out.append(self._message(data + pos, total, base + pos))
            pos += total
        if pos < size:
            self._append(data + pos, size - pos)
        return out

    cdef uint32_t _check_prelude(self, const unsigned char* p, long long offset) except 0:
        cdef uint32_t total = _be32(p)
        cdef uint32_t headers_length = _be32(p + 4)
        cdef uint32_t expected = _be32(p + 8)
        cdef uint32_t actual
        if total < MIN_FRAME or total > MAX_FRAME:
            raise FrameLengthError(
                f"total_length {total} is outside [{MIN_FRAME}, {MAX_FRAME}]", offset=offset
            )
        if headers_length > total - MIN_FRAME:
            raise FrameLengthError(
                f"headers_length {headers_length} does not fit in total_length {total}",
                offset=offset,
            )
        if headers_length > MAX_HEADERS:
            raise FrameLengthError(
                f"headers_length {headers_length} exceeds {MAX_HEADERS}", offset=offset
            )
        actual = <uint32_t>crc32(0, p, 8)
        if actual != expected:
            raise PreludeChecksumError(
                f"prelude checksum mismatch: frame says 0x{expected:08x}, "
                f"bytes give 0x{actual:08x}",
                offset=offset,
            )
        return total

    cdef Message _message(self, const unsigned char* p, uint32_t total, long long offset):
        cdef uint32_t headers_length = _be32(p + 4)
        cdef uint32_t prelude_crc = _be32(p + 8)
        cdef uint32_t expected = _be32(p + total - 4)
        cdef uint32_t actual
        cdef _Entry entry
        cdef Message message
        # The prelude CRC is verified to be the CRC of bytes [0, 8): continue from it.
        actual = <uint32_t>crc32(prelude_crc, p + 8, total - 12)
        if actual != expected:
            raise MessageChecksumError(
                f"message checksum mismatch: frame says 0x{expected:08x}, "
                f"bytes give 0x{actual:08x}",
                offset=offset,
            )
        entry = self._lookup(p + PRELUDE, headers_length)
        if entry is None:
            entry = self._validate(p + PRELUDE, headers_length, offset + PRELUDE)
        message = Message.__new__(Message)
        message._entry = entry
        message._payload = PyBytes_FromStringAndSize(
            <const char*>p + PRELUDE + headers_length, total - MIN_FRAME - headers_length
        )
        message._prelude_crc = prelude_crc
        message._message_crc = expected
        return message

    cdef _Entry _lookup(self, const unsigned char* head, Py_ssize_t n):
        if self._last is not None and _same_block(self._last, head, n):
            return self._last
        for entry in self._cache:
            if _same_block(<_Entry>entry, head, n):
                self._last = <_Entry>entry
                return self._last
        return None

    @cython.boundscheck(False)
    @cython.wraparound(False)
    cdef _Entry _validate(self, const unsigned char* head, Py_ssize_t n, long long offset):
        """Check a header block exactly as ``decode_headers`` does, creating no objects
        except the hot-path strings; then cache it."""
        cdef Py_ssize_t pos = 0
        cdef Py_ssize_t start, name_end, size
        cdef Py_ssize_t[SMALL_HEADER_COUNT] names
        cdef Py_ssize_t count = 0
        cdef Py_ssize_t i
        cdef int kind
        cdef const unsigned char* name
        cdef unsigned char name_len
        cdef set seen = None
        cdef _Entry entry
        message_type = event_type = exception_type = error_code = None
        while pos < n:
            start = pos
            name = head + pos
            name_len = name[0]
            name_end = pos + 1 + name_len
            if name_end >= n:
                raise HeaderError(
                    "header name or type byte runs past the header block", offset=offset + start
                )
            if not _utf8_valid(name + 1, name_len):
                raise HeaderError("header name is not valid UTF-8", offset=offset + start)
            kind = head[name_end]
            pos = name_end + 1
            if kind > 9:
                raise HeaderError(f"unknown header value type {kind}", offset=offset + start)
            size = FIXED_SIZES[kind]
            if size < 0:
                if pos + 2 > n:
                    raise HeaderError(
                        "header value runs past the header block", offset=offset + start
                    )
                size = (head[pos] << 8) | head[pos + 1]
                pos += 2
            if pos + size > n:
                raise HeaderError("header value runs past the header block", offset=offset + start)
            if kind == 7:
                if not _utf8_valid(head + pos, size):
                    raise HeaderError(
                        "string header value is not valid UTF-8", offset=offset + start
                    )
                if name_len == 13 and memcmp(name + 1, b":message-type", 13) == 0:
                    message_type = PyUnicode_DecodeUTF8(<const char*>head + pos, size, NULL)
                elif name_len == 11 and memcmp(name + 1, b":event-type", 11) == 0:
                    event_type = PyUnicode_DecodeUTF8(<const char*>head + pos, size, NULL)
                elif name_len == 15 and memcmp(name + 1, b":exception-type", 15) == 0:
                    exception_type = PyUnicode_DecodeUTF8(<const char*>head + pos, size, NULL)
                elif name_len == 11 and memcmp(name + 1, b":error-code", 11) == 0:
                    error_code = PyUnicode_DecodeUTF8(<const char*>head + pos, size, NULL)
            pos += size
            # Duplicate names: pairwise memcmp for the usual handful, a set beyond that.
            if count < SMALL_HEADER_COUNT:
                for i in range(count):
                    if memcmp(head + names[i], name, name_len + 1) == 0:  # length byte too
                        raise _duplicate(name, offset + start)
                names[count] = start
            else:
                if seen is None:
                    seen = {_name_bytes(head + names[i]) for i in range(count)}
                key = _name_bytes(name)
                if key in seen:
                    raise _duplicate(name, offset + start)
                seen.add(key)
            count += 1
        entry = _Entry.__new__(_Entry)
        entry.raw = PyBytes_FromStringAndSize(<const char*>head, n)
        entry.message_type = message_type
        entry.event_type = event_type
        entry.exception_type = exception_type if exception_type is not None else error_code
        if len(self._cache) >= CACHE_SIZE:
            self._cache.clear()
        self._cache.append(entry)
        self._last = entry
        return entry
