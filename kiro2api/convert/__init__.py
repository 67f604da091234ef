"""Sans-IO protocol conversion: client requests to the upstream body, upstream events to SSE/JSON.

Nothing in this package performs I/O or imports trio, quart, hypercorn, h2, httpx or socket.

Request side: :func:`parse_anthropic_request` / :func:`parse_openai_request` validate a client
body into a :class:`CanonicalRequest`; :func:`build_upstream_request` repairs the history and
renders the upstream JSON. Response side: :class:`UpstreamEventParser` turns decoded frames into
typed events; the stream translators turn them into SSE bytes and the aggregators into JSON.
"""

from __future__ import annotations

from kiro2api.convert.anthropic_request import (
    parse_anthropic_request as parse_anthropic_request,
)
from kiro2api.convert.anthropic_request import (
    parse_count_tokens_request as parse_count_tokens_request,
)
from kiro2api.convert.anthropic_response import AnthropicAggregator as AnthropicAggregator
from kiro2api.convert.anthropic_stream import AnthropicStreamTranslator as AnthropicStreamTranslator
from kiro2api.convert.canonical import CanonicalRequest as CanonicalRequest
from kiro2api.convert.events import UpstreamEvent as UpstreamEvent
from kiro2api.convert.events import UpstreamEventParser as UpstreamEventParser
from kiro2api.convert.events import failure_to_error as failure_to_error
from kiro2api.convert.ids import conversation_ids as conversation_ids
from kiro2api.convert.models import ModelInfo as ModelInfo
from kiro2api.convert.models import ModelMap as ModelMap
from kiro2api.convert.openai_request import parse_openai_request as parse_openai_request
from kiro2api.convert.openai_response import OpenAIAggregator as OpenAIAggregator
from kiro2api.convert.openai_stream import OpenAIStreamTranslator as OpenAIStreamTranslator
from kiro2api.convert.request_tokens import estimate_input_tokens as estimate_input_tokens
from kiro2api.convert.upstream_request import ConvertSettings as ConvertSettings
from kiro2api.convert.upstream_request import UpstreamRequest as UpstreamRequest
from kiro2api.convert.upstream_request import build_upstream_request as build_upstream_request

__all__ = [
    "AnthropicAggregator",
    "AnthropicStreamTranslator",
    "CanonicalRequest",
    "ConvertSettings",
    "ModelInfo",
    "ModelMap",
    "OpenAIAggregator",
    "OpenAIStreamTranslator",
    "UpstreamEvent",
    "UpstreamEventParser",
    "UpstreamRequest",
    "build_upstream_request",
    "conversation_ids",
    "estimate_input_tokens",
    "failure_to_error",
    "parse_anthropic_request",
    "parse_count_tokens_request",
    "parse_openai_request",
]
