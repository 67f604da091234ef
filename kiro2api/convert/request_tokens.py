"""The whole-request input token estimate (protocol.md §7.2).

The upstream reports no usage, so ``input_tokens`` (message responses and
``/v1/messages/count_tokens``) is this local estimate. It follows the original's formula, with
its fix of §9 item 5: only tools actually sent upstream are counted (no ``web_search``, no
unreferenced deferred tools) — for count_tokens too, so both numbers agree.

The per-text/tool formulas live in :mod:`kiro2api.convert.estimate`.
"""

from __future__ import annotations

import math

from kiro2api.convert.canonical import (
    CanonicalRequest,
    ImageBlock,
    TextBlock,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
    Turn,
)
from kiro2api.convert.estimate import (
    compact_json,
    estimate_text_tokens,
    estimate_tool_name_tokens,
    estimate_tool_use_tokens,
)
from kiro2api.convert.tools import upstream_tools

__all__ = ["estimate_input_tokens"]

_IMAGE_TOKENS = 1500
_SYSTEM_PART_OVERHEAD = 2
_MESSAGE_OVERHEAD = 3
_REQUEST_OVERHEAD = 4


def _turn_tokens(turn: Turn) -> int:
    total = _MESSAGE_OVERHEAD
    for block in turn.blocks:
        if isinstance(block, TextBlock):
            total += estimate_text_tokens(block.text)
        elif isinstance(block, ImageBlock):
            total += _IMAGE_TOKENS
        elif isinstance(block, ToolUseBlock):
            total += estimate_tool_use_tokens(block.name, block.input)
        elif isinstance(block, ToolResultBlock):
            for part in block.content:
                if isinstance(part, TextBlock):
                    total += estimate_text_tokens(part.text)
                elif isinstance(part, ImageBlock):
                    total += _IMAGE_TOKENS
                else:
                    total += estimate_tool_name_tokens(part.tool_name)
    return total


def _tools_tokens(tools: list[ToolSpec]) -> int:
    n = len(tools)
    if n == 0:
        return 0
    # Per-tool overheads shrink as the list grows (schemas share structure).
    base, per = (0, 320) if n == 1 else (100, 120) if n <= 5 else (180, 60)
    chars_per_token = 1.9 if n == 1 else 2.2 if n <= 5 else 2.5
    floor = 50 if n <= 5 else 30
    total = base
    for tool in tools:
        total += estimate_tool_name_tokens(tool.name) + estimate_text_tokens(tool.description)
        if tool.input_schema is not None:
            schema = compact_json(tool.input_schema)
            tokens = math.ceil(len(schema) / chars_per_token)
            if b"$schema" in schema:
                tokens += 10 if n == 1 else 5
            total += max(tokens, floor)
        total += per
    return total


def estimate_input_tokens(req: CanonicalRequest) -> int:
    """Estimate the input tokens of a request (what ``count_tokens`` answers).

    Args:
        req: The canonical request.

    Returns:
        A positive estimate (at least the fixed request overhead).
    """
    total = _REQUEST_OVERHEAD
    for part in req.system_blocks():
        if part:
            total += estimate_text_tokens(part) + _SYSTEM_PART_OVERHEAD
    total += sum(_turn_tokens(turn) for turn in req.turns)
    total += _tools_tokens(upstream_tools(req))
    return total
