"""The canonical request: one validated, dialect-free shape for Anthropic and OpenAI requests.

Both front ends (:mod:`kiro2api.convert.anthropic_request`, :mod:`kiro2api.convert.openai_request`)
parse a client body into a :class:`CanonicalRequest`; :mod:`kiro2api.convert.upstream_request`
renders it into the upstream body. Everything here is already type-checked: downstream code never
has to guess whether a field is a string or a list.

The turns keep the client's message structure one to one (one :class:`Turn` per client message,
consecutive same-role turns included). Repairing that structure into something the upstream
accepts is the builder's job (:mod:`kiro2api.convert.history`), not the parsers'.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeAlias

__all__ = [
    "AssistantBlock",
    "Block",
    "CanonicalRequest",
    "ImageBlock",
    "JSONObject",
    "Role",
    "TextBlock",
    "ToolChoice",
    "ToolReferenceBlock",
    "ToolResultBlock",
    "ToolResultPart",
    "ToolSpec",
    "ToolUseBlock",
    "Turn",
    "UserBlock",
]

#: A decoded JSON object (``orjson.loads`` output).
JSONObject: TypeAlias = dict[str, object]

Role: TypeAlias = Literal["user", "assistant"]


@dataclass(frozen=True, slots=True)
class TextBlock:
    """Plain text."""

    text: str


@dataclass(frozen=True, slots=True)
class ImageBlock:
    """A validated inline image.

    Attributes:
        media_type: ``image/jpeg``, ``image/png``, ``image/gif`` or ``image/webp``.
        data: Standard base64 with padding and without line breaks (checked to decode).
    """

    media_type: str
    data: str

    @property
    def format(self) -> str:
        """The upstream ``format`` value: the media type's subtype (``png``, ``jpeg``...)."""
        return self.media_type.partition("/")[2]


@dataclass(frozen=True, slots=True)
class ToolUseBlock:
    """A tool call the assistant made earlier in the conversation."""

    id: str
    name: str
    input: JSONObject


@dataclass(frozen=True, slots=True)
class ToolReferenceBlock:
    """A tool search hit (Anthropic ``tool_reference``): the named deferred tool is now callable."""

    tool_name: str


#: What a tool result may contain.
ToolResultPart: TypeAlias = TextBlock | ImageBlock | ToolReferenceBlock


@dataclass(frozen=True, slots=True)
class ToolResultBlock:
    """The client's answer to a tool call.

    Attributes:
        tool_use_id: The id of the :class:`ToolUseBlock` this answers.
        content: Text, image and tool-reference parts in order (empty when the client sent
            none).
        is_error: The tool failed.
    """

    tool_use_id: str
    content: tuple[ToolResultPart, ...]
    is_error: bool = False


UserBlock: TypeAlias = TextBlock | ImageBlock | ToolResultBlock
AssistantBlock: TypeAlias = TextBlock | ToolUseBlock
Block: TypeAlias = TextBlock | ImageBlock | ToolResultBlock | ToolUseBlock


@dataclass(frozen=True, slots=True)
class Turn:
    """One client message.

    A user turn holds text, image and tool-result blocks; an assistant turn holds text and
    tool-use blocks. The parsers guarantee that; the builder relies on it.
    """

    role: Role
    blocks: tuple[Block, ...]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool declared by the client.

    Attributes:
        name: The client's name (it may be renamed on the way upstream).
        description: As sent (possibly empty).
        input_schema: The JSON schema as sent, or ``None`` when the client sent none.
        server_type: For Anthropic server/built-in tools (``web_search_20250305``, ...), their
            ``type``; ``None`` for ordinary (custom/function) tools.
        defer_loading: A deferred tool: only loaded once a tool search result references it
            (or history calls it). Claude Code's ``DeferredToolPlaceholder`` is one that is never
            referenced.
    """

    name: str
    description: str = ""
    input_schema: JSONObject | None = None
    server_type: str | None = None
    defer_loading: bool = False


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """How the client wants tools used.

    ``type`` is ``auto`` (model decides), ``any`` (must call some tool; OpenAI ``required``),
    ``tool`` (must call ``name``; OpenAI named function) or ``none`` (must not call tools).
    The upstream has no such field; see
    :func:`kiro2api.convert.upstream_request.build_upstream_request` for the part honoured.
    """

    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None


@dataclass(frozen=True, slots=True)
class CanonicalRequest:
    """A validated chat request, independent of the client's API dialect.

    Attributes:
        model: The model name the client asked for (resolved later through the model map).
        system: The system prompt (all system parts joined with blank lines).
        turns: The conversation, one turn per client message, in order.
        tools: Declared tools, in order.
        tool_choice: ``None`` when the client did not say.
        stream: Whether the client wants SSE.
        max_tokens: The client's output cap, if given (the upstream has no such knob).
        stop_sequences: Client stop strings (applied by the response side, if at all).
        temperature: As sent; the upstream has no such knob.
        top_p: As sent; the upstream has no such knob.
        include_usage: OpenAI ``stream_options.include_usage``.
        system_parts: The system prompt's blocks as sent, kept for the token estimator.
    """

    model: str
    system: str = ""
    turns: tuple[Turn, ...] = ()
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: ToolChoice | None = None
    stream: bool = False
    max_tokens: int | None = None
    stop_sequences: tuple[str, ...] = ()
    temperature: float | None = None
    top_p: float | None = None
    include_usage: bool = False
    system_parts: tuple[str, ...] = field(default=())

    def system_blocks(self) -> tuple[str, ...]:
        """The system prompt's parts (a single part when only ``system`` was set)."""
        if self.system_parts:
            return self.system_parts
        return (self.system,) if self.system else ()
