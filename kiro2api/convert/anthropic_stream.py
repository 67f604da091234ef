"""Upstream events to an Anthropic Messages SSE stream.

The event sequence a client sees::

    message_start, ping,
    (content_block_start, content_block_delta*, content_block_stop)*,
    message_delta, message_stop                  -- or a single ``error`` event instead

Blocks are numbered from 0 in order; ``tool_use`` blocks start with ``"input": {}`` and receive
their arguments only as ``input_json_delta`` fragments (arguments in the start event made Claude
Code fail with "Error editing file"). Exactly one ``message_delta`` carries ``stop_reason`` and
usage. After an ``error`` event nothing follows, so Claude Code retries the request.

The grouping rules live in :mod:`kiro2api.convert.blocks`; this module only renders bytes. Delta
frames are the hot path: their constant parts are prepared once per block, and each fragment
costs one ``orjson.dumps`` of the fragment string.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import orjson

from kiro2api.convert.blocks import Input, SSEMachine, State, ToolCall
from kiro2api.convert.events import UpstreamEvent
from kiro2api.convert.sse import ANTHROPIC_PING, anthropic_error_body, anthropic_frame
from kiro2api.errors import Kiro2ApiError

__all__ = ["AnthropicStreamTranslator", "Input", "State", "anthropic_usage"]

_TEXT_START = (
    b'event: content_block_start\ndata: {"type":"content_block_start","index":%d,'
    b'"content_block":{"type":"text","text":""}}\n\n'
)
_TEXT_DELTA = (
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,'
    b'"delta":{"type":"text_delta","text":'
)
_JSON_DELTA = (
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,'
    b'"delta":{"type":"input_json_delta","partial_json":'
)
_DELTA_END = b"}}\n\n"
_BLOCK_STOP = b'event: content_block_stop\ndata: {"type":"content_block_stop","index":%d}\n\n'
_MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


def anthropic_usage(input_tokens: int, output_tokens: int) -> dict[str, int]:
    """The Anthropic ``usage`` object.

    The cache fields are always 0 (the upstream has no prompt cache), but Claude Code's context
    display needs them present.
    """
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


class AnthropicStreamTranslator(SSEMachine):
    """Translate one upstream response into Anthropic SSE bytes.

    Every public method returns the bytes to write to the client (possibly ``b""``). Call
    :meth:`message_start` first, then :meth:`feed` for each batch of upstream events, then
    :meth:`finish` at the end of the upstream stream, or :meth:`fail` when the upstream breaks.
    :meth:`finish` and :meth:`fail` are no-ops once the response is complete, e.g. after an
    in-stream upstream failure that :meth:`feed` already turned into ``max_tokens`` or an
    ``error`` event.

    Args:
        model: The model name the client asked for (echoed back).
        message_id: The message id, ``msg_…``.
        input_tokens: The local estimate of the request's input tokens.
        context_window: The model's context window, to turn the upstream's context-usage
            percentage into input tokens.
        tool_names: Maps tool names as sent upstream back to the client's names (names not in
            the map pass unchanged).

    Attributes:
        state: The :class:`State` of the stream.
        stop_reason: ``end_turn``, ``tool_use`` or ``max_tokens`` once finished.
        error: The error sent to the client, if any.
    """

    __slots__ = ("_json_delta", "_text_delta", "message_id", "model")

    def __init__(
        self,
        *,
        model: str,
        message_id: str,
        input_tokens: int,
        context_window: int,
        tool_names: Mapping[str, str],
    ) -> None:
        super().__init__(
            input_tokens=input_tokens, context_window=context_window, tool_names=tool_names
        )
        self.model = model
        self.message_id = message_id
        self._text_delta = b""
        self._json_delta = b""

    # ------------------------------------------------------------------ public API

    def message_start(self) -> bytes:
        """The ``message_start`` event.

        Raises:
            Kiro2ApiError: Called twice, or after the response ended.
        """
        self._start()
        return self._flush()

    def ping(self) -> bytes:
        """A ``ping`` keep-alive event (``b""`` once the response is complete).

        Raises:
            Kiro2ApiError: Called before :meth:`message_start`.
        """
        if self.finished:
            return b""
        self._ping()
        return ANTHROPIC_PING

    def feed(self, events: Iterable[UpstreamEvent]) -> bytes:
        """Translate a batch of upstream events.

        An :class:`~kiro2api.convert.events.UpstreamFailure` ends the response here: a context
        overflow after some output finishes with ``stop_reason: max_tokens``; anything else
        produces an ``error`` event. Events after the end are ignored.

        Raises:
            Kiro2ApiError: Called before :meth:`message_start`.
        """
        self._feed(events)
        return self._flush()

    def finish(self) -> bytes:
        """Close open blocks, then one ``message_delta`` and ``message_stop``.

        Raises:
            Kiro2ApiError: Called before :meth:`message_start`.
        """
        if self.finished:
            return b""
        self._finish()
        return self._flush()

    # ------------------------------------------------------------------ rendering

    def _on_start(self) -> None:
        message: dict[str, object] = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": self.model,
            "stop_reason": None,
            "stop_sequence": None,
            "usage": anthropic_usage(self.input_tokens, 0),
        }
        self._out.append(
            anthropic_frame("message_start", {"type": "message_start", "message": message})
        )

    def _on_text_start(self, index: int) -> None:
        self._out.append(_TEXT_START % index)
        self._text_delta = _TEXT_DELTA % index

    def _on_text(self, index: int, text: str) -> None:
        self._out += (self._text_delta, orjson.dumps(text), _DELTA_END)

    def _on_text_stop(self, index: int, text: str) -> None:
        self._out.append(_BLOCK_STOP % index)

    def _on_tool_start(self, tool: ToolCall) -> None:
        block = {"type": "tool_use", "id": tool.id, "name": tool.name, "input": {}}
        self._out.append(
            anthropic_frame(
                "content_block_start",
                {"type": "content_block_start", "index": tool.index, "content_block": block},
            )
        )
        self._json_delta = _JSON_DELTA % tool.index

    def _on_tool_input(self, tool: ToolCall, fragment: str) -> None:
        self._out += (self._json_delta, orjson.dumps(fragment), _DELTA_END)

    def _on_tool_stop(self, tool: ToolCall) -> None:
        self._out.append(_BLOCK_STOP % tool.index)

    def _on_finish(self) -> None:
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": self.stop_reason, "stop_sequence": None},
            "usage": anthropic_usage(self.input_tokens, self.output_tokens),
        }
        self._out += (anthropic_frame("message_delta", delta), _MESSAGE_STOP)

    def _on_error(self, error: Kiro2ApiError) -> None:
        self._out.append(anthropic_frame("error", anthropic_error_body(error)))
