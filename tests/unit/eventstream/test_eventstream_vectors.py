"""The official AWS EventStream conformance vectors, against both implementations."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from eventstream_support import VECTORS, byte_by_byte, decode_all, split

from kiro2api._eventstream_types import header_type
from kiro2api.errors import MessageChecksumError, PreludeChecksumError

POSITIVE = sorted(p.name for p in (VECTORS / "encoded" / "positive").iterdir())
NEGATIVE = {
    "corrupted_header_len": PreludeChecksumError,
    "corrupted_length": PreludeChecksumError,
    "corrupted_headers": MessageChecksumError,
    "corrupted_payload": MessageChecksumError,
}


def _read(kind: str, sign: str, name: str) -> bytes:
    return Path(VECTORS, kind, sign, name).read_bytes()


def _expected_value(entry: dict[str, Any]) -> object:
    kind, value = entry["type"], entry["value"]
    if kind == 6:
        return base64.b64decode(value)
    if kind == 7:
        return base64.b64decode(value).decode("utf-8")
    if kind == 9:
        return uuid.UUID(bytes=base64.b64decode(value))
    return value


def test_the_vector_set_is_complete() -> None:
    assert POSITIVE == [
        "all_headers",
        "empty_message",
        "int32_header",
        "payload_no_headers",
        "payload_one_str_header",
    ]
    assert sorted(p.name for p in (VECTORS / "encoded" / "negative").iterdir()) == sorted(NEGATIVE)


@pytest.mark.parametrize("name", POSITIVE)
@pytest.mark.parametrize("feeding", ["whole", "byte_by_byte", "every_two_way_split"])
def test_positive_vector_decodes_to_its_json(impl: ModuleType, name: str, feeding: str) -> None:
    frame = _read("encoded", "positive", name)
    expected = json.loads(_read("decoded", "positive", name))
    if feeding == "whole":
        runs = [[frame]]
    elif feeding == "byte_by_byte":
        runs = [byte_by_byte(frame)]
    else:
        runs = [split(frame, [cut]) for cut in range(1, len(frame))]
    for chunks in runs:
        [message] = decode_all(impl, chunks)
        assert message.total_length == expected["total_length"] == len(frame)
        assert message.headers_length == expected["headers_length"]
        assert message.prelude_crc == expected["prelude_crc"] & 0xFFFFFFFF
        assert message.message_crc == expected["message_crc"] & 0xFFFFFFFF
        assert message.payload == base64.b64decode(expected["payload"])
        headers = message.headers
        assert list(headers) == [h["name"] for h in expected["headers"]]
        for entry in expected["headers"]:
            value = headers[entry["name"]]
            assert header_type(value) == entry["type"], entry["name"]
            assert value == _expected_value(entry), entry["name"]
        # Decoded messages re-encode byte for byte, through either path.
        assert message.to_bytes() == frame
        assert impl.encode_message(headers, message.payload) == frame


@pytest.mark.parametrize(("name", "error"), sorted(NEGATIVE.items()))
@pytest.mark.parametrize("feeding", ["whole", "byte_by_byte"])
def test_negative_vector_raises_its_error(
    impl: ModuleType, name: str, error: type[Exception], feeding: str
) -> None:
    frame = _read("encoded", "negative", name)
    chunks = [frame] if feeding == "whole" else byte_by_byte(frame)
    with pytest.raises(error) as info:
        decode_all(impl, chunks)
    assert type(info.value) is error
    assert info.value.offset == 0  # type: ignore[attr-defined]
    assert "checksum mismatch" in str(info.value)


def test_corrupted_length_fails_on_the_twelfth_byte(impl: ModuleType) -> None:
    # total_length says 62 but the file has 61 bytes: waiting for the frame would hang.
    frame = _read("encoded", "negative", "corrupted_length")
    decoder = impl.Decoder()
    for i in range(11):
        assert decoder.feed(frame[i : i + 1]) == []
    with pytest.raises(PreludeChecksumError):
        decoder.feed(frame[11:12])
