"""Anthropic request parsing: what is accepted, and a clear 400 naming the field otherwise."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
from convreq_helpers import PNG

from kiro2api.convert.anthropic_request import parse_anthropic_request, parse_count_tokens_request
from kiro2api.convert.canonical import (
    ImageBlock,
    TextBlock,
    ToolChoice,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
    Turn,
)
from kiro2api.errors import RequestError

JPEG = base64.b64encode(b"\xff\xd8\xff\xe0" + b"\x00" * 20).decode()


def image(data: str = PNG, media_type: str = "image/png") -> dict[str, Any]:
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def base(**extra: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}], **extra}


def test_full_request_parses() -> None:
    req = parse_anthropic_request(
        {
            "model": "claude-opus-5-5",
            "max_tokens": 128000,
            "stream": True,
            "system": [
                {"type": "text", "text": "A", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "B"},
            ],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "q"}, image()]},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "...", "signature": ""},
                        {"type": "redacted_thinking", "data": "xx"},
                        {"type": "text", "text": "a", "citations": None},
                        {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"c": 1}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t1",
                            "content": [{"type": "text", "text": "out"}, image()],
                            "is_error": True,
                            "cache_control": {"type": "ephemeral"},
                        }
                    ],
                },
            ],
            "tools": [
                {"name": "Bash", "description": "d", "input_schema": {"type": "object"}},
                {"type": "web_search_20250305", "name": "web_search"},
                {"name": "P", "input_schema": {"type": "object"}, "defer_loading": True},
            ],
            "tool_choice": {"type": "tool", "name": "Bash", "disable_parallel_tool_use": True},
            "stop_sequences": ["END"],
            "temperature": 0.5,
            "top_p": 1,
            # accepted and ignored
            "thinking": {"type": "adaptive"},
            "output_config": {"effort": "medium"},
            "context_management": {"edits": []},
            "safeguards": [{"type": "dangerous_tool_use"}],
            "metadata": {"user_id": "u"},
            "service_tier": "auto",
        }
    )
    png = ImageBlock("image/png", PNG)
    assert req.model == "claude-opus-5-5"
    assert req.max_tokens == 128000
    assert req.stream is True
    assert req.system == "A\nB"
    assert req.system_parts == ("A", "B")
    assert req.turns == (
        Turn("user", (TextBlock("q"), png)),
        Turn("assistant", (TextBlock("a"), ToolUseBlock("t1", "Bash", {"c": 1}))),
        Turn("user", (ToolResultBlock("t1", (TextBlock("out"), png), is_error=True),)),
    )
    assert req.tools == (
        ToolSpec("Bash", "d", {"type": "object"}),
        ToolSpec("web_search", "", None, server_type="web_search_20250305"),
        ToolSpec("P", "", {"type": "object"}, defer_loading=True),
    )
    assert req.tool_choice == ToolChoice("tool", "Bash")
    assert req.stop_sequences == ("END",)
    assert req.temperature == 0.5
    assert req.top_p == 1.0


def test_system_string_and_system_role_messages() -> None:
    req = parse_anthropic_request(
        {
            "model": "m",
            "system": "sys",
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "system", "content": "env", "output_config": {"effort": "low"}},
            ],
        }
    )
    assert req.system == "sys"
    assert req.turns[1] == Turn("user", (TextBlock("env"),))
    assert req.max_tokens is None
    assert req.stream is False


def test_count_tokens_ignores_max_tokens_and_stream() -> None:
    req = parse_count_tokens_request(
        {
            "model": "claude-opus-5-5",
            "messages": [{"role": "user", "content": "x"}],
            "tools": [],
            "max_tokens": "not even a number",
            "stream": "nope",
        }
    )
    assert req.tools == ()
    assert req.max_tokens is None
    assert req.stream is False


BAD_CASES: list[tuple[object, str]] = [
    ([], ""),
    (base(model=None), "model"),
    (base(model=""), "model"),
    (base(model=5), "model"),
    ({"model": "m"}, "messages"),
    (base(messages=[]), "messages"),
    (base(messages={"role": "user"}), "messages"),
    (base(messages=["hi"]), "messages[0]"),
    (base(messages=[{"role": "bot", "content": "x"}]), "messages[0].role"),
    (base(messages=[{"role": "user"}]), "messages[0].content"),
    (base(messages=[{"role": "user", "content": 5}]), "messages[0].content"),
    (base(messages=[{"role": "user", "content": [5]}]), "messages[0].content[0]"),
    (base(messages=[{"role": "user", "content": [{"text": "x"}]}]), "messages[0].content[0].type"),
    (
        base(messages=[{"role": "user", "content": [{"type": "text", "text": 3}]}]),
        "messages[0].content[0].text",
    ),
    (
        base(messages=[{"role": "user", "content": [{"type": "hologram", "source": {}}]}]),
        "messages[0].content[0].type",
    ),
    (
        base(messages=[{"role": "user", "content": [{"type": "document", "source": {}}]}]),
        "messages[0].content[0].source.type",
    ),
    (
        base(
            messages=[{"role": "user", "content": [{"type": "tool_use", "id": "a", "name": "b"}]}]
        ),
        "messages[0].content[0].type",
    ),
    (
        base(
            messages=[
                {"role": "assistant", "content": [{"type": "tool_result", "tool_use_id": "a"}]}
            ]
        ),
        "messages[0].content[0].type",
    ),
    (
        base(messages=[{"role": "system", "content": [image()]}]),
        "messages[0].content[0].type",
    ),
    (
        base(messages=[{"role": "assistant", "content": [{"type": "tool_use", "name": "b"}]}]),
        "messages[0].content[0].id",
    ),
    (
        base(
            messages=[
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "a", "name": "b", "input": []}],
                }
            ]
        ),
        "messages[0].content[0].input",
    ),
    (
        base(messages=[{"role": "user", "content": [{"type": "tool_result", "tool_use_id": ""}]}]),
        "messages[0].content[0].tool_use_id",
    ),
    (
        base(
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "a", "content": 4}],
                }
            ]
        ),
        "messages[0].content[0].content",
    ),
    (
        base(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "a",
                            "content": [{"type": "hologram"}],
                        }
                    ],
                }
            ]
        ),
        "messages[0].content[0].content[0].type",
    ),
    (
        base(
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "a", "is_error": "yes"}],
                }
            ]
        ),
        "messages[0].content[0].is_error",
    ),
    (
        base(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image", "source": {"type": "url", "url": "https://x/a.png"}}
                    ],
                }
            ]
        ),
        "messages[0].content[0].source.type",
    ),
    (
        base(messages=[{"role": "user", "content": [{"type": "image"}]}]),
        "messages[0].content[0].source",
    ),
    (
        base(messages=[{"role": "user", "content": [image(data="not base64!")]}]),
        "messages[0].content[0].source.data",
    ),
    (
        base(messages=[{"role": "user", "content": [image(data=JPEG)]}]),
        "messages[0].content[0].source.data",
    ),
    (
        base(messages=[{"role": "user", "content": [image(media_type="image/tiff")]}]),
        "messages[0].content[0].source.media_type",
    ),
    (
        base(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "a", "content": [image(data="@@")]}
                    ],
                }
            ]
        ),
        "messages[0].content[0].content[0].source.data",
    ),
    (base(system=5), "system"),
    (base(system=[{"type": "image"}]), "system[0].type"),
    (base(system=[{"type": "text"}]), "system[0].text"),
    (base(tools={}), "tools"),
    (base(tools=[{"description": "x"}]), "tools[0].name"),
    (base(tools=[{"name": "a", "input_schema": "x"}]), "tools[0].input_schema"),
    (base(tools=[{"name": "a", "description": 1}]), "tools[0].description"),
    (base(tool_choice="auto"), "tool_choice"),
    (base(tool_choice={"type": "maybe"}), "tool_choice.type"),
    (base(tool_choice={"type": "tool"}), "tool_choice.name"),
    (base(max_tokens="10"), "max_tokens"),
    (base(max_tokens=0), "max_tokens"),
    (base(max_tokens=True), "max_tokens"),
    (base(stream="yes"), "stream"),
    (base(stop_sequences="END"), "stop_sequences"),
    (base(stop_sequences=[1]), "stop_sequences[0]"),
    (base(temperature="hot"), "temperature"),
    (base(top_p=[1]), "top_p"),
]


@pytest.mark.parametrize(("body", "param"), BAD_CASES)
def test_bad_input_is_a_400_naming_the_field(body: object, param: str) -> None:
    with pytest.raises(RequestError) as info:
        parse_anthropic_request(copy.deepcopy(body))
    err = info.value
    assert err.status_code == 400
    assert (err.param or "") == param
    assert err.message


def test_unknown_block_message_lists_supported_types() -> None:
    with pytest.raises(RequestError) as info:
        parse_anthropic_request(
            base(messages=[{"role": "user", "content": [{"type": "hologram", "source": {}}]}])
        )
    assert "'hologram'" in info.value.message
    assert "image, text, tool_result" in info.value.message


def test_documents_become_text_instead_of_a_400() -> None:
    # Clients resend history every turn: a refused document would break every later turn.
    pdf = {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}
    req = parse_anthropic_request(
        base(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "document", "source": {"type": "text", "data": "plain notes"}},
                        {"type": "document", "title": "spec", "source": pdf},
                        {
                            "type": "tool_result",
                            "tool_use_id": "t1",
                            "content": [{"type": "document", "source": pdf}],
                        },
                    ],
                }
            ]
        )
    )
    blocks = req.turns[0].blocks
    assert blocks[0] == TextBlock("plain notes")
    assert isinstance(blocks[1], TextBlock)
    assert "document 'spec' (application/pdf) was left out" in blocks[1].text
    result = blocks[2]
    assert isinstance(result, ToolResultBlock)
    assert "application/pdf" in result.content[0].text  # type: ignore[union-attr]
