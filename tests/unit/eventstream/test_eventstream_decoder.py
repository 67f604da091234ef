"""Decoder behaviour a caller relies on: chunking, limits, error offsets, dead-after-error."""

from __future__ import annotations

import struct
import time
from types import ModuleType

import pytest
from eventstream_support import (
    KIRO_HEADERS,
    byte_by_byte,
    decode_all,
    header,
    outcome,
    prelude,
    raw_frame,
    split,
    string_header,
)

from kiro2api.errors import (
    EventStreamError,
    FrameLengthError,
    HeaderError,
    MessageChecksumError,
    PreludeChecksumError,
)
from kiro2api.eventstream import MAX_HEADERS_LENGTH, MAX_MESSAGE_LENGTH, Int32


def _stream(impl: ModuleType, count: int) -> tuple[bytes, list[bytes]]:
    payloads = [b'{"content":"%d"}' % i for i in range(count)]
    return b"".join(impl.encode_message(KIRO_HEADERS, p) for p in payloads), payloads


def test_many_frames_in_one_chunk_and_any_split(impl: ModuleType) -> None:
    stream, payloads = _stream(impl, 20)
    for chunks in ([stream], byte_by_byte(stream), split(stream, range(0, len(stream), 7))):
        messages = decode_all(impl, chunks)
        assert [m.payload for m in messages] == payloads
        assert {m.event_type for m in messages} == {"assistantResponseEvent"}


def test_feed_accepts_bytes_bytearray_and_memoryview(impl: ModuleType) -> None:
    stream, payloads = _stream(impl, 3)
    for chunk in (stream, bytearray(stream), memoryview(stream), memoryview(bytearray(stream))):
        assert [m.payload for m in impl.Decoder().feed(chunk)] == payloads
    decoder = impl.Decoder()
    assert decoder.feed(b"") == []
    assert decoder.feed(memoryview(stream)[:5]) == []
    assert decoder.pending == 5


def test_messages_do_not_alias_the_callers_buffer(impl: ModuleType) -> None:
    stream = bytearray(impl.encode_message(KIRO_HEADERS, b"payload"))
    [message] = impl.Decoder().feed(stream)
    stream[-11:] = b"X" * 11
    assert message.payload == b"payload"


def test_total_length_2_31_fails_after_twelve_bytes(impl: ModuleType) -> None:
    head = prelude(2**31, 0)
    decoder = impl.Decoder()
    for i in range(11):
        assert decoder.feed(head[i : i + 1]) == []
    with pytest.raises(FrameLengthError) as info:
        decoder.feed(head[11:])
    assert info.value.offset == 0
    assert "2147483648" in str(info.value)


@pytest.mark.parametrize(
    ("total", "headers_length"),
    [
        (15, 0),  # shorter than prelude + message CRC
        (0, 0),
        (MAX_MESSAGE_LENGTH + 1, 0),
        (40, 25),  # headers longer than total - 16
        (MAX_HEADERS_LENGTH + 1 + 16, MAX_HEADERS_LENGTH + 1),  # fits, but over 128 KiB
    ],
)
def test_length_limits_are_checked_on_the_prelude(
    impl: ModuleType, total: int, headers_length: int
) -> None:
    stream = impl.encode_message({}, b"ok") + prelude(total, headers_length)
    with pytest.raises(FrameLengthError) as info:
        decode_all(impl, [stream])
    assert info.value.offset == 18


def test_largest_allowed_frame_decodes(impl: ModuleType) -> None:
    payload = b"z" * (MAX_MESSAGE_LENGTH - 16)
    frame = impl.encode_message({}, payload)
    assert len(frame) == MAX_MESSAGE_LENGTH
    [message] = decode_all(impl, split(frame, range(0, len(frame), 1 << 20)))
    assert message.payload == payload


def test_big_frame_in_small_chunks_is_linear(impl: ModuleType) -> None:
    # A quadratic buffer would copy ~2 MiB on each of 32768 calls (64 GiB): minutes, not ms.
    frame = impl.encode_message(KIRO_HEADERS, b"q" * (2 << 20))
    decoder = impl.Decoder()
    started = time.perf_counter()
    got = [m for i in range(0, len(frame), 64) for m in decoder.feed(frame[i : i + 64])]
    assert time.perf_counter() - started < 5
    assert len(got) == 1
    assert got[0].payload == b"q" * (2 << 20)


def test_checksum_errors_report_the_frame_offset(impl: ModuleType) -> None:
    good = impl.encode_message(KIRO_HEADERS, b"{}")
    bad_payload = bytearray(good)
    bad_payload[-6] ^= 1
    bad_prelude = bytearray(good)
    bad_prelude[9] ^= 1
    for bad, error in ((bad_payload, MessageChecksumError), (bad_prelude, PreludeChecksumError)):
        stream = good * 2 + bytes(bad) + good
        for chunks in ([stream], byte_by_byte(stream)):
            seen, err = outcome(impl, chunks)
            assert type(err) is error
            assert err.offset == 2 * len(good)
            assert f"at stream offset {2 * len(good)}" in str(err)
            if len(chunks) > 1:
                assert len(seen) == 2  # frames before the bad one were delivered


@pytest.mark.parametrize(
    ("block", "offset_in_block", "words"),
    [
        (header(b"k", 10), 0, "unknown header value type 10"),
        (header(b"a", 0) + header(b"k", 255), 3, "unknown header value type 255"),
        (header(b"a", 0) + header(b"a", 1), 3, "duplicate header name 'a'"),
        (string_header(b"k", b"\xff"), 0, "not valid UTF-8"),
        (string_header(b"\xc3\x28", b"v"), 0, "not valid UTF-8"),
        (header(b"k", 7, b"\x00\x09abc"), 0, "runs past"),  # string longer than the block
        (header(b"k", 9, b"\x01" * 15), 0, "runs past"),  # uuid cut short
        (header(b"k", 5, b"\x01" * 7), 0, "runs past"),  # long cut short
        (b"\x05abc", 0, "runs past"),  # name runs past the block
        (b"\x01a", 0, "runs past"),  # no type byte
    ],
)
def test_malformed_headers_raise_header_error_at_the_header(
    impl: ModuleType, block: bytes, offset_in_block: int, words: str
) -> None:
    first = impl.encode_message({"x": "y"}, b"")
    stream = first + raw_frame(block, b"payload")
    with pytest.raises(HeaderError) as info:
        decode_all(impl, [stream])
    assert words in str(info.value)
    assert info.value.offset == len(first) + 12 + offset_in_block


def test_many_headers_with_a_late_duplicate(impl: ModuleType) -> None:
    block = b"".join(header(b"h%03d" % i, 0) for i in range(300))
    [message] = decode_all(impl, [raw_frame(block)])
    assert len(message.headers) == 300
    with pytest.raises(HeaderError, match="duplicate header name 'h007'"):
        decode_all(impl, [raw_frame(block + header(b"h007", 1))])


def test_a_failed_decoder_refuses_more_input(impl: ModuleType) -> None:
    good = impl.encode_message(KIRO_HEADERS, b"{}")
    decoder = impl.Decoder()
    with pytest.raises(PreludeChecksumError) as first:
        decoder.feed(good + struct.pack(">III", 16, 0, 0))
    for again in (lambda: decoder.feed(good), lambda: decoder.feed(b""), decoder.close):
        with pytest.raises(PreludeChecksumError) as info:
            again()
        assert info.value.offset == first.value.offset == len(good)


def test_close_detects_a_stream_cut_inside_a_frame(impl: ModuleType) -> None:
    good = impl.encode_message(KIRO_HEADERS, b"{}")
    decoder = impl.Decoder()
    assert len(decoder.feed(good + good[:20])) == 1
    assert decoder.pending == 20
    with pytest.raises(EventStreamError, match="stream ended inside a frame") as info:
        decoder.close()
    assert info.value.offset == len(good)
    complete = impl.Decoder()
    complete.feed(good)
    complete.close()  # a clean end is silent
    assert complete.pending == 0


def test_hot_path_accessors(impl: ModuleType) -> None:
    frames = [
        impl.encode_message(KIRO_HEADERS, b"{}"),
        impl.encode_message(
            {":message-type": "exception", ":exception-type": "ThrottlingException"}, b"{}"
        ),
        impl.encode_message({":message-type": "error", ":error-code": "InternalError"}, b"{}"),
        impl.encode_message({":event-type": Int32(1)}, b"{}"),  # not a string: not an event type
    ]
    got = [
        (m.message_type, m.event_type, m.exception_type)
        for m in decode_all(impl, [b"".join(frames)])
    ]
    assert got == [
        ("event", "assistantResponseEvent", None),
        ("exception", None, "ThrottlingException"),
        ("error", None, "InternalError"),
        (None, None, None),
    ]


def test_repeated_header_blocks_still_give_independent_header_dicts(impl: ModuleType) -> None:
    stream, _ = _stream(impl, 2)
    first, second = decode_all(impl, [stream])
    headers = first.headers
    headers[":event-type"] = "changed"
    assert first.headers == second.headers == KIRO_HEADERS


def test_errors_are_the_shared_classes(impl: ModuleType) -> None:
    with pytest.raises(EventStreamError) as info:
        decode_all(impl, [struct.pack(">III", 16, 0, 0)])
    assert type(info.value) is PreludeChecksumError
    assert info.value.error_type == "api_error"
