"""History repair: any client conversation → a message sequence the upstream accepts.

Malformed history is the number-one cause of upstream ``400 Improperly formed request`` in
peer proxies (peers.md §3 items 1, 2, 7). Instead of forwarding what the client sent and
hoping, the conversation is always rebuilt so that these invariants hold:

1. **Alternation.** History is ``user, assistant, user, assistant, ...``: it starts with a user
   message and ends with an assistant message; the current message is a user message.
   Consecutive same-role turns are merged (§9 item 3 merges users; we also merge assistants,
   where Go dropped the second one — §2.3.6 step 3 — losing its tool calls and thus orphaning
   their results, peers.md §3 item 1 "two consecutive assistant turns after a retry").
2. **Leading assistant.** A conversation that starts with an assistant turn gets a synthetic
   user turn (:data:`USER_PLACEHOLDER`) before it. Go dropped the turn (§2.3.6); keeping it
   keeps its tool calls paired with the results that follow.
3. **Trailing assistant** (a prefill): the upstream cannot continue an assistant message, so the
   turn goes into history and the current message is :data:`USER_PLACEHOLDER`.
4. **System prompt** is the first pair: user = system text, assistant = ``"OK"`` (§2.3.6 step 1).
5. **Tool pairing.** Every ``tool_use`` is answered in the very next user message, by id, in the
   order of the calls:

   * a missing answer (orphan ``tool_use``) gets a synthetic result :data:`MISSING_RESULT`
     with status ``error`` (peers.md §3 item 1, kiro.rs PR 56);
   * a result whose id was not called by the preceding assistant message, or a duplicate
     (orphan ``tool_result``), becomes text in its user message — never dropped silently
     (a skipped duplicate caused ``TOOL_USE_RESULT_MISMATCH``, ZyphrZero/kiro.rs issue 22).
6. **Tool results and text.** A user message with tool results must have ``content == ""``
   (§9 item 16). Text the client sent beside the results (Claude Code puts system reminders and
   user interjections there) is appended as a text item to the *last* tool result instead of
   being dropped: the model still reads it and the message stays well-formed.
7. **No empty content.** An empty user message without tool results gets
   :data:`USER_PLACEHOLDER`; an assistant message with tool calls and no text gets
   :data:`ASSISTANT_TOOL_PLACEHOLDER` (kiro.rs PR 32), one with neither gets
   :data:`ASSISTANT_EMPTY_PLACEHOLDER`; an empty tool result gets :data:`EMPTY_RESULT`.
8. **Images** stay with their user message, including image-only messages (Go dropped those,
   §2.3.6 step 4 [QUIRK]); images inside tool results travel as images of the user message
   because upstream tool results carry text or JSON only.
9. **web_search** calls (unsupported upstream, §9 item 20) become assistant text, so their
   results become orphans and thus text too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from kiro2api.convert.canonical import (
    ImageBlock,
    TextBlock,
    ToolReferenceBlock,
    ToolResultBlock,
    ToolUseBlock,
    Turn,
)
from kiro2api.convert.tools import UNSUPPORTED_TOOL_NAMES

__all__ = [
    "ASSISTANT_EMPTY_PLACEHOLDER",
    "ASSISTANT_TOOL_PLACEHOLDER",
    "EMPTY_RESULT",
    "IMAGE_RESULT",
    "MISSING_RESULT",
    "SYSTEM_ACK",
    "USER_PLACEHOLDER",
    "AssistantMessage",
    "Conversation",
    "UserMessage",
    "build_conversation",
]

USER_PLACEHOLDER = "Continue."
ASSISTANT_TOOL_PLACEHOLDER = "I will use the available tools."
ASSISTANT_EMPTY_PLACEHOLDER = "OK."
#: The assistant's answer to the system prompt pair (``converter/codewhisperer.go:374``).
SYSTEM_ACK = "OK"
MISSING_RESULT = "Tool result missing"
#: As the original's ``ParseToolResultContent("")`` (protocol.md §2.4.3).
EMPTY_RESULT = "Tool executed with no output"
#: Text of a tool result whose only output was images (moved to the user message).
IMAGE_RESULT = "The tool returned an image; it is attached to this message."

_TURN_SEPARATOR = "\n\n"


@dataclass(frozen=True, slots=True)
class UserMessage:
    """A repaired user message.

    Attributes:
        content: The text; ``""`` exactly when ``tool_results`` is non-empty.
        images: Images of the message, including those taken out of tool results.
        tool_results: Results answering the preceding assistant's calls, in call order; their
            content is text only and never empty.
    """

    content: str
    images: tuple[ImageBlock, ...] = ()
    tool_results: tuple[ToolResultBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class AssistantMessage:
    """A repaired assistant message (non-empty ``content``)."""

    content: str
    tool_uses: tuple[ToolUseBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class Conversation:
    """The repaired conversation.

    Attributes:
        history: Alternating messages starting with a user message, even length.
        current: The message the upstream answers.
    """

    history: tuple[UserMessage | AssistantMessage, ...]
    current: UserMessage


@dataclass(slots=True)
class _Entry:
    """Merged consecutive turns of one role, before repair."""

    role: str
    texts: list[str] = field(default_factory=list)
    images: list[ImageBlock] = field(default_factory=list)
    results: list[ToolResultBlock] = field(default_factory=list)
    tool_uses: list[ToolUseBlock] = field(default_factory=list)


def _merge(turns: tuple[Turn, ...]) -> list[_Entry]:
    entries: list[_Entry] = []
    for turn in turns:
        if not entries or entries[-1].role != turn.role:
            entries.append(_Entry(turn.role))
        entry = entries[-1]
        texts: list[str] = []
        for block in turn.blocks:
            if isinstance(block, TextBlock):
                texts.append(block.text)
            elif isinstance(block, ImageBlock):
                entry.images.append(block)
            elif isinstance(block, ToolResultBlock):
                entry.results.append(block)
            elif block.name in UNSUPPORTED_TOOL_NAMES:
                args = orjson.dumps(block.input).decode()
                texts.append(f"[{block.name} was called with {args}]")
            elif all(use.id != block.id for use in entry.tool_uses):
                entry.tool_uses.append(block)
        text = "\n".join(t for t in texts if t.strip())
        if text:
            entry.texts.append(text)
    return entries


def _result_parts(result: ToolResultBlock, rename: Callable[[str], str]) -> tuple[TextBlock, ...]:
    """A result's parts as text, or one placeholder part when it has none."""
    parts: list[TextBlock] = []
    for part in result.content:
        if isinstance(part, TextBlock) and part.text:
            parts.append(part)
        elif isinstance(part, ToolReferenceBlock):
            # The tool itself is declared by the builder (tools.upstream_tools).
            parts.append(TextBlock(f"Tool {rename(part.tool_name)} is now available."))
    if parts:
        return tuple(parts)
    has_image = any(isinstance(p, ImageBlock) for p in result.content)
    return (TextBlock(IMAGE_RESULT if has_image else EMPTY_RESULT),)


def _repair_user(
    entry: _Entry, calls: list[ToolUseBlock], rename: Callable[[str], str]
) -> UserMessage:
    """Pair ``entry``'s results with ``calls`` (the preceding assistant's tool uses)."""
    wanted = {call.id for call in calls}
    answered: dict[str, ToolResultBlock] = {}
    orphan_texts: list[str] = []
    images = list(entry.images)
    for result in entry.results:
        images.extend(p for p in result.content if isinstance(p, ImageBlock))
        if result.tool_use_id in wanted and result.tool_use_id not in answered:
            answered[result.tool_use_id] = ToolResultBlock(
                result.tool_use_id, _result_parts(result, rename), result.is_error
            )
        else:
            label = "error " if result.is_error else ""
            text = "\n".join(p.text for p in _result_parts(result, rename))
            orphan_texts.append(f"[Tool {label}result for {result.tool_use_id}]\n{text}")
    texts = orphan_texts + entry.texts
    if not calls:
        content = _TURN_SEPARATOR.join(texts) or USER_PLACEHOLDER
        return UserMessage(content=content, images=tuple(images))
    results = [
        answered.get(call.id) or ToolResultBlock(call.id, (TextBlock(MISSING_RESULT),), True)
        for call in calls
    ]
    if texts:
        last = results[-1]
        extra = TextBlock(_TURN_SEPARATOR.join(texts))
        results[-1] = ToolResultBlock(last.tool_use_id, (*last.content, extra), last.is_error)
    return UserMessage(content="", images=tuple(images), tool_results=tuple(results))


def _repair_assistant(entry: _Entry) -> AssistantMessage:
    content = _TURN_SEPARATOR.join(entry.texts)
    if not content:
        content = ASSISTANT_TOOL_PLACEHOLDER if entry.tool_uses else ASSISTANT_EMPTY_PLACEHOLDER
    return AssistantMessage(content=content, tool_uses=tuple(entry.tool_uses))


def _same(name: str) -> str:
    return name


def build_conversation(
    system: str, turns: tuple[Turn, ...], *, rename: Callable[[str], str] = _same
) -> Conversation:
    """Repair a canonical conversation (see the module docstring for every rule).

    Args:
        system: The system prompt (``""`` for none).
        turns: The client's turns, in order.
        rename: Maps a client tool name to its upstream name (for text that names tools).

    Returns:
        A conversation whose history alternates and whose tool calls are all answered.
    """
    entries = _merge(turns)
    if not entries or entries[0].role == "assistant":
        entries.insert(0, _Entry("user"))
    if entries[-1].role == "assistant":
        entries.append(_Entry("user"))
    messages: list[UserMessage | AssistantMessage] = []
    if system.strip():
        messages.append(UserMessage(content=system.strip()))
        messages.append(AssistantMessage(content=SYSTEM_ACK))
    calls: list[ToolUseBlock] = []
    for entry in entries:
        if entry.role == "user":
            messages.append(_repair_user(entry, calls, rename))
        else:
            messages.append(_repair_assistant(entry))
            calls = entry.tool_uses
            continue
        calls = []
    current = messages.pop()
    assert isinstance(current, UserMessage)  # entries end with a user entry (see above)
    return Conversation(history=tuple(messages), current=current)
