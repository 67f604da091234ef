"""AWS EventStream codec (``application/vnd.amazon.eventstream``): the public API.

Other code imports only this module::

    from kiro2api.eventstream import Decoder, encode_message

    decoder = Decoder()
    for message in decoder.feed(chunk):
        if message.message_type == "event" and message.event_type == "assistantResponseEvent":
            ...
    decoder.close()  # raises if the stream ended inside a frame

The compiled module ``kiro2api._eventstream`` is used unless ``KIRO2API_NO_EXTENSIONS`` is set
(any non-empty value, as in ``setup.py``) or the interpreter is not CPython; then, or when the
extension was not built, the pure-Python twin ``kiro2api._eventstream_py`` serves. Both have
the same API, raise the same exceptions and produce equal messages. Type checkers always see
the twin (the yarl pattern).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Final

from kiro2api._eventstream_types import (
    MAX_HEADERS_LENGTH,
    MAX_MESSAGE_LENGTH,
    HeaderType,
    HeaderValue,
    Int8,
    Int16,
    Int32,
    Int64,
    Timestamp,
)
from kiro2api.errors import (
    EventStreamError,
    FrameLengthError,
    HeaderError,
    MessageChecksumError,
    PreludeChecksumError,
)

__all__ = [
    "IMPLEMENTATION",
    "MAX_HEADERS_LENGTH",
    "MAX_MESSAGE_LENGTH",
    "NO_EXTENSIONS",
    "Decoder",
    "EventStreamError",
    "FrameLengthError",
    "HeaderError",
    "HeaderType",
    "HeaderValue",
    "Int8",
    "Int16",
    "Int32",
    "Int64",
    "Message",
    "MessageChecksumError",
    "PreludeChecksumError",
    "Timestamp",
    "encode_message",
]

#: True when the pure-Python codec was asked for (``KIRO2API_NO_EXTENSIONS``) or is the only option.
NO_EXTENSIONS: Final = bool(os.environ.get("KIRO2API_NO_EXTENSIONS")) or (
    sys.implementation.name != "cpython"
)

if TYPE_CHECKING or NO_EXTENSIONS:
    from kiro2api._eventstream_py import Decoder, Message, encode_message
else:
    try:
        from kiro2api._eventstream import Decoder, Message, encode_message
    except ImportError:  # pragma: no cover - a missing build; tests/unit/eventstream catch it
        from kiro2api._eventstream_py import Decoder, Message, encode_message

#: Which codec is in use: ``"c"`` (compiled) or ``"py"`` (the twin).
IMPLEMENTATION: Final = "py" if Decoder.__module__.endswith("_py") else "c"
