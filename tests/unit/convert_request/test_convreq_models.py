"""The model map: defaults, the naming rule, Claude Code's aliases, configuration."""

from __future__ import annotations

import pytest

from kiro2api.convert.models import ModelMap
from kiro2api.errors import ConfigError, RequestError


@pytest.mark.parametrize(
    ("name", "upstream"),
    [
        # §2.3.5 table, mapped to current ids
        ("claude-sonnet-4-5", "claude-sonnet-4.5"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4.5"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-3-7-sonnet-20250219", "claude-3.7-sonnet"),
        ("claude-3-5-haiku-20241022", "claude-haiku-4.5"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4.5"),
        # upstream ids themselves
        ("claude-sonnet-4.5", "claude-sonnet-4.5"),
        ("claude-opus-4.6", "claude-opus-4.6"),
        ("claude-3.7-sonnet", "claude-3.7-sonnet"),
        ("auto", "auto"),
        # the naming rule
        ("claude-opus-4-5", "claude-opus-4.5"),
        ("claude-opus-4-6-20260101", "claude-opus-4.6"),
        ("claude-haiku-4-5", "claude-haiku-4.5"),
        ("claude-3-7-sonnet", "claude-3.7-sonnet"),
        # Claude Code 2.1.330 aliases and future versions: newest of the family
        ("claude-opus-5-5", "claude-opus-4.6"),
        ("claude-sonnet-5-5", "claude-sonnet-4.5"),
        ("claude-haiku-5-5", "claude-haiku-4.5"),
        ("claude-opus-7", "claude-opus-4.6"),
        # tolerated decorations
        ("claude-sonnet-4-5-thinking", "claude-sonnet-4.5"),
        ("Claude-Sonnet-4-5 ", "claude-sonnet-4.5"),
    ],
)
def test_default_resolution(name: str, upstream: str) -> None:
    assert ModelMap.default().resolve(name) == upstream


@pytest.mark.parametrize("name", ["gpt-4o", "claude-opus-4", "claude-sonnet-3-5", "", "llama-2"])
def test_unknown_model_is_a_400_listing_models(name: str) -> None:
    with pytest.raises(RequestError) as info:
        ModelMap.default().resolve(name)
    err = info.value
    assert err.param == "model"
    assert err.status_code == 400
    assert err.error_type == "invalid_request_error"
    assert "claude-sonnet-4.5" in err.message
    assert "claude-opus-5-5" in err.message


def test_public_models_and_context_window() -> None:
    models = ModelMap.default().public_models()
    ids = [m.id for m in models]
    assert ids[:2] == ["claude-opus-4.6", "claude-opus-4.5"]
    assert "claude-sonnet-4-5-20250929" in ids
    assert len(ids) == len(set(ids))
    assert all(m.context_window == 200_000 for m in models)
    assert all(m.created > 0 and m.display_name for m in models)
    assert ModelMap.default().context_window("claude-opus-5-5") == 200_000
    assert ModelMap.default().context_window("nonsense") == 200_000


def test_from_config_merges_over_defaults() -> None:
    mm = ModelMap.from_config(
        {
            "gpt-4o": "claude-sonnet-4.5",
            "big": {"id": "claude-opus-4.6", "context_window": 1_000_000, "display_name": "Big"},
            "claude-opus-4.6": {"id": "claude-opus-4.6", "context_window": 500_000},
            "claude-sonnet-4-5": "claude-sonnet-4",
        }
    )
    assert mm.resolve("gpt-4o") == "claude-sonnet-4.5"
    assert mm.resolve("big") == "claude-opus-4.6"
    assert mm.context_window("big") == 1_000_000
    # configuring an upstream id applies to every alias of it
    assert mm.context_window("claude-opus-5-5") == 500_000
    assert mm.resolve("claude-sonnet-4-5") == "claude-sonnet-4"
    assert mm.resolve("claude-haiku-4-5") == "claude-haiku-4.5"
    info = {m.id: m for m in mm.public_models()}
    assert info["big"].display_name == "Big"
    assert ModelMap.from_config(None).resolve("auto") == "auto"


@pytest.mark.parametrize(
    "config",
    [
        ["a"],
        {"a": 3},
        {"a": ""},
        {"a": {"context_window": 5}},
        {"a": {"id": "x", "context_window": 0}},
        {"a": {"id": "x", "context_window": True}},
        {"a": {"id": "x", "display_name": 3}},
        {"": "x"},
    ],
)
def test_bad_config_is_a_config_error(config: object) -> None:
    with pytest.raises(ConfigError):
        ModelMap.from_config(config)
