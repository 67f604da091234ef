"""A faithful fake of the Kiro / CodeWhisperer upstream, for tests, benchmarks and demo mode.

One base URL serves ``POST /refreshToken`` (Social), ``POST /token`` (IdC), ``GET
/getUsageLimits`` and ``POST /generateAssistantResponse``. Requests are validated the way the real
upstream does (``400 Improperly formed request.`` with the rule's name in ``reason``), answers are
binary AWS EventStream frames made with :mod:`kiro2api.eventstream`.

Scripting the answer
--------------------
A directive in the text of the *current* user message (or in the text of its tool results)
picks the answer. Without one, the answer echoes: ``You said: <text>``, or for a message that
carries tool results ``Tool said: <result text>`` (the tool round trip). Directives are
``[[sim:KIND key=value ...]]``; values are bare words, JSON strings, objects or arrays::

    [[sim:echo chunks=5]]                         echo, in exactly 5 text frames
    [[sim:text text="Let me look." chunks=2]]     fixed text
    [[sim:tool name=Bash input={"command":"ls"}]] a tool call (input split into fragments)
    [[sim:tool name=Write size=200000 fragment=512]]  a ~200 KB JSON input
    [[sim:long events=2000 size=16]]              2,000 pre-encoded text events
    [[sim:trickle events=20 interval_ms=50]]      one event every 50 ms
    [[sim:delay seconds=1.5]]                     first byte late (where=headers|body)
    [[sim:http status=429 retry_after=2]]         an HTTP error (also 403, 500, 503, ...)
    [[sim:quota]]                                 402 MONTHLY_REQUEST_COUNT
    [[sim:exception type=ThrottlingException after=2]]  exception frame after 2 events
    [[sim:error code=InternalError after=1]]      ``:message-type: error`` frame
    [[sim:truncate after=3]]                      connection closed mid-frame
    [[sim:badcrc after=1 part=message]]           one frame with a wrong CRC

Content directives run in the order written (text, tool, text gives text around a tool call).
``times=N`` on any directive limits it to the first N requests carrying that exact directive
text (add ``tag=...`` to tell two identical directives apart): ``[[sim:http status=500
times=1]]`` fails once, and the client's retry succeeds. Accounts can carry the same directives
as standing faults (:attr:`AccountConfig.faults`, counted per account), and
:meth:`Simulator.inject` adds one while running.

Running it
----------
In process: ``url = await nursery.start(Simulator(config).serve)``. As a command: ``python -m
kiro2api.simulator --port 8765 [--tls] [--accounts FILE]``. See ``README.md`` beside this file.
"""

from __future__ import annotations

from kiro2api.simulator._config import (
    DEFAULT_MAX_BODY_BYTES,
    DEMO_REFRESH_TOKEN,
    AccountConfig,
    AccountKind,
    SimulatorConfig,
)
from kiro2api.simulator._directives import KINDS, Directive, parse_directives, strip_directives
from kiro2api.simulator._server import Simulator
from kiro2api.simulator._state import AccountState, ReceivedRequest
from kiro2api.simulator._validate import (
    KNOWN_MODEL_IDS,
    Rule,
    Violation,
    error_body,
    find_violations,
)

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEMO_REFRESH_TOKEN",
    "KINDS",
    "KNOWN_MODEL_IDS",
    "AccountConfig",
    "AccountKind",
    "AccountState",
    "Directive",
    "ReceivedRequest",
    "Rule",
    "Simulator",
    "SimulatorConfig",
    "Violation",
    "error_body",
    "find_violations",
    "parse_directives",
    "strip_directives",
]
