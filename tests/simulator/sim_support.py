"""Helpers shared by the simulator tests: request bodies, starting a simulator, decoding answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import trio

from kiro2api.eventstream import Decoder, Message
from kiro2api.simulator import AccountConfig, Simulator, SimulatorConfig

SOCIAL_TOKEN = "aorSOCIAL-test-refresh-token-0001"
IDC_TOKEN = "aorIDC-test-refresh-token-0002"
IDC_CLIENT = ("idc-client-id", "idc-client-secret-0003")
API_KEY = "ksk_test_api_key_0004"


def accounts_config(*extra: AccountConfig, **options: Any) -> SimulatorConfig:
    """Three accounts (social ``s``, idc ``i``, apikey ``k``) plus ``extra``."""
    base = (
        AccountConfig(id="s", kind="social", refresh_token=SOCIAL_TOKEN, email="s@example.com"),
        AccountConfig(
            id="i",
            kind="idc",
            refresh_token=IDC_TOKEN,
            client_id=IDC_CLIENT[0],
            client_secret=IDC_CLIENT[1],
        ),
        AccountConfig(id="k", kind="apikey", api_key=API_KEY),
    )
    return SimulatorConfig(accounts=base + extra, **options)


async def start(nursery: trio.Nursery, config: SimulatorConfig | None = None) -> Simulator:
    """Start a simulator in ``nursery`` (stopped when the nursery is cancelled)."""
    sim = Simulator(config or accounts_config())
    await nursery.start(sim.serve)
    return sim


def tool_spec(name: str = "Bash", description: str = "Run a shell command") -> dict[str, Any]:
    """One upstream tool declaration."""
    return {
        "toolSpecification": {
            "name": name,
            "description": description,
            "inputSchema": {"json": {"type": "object", "properties": {}}},
        }
    }


def user(
    content: str, *, results: list[Any] | None = None, images: list[Any] | None = None
) -> dict[str, Any]:
    """A history user turn."""
    msg: dict[str, Any] = {
        "content": content,
        "modelId": "claude-sonnet-4.5",
        "origin": "AI_EDITOR",
    }
    msg["userInputMessageContext"] = {"toolResults": results} if results else {}
    if images:
        msg["images"] = images
    return {"userInputMessage": msg}


def assistant(content: str, *uses: tuple[str, str]) -> dict[str, Any]:
    """A history assistant turn with ``(toolUseId, name)`` tool uses."""
    tool_uses = [{"toolUseId": i, "name": n, "input": {}} for i, n in uses] or None
    return {"assistantResponseMessage": {"content": content, "toolUses": tool_uses}}


def result(tool_use_id: str, text: str) -> dict[str, Any]:
    """One tool result."""
    return {"toolUseId": tool_use_id, "content": [{"text": text}], "status": "success"}


def body(
    content: str = "Hello",
    *,
    history: list[Any] | None = None,
    tools: list[Any] | None = None,
    results: list[Any] | None = None,
    images: list[Any] | None = None,
    model: str = "claude-sonnet-4.5",
) -> dict[str, Any]:
    """A ``generateAssistantResponse`` body shaped as protocol.md §2.2 shows."""
    ctx: dict[str, Any] = {}
    if results:
        ctx["toolResults"] = results
    if tools:
        ctx["tools"] = tools
    return {
        "conversationState": {
            "agentContinuationId": "4472c8e4-2869-59b5-b9f4-924d1b950309",
            "agentTaskType": "vibe",
            "chatTriggerType": "MANUAL",
            "currentMessage": {
                "userInputMessage": {
                    "userInputMessageContext": ctx,
                    "content": content,
                    "modelId": model,
                    "images": images or [],
                    "origin": "AI_EDITOR",
                }
            },
            "conversationId": "conv-85001b506079dc4d",
            "history": history,
        }
    }


@dataclass
class Answer:
    """A ``generateAssistantResponse`` answer, decoded."""

    status: int
    headers: httpx.Headers
    raw: bytes
    json: Any = None

    def messages(self) -> list[Message]:
        """Decode the body (raises the codec's error on corruption)."""
        decoder = Decoder()
        out = decoder.feed(self.raw)
        decoder.close()
        return out

    def text(self) -> str:
        """The concatenated ``assistantResponseEvent`` text."""
        return "".join(
            orjson.loads(m.payload)["content"]
            for m in self.messages()
            if m.event_type == "assistantResponseEvent"
        )


async def generate(
    client: httpx.AsyncClient, url: str, token: str, payload: Any, **kwargs: Any
) -> Answer:
    """POST ``payload`` to ``/generateAssistantResponse`` and read the whole answer."""
    headers = {"authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
    response = await client.post(
        f"{url}/generateAssistantResponse", json=payload, headers=headers, **kwargs
    )
    is_json = response.headers.get("content-type") == "application/json"
    return Answer(
        response.status_code,
        response.headers,
        response.content,
        response.json() if is_json else None,
    )
