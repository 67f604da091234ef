"""Upstream events to an OpenAI Chat Completions stream (``chat.completion.chunk``).

The chunk sequence a client sees::

    {"delta": {"role": "assistant", "content": ""}}
    {"delta": {"content": "..."}}*                      text, in order
    {"delta": {"tool_calls": [{"index", "id", "type", "function": {"name", "arguments": ""}}]}}
    {"delta": {"tool_calls": [{"index", "function": {"arguments": "..."}}]}}*
    {"delta": {}, "finish_reason": "stop" | "tool_calls" | "length"}
    {"choices": [], "usage": {...}}                      only with stream_options.include_usage
    [DONE]

An error after the first byte is a ``{"error": {...}}`` chunk followed by ``[DONE]``. A tool
called without arguments gets ``arguments: "{}"``, because clients ``json.loads`` the
concatenated arguments and ``""`` is not JSON.

Every chunk carries the same ``id``/``object``/``created``/``model`` prefix, which is serialised
once; the per-chunk work is one ``orjson.dumps`` of the fragment.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import orjson

from kiro2api.convert.blocks import SSEMachine, State, ToolCall
from kiro2api.convert.events import UpstreamEvent
from kiro2api.convert.sse import OPENAI_DONE, OPENAI_KEEPALIVE, openai_error_body, openai_frame
from kiro2api.errors import Kiro2ApiError

__all__ = ["FINISH_REASONS", "OpenAIStreamTranslator", "openai_usage"]

#: Anthropic ``stop_reason`` -> OpenAI ``finish_reason``.
FINISH_REASONS: Mapping[str, str] = {
    "end_turn": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
}

_CHUNK_END = b',"finish_reason":null,"logprobs":null}]}\n\n'


def openai_usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """The OpenAI ``usage`` object (all three fields, always)."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


class OpenAIStreamTranslator(SSEMachine):
    """Translate one upstream response into OpenAI ``chat.completion.chunk`` SSE bytes.

    Every public method returns bytes to write to the client (possibly ``b""``). The first
    chunk (``role: assistant``) is produced by :meth:`start` or, implicitly, by the first
    :meth:`feed`/:meth:`finish`. :meth:`finish` and :meth:`fail` are no-ops once the stream has
    ended (e.g. after an in-stream upstream failure handled by :meth:`feed`).

    Args:
        model: The model name the client asked for (echoed back).
        completion_id: The ``chatcmpl-…`` id shared by all chunks.
        created: Unix time in seconds.
        input_tokens: The local estimate of the prompt's tokens.
        context_window: The model's context window (turns the upstream's context-usage
            percentage into prompt tokens).
        tool_names: Maps tool names as sent upstream back to the client's names.
        include_usage: Send the usage chunk (``stream_options.include_usage``).
    """

    __slots__ = ("_head", "completion_id", "created", "include_usage", "model")

    def __init__(
        self,
        *,
        model: str,
        completion_id: str,
        created: int,
        input_tokens: int,
        context_window: int,
        tool_names: Mapping[str, str],
        include_usage: bool,
    ) -> None:
        super().__init__(
            input_tokens=input_tokens, context_window=context_window, tool_names=tool_names
        )
        self.model = model
        self.completion_id = completion_id
        self.created = created
        self.include_usage = include_usage
        self._head = b"".join(
            (
                b'data: {"id":',
                orjson.dumps(completion_id),
                b',"object":"chat.completion.chunk","created":',
                str(int(created)).encode(),
                b',"model":',
                orjson.dumps(model),
                b',"choices":[{"index":0,"delta":',
            )
        )

    # ------------------------------------------------------------------ public API

    def start(self) -> bytes:
        """The first chunk (``role: assistant``); ``b""`` if already sent or the stream ended."""
        if self.state is State.IDLE:
            self._start()
        return self._flush()

    def ping(self) -> bytes:
        """Keep-alive bytes: the first chunk if not sent yet, else an SSE comment.

        ``b""`` once the stream has ended.
        """
        if self.state is State.IDLE:
            return self.start()
        if self.finished:
            return b""
        self._ping()
        return OPENAI_KEEPALIVE

    def feed(self, events: Iterable[UpstreamEvent]) -> bytes:
        """Translate a batch of upstream events.

        An :class:`~kiro2api.convert.events.UpstreamFailure` ends the stream here: a context
        overflow after some output finishes with ``finish_reason: length``; anything else
        produces an error chunk and ``[DONE]``. Events after the end are ignored.
        """
        if self.state is State.IDLE:
            self._start()
        self._feed(events)
        return self._flush()

    def finish(self) -> bytes:
        """The final chunk with ``finish_reason``, the usage chunk if asked for, ``[DONE]``."""
        if self.finished:
            return b""
        if self.state is State.IDLE:
            self._start()
        self._finish()
        return self._flush()

    # ------------------------------------------------------------------ rendering

    def _on_start(self) -> None:
        self._out += (self._head, b'{"role":"assistant","content":""}', _CHUNK_END)

    def _on_text(self, index: int, text: str) -> None:
        self._out += (self._head, b'{"content":', orjson.dumps(text), b"}", _CHUNK_END)

    def _on_tool_start(self, tool: ToolCall) -> None:
        call = {
            "index": tool.ordinal,
            "id": tool.id,
            "type": "function",
            "function": {"name": tool.name, "arguments": ""},
        }
        self._out += (self._head, b'{"tool_calls":[', orjson.dumps(call), b"]}", _CHUNK_END)

    def _on_tool_input(self, tool: ToolCall, fragment: str) -> None:
        self._out += (
            self._head,
            b'{"tool_calls":[{"index":%d,"function":{"arguments":' % tool.ordinal,
            orjson.dumps(fragment),
            b"}}]}",
            _CHUNK_END,
        )

    def _on_tool_stop(self, tool: ToolCall) -> None:
        if not tool.parts:
            self._on_tool_input(tool, "{}")

    def _on_finish(self) -> None:
        reason = FINISH_REASONS[self.stop_reason or "end_turn"]
        self._out += (
            self._head,
            b'{},"finish_reason":"%s","logprobs":null}]}\n\n' % reason.encode(),
        )
        if self.include_usage:
            chunk = {
                "id": self.completion_id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": openai_usage(self.input_tokens, self.output_tokens),
            }
            self._out.append(openai_frame(chunk))
        self._out.append(OPENAI_DONE)

    def _on_error(self, error: Kiro2ApiError) -> None:
        self._out += (openai_frame(openai_error_body(error)), OPENAI_DONE)
