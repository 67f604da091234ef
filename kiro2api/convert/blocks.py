"""The content-block state machine behind every response renderer.

Theory of operation
-------------------
The upstream answers with a flat sequence of events (text fragments, tool-call fragments, usage
figures, failures; see :mod:`kiro2api.convert.events`). Clients want *content blocks*: a text
block or a ``tool_use`` block is opened, filled, closed, and only one block is open at a time.
:class:`ResponseMachine` does that regrouping once, for all four renderers (Anthropic and OpenAI,
streaming and not), and calls a hook for every block-level step; the renderers only turn hooks
into bytes or dicts.

Rules (each fixes a bug seen in the original or its peers):

1. A text block is opened lazily by the first non-empty text; no empty text block precedes a
   tool-only answer.
2. A new tool closes the open block first; text after a tool opens a new block at the next index.
3. Text that arrives while a tool is still open is *deferred* until that tool closes and then
   becomes the next text block: closing the tool early would orphan its remaining argument
   fragments, and blocks cannot interleave.
4. Argument fragments for a tool that is no longer the open block are dropped (a block that was
   closed cannot grow); so is a ``stop`` for it.
5. ``stop_reason`` is ``tool_use`` when any tool block appeared, ``max_tokens`` when the upstream
   reports a context overflow after some output, else ``end_turn``. Exactly one finish.
6. A context overflow before any output is not a truncated answer but a too-long prompt: it fails
   with :class:`~kiro2api.errors.PromptTooLongError`, on which Claude Code compacts.
7. Any other upstream failure closes the open blocks and fails with the mapped error; nothing is
   produced after a finish or a failure (later events are ignored).

Output tokens are estimated per closed block (whole text of a text block; name and parsed
arguments of a tool), never per fragment: per-fragment rounding inflated the original's counts.

Every step is checked against :data:`TRANSITIONS`; a pair missing from the table is a bug in
the caller and raises :class:`~kiro2api.errors.Kiro2ApiError`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping

import orjson

from kiro2api.convert.estimate import estimate_text_tokens, estimate_tool_use_tokens
from kiro2api.convert.events import (
    ContextUsage,
    Metering,
    TextDelta,
    ToolUseInput,
    ToolUseStart,
    ToolUseStop,
    UpstreamEvent,
    UpstreamFailure,
    failure_to_error,
    is_content_length_exceeded,
)
from kiro2api.errors import Kiro2ApiError, UpstreamProtocolError

__all__ = [
    "TRANSITIONS",
    "BlockCollector",
    "Input",
    "ResponseMachine",
    "State",
    "ToolCall",
    "next_state",
]


class State(enum.Enum):
    """Where a response is in its life."""

    #: Nothing produced yet (Anthropic: before ``message_start``).
    IDLE = "idle"
    #: The message has begun; no content block is open.
    MESSAGE = "message"
    #: A text block is open.
    TEXT = "text"
    #: A ``tool_use`` block is open.
    TOOL = "tool"
    #: Finished normally (stop reason and usage sent). Terminal.
    DONE = "done"
    #: Finished with an error. Terminal.
    FAILED = "failed"

    # Members are singletons, so identity hashing is consistent with equality; Enum's own
    # ``__hash__`` is Python code, and every step hashes a (state, input) pair (hot path).
    __hash__ = object.__hash__


class Input(enum.Enum):
    """The primitive steps a response is built from."""

    START = "start"
    PING = "ping"
    OPEN_TEXT = "open_text"
    #: A text fragment: appended in a text block, deferred while a tool is open.
    TEXT = "text"
    OPEN_TOOL = "open_tool"
    TOOL_INPUT = "tool_input"
    CLOSE = "close"
    FINISH = "finish"
    FAIL = "fail"

    __hash__ = object.__hash__  # as State: C-level hashing for the transition table


_S = State
_I = Input

#: ``(state, input) -> next state``. Anything else is a bug in the caller.
TRANSITIONS: dict[tuple[State, Input], State] = {
    (_S.IDLE, _I.START): _S.MESSAGE,
    (_S.IDLE, _I.FAIL): _S.FAILED,
    (_S.MESSAGE, _I.PING): _S.MESSAGE,
    (_S.TEXT, _I.PING): _S.TEXT,
    (_S.TOOL, _I.PING): _S.TOOL,
    (_S.MESSAGE, _I.OPEN_TEXT): _S.TEXT,
    (_S.MESSAGE, _I.OPEN_TOOL): _S.TOOL,
    (_S.TEXT, _I.TEXT): _S.TEXT,
    (_S.TOOL, _I.TEXT): _S.TOOL,
    (_S.TOOL, _I.TOOL_INPUT): _S.TOOL,
    (_S.TEXT, _I.CLOSE): _S.MESSAGE,
    (_S.TOOL, _I.CLOSE): _S.MESSAGE,
    (_S.MESSAGE, _I.FINISH): _S.DONE,
    (_S.MESSAGE, _I.FAIL): _S.FAILED,
}

_TERMINAL = frozenset({State.DONE, State.FAILED})
_TEXT = State.TEXT
_OPEN = frozenset({State.TEXT, State.TOOL})


def next_state(state: State, inp: Input) -> State:
    """Look up the state that ``inp`` leads to from ``state``.

    Raises:
        Kiro2ApiError: The step is not allowed in that state (a caller bug, rendered as 500).
    """
    try:
        return TRANSITIONS[(state, inp)]
    except KeyError:
        raise Kiro2ApiError(
            f"response translator: {inp.value!r} is not allowed in state {state.value!r}"
        ) from None


class ToolCall:
    """One ``tool_use`` block as it is being built.

    Attributes:
        index: The content-block index (Anthropic ``index``).
        ordinal: The position among tool calls only (OpenAI ``tool_calls[i].index``).
        id: The upstream ``toolUseId``, passed to the client unchanged.
        name: The client's name for the tool.
        parts: The argument fragments received so far.
        input: After the block closed: the parsed arguments (``{}`` when none were sent), or
            ``None`` when the fragments are not a JSON object.
    """

    __slots__ = ("id", "index", "input", "name", "ordinal", "parts")

    def __init__(self, index: int, ordinal: int, tool_id: str, name: str) -> None:
        self.index = index
        self.ordinal = ordinal
        self.id = tool_id
        self.name = name
        self.parts: list[str] = []
        self.input: dict[str, object] | None = None

    @property
    def raw(self) -> str:
        """The concatenated argument fragments."""
        return "".join(self.parts)

    def _finalize(self) -> int:
        """Parse the arguments and return the block's token estimate."""
        raw = self.raw
        if not raw.strip():
            # A tool without parameters legitimately sends no input at all.
            self.input = {}
            return estimate_tool_use_tokens(self.name, None)
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            self.input = value
            return estimate_tool_use_tokens(self.name, value)
        return estimate_tool_use_tokens(self.name, raw)


class ResponseMachine:
    """Regroups upstream events into content blocks and reports each step to hook methods.

    Subclasses override the ``_on_*`` hooks (no-ops here) and expose their own public API.

    Attributes:
        state: The current :class:`State`.
        stop_reason: ``end_turn``, ``tool_use`` or ``max_tokens`` once finished, else ``None``.
        error: The error the response failed with, if it did.
        credits: Sum of the upstream's ``meteringEvent`` usage figures, if any arrived.
    """

    __slots__ = (
        "_block",
        "_closed_tokens",
        "_context_tokens",
        "_context_window",
        "_deferred",
        "_estimated_input",
        "_text_parts",
        "_tool",
        "_tool_names",
        "_tools",
        "credits",
        "error",
        "state",
        "stop_reason",
    )

    def __init__(
        self, *, input_tokens: int, context_window: int, tool_names: Mapping[str, str]
    ) -> None:
        self.state = State.IDLE
        self.stop_reason: str | None = None
        self.error: Kiro2ApiError | None = None
        self.credits: float | None = None
        self._estimated_input = input_tokens
        self._context_window = context_window
        self._context_tokens: int | None = None
        self._tool_names = tool_names
        self._block = -1  # index of the most recently opened block
        self._text_parts: list[str] = []
        self._deferred: list[str] = []
        self._tool: ToolCall | None = None  # the open tool block, set exactly in State.TOOL
        self._tools: dict[str, ToolCall] = {}
        self._closed_tokens = 0

    # ------------------------------------------------------------------ public read-outs

    @property
    def finished(self) -> bool:
        """Whether the response is complete (finished or failed); nothing more is produced."""
        return self.state in _TERMINAL

    @property
    def input_tokens(self) -> int:
        """Input tokens: from the upstream's context usage if reported, else the estimate."""
        if self._context_tokens is not None:
            return self._context_tokens
        return self._estimated_input

    @property
    def output_tokens(self) -> int:
        """Estimated output tokens so far; at least 1 once any block was opened."""
        total = self._closed_tokens
        if self.state is State.TEXT:
            total += estimate_text_tokens("".join(self._text_parts))
        elif self._tool is not None:
            total += estimate_tool_use_tokens(self._tool.name, None)
        if total < 1 and self._block >= 0:
            return 1
        return total

    @property
    def tool_calls(self) -> list[ToolCall]:
        """The tool calls seen so far, in the order they appeared."""
        return list(self._tools.values())

    # ------------------------------------------------------------------ hooks

    def _on_start(self) -> None:
        """The message begins."""

    def _on_text_start(self, index: int) -> None:
        """A text block opens at ``index``."""

    def _on_text(self, index: int, text: str) -> None:
        """A non-empty text fragment for the open text block."""

    def _on_text_stop(self, index: int, text: str) -> None:
        """The text block closes; ``text`` is its whole content."""

    def _on_tool_start(self, tool: ToolCall) -> None:
        """A tool block opens."""

    def _on_tool_input(self, tool: ToolCall, fragment: str) -> None:
        """An argument fragment for the open tool block."""

    def _on_tool_stop(self, tool: ToolCall) -> None:
        """The tool block closes; ``tool.input`` is parsed."""

    def _on_finish(self) -> None:
        """The response ends normally; ``stop_reason`` and the usage figures are final."""

    def _on_error(self, error: Kiro2ApiError) -> None:
        """The response ends with ``error``; open blocks were closed first."""

    # ------------------------------------------------------------------ steps

    def _step(self, inp: Input) -> None:
        try:
            self.state = TRANSITIONS[(self.state, inp)]
        except KeyError:
            self.state = next_state(self.state, inp)  # raises with a clear message

    def _start(self) -> None:
        self._step(Input.START)
        self._on_start()

    def _ping(self) -> None:
        self._step(Input.PING)

    def _feed(self, events: Iterable[UpstreamEvent]) -> None:
        for event in events:
            state = self.state
            if state in _TERMINAL:
                return  # the upstream may keep talking after a failure; nothing is sent
            # Ordered by frequency: text and argument fragments are nearly all of a stream.
            if type(event) is TextDelta:
                if state is _TEXT and event.text:
                    # The common step, inlined: (TEXT, TEXT) -> TEXT is in the table, so the
                    # lookup and the bookkeeping of _text() are skipped (same effect).
                    self._text_parts.append(event.text)
                    self._on_text(self._block, event.text)
                    continue
                self._text(event.text)
            elif type(event) is ToolUseInput:
                tool = self._tool
                if tool is not None and tool.id == event.id and event.fragment:
                    # Inlined _tool_input(): an open tool means State.TOOL, and
                    # (TOOL, TOOL_INPUT) -> TOOL is in the table.
                    tool.parts.append(event.fragment)
                    self._on_tool_input(tool, event.fragment)
            elif type(event) is ToolUseStart:
                self._tool_start(event.id, event.name)
            elif type(event) is ToolUseStop:
                tool = self._tool
                if tool is not None and tool.id == event.id:
                    self._close()
            elif type(event) is ContextUsage:
                self._context_usage(event.percentage)
            elif type(event) is Metering:
                self.credits = (self.credits or 0.0) + event.usage
            elif type(event) is UpstreamFailure:
                self._failure(event)

    def _text(self, text: str) -> None:
        if not text:
            return
        state = self.state
        if state is State.TOOL:
            self._step(Input.TEXT)
            self._deferred.append(text)
            return
        if state is State.MESSAGE:
            self._step(Input.OPEN_TEXT)
            self._block += 1
            self._on_text_start(self._block)
        self._step(Input.TEXT)
        self._text_parts.append(text)
        self._on_text(self._block, text)

    def _tool_start(self, tool_id: str, upstream_name: str) -> None:
        if tool_id in self._tools:
            return
        self._close_all()
        self._step(Input.OPEN_TOOL)
        self._block += 1
        name = self._tool_names.get(upstream_name, upstream_name)
        tool = ToolCall(self._block, len(self._tools), tool_id, name)
        self._tools[tool_id] = tool
        self._tool = tool
        self._on_tool_start(tool)

    def _tool_input(self, tool_id: str, fragment: str) -> None:
        tool = self._tool
        if tool is None or tool.id != tool_id or not fragment:
            return  # that block is closed (or unknown): it cannot grow any more
        self._step(Input.TOOL_INPUT)
        tool.parts.append(fragment)
        self._on_tool_input(tool, fragment)

    def _context_usage(self, percentage: float) -> None:
        if self._context_window > 0 and percentage > 0:
            self._context_tokens = int(percentage * self._context_window / 100 + 0.5)

    def _close(self) -> None:
        """Close the open block (a closing tool may reopen deferred text as a new block)."""
        state = self.state
        self._step(Input.CLOSE)
        if state is State.TEXT:
            text = "".join(self._text_parts)
            self._text_parts = []
            self._closed_tokens += estimate_text_tokens(text)
            self._on_text_stop(self._block, text)
            return
        tool = self._tool
        assert tool is not None  # State.TOOL always has its tool
        self._tool = None
        self._closed_tokens += tool._finalize()
        self._on_tool_stop(tool)
        if self._deferred:
            deferred = "".join(self._deferred)
            self._deferred = []
            self._text(deferred)

    def _close_all(self) -> None:
        while self.state in _OPEN:
            self._close()

    def _finish(self, stop_reason: str | None = None) -> None:
        self._close_all()
        if stop_reason is None:
            stop_reason = "tool_use" if self._tools else "end_turn"
        self._step(Input.FINISH)
        self.stop_reason = stop_reason
        self._on_finish()

    def _fail(self, error: Kiro2ApiError) -> None:
        self._close_all()
        self._step(Input.FAIL)
        self.error = error
        self._on_error(error)

    def _failure(self, failure: UpstreamFailure) -> None:
        if is_content_length_exceeded(failure) and self._block >= 0:
            self._finish("max_tokens")
        else:
            self._fail(failure_to_error(failure))


class BlockCollector(ResponseMachine):
    """A :class:`ResponseMachine` that keeps the closed blocks, for non-streaming responses.

    Attributes:
        blocks: Closed blocks in order: a ``str`` for a text block, a :class:`ToolCall` for a
            tool block.
    """

    __slots__ = ("blocks",)

    def __init__(
        self, *, input_tokens: int, context_window: int, tool_names: Mapping[str, str]
    ) -> None:
        super().__init__(
            input_tokens=input_tokens, context_window=context_window, tool_names=tool_names
        )
        self.blocks: list[str | ToolCall] = []

    def feed(self, events: Iterable[UpstreamEvent]) -> None:
        """Consume upstream events (ignored once the response has failed or finished)."""
        if self.state is State.IDLE:
            self._start()
        self._feed(events)

    def _complete(self) -> None:
        """Finish the response if needed; raise its error or a tool's invalid arguments.

        Raises:
            Kiro2ApiError: The mapped upstream failure.
            UpstreamProtocolError: A tool's arguments are not a JSON object.
        """
        if self.state is State.IDLE:
            self._start()
        if not self.finished:
            self._finish()
        if self.error is not None:
            raise self.error
        for block in self.blocks:
            if isinstance(block, ToolCall) and block.input is None:
                raise UpstreamProtocolError(
                    f"upstream sent invalid JSON arguments for tool call {block.id}"
                )

    def _on_text_stop(self, index: int, text: str) -> None:
        self.blocks.append(text)

    def _on_tool_stop(self, tool: ToolCall) -> None:
        self.blocks.append(tool)


class SSEMachine(ResponseMachine):
    """A :class:`ResponseMachine` whose hooks queue SSE bytes that each public call drains.

    The Anthropic and OpenAI stream translators share this: their ``_on_*`` hooks append frames
    to ``_out``, and every public method returns what the step produced.
    """

    __slots__ = ("_out",)

    def __init__(
        self, *, input_tokens: int, context_window: int, tool_names: Mapping[str, str]
    ) -> None:
        super().__init__(
            input_tokens=input_tokens, context_window=context_window, tool_names=tool_names
        )
        self._out: list[bytes] = []

    def fail(self, error: Kiro2ApiError) -> bytes:
        """Close open blocks, then the dialect's error frame; nothing is produced afterwards."""
        if self.finished:
            return b""
        self._fail(error)
        return self._flush()

    def _flush(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out
