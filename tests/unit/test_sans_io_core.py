"""The sans-IO core imports no I/O library and documents every public name.

One list covers the whole core: the codec, the error hierarchy and every converter module.
"""

from __future__ import annotations

import importlib
import inspect
import json
import subprocess
import sys

import pytest

MODULES = [
    "kiro2api.errors",
    "kiro2api.eventstream",
    # request side
    "kiro2api.convert",
    "kiro2api.convert.canonical",
    "kiro2api.convert.anthropic_request",
    "kiro2api.convert.openai_request",
    "kiro2api.convert.upstream_request",
    "kiro2api.convert.history",
    "kiro2api.convert.tools",
    "kiro2api.convert.models",
    "kiro2api.convert.images",
    "kiro2api.convert.request_tokens",
    "kiro2api.convert.ids",
    # response side
    "kiro2api.convert.estimate",
    "kiro2api.convert.events",
    "kiro2api.convert.sse",
    "kiro2api.convert.blocks",
    "kiro2api.convert.anthropic_stream",
    "kiro2api.convert.anthropic_response",
    "kiro2api.convert.openai_stream",
    "kiro2api.convert.openai_response",
]

IO_LIBRARIES = {"trio", "quart", "quart_trio", "hypercorn", "h2", "httpx", "socket", "asyncio"}


def test_no_io_library_is_imported() -> None:
    code = (
        "import json, sys\n"
        + "".join(f"import {m}\n" for m in MODULES)
        + f"print(json.dumps(sorted(set({sorted(IO_LIBRARIES)!r}) & set(sys.modules))))\n"
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
