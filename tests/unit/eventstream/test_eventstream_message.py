"""Encoder and Message: typed header values, limits, equality across implementations."""

from __future__ import annotations

import contextlib
import importlib
import uuid
from datetime import UTC, datetime, timedelta, timezone
from types import ModuleType

import pytest
from eventstream_support import KIRO_HEADERS, decode_all

from kiro2api.eventstream import (
    MAX_HEADERS_LENGTH,
    MAX_MESSAGE_LENGTH,
    HeaderType,
    Int8,
    Int16,
    Int32,
    Int64,
    Timestamp,
)

ALL_TYPES = {
    "t": True,
    "f": False,
    "byte": Int8(-128),
    "short": Int16(32767),
    "int": Int32(-(2**31)),
    "long": Int64(2**63 - 1),
    "bytes": b"\x00\xff",
    "str": "héllo ✓",
    "ts": Timestamp(1_700_000_000_123),
    "uuid": uuid.UUID("01020304-0506-0708-090a-0b0c0d0e0f10"),
}


def _both() -> list[ModuleType]:
    mods = [importlib.import_module("kiro2api._eventstream_py")]
    with contextlib.suppress(ImportError):  # a missing build fails test_eventstream_impl.py
        mods.append(importlib.import_module("kiro2api._eventstream"))
    return mods


def test_every_type_round_trips_with_its_wire_type(impl: ModuleType) -> None:
    frame = impl.encode_message(ALL_TYPES, b"body")
    [message] = decode_all(impl, [frame])
    assert message.headers == ALL_TYPES
    assert {k: type(v) for k, v in message.headers.items()} == {
        k: type(v) for k, v in ALL_TYPES.items()
    }
    assert message == impl.Message(ALL_TYPES, b"body")
    assert impl.Message(ALL_TYPES, b"body").to_bytes() == frame


def test_both_encoders_produce_identical_bytes() -> None:
    frames = {m.__name__: m.encode_message(ALL_TYPES, bytearray(b"x" * 1000)) for m in _both()}
    assert len(set(frames.values())) == 1


def test_plain_int_must_say_its_width(impl: ModuleType) -> None:
    with pytest.raises(TypeError, match="Int32"):
        impl.encode_message({"n": 5}, b"")
    with pytest.raises(TypeError, match="unsupported header value type float"):
        impl.encode_message({"n": 1.5}, b"")
    with pytest.raises(TypeError, match="header names are str"):
        impl.encode_message({b"n": "v"}, b"")


@pytest.mark.parametrize(
    ("kind", "low", "high"),
    [(Int8, -128, 127), (Int16, -(2**15), 2**15 - 1), (Int32, -(2**31), 2**31 - 1)],
)
def test_sized_ints_check_their_range(kind: type[int], low: int, high: int) -> None:
    assert kind(low) == low
    assert kind(high) == high
    for bad in (low - 1, high + 1):
        with pytest.raises(ValueError, match=kind.__name__):
            kind(bad)
    assert repr(kind(3)) == f"{kind.__name__}(3)"


def test_timestamps_convert_to_and_from_datetimes() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=timezone(timedelta(hours=2)))
    stamp = Timestamp.from_datetime(moment)
    assert stamp == int(moment.timestamp() * 1000)
    assert stamp.to_datetime() == moment.astimezone(UTC)
    with pytest.raises(ValueError, match="naive"):
        Timestamp.from_datetime(datetime(2026, 1, 1))


def test_encoder_rejects_what_the_decoder_would(impl: ModuleType) -> None:
    with pytest.raises(ValueError, match="255 bytes"):
        impl.encode_message({"n" * 256: True}, b"")
    with pytest.raises(ValueError, match="65535 bytes"):
        impl.encode_message({"n": "v" * 65536}, b"")
    with pytest.raises(ValueError, match="header block"):
        impl.encode_message({f"h{i}": "v" * 60000 for i in range(3)}, b"")
    with pytest.raises(ValueError, match="exceeds"):
        impl.encode_message({}, b"p" * (MAX_MESSAGE_LENGTH - 15))
    assert MAX_HEADERS_LENGTH == 128 * 1024
    # The limits themselves are fine.
    assert len(impl.encode_message({"n" * 255: "v" * 65535}, b"")) == 16 + 1 + 255 + 1 + 2 + 65535


def test_messages_from_both_implementations_compare_equal() -> None:
    frame = _both()[0].encode_message(KIRO_HEADERS, b"{}")
    messages = [m.Decoder().feed(frame)[0] for m in _both()]
    messages += [m.Message(KIRO_HEADERS, b"{}") for m in _both()]
    for a in messages:
        for b in messages:
            assert a == b
            assert not a != b  # noqa: SIM202 - __ne__ is under test
            assert hash(a) == hash(b)
        assert a != impl_message_with(a, b"other")
        assert a != "not a message"


def impl_message_with(message: object, payload: bytes) -> object:
    """A message of the same class as ``message`` with a different payload."""
    return type(message)(KIRO_HEADERS, payload)


def test_equality_includes_the_wire_type(impl: ModuleType) -> None:
    assert impl.Message({"n": Int8(1)}) != impl.Message({"n": Int32(1)})
    assert impl.Message({"n": True}) != impl.Message({"n": Int8(1)})
    assert impl.Message({"n": Int8(1)}) == impl.Message({"n": Int8(1)})
    assert impl.Message({"a": "1", "b": "2"}) == impl.Message({"b": "2", "a": "1"})


def test_constructed_message_knows_its_frame(impl: ModuleType) -> None:
    message = impl.Message(KIRO_HEADERS, b'{"content":"Hi"}')
    assert message.event_type == "assistantResponseEvent"
    assert message.message_type == "event"
    assert message.exception_type is None
    frame = message.to_bytes()
    assert message.total_length == len(frame) == 124  # the example in protocol.md §5.1
    assert message.headers_length == 92
    assert message.prelude_crc == 0x3BDDCF78
    assert message.message_crc == 0xB02BABDC
    assert "assistantResponseEvent" in repr(message)
    with pytest.raises(TypeError):
        impl.Message({"n": 1})
    with pytest.raises(AttributeError):
        message.payload = b"x"  # type: ignore[misc]


def test_header_type_names_the_wire_codes() -> None:
    assert [int(t) for t in HeaderType] == list(range(10))
