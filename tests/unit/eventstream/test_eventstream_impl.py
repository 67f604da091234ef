"""Which codec is in use, and that the compiled one, its stub and the twin line up."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import NO_EXTENSIONS

import kiro2api.eventstream as facade
from kiro2api import _eventstream_py

ROOT = Path(__file__).resolve().parents[3]


def _run(code: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


@pytest.mark.skipif(NO_EXTENSIONS, reason="the pure-Python codec was asked for")
def test_compiled_codec_is_in_use() -> None:
    # A broken or missing build must fail the run, not fall back to Python quietly.
    assert facade.IMPLEMENTATION == "c", "kiro2api._eventstream did not load: build it"
    assert facade.Decoder.__module__ == "kiro2api._eventstream"
    assert facade.NO_EXTENSIONS is False


def test_environment_variable_selects_the_twin() -> None:
    code = "import kiro2api.eventstream as e; print(e.IMPLEMENTATION, e.Decoder.__module__)"
    assert _run(code, KIRO2API_NO_EXTENSIONS="1") == "py kiro2api._eventstream_py"


def _stub_api() -> dict[str, set[str]]:
    tree = ast.parse((ROOT / "kiro2api" / "_eventstream.pyi").read_text())
    api: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            api[node.name] = {
                item.name
                for item in node.body
                if isinstance(item, ast.FunctionDef) and not item.name.startswith("__")
            }
        elif isinstance(node, ast.FunctionDef):
            api[node.name] = set()
    return api


@pytest.mark.parametrize("module_name", ["kiro2api._eventstream_py", "kiro2api._eventstream"])
def test_stub_matches_both_implementations(module_name: str) -> None:
    if module_name.endswith("_eventstream") and NO_EXTENSIONS:
        pytest.skip("KIRO2API_NO_EXTENSIONS is set")
    module = importlib.import_module(module_name)
    stub = _stub_api()
    assert set(stub) == set(module.__all__) == set(_eventstream_py.__all__)
    for name, members in stub.items():
        value = getattr(module, name)
        if isinstance(value, type):
            assert {m for m in dir(value) if not m.startswith("_")} == members, name
        else:
            assert callable(value), name


def test_public_names_import_and_are_documented() -> None:
    for name in facade.__all__:
        value = getattr(facade, name)
        if callable(value) and name != "HeaderValue":
            assert value.__doc__, name
