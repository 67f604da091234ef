"""The response-side converter stays sans-IO and documents its public surface."""

from __future__ import annotations

import importlib
import inspect
import json
import subprocess
import sys

import pytest

MODULES = [
    "kiro2api.convert.estimate",
    "kiro2api.convert.events",
    "kiro2api.convert.sse",
    "kiro2api.convert.blocks",
    "kiro2api.convert.anthropic_stream",
    "kiro2api.convert.anthropic_response",
    "kiro2api.convert.openai_stream",
    "kiro2api.convert.openai_response",
]


def test_no_io_library_is_imported() -> None:
    code = (
        "import json, sys\n"
        + "".join(f"import {m}\n" for m in MODULES)
        + "io = {'trio', 'quart', 'quart_trio', 'hypercorn', 'h2', 'httpx', 'socket', 'asyncio'}\n"
        + "print(json.dumps(sorted(io & set(sys.modules))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


@pytest.mark.parametrize("name", MODULES)
def test_public_names_import_and_are_documented(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__doc__
    for attr in module.__all__:
        value = getattr(module, attr)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"{name}.{attr} has no docstring"
