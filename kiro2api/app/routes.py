"""The API routes: Anthropic Messages, count_tokens, OpenAI Chat Completions and the model list.

Each route is thin: parse and validate the body (sans-IO converters), build the upstream body,
connect upstream (with failover), then stream through a translator or aggregate. Claude Code
calls ``/v1/messages?beta=true``; the query string never changes the route.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import TypedDict

from quart import Blueprint, Response, g, request

from kiro2api.app.http import json_body, json_response
from kiro2api.app.state import AppState, current_state
from kiro2api.app.streaming import Aggregator, RequestContext, ShuttingDownError
from kiro2api.convert.anthropic_request import parse_anthropic_request, parse_count_tokens_request
from kiro2api.convert.anthropic_response import AnthropicAggregator
from kiro2api.convert.anthropic_stream import AnthropicStreamTranslator
from kiro2api.convert.canonical import CanonicalRequest
from kiro2api.convert.ids import conversation_ids
from kiro2api.convert.openai_request import parse_openai_request
from kiro2api.convert.openai_response import OpenAIAggregator
from kiro2api.convert.openai_stream import OpenAIStreamTranslator
from kiro2api.convert.request_tokens import estimate_input_tokens
from kiro2api.convert.upstream_request import UpstreamRequest, build_upstream_request
from kiro2api.errors import Kiro2ApiError

__all__ = ["api"]

api = Blueprint("api", __name__)


def _context(route: str) -> RequestContext:
    return RequestContext(
        request_id=g.request_id, method=request.method, path=request.path, route=route
    )


def _prepare(state: AppState, req: CanonicalRequest, ctx: RequestContext) -> UpstreamRequest:
    ctx.model, ctx.stream = req.model, req.stream
    conversation_id, continuation_id = conversation_ids(req, request.headers)
    return build_upstream_request(
        req, state.convert, conversation_id=conversation_id, continuation_id=continuation_id
    )


class _Shared(TypedDict):
    """Constructor arguments every translator and aggregator takes."""

    model: str
    input_tokens: int
    context_window: int
    tool_names: dict[str, str]


async def _handle(route: str, kind: str) -> Response:
    """Shared pipeline for both dialects; ``kind`` is ``anthropic`` or ``openai``."""
    state = current_state()
    ctx = _context(route)
    try:
        if state.shutting_down:
            raise ShuttingDownError("the server is shutting down; retry on another instance")
        body = await json_body()
        req = parse_anthropic_request(body) if kind == "anthropic" else parse_openai_request(body)
        prepared = _prepare(state, req, ctx)
        stream = await state.upstream.connect(prepared.body, request_id=ctx.request_id)
    except Kiro2ApiError as error:
        ctx.status, ctx.error = error.status_code, error.message
        ctx.log_access(state.metrics)
        raise
    common = _Shared(
        model=req.model,
        input_tokens=prepared.input_tokens,
        context_window=prepared.context_window,
        tool_names=prepared.tool_names,
    )
    aggregator: Aggregator
    if kind == "anthropic":
        message_id = f"msg_{secrets.token_hex(12)}"
        if req.stream:
            anthropic_stream = AnthropicStreamTranslator(message_id=message_id, **common)
            return await state.streams.respond(
                stream, anthropic_stream, anthropic_stream.message_start(), ctx
            )
        aggregator = AnthropicAggregator(message_id=message_id, **common)
    else:
        completion_id, created = f"chatcmpl-{secrets.token_hex(12)}", int(time.time())
        if req.stream:
            openai_stream = OpenAIStreamTranslator(
                completion_id=completion_id,
                created=created,
                include_usage=req.include_usage,
                **common,
            )
            return await state.streams.respond(stream, openai_stream, b"", ctx)
        aggregator = OpenAIAggregator(completion_id=completion_id, created=created, **common)
    try:
        result = await state.streams.collect(stream, aggregator, ctx)
    except Kiro2ApiError as error:
        ctx.status, ctx.error = error.status_code, error.message
        raise
    finally:
        ctx.log_access(state.metrics)
    return json_response(result)


@api.post("/v1/messages")
async def messages() -> Response:
    """Anthropic Messages API, streaming and not."""
    return await _handle("/v1/messages", "anthropic")


@api.post("/v1/chat/completions")
async def chat_completions() -> Response:
    """OpenAI Chat Completions API, streaming and not."""
    return await _handle("/v1/chat/completions", "openai")


@api.post("/v1/messages/count_tokens")
async def count_tokens() -> Response:
    """Anthropic token counting with the fast local estimator (never BPE on the hot path)."""
    req = parse_count_tokens_request(await json_body())
    return json_response({"input_tokens": estimate_input_tokens(req)})


@api.get("/v1/models")
async def models() -> Response:
    """One list that both the anthropic and the openai SDK parse."""
    entries = []
    for info in current_state().model_map.public_models():
        created_at = datetime.fromtimestamp(info.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        entries.append(
            {
                "id": info.id,
                "type": "model",
                "display_name": info.display_name,
                "created_at": created_at,
                "object": "model",
                "created": info.created,
                "owned_by": "anthropic",
                "context_window": info.context_window,
            }
        )
    return json_response(
        {
            "object": "list",
            "data": entries,
            "has_more": False,
            "first_id": entries[0]["id"] if entries else None,
            "last_id": entries[-1]["id"] if entries else None,
        }
    )
