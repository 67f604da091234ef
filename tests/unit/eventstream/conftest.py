"""The ``impl`` fixture: every codec test runs against the twin and the compiled module."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

#: Set when the pure-Python build was asked for; then the compiled half is skipped.
NO_EXTENSIONS = bool(os.environ.get("KIRO2API_NO_EXTENSIONS"))


@pytest.fixture(
    params=[
        "py",
        pytest.param(
            "c",
            marks=[
                pytest.mark.c_extension,
                pytest.mark.skipif(NO_EXTENSIONS, reason="KIRO2API_NO_EXTENSIONS is set"),
            ],
        ),
    ]
)
def impl(request: pytest.FixtureRequest) -> ModuleType:
    """One codec implementation module (``Decoder``, ``Message``, ``encode_message``).

    A missing compiled module is an error here, not a skip: a broken build must not pass.
    """
    name = "kiro2api._eventstream_py" if request.param == "py" else "kiro2api._eventstream"
    return importlib.import_module(name)
