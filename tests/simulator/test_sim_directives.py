"""Directive parsing: values, errors for typos, and what the echo keeps."""

from __future__ import annotations

import pytest

from kiro2api.errors import RequestError
from kiro2api.simulator import parse_directives, strip_directives


def test_plain_text_has_no_directives() -> None:
    assert parse_directives("Hello [[not a directive]] [sim:echo]") == []


def test_values_bare_json_and_flags() -> None:
    text = 'go [[sim:tool name=Bash input={"command":"echo ]] hi","n":[1,2]} id=tooluse_x]] now'
    (d,) = parse_directives(text)
    assert d.kind == "tool"
    assert d.options == {
        "name": "Bash",
        "input": {"command": "echo ]] hi", "n": [1, 2]},
        "id": "tooluse_x",
    }
    assert d.source == text[3:-4]


def test_json_string_value_and_bare_key() -> None:
    (d,) = parse_directives('[[sim:text text="two words \\"quoted\\"" tag]]')
    assert d.text("text") == 'two words "quoted"'
    assert d.options["tag"] is True


def test_several_directives_in_order() -> None:
    found = parse_directives("[[sim:text text=a]] x [[sim:tool name=T]] y [[sim:text text=b]]")
    assert [d.kind for d in found] == ["text", "tool", "text"]


def test_typed_accessors() -> None:
    (d,) = parse_directives("[[sim:trickle events=5 interval_ms=2.5 times=2]]")
    assert d.integer("events") == 5
    assert d.number("interval_ms") == 2.5
    assert d.times == 2
    (bad,) = parse_directives("[[sim:trickle events=many]]")
    with pytest.raises(RequestError, match="events"):
        bad.integer("events")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[[sim:explode]]", "unknown simulator directive kind"),
        ("[[sim:tool nmae=Bash]]", "no option 'nmae'"),
        ("[[sim:tool name=Bash", "not closed"),
        ('[[sim:tool input={"a": ]]', "JSON"),
        ('[[sim:tool input={"a": 1', "unterminated"),
        ("[[sim:tool =x]]", "bad option"),
    ],
)
def test_malformed_directives_fail_loudly(text: str, match: str) -> None:
    with pytest.raises(RequestError, match=match):
        parse_directives(text)


def test_strip_directives_keeps_the_prose() -> None:
    assert strip_directives("  hi [[sim:echo chunks=3]]  there ") == "hi there"
    assert strip_directives("[[sim:quota]]") == ""
    assert strip_directives(" plain ") == "plain"
