"""Parsing of ``[[sim:KIND key=value ...]]`` directives (sans-IO).

A directive is written inside a user message and scripts the simulator's answer. Grammar::

    directive := "[[sim:" KIND (WS option)* WS? "]]"
    option    := KEY ( "=" value )?          # a bare KEY means KEY=true
    value     := JSON object | JSON array | JSON string | bare word (no spaces, no "]]")

The ``[[sim:`` opener is what makes an accidental trigger unlikely: ordinary prose, Markdown and
code almost never contain it. Unknown kinds and options are errors (a typo should fail loudly,
not silently fall back to the default answer).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from kiro2api.errors import RequestError

__all__ = ["KINDS", "Directive", "parse_directives", "strip_directives"]

OPENER = "[[sim:"
CLOSER = "]]"

_COMMON = frozenset({"times", "tag"})
#: Every directive kind and the options it takes (``times`` and ``tag`` are accepted by all).
KINDS: Mapping[str, frozenset[str]] = {
    # content
    "echo": frozenset({"text", "chunks"}),
    "text": frozenset({"text", "chunks"}),
    "tool": frozenset({"name", "input", "size", "fragment", "id"}),
    "long": frozenset({"events", "size"}),
    "trickle": frozenset({"events", "interval_ms", "text"}),
    # timing
    "delay": frozenset({"seconds", "where"}),
    # faults
    "http": frozenset({"status", "retry_after", "reason", "message"}),
    "quota": frozenset(),
    "exception": frozenset({"type", "message", "after"}),
    "error": frozenset({"code", "message", "after"}),
    "truncate": frozenset({"after"}),
    "badcrc": frozenset({"after", "part"}),
}
CONTENT_KINDS = frozenset({"echo", "text", "tool", "long", "trickle"})

_KIND = re.compile(r"[a-z_]+")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BARE = re.compile(r"[^\s\]]+|\](?!\])")


@dataclass(frozen=True, slots=True)
class Directive:
    """One parsed directive.

    Attributes:
        kind: The directive kind (a key of :data:`KINDS`).
        options: Option values: ``str`` for bare words, ``True`` for bare keys, or parsed JSON.
        source: The directive's exact text, brackets included; ``times=N`` counts per source.
    """

    kind: str
    options: Mapping[str, object]
    source: str

    def _fail(self, key: str, what: str) -> RequestError:
        return RequestError(f"{self.source}: option {key} must be {what}", param=key)

    def text(self, key: str, default: str | None = None) -> str | None:
        """An option as text (JSON values are rendered back to JSON)."""
        value = self.options.get(key)
        if value is None:
            return default
        if isinstance(value, str):
            return value
        return orjson.dumps(value).decode()

    def integer(self, key: str, default: int | None = None, *, minimum: int = 0) -> int | None:
        """An option as an integer no smaller than ``minimum``.

        Raises:
            RequestError: when the value is not such an integer.
        """
        value = self.options.get(key)
        if value is None:
            return default
        try:
            number = int(value) if isinstance(value, str | int) else None
        except ValueError:
            number = None
        if number is None or isinstance(value, bool) or number < minimum:
            raise self._fail(key, f"an integer >= {minimum}")
        return number

    def number(self, key: str, default: float | None = None) -> float | None:
        """An option as a non-negative float.

        Raises:
            RequestError: when the value is not such a number.
        """
        value = self.options.get(key)
        if value is None:
            return default
        try:
            number = float(value) if isinstance(value, str | int | float) else None
        except ValueError:
            number = None
        if number is None or isinstance(value, bool) or not number >= 0:
            raise self._fail(key, "a number >= 0")
        return number

    def choice(self, key: str, default: str, allowed: frozenset[str]) -> str:
        """An option that must be one of ``allowed``.

        Raises:
            RequestError: when the value is not allowed.
        """
        value = self.text(key, default)
        if value not in allowed:
            raise self._fail(key, "one of " + ", ".join(sorted(allowed)))
        return value

    @property
    def times(self) -> int | None:
        """How many requests this directive applies to (``None``: every request)."""
        return self.integer("times", None, minimum=1)


def _scan_json(text: str, start: int) -> int:
    """Return the end index of the JSON value starting at ``text[start]``."""
    depth = 0
    in_string = False
    i = start
    while i < len(text):
        ch = text[i]
        if in_string:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_string = False
                if depth == 0:
                    return i + 1
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise RequestError(f"unterminated JSON value in directive at offset {start}")


def _parse_one(text: str, start: int) -> tuple[Directive, int]:
    """Parse the directive whose opener starts at ``start``; return it and its end index."""
    pos = start + len(OPENER)
    match = _KIND.match(text, pos)
    if match is None or match.group() not in KINDS:
        found = match.group() if match else text[pos : pos + 12]
        raise RequestError(f"unknown simulator directive kind {found!r}; known: {sorted(KINDS)}")
    kind = match.group()
    allowed = KINDS[kind] | _COMMON
    pos = match.end()
    options: dict[str, object] = {}
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if text.startswith(CLOSER, pos):
            pos += len(CLOSER)
            break
        if pos >= len(text):
            raise RequestError(f"directive [[sim:{kind} ...]] is not closed with ]]")
        key_match = _KEY.match(text, pos)
        if key_match is None:
            raise RequestError(f"bad option in [[sim:{kind}]] near {text[pos : pos + 20]!r}")
        key = key_match.group()
        if key not in allowed:
            raise RequestError(f"[[sim:{kind}]] has no option {key!r}; allowed: {sorted(allowed)}")
        pos = key_match.end()
        value: object = True
        if text.startswith("=", pos):
            pos += 1
            if pos < len(text) and text[pos] in '{["':
                end = _scan_json(text, pos)
                try:
                    value = orjson.loads(text[pos:end])
                except orjson.JSONDecodeError as exc:
                    raise RequestError(f"[[sim:{kind}]] option {key}: bad JSON ({exc})") from exc
                pos = end
            else:
                bare = _BARE.match(text, pos)
                value = ""
                while bare is not None:
                    value += bare.group()
                    pos = bare.end()
                    bare = _BARE.match(text, pos)
        options[key] = value
    source = text[start:pos]
    return Directive(kind=kind, options=options, source=source), pos


def parse_directives(text: str) -> list[Directive]:
    """Every directive in ``text``, in order of appearance.

    Raises:
        RequestError: when a directive is malformed or names an unknown kind or option.
    """
    found: list[Directive] = []
    pos = text.find(OPENER)
    while pos != -1:
        directive, end = _parse_one(text, pos)
        found.append(directive)
        pos = text.find(OPENER, end)
    return found


def strip_directives(text: str) -> str:
    """``text`` without its directives, trimmed; used for the echo answer."""
    if OPENER not in text:
        return text.strip()
    parts: list[str] = []
    last = 0
    pos = text.find(OPENER)
    while pos != -1:
        parts.append(text[last:pos])
        _directive, last = _parse_one(text, pos)
        pos = text.find(OPENER, last)
    parts.append(text[last:])
    return " ".join(part.strip() for part in parts if part.strip())
