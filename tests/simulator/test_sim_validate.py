"""The upstream validator as a pure function: each rule, and bodies it must accept."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from sim_support import assistant, body, result, tool_spec, user

from kiro2api.simulator import Rule, error_body, find_violations

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()
TU = "tooluse_Ab12Cd34Ef56Gh78Ij90Kl"


def rules(payload: Any, **kwargs: Any) -> list[Rule]:
    return [v.rule for v in find_violations(payload, **kwargs)]


def test_worked_example_from_the_protocol_doc_is_accepted() -> None:
    # protocol.md §2.6: system pair, a tool call in history, its result in the current message.
    payload = body(
        "",
        history=[
            user("You are terse."),
            assistant("OK"),
            user("Weather in Tokyo?"),
            assistant("Checking.", (TU, "get_weather")),
        ],
        tools=[tool_spec("get_weather", "Get weather")],
        results=[result(TU, "22°C, sunny")],
    )
    assert find_violations(payload) == []


def test_minimal_body_with_null_history_is_accepted() -> None:
    assert find_violations(body("Hi")) == []


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda b: b.pop("conversationState"), "conversationState"),
        (lambda b: b["conversationState"].pop("currentMessage"), "userInputMessage"),
        (lambda b: _cur(b).pop("content"), "content"),
        (lambda b: _cur(b).pop("modelId"), "modelId"),
        (lambda b: _cur(b).pop("origin"), "origin"),
        (lambda b: b["conversationState"].update(history={"a": 1}), "history"),
        (lambda b: b["conversationState"].update(history=[{"x": {}}]), "history[0]"),
    ],
)
def test_missing_required_fields_are_request_body_invalid(mutate: Any, path: str) -> None:
    payload = body("Hi")
    mutate(payload)
    violations = find_violations(payload)
    assert [v.rule for v in violations] == [Rule.REQUEST_BODY_INVALID]
    assert path in violations[0].path


def test_non_object_body_is_request_body_invalid() -> None:
    assert rules([1, 2]) == [Rule.REQUEST_BODY_INVALID]
    assert rules(None) == [Rule.REQUEST_BODY_INVALID]


def test_unknown_model_id() -> None:
    assert rules(body("Hi", model="claude-opus-4")) == [Rule.INVALID_MODEL_ID]
    for model in ("auto", "CLAUDE_SONNET_4_20250514_V1_0", "claude-opus-4.6", "claude-3.7-sonnet"):
        assert rules(body("Hi", model=model)) == []


def test_history_starting_with_assistant() -> None:
    payload = body("Hi", history=[assistant("Hello"), user("Hey"), assistant("Yes")])
    assert Rule.HISTORY_STARTS_WITH_ASSISTANT in rules(payload)


def test_consecutive_user_turns() -> None:
    payload = body("Hi", history=[user("one"), user("two"), assistant("ok")])
    assert rules(payload) == [Rule.HISTORY_NOT_ALTERNATING]


def test_consecutive_assistant_turns() -> None:
    payload = body("Hi", history=[user("one"), assistant("a"), assistant("b")])
    assert rules(payload) == [Rule.HISTORY_NOT_ALTERNATING]


def test_history_ending_with_user_collides_with_the_current_message() -> None:
    violations = find_violations(body("Hi", history=[user("one")]))
    assert [v.rule for v in violations] == [Rule.HISTORY_NOT_ALTERNATING]
    assert violations[0].path == "conversationState.currentMessage"


def test_empty_user_content() -> None:
    assert rules(body("   ")) == [Rule.EMPTY_USER_CONTENT]
    payload = body("Hi", history=[user(""), assistant("ok")])
    assert rules(payload) == [Rule.EMPTY_USER_CONTENT]


def test_empty_user_content_is_fine_with_images_or_tool_results() -> None:
    assert rules(body("", images=[{"format": "png", "source": {"bytes": PNG}}])) == []
    payload = body(
        "",
        history=[user("run"), assistant("", (TU, "Bash"))],
        tools=[tool_spec()],
        results=[result(TU, "ok")],
    )
    assert rules(payload) == []


def test_empty_assistant_content_without_tool_uses() -> None:
    payload = body("Hi", history=[user("one"), assistant("  ")])
    assert rules(payload) == [Rule.EMPTY_ASSISTANT_CONTENT]


def test_tool_use_without_result_in_the_next_turn() -> None:
    payload = body(
        "next question",
        history=[user("run"), assistant("", (TU, "Bash"))],
        tools=[tool_spec()],
    )
    assert rules(payload) == [Rule.TOOL_USE_RESULT_MISMATCH]


def test_tool_result_without_tool_use() -> None:
    payload = body(
        "", history=[user("run"), assistant("done")], tools=[tool_spec()], results=[result(TU, "x")]
    )
    assert rules(payload) == [Rule.TOOL_USE_RESULT_MISMATCH]


def test_current_results_must_match_the_last_assistant_tool_uses() -> None:
    other = "tooluse_ZZZZZZZZZZZZZZZZZZZZZZ"
    payload = body(
        "",
        history=[user("run"), assistant("", (TU, "Bash"), (other, "Bash"))],
        tools=[tool_spec()],
        results=[result(TU, "only one")],
    )
    violations = find_violations(payload)
    assert [v.rule for v in violations] == [Rule.TOOL_USE_RESULT_MISMATCH]
    assert "toolResults" in violations[0].path


def test_mismatch_in_history_pairs() -> None:
    payload = body(
        "Hi",
        history=[
            user("run"),
            assistant("", (TU, "Bash")),
            user("", results=[result("tooluse_other_other_other_", "x")]),
            assistant("done"),
        ],
        tools=[tool_spec()],
    )
    assert rules(payload) == [Rule.TOOL_USE_RESULT_MISMATCH]


def test_history_with_tools_but_none_declared() -> None:
    payload = body(
        "Hi",
        history=[
            user("run"),
            assistant("", (TU, "Bash")),
            user("", results=[result(TU, "x")]),
            assistant("done"),
        ],
    )
    assert rules(payload) == [Rule.TOOLS_NOT_DECLARED]


@pytest.mark.parametrize("name", ["a" * 65, "mcp__server.tool", "has space", ""])
def test_bad_tool_names(name: str) -> None:
    assert rules(body("Hi", tools=[tool_spec(name)])) == [Rule.INVALID_TOOL_NAME]


def test_good_tool_name_of_64_characters() -> None:
    assert rules(body("Hi", tools=[tool_spec("a-Z_9" + "x" * 59)])) == []


@pytest.mark.parametrize("description", ["", "   ", "d" * 10_001])
def test_bad_tool_descriptions(description: str) -> None:
    assert rules(body("Hi", tools=[tool_spec(description=description)])) == [
        Rule.INVALID_TOOL_DESCRIPTION
    ]


def test_description_of_exactly_the_limit_is_accepted() -> None:
    assert rules(body("Hi", tools=[tool_spec(description="d" * 10_000)])) == []


def test_tool_without_input_schema_is_request_body_invalid() -> None:
    spec = tool_spec()
    spec["toolSpecification"]["inputSchema"] = {"json": None}
    assert rules(body("Hi", tools=[spec])) == [Rule.REQUEST_BODY_INVALID]


@pytest.mark.parametrize(
    "image",
    [
        {"format": "bmp", "source": {"bytes": PNG}},
        {"format": "png", "source": {"bytes": "not base64!"}},
        {"format": "png", "source": {"bytes": PNG[:-1]}},
        {"format": "png", "source": {}},
    ],
)
def test_bad_images(image: dict[str, Any]) -> None:
    assert rules(body("look", images=[image])) == [Rule.INVALID_IMAGE]


def test_bad_image_in_history() -> None:
    bad = {"format": "tiff", "source": {"bytes": PNG}}
    payload = body("Hi", history=[user("look", images=[bad]), assistant("ok")])
    assert rules(payload) == [Rule.INVALID_IMAGE]


def test_payload_limit() -> None:
    assert rules(body("Hi"), body_size=600_001) == [Rule.CONTENT_LENGTH_EXCEEDS_THRESHOLD]
    assert rules(body("Hi"), body_size=600_000) == []
    assert rules(body("Hi"), body_size=11, max_body_bytes=10) == [
        Rule.CONTENT_LENGTH_EXCEEDS_THRESHOLD
    ]


def test_several_violations_are_all_reported_in_body_order() -> None:
    payload = body("", model="nope", tools=[tool_spec("bad name")])
    assert rules(payload) == [
        Rule.INVALID_MODEL_ID,
        Rule.INVALID_TOOL_NAME,
        Rule.EMPTY_USER_CONTENT,
    ]


def test_error_body_is_upstream_shaped_and_names_the_rule() -> None:
    out = error_body(find_violations(body("Hi", history=[user("a"), user("b"), assistant("c")])))
    assert out["message"] == "Improperly formed request."
    assert out["reason"] == "HISTORY_NOT_ALTERNATING"
    assert "HISTORY_NOT_ALTERNATING" in str(out["detail"])
    model = error_body(find_violations(body("Hi", model="x")))
    assert model["reason"] == "INVALID_MODEL_ID"


def _cur(payload: dict[str, Any]) -> dict[str, Any]:
    msg: dict[str, Any] = payload["conversationState"]["currentMessage"]["userInputMessage"]
    return msg
