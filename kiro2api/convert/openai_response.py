"""Upstream events to a non-streaming OpenAI ``chat.completion``.

Text blocks are concatenated into ``message.content`` (``null`` when the answer is tool calls
only); tool calls keep upstream order, each with its arguments as a JSON string (``"{}"`` when
there were none). ``usage`` is in estimated tokens, never in bytes as the original reported.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from kiro2api.convert.blocks import BlockCollector
from kiro2api.convert.openai_stream import FINISH_REASONS, openai_usage

__all__ = ["OpenAIAggregator"]


class OpenAIAggregator(BlockCollector):
    """Collect one upstream response and build the OpenAI Chat Completions response body.

    Call :meth:`feed` with each batch of upstream events, then :meth:`result`.

    Args:
        model: The model name the client asked for (echoed back).
        completion_id: The ``chatcmpl-…`` id.
        created: Unix time in seconds.
        input_tokens: The local estimate of the prompt's tokens.
        context_window: The model's context window (turns the upstream's context-usage
            percentage into prompt tokens).
        tool_names: Maps tool names as sent upstream back to the client's names.
    """

    __slots__ = ("completion_id", "created", "model")

    def __init__(
        self,
        *,
        model: str,
        completion_id: str,
        created: int,
        input_tokens: int,
        context_window: int,
        tool_names: Mapping[str, str],
    ) -> None:
        super().__init__(
            input_tokens=input_tokens, context_window=context_window, tool_names=tool_names
        )
        self.model = model
        self.completion_id = completion_id
        self.created = created

    def result(self) -> dict[str, object]:
        """The complete ``chat.completion`` object (finishing the response if needed).

        Raises:
            Kiro2ApiError: The upstream failed (the mapped error; a context overflow before any
                output is :class:`~kiro2api.errors.PromptTooLongError`).
            UpstreamProtocolError: A tool call's arguments are not a JSON object.
        """
        self._complete()
        texts: list[str] = []
        calls: list[dict[str, object]] = []
        for block in self.blocks:
            if isinstance(block, str):
                texts.append(block)
            else:
                arguments = orjson.dumps(block.input).decode()
                calls.append(
                    {
                        "id": block.id,
                        "type": "function",
                        "function": {"name": block.name, "arguments": arguments},
                    }
                )
        message: dict[str, object] = {
            "role": "assistant",
            "content": "".join(texts) if texts or not calls else None,
        }
        if calls:
            message["tool_calls"] = calls
        return {
            "id": self.completion_id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": FINISH_REASONS[self.stop_reason or "end_turn"],
                    "logprobs": None,
                }
            ],
            "usage": openai_usage(self.input_tokens, self.output_tokens),
        }
