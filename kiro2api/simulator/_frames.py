"""EventStream frames as the upstream sends them, built with our encoder.

Headers follow the AWS EventStream conventions: every frame has ``:message-type`` (``event``,
``exception`` or ``error``) and ``:content-type: application/json``; events add
``:event-type``, exceptions ``:exception-type``, errors ``:error-code`` and ``:error-message``.
Payloads are compact JSON (protocol.md §5.5).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping

import orjson

from kiro2api.eventstream import encode_message

__all__ = [
    "corrupt_crc",
    "error_frame",
    "event_frame",
    "exception_frame",
    "text_frame",
    "tool_use_id",
]

_JSON = "application/json"
#: The namespace upstream puts in front of exception names in ``__type``.
EXCEPTION_NAMESPACE = "com.amazon.aws.codewhisperer"


def event_frame(event_type: str, payload: Mapping[str, object]) -> bytes:
    """One ``:message-type: event`` frame."""
    headers = {":event-type": event_type, ":content-type": _JSON, ":message-type": "event"}
    return encode_message(headers, orjson.dumps(payload))


def text_frame(text: str) -> bytes:
    """One ``assistantResponseEvent`` carrying a text fragment."""
    return event_frame("assistantResponseEvent", {"content": text})


def exception_frame(exception_type: str, message: str) -> bytes:
    """One ``:message-type: exception`` frame, e.g. ``ThrottlingException``."""
    headers = {
        ":exception-type": exception_type,
        ":content-type": _JSON,
        ":message-type": "exception",
    }
    payload = {"__type": f"{EXCEPTION_NAMESPACE}#{exception_type}", "message": message}
    return encode_message(headers, orjson.dumps(payload))


def error_frame(code: str, message: str) -> bytes:
    """One ``:message-type: error`` frame."""
    headers = {
        ":error-code": code,
        ":error-message": message,
        ":content-type": _JSON,
        ":message-type": "error",
    }
    payload = {"__type": f"{EXCEPTION_NAMESPACE}#{code}", "message": message}
    return encode_message(headers, orjson.dumps(payload))


def corrupt_crc(frame: bytes, part: str = "message") -> bytes:
    """``frame`` with one CRC flipped: the ``message`` CRC (last 4 bytes) or the ``prelude`` one."""
    data = bytearray(frame)
    index = 11 if part == "prelude" else len(data) - 1
    data[index] ^= 0xFF
    return bytes(data)


def tool_use_id(seed: str) -> str:
    """A deterministic upstream-style id: ``tooluse_`` + 22 url-safe characters."""
    digest = hashlib.sha256(seed.encode()).digest()
    return "tooluse_" + base64.urlsafe_b64encode(digest).decode()[:22]
