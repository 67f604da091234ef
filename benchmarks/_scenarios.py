"""The requests of each scenario, as the proxy sees them and as the simulator sees them directly.

The direct request is the proxy's own conversion of the same Anthropic request (the library's
converter, so the simulator does exactly the same work on both paths); it is sent with an access
token of a separate simulator account and its EventStream answer is read to the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from _load import RequestSpec
from _stack import CLIENT_KEY, Stack

from kiro2api.convert.anthropic_request import parse_anthropic_request
from kiro2api.convert.upstream_request import ConvertSettings, build_upstream_request

__all__ = [
    "SCENARIOS",
    "Scenario",
    "count_tokens_spec",
    "direct_spec",
    "healthz_spec",
    "proxy_spec",
]

_MODEL = "claude-sonnet-4-5"
_WRITE_TOOL = {
    "name": "Write",
    "description": "Write a file",
    "input_schema": {
        "type": "object",
        "properties": {"file_path": {"type": "string"}, "content": {"type": "string"}},
        "required": ["file_path", "content"],
    },
}


@dataclass(frozen=True, slots=True)
class Scenario:
    """A named workload.

    Attributes:
        name: Key in the results.
        title: What a table row calls it.
        text: The user message (simulator directives pick the answer).
        stream: Whether the client asks for SSE.
        tools: Tool definitions to declare.
        expect_proxy: Marker of a complete proxy answer.
    """

    name: str
    title: str
    text: str
    stream: bool
    tools: tuple[dict[str, Any], ...] = ()
    expect_proxy: bytes = b"message_stop"


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "nonstream",
            "1. non-streaming short answer",
            "Hello from the benchmark, please answer briefly.",
            stream=False,
            expect_proxy=b'"stop_reason":"end_turn"',
        ),
        Scenario("stream200", "2. stream, 200 events", "[[sim:long events=200 size=16]]", True),
        Scenario("stream5000", "3. stream, 5,000 events", "[[sim:long events=5000 size=16]]", True),
        Scenario(
            "tool200k",
            "4. tool call, 200 KB input",
            "[[sim:tool name=Write size=200000]]",
            True,
            tools=(_WRITE_TOOL,),
        ),
    )
}


def anthropic_body(
    text: str, *, stream: bool, tools: tuple[dict[str, Any], ...] = ()
) -> dict[str, Any]:
    """An Anthropic Messages request with one user message."""
    body: dict[str, Any] = {
        "model": _MODEL,
        "max_tokens": 4096,
        "stream": stream,
        "messages": [{"role": "user", "content": text}],
    }
    if tools:
        body["tools"] = list(tools)
    return body


def _proxy_headers() -> dict[str, str]:
    return {
        "x-api-key": CLIENT_KEY,
        "anthropic-version": "2023-06-01",
        "content-type": "application/json",
    }


def proxy_spec(stack: Stack, scenario: Scenario, text: str | None = None) -> RequestSpec:
    """The scenario's request to the proxy's ``/v1/messages``."""
    body = anthropic_body(text or scenario.text, stream=scenario.stream, tools=scenario.tools)
    return RequestSpec(
        "POST",
        f"{stack.proxy_url}/v1/messages",
        _proxy_headers(),
        orjson.dumps(body),
        scenario.expect_proxy,
    )


def direct_spec(stack: Stack, scenario: Scenario, text: str | None = None) -> RequestSpec:
    """The same request, converted, straight to the simulator's ``generateAssistantResponse``."""
    body = anthropic_body(text or scenario.text, stream=scenario.stream, tools=scenario.tools)
    upstream = build_upstream_request(
        parse_anthropic_request(body),
        ConvertSettings(),
        conversation_id="bench-conversation",
        continuation_id="bench-continuation",
    )
    headers = {
        "content-type": "application/json",
        "accept": "application/vnd.amazon.eventstream",
        "authorization": f"Bearer {stack.access_token}",
    }
    # Every complete upstream answer ends with a contextUsageEvent frame.
    return RequestSpec(
        "POST",
        f"{stack.sim_url}/generateAssistantResponse",
        headers,
        upstream.body,
        b"contextUsageEvent",
    )


def count_tokens_spec(stack: Stack) -> RequestSpec:
    """A ``count_tokens`` call shaped like Claude Code's: system prompt, history and tools."""
    tools = [
        {**_WRITE_TOOL, "name": f"Tool{i}", "description": f"Tool number {i}. " * 20}
        for i in range(12)
    ]
    body = {
        "model": _MODEL,
        "system": "You are a coding assistant. " * 40,
        "messages": [
            {"role": "user", "content": "Please read the file and fix the bug. " * 10},
            {"role": "assistant", "content": "I will read it first. " * 10},
            {"role": "user", "content": "Thanks, go ahead. " * 10},
        ],
        "tools": tools,
    }
    return RequestSpec(
        "POST",
        f"{stack.proxy_url}/v1/messages/count_tokens",
        _proxy_headers(),
        orjson.dumps(body),
        b"input_tokens",
    )


def healthz_spec(stack: Stack) -> RequestSpec:
    """The proxy's cheapest route: the floor that ``count_tokens`` is compared with."""
    return RequestSpec("GET", f"{stack.proxy_url}/healthz", {}, None, b'"ok"')


def trickle_text(events: int, interval_ms: int) -> str:
    """The slow-stream directive: one event every ``interval_ms``."""
    return f"[[sim:trickle events={events} interval_ms={interval_ms}]]"
