"""Upstream ``conversationId`` / ``agentContinuationId`` for a request (protocol.md §2.3.1).

The original derived both from client IP, User-Agent and the current clock hour, so every
conversation of one client within an hour shared one id and one conversation changed id at
the top of each hour. Here:

* the ``X-Conversation-ID`` / ``X-Agent-Continuation-ID`` request headers win, verbatim;
* otherwise the ids are derived from the conversation itself: a hash of the system prompt, the
  first user message's text and, when the client sends one, its session header
  (Claude Code's ``X-Claude-Code-Session-Id``). Every request of one conversation carries the
  same system prompt and first message, so it keeps one id; different conversations differ.

Ids are UUID-shaped (version 5 / RFC 4122 variant bits over a SHA-256 digest), as the
upstream's own clients send.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from typing import Protocol

from kiro2api.convert.canonical import CanonicalRequest, TextBlock

__all__ = ["HeaderLookup", "conversation_ids"]

_CONVERSATION_HEADER = "x-conversation-id"
_CONTINUATION_HEADER = "x-agent-continuation-id"
_SESSION_HEADERS = ("x-claude-code-session-id", "x-session-id")


class HeaderLookup(Protocol):
    """The request headers as :func:`conversation_ids` reads them (``dict`` or ``Headers``)."""

    def get(self, key: str, /) -> str | None:
        """The value of ``key``, or ``None``."""
        ...

    def items(self) -> Iterable[tuple[str, str]]:
        """All ``(name, value)`` pairs."""
        ...


def _header(headers: HeaderLookup, name: str) -> str | None:
    """Case-insensitive header lookup that works for plain dicts and multidicts alike."""
    value = headers.get(name)
    if value is None:
        for key, candidate in headers.items():
            if key.lower() == name:
                value = candidate
                break
    if value is None:
        return None
    value = value.strip()
    return value or None


def _guid(namespace: str, key: bytes) -> str:
    digest = hashlib.sha256(namespace.encode() + b"\x00" + key).digest()
    return str(uuid.UUID(bytes=digest[:16], version=5))


def _conversation_key(req: CanonicalRequest, session: str | None) -> bytes:
    first_user = ""
    for turn in req.turns:
        if turn.role == "user":
            first_user = "\n".join(b.text for b in turn.blocks if isinstance(b, TextBlock))
            break
    hasher = hashlib.sha256()
    for part in (session or "", req.system, first_user):
        encoded = part.encode()
        # Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
        hasher.update(len(encoded).to_bytes(8, "big") + encoded)
    return hasher.digest()


def conversation_ids(req: CanonicalRequest, headers: HeaderLookup) -> tuple[str, str]:
    """The ``(conversationId, agentContinuationId)`` to send upstream.

    Args:
        req: The canonical request.
        headers: The client's request headers (any case).

    Returns:
        Header values when present, otherwise ids stable for this conversation.
    """
    conversation = _header(headers, _CONVERSATION_HEADER)
    continuation = _header(headers, _CONTINUATION_HEADER)
    if conversation is None or continuation is None:
        session = next((v for h in _SESSION_HEADERS if (v := _header(headers, h))), None)
        key = _conversation_key(req, session)
        conversation = conversation or _guid("conversation", key)
        continuation = continuation or _guid("continuation", key)
    return conversation, continuation
