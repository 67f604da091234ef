"""Tool declarations for the upstream: names, descriptions and schemas it accepts.

Every rule here exists because a peer proxy's users hit an upstream 400 without it
(peers.md §3 items 1 and 7):

* **Names** must match ``[A-Za-z0-9_-]{1,64}``. MCP tools routinely exceed 64 characters or
  contain dots/colons. Offending names are replaced by ``<first 50 sanitised chars>_<8 hex of
  sha256(original)>`` — stable across requests (history keeps matching) and collision-free in
  practice — and :class:`ToolNames` maps them back for responses.
* **Descriptions** must be non-empty and not too long: an empty one becomes ``Tool <name>``;
  a long one is cut to a byte budget on a character boundary ([REC] of §2.3.4 — Go cut bytes
  and could split a UTF-8 character).
* **Schemas**: Go sent Anthropic schemas unchanged and cleaned OpenAI ones (§4.2). We clean
  both the same way: the top-level keys ``$schema`` (Claude Code sends it on every tool),
  ``$id``, ``strict`` and ``additionalProperties`` are removed, as Go's OpenAI path does (the
  shape proven to work upstream); ``type`` defaults to ``object`` and ``properties`` to ``{}``
  ([REC] of §4.2: Go dropped such tools); ``required`` keeps only strings. ``$ref``/``$defs``
  are kept, unlike Go: removing ``$defs`` would leave nested ``$ref`` pointing nowhere.
* ``web_search``/``websearch`` are not supported upstream (§9 item 20) and are left out, as are
  Anthropic server tools (``type`` other than ``custom``) that are web searches.
* **Deferred tools** (``defer_loading: true``) are sent only once the conversation references
  them — a ``tool_reference`` in a tool result (the client's tool search found them) or a call
  in history. The upstream has no deferral, so this reproduces it: unreferenced deferred tools,
  such as Claude Code's ``DeferredToolPlaceholder``, never reach it.
"""

from __future__ import annotations

import hashlib
import re

from kiro2api.convert.canonical import (
    CanonicalRequest,
    JSONObject,
    ToolReferenceBlock,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
    Turn,
)

__all__ = [
    "MAX_TOOL_NAME_LENGTH",
    "UNSUPPORTED_TOOL_NAMES",
    "ToolNames",
    "clean_schema",
    "referenced_tool_names",
    "tool_specification",
    "truncate_description",
    "upstream_tool_name",
    "upstream_tools",
]

MAX_TOOL_NAME_LENGTH = 64

#: Exact, case-sensitive names the upstream cannot serve (``converter/codewhisperer.go:311``).
UNSUPPORTED_TOOL_NAMES = frozenset({"web_search", "websearch"})

_VALID_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_INVALID_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_NAME_PREFIX = 50

# Top-level schema keys removed before sending (see the module docstring).
_DROPPED_SCHEMA_KEYS = ("$schema", "$id", "strict", "additionalProperties")


def upstream_tool_name(name: str) -> str:
    """The name a tool travels under upstream (the name itself when it is already valid)."""
    if _VALID_NAME.fullmatch(name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    prefix = _INVALID_CHARS.sub("_", name)[:_NAME_PREFIX]
    return f"{prefix}_{digest}"


def referenced_tool_names(turns: tuple[Turn, ...]) -> set[str]:
    """Names of the tools a conversation calls or loads through ``tool_reference`` results."""
    names: set[str] = set()
    for turn in turns:
        for block in turn.blocks:
            if isinstance(block, ToolUseBlock):
                names.add(block.name)
            elif isinstance(block, ToolResultBlock):
                names.update(
                    p.tool_name for p in block.content if isinstance(p, ToolReferenceBlock)
                )
    return names


def upstream_tools(req: CanonicalRequest) -> list[ToolSpec]:
    """The declared tools that are sent upstream, in order (see the module docstring)."""
    referenced: set[str] | None = None
    out: list[ToolSpec] = []
    for tool in req.tools:
        if tool.name in UNSUPPORTED_TOOL_NAMES:
            continue
        if tool.server_type is not None and tool.server_type.startswith("web_search"):
            continue
        if tool.defer_loading:
            if referenced is None:
                referenced = referenced_tool_names(req.turns)
            if tool.name not in referenced:
                continue
        out.append(tool)
    return out


def truncate_description(text: str, max_bytes: int) -> str:
    """Cut ``text`` to at most ``max_bytes`` UTF-8 bytes without splitting a character."""
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode(errors="ignore")


def clean_schema(schema: JSONObject | None) -> JSONObject:
    """A copy of a tool's input schema in the shape the upstream accepts.

    Only the top level is changed; nested schemas are passed through as sent.
    """
    cleaned: JSONObject = {}
    if schema is not None:
        cleaned = {k: v for k, v in schema.items() if k not in _DROPPED_SCHEMA_KEYS}
    cleaned.setdefault("type", "object")
    if cleaned["type"] == "object" and not isinstance(cleaned.get("properties"), dict):
        cleaned["properties"] = {}
    if "required" in cleaned:
        required = cleaned["required"]
        if isinstance(required, list):
            cleaned["required"] = [r for r in required if isinstance(r, str) and r]
        else:
            del cleaned["required"]
    return cleaned


class ToolNames:
    """Client tool names ↔ upstream tool names for one request.

    ``upstream(name)`` renames consistently everywhere (tool list and history); ``renamed``
    maps upstream names back to the client's names, only for tools that were renamed.
    """

    __slots__ = ("_cache", "renamed")

    def __init__(self) -> None:
        self._cache: dict[str, str] = {}
        #: upstream name -> client's original name, only for renamed tools.
        self.renamed: dict[str, str] = {}

    def upstream(self, name: str) -> str:
        """The upstream name for a client name (recording the mapping if renamed)."""
        cached = self._cache.get(name)
        if cached is not None:
            return cached
        mapped = upstream_tool_name(name)
        self._cache[name] = mapped
        if mapped != name:
            self.renamed[mapped] = name
        return mapped


def tool_specification(
    name: str, description: str, schema: JSONObject, *, max_description_bytes: int
) -> JSONObject:
    """One upstream ``tools[]`` element (``CodeWhispererTool``, protocol.md §2.2).

    Args:
        name: The upstream (already mapped) name.
        description: The client's description; empty becomes ``Tool <name>``.
        schema: The already cleaned input schema.
        max_description_bytes: Cut longer descriptions to this many UTF-8 bytes.
    """
    text = description if description.strip() else f"Tool {name}"
    return {
        "toolSpecification": {
            "name": name,
            "description": truncate_description(text, max_description_bytes),
            "inputSchema": {"json": schema},
        }
    }
