"""Local token estimators (no tokenizer): text, tool names, tool calls, and Go-compatible JSON.

The upstream never reports token usage, so every ``input_tokens``/``output_tokens`` figure the
proxy returns is an estimate. The formulas reproduce the original implementation so that
numbers stay comparable, with its later fix applied everywhere: divisions round *up*, so that
a short fragment never counts as zero tokens.

This module is sans-IO and pure: it imports only the standard library and orjson.
"""

from __future__ import annotations

import math
import re

import orjson

__all__ = [
    "compact_json",
    "estimate_text_tokens",
    "estimate_tool_name_tokens",
    "estimate_tool_use_tokens",
]

# Go's encoder (sonic ``ConfigStd``) escapes these three for HTML safety; byte counts of the
# schema/arguments depend on it, so we escape them too.
_HTML_ESCAPES = ((b"<", b"\\u003c"), (b">", b"\\u003e"), (b"&", b"\\u0026"))

# Fixed overhead of one tool call: block framing (3) + ``tool_use`` type/id (8) + name key (1)
# + input key (1).
_TOOL_USE_OVERHEAD = 3 + 8 + 1 + 1


def compact_json(value: object) -> bytes:
    """Serialise ``value`` the way the original Go proxy did.

    Sorted keys, no whitespace, ``<``, ``>`` and ``&`` escaped as ``\\u003c``, ``\\u003e``,
    ``\\u0026``, non-ASCII characters emitted as raw UTF-8.

    Args:
        value: Any JSON-serialisable value (dicts with ``str`` keys, lists, scalars).

    Returns:
        The UTF-8 encoded JSON text.

    Raises:
        TypeError: ``value`` is not JSON-serialisable (orjson's ``JSONEncodeError``).
    """
    out = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    # Inside JSON text these bytes can only occur within strings, so a plain replace is exact.
    for raw, escaped in _HTML_ESCAPES:
        if raw in out:
            out = out.replace(raw, escaped)
    return out


# CJK unified ideographs only: full-width punctuation and kana count as "other" characters.
_CJK = re.compile("[\u4e00-\u9fff]")


def _length_factor(n: int) -> float:
    # Long texts tokenize more efficiently than short ones; the steps are the original's.
    if n >= 1000:
        return 0.60
    if n >= 500:
        return 0.70
    if n >= 300:
        return 0.80
    if n >= 200:
        return 0.85
    if n >= 100:
        return 0.90
    if n >= 50:
        return 0.95
    return 1.0


def estimate_text_tokens(text: str) -> int:
    """Estimate the tokens of a piece of text.

    CJK unified ideographs (U+4E00..U+9FFF) count one token each (plus one when the text is
    nothing else); every other code point counts 1/2.8..1/2.5 of a token, rounded up; long
    texts are then scaled down.

    Args:
        text: The text.

    Returns:
        0 for the empty string, otherwise at least 1.
    """
    if not text:
        return 0
    n = len(text)
    # The ASCII fast path skips the scan for the common case (code, English prose).
    cn = 0 if text.isascii() else len(_CJK.findall(text))
    non = n - cn
    chinese = (cn + 1 if non == 0 else cn) if cn > 0 else 0
    other = 0
    if non > 0:
        cpt = 2.8 if non < 50 else 2.6 if non < 100 else 2.5
        other = max(1, math.ceil(non / cpt))
    tokens = chinese + other
    factor = _length_factor(n)
    if factor != 1.0:
        tokens = int(tokens * factor)
    return max(tokens, 1)


def estimate_tool_name_tokens(name: str) -> int:
    """Estimate the tokens of a tool name (snake_case and CamelCase split into more tokens).

    Args:
        name: The tool name.

    Returns:
        0 for the empty name, otherwise at least 2.
    """
    if not name:
        return 0
    size = len(name.encode())
    uppercase = sum(1 for ch in name if "A" <= ch <= "Z")
    tokens = (size + 1) // 2 + name.count("_") + uppercase // 2
    return max(tokens, 2)


def estimate_tool_use_tokens(name: str, input: object) -> int:
    """Estimate the tokens of one ``tool_use`` block.

    Args:
        name: The tool name.
        input: The parsed arguments; ``None`` or an empty dict counts as no arguments.

    Returns:
        The estimate: 13 overhead + name tokens + ceil(argument bytes / 4), or + 1 without
        arguments.
    """
    if input is None or (isinstance(input, dict) and not input):
        args = 1
    else:
        # Ceiling division (the original floored, so short arguments counted as nothing).
        args = -(-len(compact_json(input)) // 4)
    return _TOOL_USE_OVERHEAD + estimate_tool_name_tokens(name) + args
