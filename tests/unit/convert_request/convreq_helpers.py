"""Helpers shared by the request-conversion tests: build a body and check it upstream-style."""

from __future__ import annotations

from typing import Any

import orjson

from kiro2api.convert.anthropic_request import parse_anthropic_request
from kiro2api.convert.openai_request import parse_openai_request
from kiro2api.convert.upstream_request import (
    ConvertSettings,
    UpstreamRequest,
    build_upstream_request,
)
from kiro2api.simulator._validate import find_violations

#: An 8x8 red PNG (the image of the Claude Code capture).
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAEklEQVR4nGP4z8CAFWEXHbQSACj/"
    "P8Fu7N9hAAAAAElFTkSuQmCC"
)
CONV_ID = "11111111-2222-5333-8444-555555555555"
CONT_ID = "66666666-7777-5888-9999-aaaaaaaaaaaa"


def build(
    req_body: dict[str, Any], *, settings: ConvertSettings | None = None, openai: bool = False
) -> UpstreamRequest:
    """Parse a client body and build the upstream body, asserting the upstream accepts it."""
    req = parse_openai_request(req_body) if openai else parse_anthropic_request(req_body)
    out = build_upstream_request(
        req, settings or ConvertSettings(), conversation_id=CONV_ID, continuation_id=CONT_ID
    )
    assert_accepted(out.body)
    return out


def state(out: UpstreamRequest) -> dict[str, Any]:
    """The decoded ``conversationState`` of a built request."""
    result: dict[str, Any] = orjson.loads(out.body)["conversationState"]
    return result


def current(out: UpstreamRequest) -> dict[str, Any]:
    """The current ``userInputMessage`` of a built request."""
    msg: dict[str, Any] = state(out)["currentMessage"]["userInputMessage"]
    return msg


def roles(out: UpstreamRequest) -> list[str]:
    """History roles, ``user``/``assistant``, in order."""
    return [
        "user" if "userInputMessage" in item else "assistant"
        for item in state(out)["history"] or []
    ]


def assert_accepted(body: bytes) -> None:
    """The body passes the simulator's upstream validation and alternates properly."""
    decoded = orjson.loads(body)
    violations = find_violations(decoded, body_size=len(body))
    assert violations == [], [v.to_json() for v in violations]
    history = decoded["conversationState"]["history"] or []
    kinds = ["userInputMessage" in item for item in history]
    assert kinds == [i % 2 == 0 for i in range(len(kinds))]
