"""Conversation ids: headers win; otherwise stable per conversation, distinct across them."""

from __future__ import annotations

import re
from typing import Any

from kiro2api.convert.anthropic_request import parse_anthropic_request
from kiro2api.convert.canonical import CanonicalRequest
from kiro2api.convert.ids import conversation_ids

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def req(*messages: dict[str, Any], system: str = "You are Claude Code.") -> CanonicalRequest:
    return parse_anthropic_request({"model": "m", "system": system, "messages": list(messages)})


FIRST = {"role": "user", "content": "fix the bug"}


def test_headers_win_case_insensitively() -> None:
    ids = conversation_ids(
        req(FIRST), {"x-conversation-id": "conv-1", "X-Agent-Continuation-ID": "agent-1"}
    )
    assert ids == ("conv-1", "agent-1")


def test_one_header_only_derives_the_other() -> None:
    conv, cont = conversation_ids(req(FIRST), {"X-Conversation-ID": "conv-1"})
    assert conv == "conv-1"
    assert UUID.fullmatch(cont)


def test_stable_across_turns_of_one_conversation() -> None:
    turn1 = conversation_ids(req(FIRST), {})
    turn3 = conversation_ids(
        req(
            FIRST,
            {"role": "assistant", "content": "done"},
            {"role": "user", "content": "thanks"},
        ),
        {},
    )
    assert turn1 == turn3
    assert all(UUID.fullmatch(i) for i in turn1)
    assert turn1[0] != turn1[1]


def test_different_conversations_differ() -> None:
    a = conversation_ids(req(FIRST), {})
    assert conversation_ids(req({"role": "user", "content": "write docs"}), {}) != a
    assert conversation_ids(req(FIRST, system="Another agent."), {}) != a
    # Same prompt in two sessions of the client: the session header separates them.
    s1 = conversation_ids(req(FIRST), {"X-Claude-Code-Session-Id": "s1"})
    s2 = conversation_ids(req(FIRST), {"x-claude-code-session-id": "s2"})
    assert s1 != s2
    assert s1 == conversation_ids(req(FIRST), {"x-claude-code-session-id": "s1"})


def test_blank_header_is_ignored() -> None:
    assert conversation_ids(req(FIRST), {"X-Conversation-ID": "  "}) == conversation_ids(
        req(FIRST), {}
    )


def test_framework_headers_object() -> None:
    from werkzeug.datastructures import Headers

    headers = Headers([("X-Conversation-Id", "conv-9"), ("x-agent-continuation-id", "agent-9")])
    assert conversation_ids(req(FIRST), headers) == ("conv-9", "agent-9")
    session = Headers([("X-Claude-Code-Session-Id", "s1")])
    assert conversation_ids(req(FIRST), session) == conversation_ids(
        req(FIRST), {"x-claude-code-session-id": "s1"}
    )
