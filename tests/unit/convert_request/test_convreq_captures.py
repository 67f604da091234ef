"""Replay of the Claude Code 2.1.330 captures through the parser and the builder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from convreq_helpers import assert_accepted

from kiro2api.convert.anthropic_request import parse_anthropic_request, parse_count_tokens_request
from kiro2api.convert.ids import conversation_ids
from kiro2api.convert.request_tokens import estimate_input_tokens
from kiro2api.convert.upstream_request import ConvertSettings, build_upstream_request

CAPTURES = Path(__file__).resolve().parents[3].parent / "shared/testdata/claude-code/2.1.330"


def _strings(value: object) -> list[str]:
    """Every string inside a decoded JSON value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def _load(kind: str) -> list[Any]:
    if not CAPTURES.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason="captures not available"))]
    out = []
    for path in sorted(CAPTURES.glob("*.json")):
        capture = orjson.loads(path.read_bytes())
        route = capture["path"].split("?")[0]
        if (kind == "messages" and route == "/v1/messages") or (
            kind == "count" and route == "/v1/messages/count_tokens"
        ):
            out.append(pytest.param(capture, id=path.stem))
    return out


@pytest.mark.parametrize("capture", _load("messages"))
def test_messages_capture_converts_to_an_accepted_body(capture: dict[str, Any]) -> None:
    req = parse_anthropic_request(capture["body"])
    conv, cont = conversation_ids(req, capture["headers"])
    out = build_upstream_request(req, ConvertSettings(), conversation_id=conv, continuation_id=cont)
    assert_accepted(out.body)
    state = orjson.loads(out.body)["conversationState"]
    current = state["currentMessage"]["userInputMessage"]
    tools = current["userInputMessageContext"].get("tools", [])
    names = {t["toolSpecification"]["name"] for t in tools}
    assert "DeferredToolPlaceholder" not in names
    assert all("$schema" not in t["toolSpecification"]["inputSchema"]["json"] for t in tools)
    # The system-role environment message is folded in, never lost.
    text = "\n".join(_strings(state))
    for message in capture["body"]["messages"]:
        if message["role"] == "system":
            content = message["content"]
            first = content if isinstance(content, str) else content[0]["text"]
            assert first[:60] in text
    assert out.model_id in {"claude-opus-4.6", "claude-sonnet-4.5", "claude-haiku-4.5"}
    assert out.input_tokens > 0


@pytest.mark.parametrize("capture", _load("count"))
def test_count_tokens_capture_parses(capture: dict[str, Any]) -> None:
    req = parse_count_tokens_request(capture["body"])
    assert estimate_input_tokens(req) > 0


def test_image_tool_result_capture_moves_image_to_user_message() -> None:
    capture = orjson.loads((CAPTURES / "p-image-tool-result.json").read_bytes())
    req = parse_anthropic_request(capture["body"])
    out = build_upstream_request(req, ConvertSettings(), conversation_id="c", continuation_id="a")
    current = orjson.loads(out.body)["conversationState"]["currentMessage"]["userInputMessage"]
    assert [i["format"] for i in current["images"]] == ["png"]
    [result] = current["userInputMessageContext"]["toolResults"]
    assert result["toolUseId"] == "toolu_3efaf050c9ce4175b526839b"
