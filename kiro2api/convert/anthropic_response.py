"""Upstream events to a non-streaming Anthropic ``Message``.

The content blocks are the same as in the stream (see :mod:`kiro2api.convert.blocks`): text and
``tool_use`` blocks in upstream order, tool ``input`` parsed from the concatenated argument
fragments (``{}`` when there were none). ``content`` is ``[]``, never ``null``, and the message
always has an ``id``: the SDKs require both, the original proxy omitted them.
"""

from __future__ import annotations

from collections.abc import Mapping

from kiro2api.convert.anthropic_stream import anthropic_usage
from kiro2api.convert.blocks import BlockCollector

__all__ = ["AnthropicAggregator"]


class AnthropicAggregator(BlockCollector):
    """Collect one upstream response and build the Anthropic Messages response body.

    Call :meth:`feed` with each batch of upstream events, then :meth:`result`.

    Args:
        model: The model name the client asked for (echoed back).
        message_id: The message id, ``msg_…``.
        input_tokens: The local estimate of the request's input tokens.
        context_window: The model's context window (turns the upstream's context-usage
            percentage into input tokens).
        tool_names: Maps tool names as sent upstream back to the client's names.
    """

    __slots__ = ("message_id", "model")

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

    def result(self) -> dict[str, object]:
        """The complete ``Message`` object (finishing the response if needed).

        Returns:
            A JSON-ready dict: ``id``, ``type``, ``role``, ``model``, ``content``,
            ``stop_reason``, ``stop_sequence``, ``usage``.

        Raises:
            Kiro2ApiError: The upstream failed (the mapped error; a context overflow before any
                output is :class:`~kiro2api.errors.PromptTooLongError`).
            UpstreamProtocolError: A tool call's arguments are not a JSON object.
        """
        self._complete()
        content: list[dict[str, object]] = []
        for block in self.blocks:
            if isinstance(block, str):
                content.append({"type": "text", "text": block})
            else:
                content.append(
                    {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
                )
        return {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": self.stop_reason,
            "stop_sequence": None,
            "usage": anthropic_usage(self.input_tokens, self.output_tokens),
        }
