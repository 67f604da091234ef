"""Property tests: round trips, the two implementations against each other and botocore.

botocore's ``EventStreamBuffer`` is the oracle for accept/reject. Deliberate differences,
each checked below rather than skipped blindly:

* Length limits. We reject, on the 12-byte prelude, ``total_length`` outside [16, 16 MiB]
  and ``headers_length`` over ``total_length - 16`` (FrameLengthError). botocore has no lower
  bound, allows payloads up to 24 MiB and computes a negative payload length without
  complaint, so on such preludes it waits for bytes or mis-slices. No comparison is made once
  we raised FrameLengthError.
* Truncated header values. botocore slices a byte-array, string or uuid value that runs past
  the end of the header block and accepts the short value; we reject it (HeaderError "runs
  past the header block").
* Lost messages. On an error we raise at once; messages completed earlier in the same
  ``feed`` call are not returned, so ours are a prefix of botocore's.
"""

from __future__ import annotations

import importlib
import uuid
from types import ModuleType
from typing import Any

from eventstream_support import (
    as_botocore,
    botocore_outcome,
    botocore_value,
    outcome,
    prelude,
    raw_frame,
    split,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiro2api.errors import EventStreamError, FrameLengthError, HeaderError
from kiro2api.eventstream import Int8, Int16, Int32, Int64, Timestamp

PY = importlib.import_module("kiro2api._eventstream_py")
try:
    C: ModuleType | None = importlib.import_module("kiro2api._eventstream")
except ImportError:  # test_eventstream_impl.py fails the run unless that is intended
    C = None
IMPLS = [m for m in (PY, C) if m is not None]

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

names = st.text(max_size=12).filter(lambda s: len(s.encode()) <= 255)
values = st.one_of(
    st.booleans(),
    st.integers(-(2**7), 2**7 - 1).map(Int8),
    st.integers(-(2**15), 2**15 - 1).map(Int16),
    st.integers(-(2**31), 2**31 - 1).map(Int32),
    st.integers(-(2**63), 2**63 - 1).map(Int64),
    st.integers(-(2**63), 2**63 - 1).map(Timestamp),
    st.binary(max_size=40),
    st.text(max_size=40),
    st.uuids(),
)
headers_st = st.dictionaries(names, values, max_size=6)
payloads = st.binary(max_size=200)
messages_st = st.lists(st.tuples(headers_st, payloads), min_size=1, max_size=4)
cuts = st.lists(st.integers(min_value=0, max_value=2000), max_size=8)


def _key(result: tuple[list[Any], EventStreamError | None]) -> tuple[Any, ...]:
    messages, error = result
    shape = None if error is None else (type(error), error.offset)
    return [(m.headers, m.payload) for m in messages], shape


@SETTINGS
@given(messages=messages_st, cut_points=cuts)
def test_round_trip_in_both_implementations(
    messages: list[tuple[dict[str, Any], bytes]], cut_points: list[int]
) -> None:
    stream = b"".join(PY.encode_message(h, p) for h, p in messages)
    for impl in IMPLS:
        assert b"".join(impl.encode_message(h, p) for h, p in messages) == stream
        decoded, error = outcome(impl, split(stream, cut_points))
        assert error is None
        assert decoded == [impl.Message(h, p) for h, p in messages]
        assert [m.to_bytes() for m in decoded] == [impl.encode_message(h, p) for h, p in messages]


@SETTINGS
@given(messages=messages_st, cut_points=cuts)
def test_botocore_decodes_what_we_encode(
    messages: list[tuple[dict[str, Any], bytes]], cut_points: list[int]
) -> None:
    stream = b"".join(PY.encode_message(h, p) for h, p in messages)
    decoded, failed = botocore_outcome(split(stream, cut_points))
    assert not failed
    expected = [({k: botocore_value(v) for k, v in h.items()}, p) for h, p in messages]
    assert decoded == expected


def _check_against_botocore(chunks: list[bytes]) -> None:
    results = [outcome(impl, chunks) for impl in IMPLS]
    # The implementations agree exactly: same messages, or the same error class and offset.
    assert len({repr(_key(r)) for r in results}) == 1, results
    ours, error = results[0]
    if isinstance(error, FrameLengthError):
        return  # botocore has no equivalent check (module docstring)
    theirs, failed = botocore_outcome(chunks)
    if isinstance(error, HeaderError) and not failed:
        assert "runs past the header block" in error.message
        return
    assert (error is not None) == failed, (error, theirs)
    mine = [as_botocore(m) for m in ours]
    if failed:
        assert mine == theirs[: len(mine)]
    else:
        assert mine == theirs


@SETTINGS
@given(data=st.binary(max_size=300), cut_points=cuts)
def test_random_bytes_agree_with_botocore(data: bytes, cut_points: list[int]) -> None:
    _check_against_botocore(split(data, cut_points))


mutations = st.lists(
    st.tuples(
        st.sampled_from(["flip", "insert", "delete", "truncate", "u32"]),
        st.integers(min_value=0, max_value=10_000),
        st.integers(min_value=0, max_value=2**32 - 1),
    ),
    min_size=1,
    max_size=3,
)


def _mutate(data: bytes, edits: list[tuple[str, int, int]]) -> bytes:
    buf = bytearray(data)
    for op, where, value in edits:
        at = where % (len(buf) + 1)
        if op == "flip" and at < len(buf):
            buf[at] ^= 1 << (value % 8)
        elif op == "insert":
            buf[at:at] = bytes([value & 0xFF])
        elif op == "delete":
            del buf[at : at + 1]
        elif op == "truncate":
            del buf[at:]
        elif op == "u32":
            buf[at : at + 4] = value.to_bytes(4, "big")
    return bytes(buf)


@SETTINGS
@given(messages=messages_st, edits=mutations, cut_points=cuts)
def test_mutated_streams_agree_with_botocore(
    messages: list[tuple[dict[str, Any], bytes]],
    edits: list[tuple[str, int, int]],
    cut_points: list[int],
) -> None:
    stream = b"".join(PY.encode_message(h, p) for h, p in messages)
    _check_against_botocore(split(_mutate(stream, edits), cut_points))


@SETTINGS
@given(
    header_map=headers_st,
    edits=mutations,
    payload=payloads,
    tail=st.binary(max_size=40),
    cut_points=cuts,
)
def test_mutated_header_blocks_with_valid_checksums_agree_with_botocore(
    header_map: dict[str, Any],
    edits: list[tuple[str, int, int]],
    payload: bytes,
    tail: bytes,
    cut_points: list[int],
) -> None:
    # Re-framing with correct lengths and CRCs gets the damage past both checksums, into
    # the header parser, where the decoders can really disagree.
    block = PY.encode_message(header_map, b"")[12:-4]
    frame = raw_frame(_mutate(block, edits), payload)
    _check_against_botocore(split(frame + tail, cut_points))


@SETTINGS
@given(
    total=st.integers(0, 2**32 - 1) | st.integers(0, 64),
    headers_length=st.integers(0, 2**32 - 1) | st.integers(0, 64),
    rest=st.binary(max_size=80),
    cut_points=cuts,
)
def test_preludes_with_valid_checksums_agree(
    total: int, headers_length: int, rest: bytes, cut_points: list[int]
) -> None:
    _check_against_botocore(split(prelude(total, headers_length) + rest, cut_points))


@SETTINGS
@given(data=st.binary(max_size=400), cut_a=cuts, cut_b=cuts)
def test_only_event_stream_errors_escape_and_splitting_changes_nothing(
    data: bytes, cut_a: list[int], cut_b: list[int]
) -> None:
    for impl in IMPLS:
        keys = set()
        for chunks in (split(data, cut_a), split(data, cut_b), [data]):
            try:
                result = outcome(impl, chunks)
            except Exception as exc:  # the invariant under test: nothing else escapes
                raise AssertionError(f"{impl.__name__} raised {exc!r}") from exc
            messages, error = result
            keys.add(
                repr(
                    (
                        [(m.headers, m.payload) for m in messages] if error is None else None,
                        None if error is None else (type(error), error.offset),
                    )
                )
            )
        assert len(keys) == 1


def _damaged(text: str, where: int, byte: int) -> bytes:
    raw = bytearray(text.encode("utf-8", "surrogatepass"))
    if raw:
        raw[where % len(raw)] = byte
    return bytes(raw)


# Valid UTF-8 from every plane, lone surrogates, and valid text with one byte replaced:
# random binary alone almost never forms the multi-byte edge cases.
utf8ish = st.one_of(
    st.binary(min_size=1, max_size=30),
    st.text(min_size=1, max_size=10).map(str.encode),
    st.builds(_damaged, st.text(max_size=10), st.integers(0, 100), st.integers(0, 255)),
    st.builds(_damaged, st.characters(codec=None), st.integers(0, 3), st.integers(0x80, 0xFF)),
    st.integers(0xD800, 0xDFFF).map(lambda c: chr(c).encode("utf-8", "surrogatepass")),
)


@SETTINGS
@given(
    raw=utf8ish,
    kind=st.sampled_from([6, 7]),
    name=st.binary(max_size=8),
)
def test_utf8_validation_matches_python(raw: bytes, kind: int, name: bytes) -> None:
    block = bytes([len(name)]) + name + bytes([kind]) + len(raw).to_bytes(2, "big") + raw
    for impl in IMPLS:
        [_], error = outcome(impl, [raw_frame(b"")])  # a healthy decoder first
        assert error is None
        messages, error = outcome(impl, [raw_frame(block)])
        try:
            name.decode("utf-8")
            if kind == 7:
                raw.decode("utf-8")
        except UnicodeDecodeError:
            assert isinstance(error, HeaderError)
            assert "UTF-8" in error.message
        else:
            assert error is None
            value = messages[0].headers[name.decode()]
            assert value == (raw.decode() if kind == 7 else raw)


def test_uuid_values_are_uuid_objects() -> None:
    value = uuid.uuid4()
    for impl in IMPLS:
        [message] = impl.Decoder().feed(impl.encode_message({"id": value}, b""))
        assert message.headers["id"] == value
