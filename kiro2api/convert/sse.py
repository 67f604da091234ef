"""Server-sent-event framing and error bodies for the two client dialects.

Anthropic frames are ``event: <type>\\ndata: <json>\\n\\n``; OpenAI frames are
``data: <json>\\n\\n`` and the stream ends with ``data: [DONE]\\n\\n``. JSON is produced with
orjson, which returns bytes, so frames are assembled by joining bytes, never through ``str``.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from kiro2api.errors import Kiro2ApiError

__all__ = [
    "ANTHROPIC_PING",
    "OPENAI_DONE",
    "OPENAI_KEEPALIVE",
    "anthropic_error_body",
    "anthropic_frame",
    "openai_error_body",
    "openai_frame",
]

#: The Anthropic keep-alive frame.
ANTHROPIC_PING = b'event: ping\ndata: {"type":"ping"}\n\n'
#: The terminator of every OpenAI stream.
OPENAI_DONE = b"data: [DONE]\n\n"
#: An SSE comment: keeps an OpenAI stream alive, and clients skip it (OpenAI has no ping event).
OPENAI_KEEPALIVE = b": ping\n\n"


def anthropic_frame(event_type: str, data: Mapping[str, object]) -> bytes:
    """Frame one Anthropic SSE event.

    Args:
        event_type: The ``event:`` name; by convention equal to ``data["type"]``.
        data: The event's JSON object.

    Returns:
        ``event: <type>\\ndata: <json>\\n\\n`` as bytes.
    """
    return b"".join((b"event: ", event_type.encode(), b"\ndata: ", orjson.dumps(data), b"\n\n"))


def openai_frame(data: Mapping[str, object]) -> bytes:
    """Frame one OpenAI SSE chunk as ``data: <json>\\n\\n``."""
    return b"".join((b"data: ", orjson.dumps(data), b"\n\n"))


def anthropic_error_body(error: Kiro2ApiError) -> dict[str, object]:
    """The Anthropic error object for ``error``: ``{"type":"error","error":{"type","message"}}``.

    The same shape serves as the JSON body of an error response and as the ``data`` of an
    ``event: error`` frame.
    """
    return {"type": "error", "error": {"type": error.error_type, "message": error.message}}


def openai_error_body(error: Kiro2ApiError) -> dict[str, object]:
    """The OpenAI error object for ``error``: ``{"error":{"message","type","param","code"}}``."""
    return {
        "error": {
            "message": error.message,
            "type": error.openai_type,
            "param": error.param,
            "code": error.openai_code,
        }
    }
