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
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_AsUTF8AndSize, PyUnicode_DecodeUTF8
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcmp, memcpy

import uuid

from kiro2api._eventstream_types import (
    MAX_HEADERS_LENGTH,
    MAX_MESSAGE_LENGTH,
    EventStreamMessage,
    Int8,
    Int16,
    Int32,
    Int64,
    Timestamp,
    decode_headers,
    header_type,
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
    # Header blocks up to this size are encoded on the C stack.
    STACK_HEADERS = 512

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
        lo = 0x80
        hi = 0xBF
        if c < 0xC2:
            return False
        elif c < 0xE0:
            follow = 1
        elif c < 0xF0:
            follow = 2
            if c == 0xE0:
                lo = 0xA0
            elif c == 0xED:
                hi = 0x9F
        elif c < 0xF5:
            follow = 3
            if c == 0xF0:
                lo = 0x90
            elif c == 0xF4:
                hi = 0x8F
        else:
            return False
        if i + follow >= n:
            return False
        if s[i + 1] < lo or s[i + 1] > hi:
            return False
        if follow >= 2 and (s[i + 2] & 0xC0) != 0x80:
            return False
        if follow == 3 and (s[i + 3] & 0xC0) != 0x80:
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


cdef struct _Out:
    unsigned char* data
    Py_ssize_t length
    Py_ssize_t capacity
    bint on_heap


cdef int _reserve(_Out* out, Py_ssize_t extra) except -1:
    cdef Py_ssize_t want = out.length + extra
    cdef Py_ssize_t cap
    cdef unsigned char* grown
    if want <= out.capacity:
        return 0
    cap = max(want, out.capacity * 2)
    if out.on_heap:
        grown = <unsigned char*>realloc(out.data, cap)
    else:
        grown = <unsigned char*>malloc(cap)
        if grown != NULL:
            memcpy(grown, out.data, out.length)
    if grown == NULL:
        raise MemoryError()
    out.data = grown
    out.capacity = cap
    out.on_heap = True
    return 0


cdef int _write_headers(object headers, _Out* out) except -1:
    cdef const char* name_p
    cdef const char* value_p
    cdef Py_ssize_t name_len, value_len
    cdef int kind
    cdef int64_t number
    cdef unsigned char* w
    cdef int width
    cdef object raw_value
    for name, value in headers.items():
        if not isinstance(name, str):
            raise TypeError(f"header names are str, got {type(name).__name__}")
        name_p = PyUnicode_AsUTF8AndSize(name, &name_len)
        if name_len > 255:
            raise ValueError(f"header name {name[:40]!r}... is longer than 255 bytes")
        value_p = NULL
        value_len = 0
        width = 0
        number = 0
        t = type(value)
        # Exact types first (the common case), then the generic classifier.
        if t is str:
            kind = 7
        elif t is bool:
            kind = 0 if value else 1
        elif t is bytes:
            kind = 6
        else:
            kind = int(header_type(value))
        if kind == 7:
            value_p = PyUnicode_AsUTF8AndSize(value, &value_len)
        elif kind == 6:
            raw_value = value if t is bytes else bytes(value)
            value_p = PyBytes_AS_STRING(raw_value)
            value_len = PyBytes_GET_SIZE(raw_value)
        elif kind == 9:
            raw_value = value.bytes
            value_p = PyBytes_AS_STRING(raw_value)
            value_len = 16
        elif kind >= 2:
            number = value
            width = FIXED_SIZES[kind]
        if (kind == 6 or kind == 7) and value_len > 65535:
            raise ValueError(f"value of header {name!r} is longer than 65535 bytes")
        _reserve(out, 1 + name_len + 1 + 2 + value_len + width)
        w = out.data + out.length
        w[0] = <unsigned char>name_len
        memcpy(w + 1, name_p, name_len)
        w += 1 + name_len
        w[0] = <unsigned char>kind
        w += 1
        if kind == 6 or kind == 7:
            w[0] = <unsigned char>(value_len >> 8)
            w[1] = <unsigned char>(value_len & 0xFF)
            memcpy(w + 2, value_p, value_len)
            w += 2 + value_len
        elif kind == 9:
            memcpy(w, value_p, 16)
            w += 16
        else:
            while width > 0:
                width -= 1
                w[0] = <unsigned char>((<uint64_t>number >> (8 * width)) & 0xFF)
                w += 1
        out.length = w - out.data
    if out.length > MAX_HEADERS:
        raise ValueError(f"header block of {out.length} bytes exceeds {MAX_HEADERS}")
    return 0


cdef bytes _encode_header_block(object headers):
    cdef unsigned char stack[STACK_HEADERS]
    cdef _Out out
    out.data = stack
    out.length = 0
    out.capacity = STACK_HEADERS
    out.on_heap = False
    try:
        _write_headers(headers, &out)
        return PyBytes_FromStringAndSize(<char*>out.data, out.length)
    finally:
        if out.on_heap:
            free(out.data)


cdef bytes _frame(const unsigned char* head, Py_ssize_t head_len,
                  const unsigned char* body, Py_ssize_t body_len):
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
    cdef unsigned char stack[STACK_HEADERS]
    cdef _Out out
    cdef Py_buffer view
    out.data = stack
    out.length = 0
    out.capacity = STACK_HEADERS
    out.on_heap = False
    PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE)
    try:
        _write_headers(headers, &out)
        return _frame(out.data, out.length, <const unsigned char*>view.buf, view.len)
    finally:
        PyBuffer_Release(&view)
        if out.on_heap:
            free(out.data)


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
    cdef bint _has_crcs

    def __init__(self, headers=None, payload=b""):
        cdef dict copy = dict(headers) if headers else {}
        typed_headers(copy)  # reject values that cannot be encoded, now
        self._entry = _entry_for(copy)
        self._payload = bytes(payload)
        self._has_crcs = False

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

    cdef int _fill_crcs(self) except -1:
        cdef bytes frame
        cdef const unsigned char* p
        if not self._has_crcs:
            frame = self.to_bytes()
            p = <const unsigned char*>PyBytes_AS_STRING(frame)
            self._prelude_crc = _be32(p + 8)
            self._message_crc = _be32(p + PyBytes_GET_SIZE(frame) - 4)
            self._has_crcs = True
        return 0

    @property
    def prelude_crc(self):
        """CRC32 of the first 8 bytes of the frame (as received, for decoded messages)."""
        self._fill_crcs()
        return self._prelude_crc

    @property
    def message_crc(self):
        """CRC32 of the frame without its last 4 bytes (as received, for decoded messages)."""
        self._fill_crcs()
        return self._message_crc

    def to_bytes(self):
        """The encoded frame; for a decoded message, byte for byte what was received."""
        cdef bytes raw = self._entry.get_raw()
        return _frame(<const unsigned char*>PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw),
                      <const unsigned char*>PyBytes_AS_STRING(self._payload),
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


cdef str _name_at(const unsigned char* p):
    return PyUnicode_DecodeUTF8(<const char*>p + 1, p[0], NULL)


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
        self._buf = NULL
        self._buf_len = 0
        self._buf_cap = 0
        self._frame_total = 0
        self._offset = 0
        self._error = None
        self._last = None
        self._cache = []

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
        message._has_crcs = True
        return message

    cdef _Entry _lookup(self, const unsigned char* head, Py_ssize_t n):
        cdef _Entry entry = self._last
        if entry is not None and PyBytes_GET_SIZE(entry.raw) == n and (
            memcmp(PyBytes_AS_STRING(entry.raw), head, n) == 0
        ):
            return entry
        for item in self._cache:
            entry = <_Entry>item
            if PyBytes_GET_SIZE(entry.raw) == n and memcmp(PyBytes_AS_STRING(entry.raw), head, n) == 0:
                self._last = entry
                return entry
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
                    raise HeaderError("header value runs past the header block", offset=offset + start)
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
            if seen is None:
                for i in range(count):
                    if head[names[i]] == name_len and memcmp(head + names[i] + 1, name + 1, name_len) == 0:
                        raise HeaderError(
                            f"duplicate header name {_name_at(name)!r}", offset=offset + start
                        )
                if count < SMALL_HEADER_COUNT:
                    names[count] = start
                    count += 1
                else:
                    seen = {PyBytes_FromStringAndSize(<const char*>head + names[i] + 1, head[names[i]])
                            for i in range(count)}
            if seen is not None:
                key = PyBytes_FromStringAndSize(<const char*>name + 1, name_len)
                if key in seen:
                    raise HeaderError(
                        f"duplicate header name {_name_at(name)!r}", offset=offset + start
                    )
                seen.add(key)
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
