"""Scripted answers over real sockets: text, tools, faults, timing, once-only and account faults."""

from __future__ import annotations

import re
from typing import Any

import httpx
import orjson
import pytest
import trio
from sim_support import (
    API_KEY,
    Answer,
    accounts_config,
    assistant,
    body,
    generate,
    result,
    start,
    tool_spec,
    user,
)

from kiro2api.errors import EventStreamError, MessageChecksumError, PreludeChecksumError
from kiro2api.eventstream import Decoder, Message
from kiro2api.simulator import AccountConfig, Simulator

TOOL_ID = re.compile(r"tooluse_[A-Za-z0-9_-]{22}")


@pytest.fixture
async def sim(nursery: trio.Nursery) -> Simulator:
    return await start(nursery)


async def ask(sim: Simulator, text: str, **kwargs: Any) -> Answer:
    async with httpx.AsyncClient(timeout=30) as client:
        return await generate(client, sim.url or "", API_KEY, body(text, **kwargs))


def payloads(messages: list[Message], event_type: str) -> list[dict[str, Any]]:
    return [orjson.loads(m.payload) for m in messages if m.event_type == event_type]


def tool_calls(messages: list[Message]) -> list[tuple[str, str, str]]:
    """(toolUseId, name, joined input) per call, in order; asserts each ends with stop."""
    calls: dict[str, list[Any]] = {}
    for event in payloads(messages, "toolUseEvent"):
        entry = calls.setdefault(event["toolUseId"], [event["name"], "", False])
        assert not entry[2], "a fragment after stop"
        entry[1] += event.get("input", "")
        entry[2] = entry[2] or event.get("stop", False)
    assert all(stopped for _, _, stopped in calls.values())
    return [(i, name, text) for i, (name, text, _) in calls.items()]


async def test_default_echo_in_small_chunks_then_metering_and_context(sim: Simulator) -> None:
    answer = await ask(sim, "Hello there, simulator of the upstream!")
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/vnd.amazon.eventstream"
    messages = answer.messages()
    assert answer.text() == "You said: Hello there, simulator of the upstream!"
    assert len(payloads(messages, "assistantResponseEvent")) > 3
    assert [m.event_type for m in messages[-2:]] == ["meteringEvent", "contextUsageEvent"]
    assert all(m.headers[":content-type"] == "application/json" for m in messages)
    metering = payloads(messages, "meteringEvent")[0]
    assert metering["unit"] == "credit"
    assert metering["unitPlural"] == "credits"
    assert metering["usage"] > 0
    (context,) = payloads(messages, "contextUsageEvent")
    size = sim.last_request.raw_size
    assert context["contextUsagePercentage"] == pytest.approx(size / 4 / 200_000 * 100, abs=1e-3)


async def test_echo_options(sim: Simulator) -> None:
    answer = await ask(sim, "[[sim:echo chunks=3]] abcdefghi")
    assert payloads(answer.messages(), "assistantResponseEvent") == [
        {"content": "You sai"},
        {"content": "d: abcd"},
        {"content": "efghi"},
    ]
    custom = await ask(sim, '[[sim:text text="exactly this" chunks=1]]')
    assert payloads(custom.messages(), "assistantResponseEvent") == [{"content": "exactly this"}]


async def test_text_around_a_tool_call(sim: Simulator) -> None:
    answer = await ask(
        sim,
        '[[sim:text text="Let me check."]] [[sim:tool name=Bash input={"command":"echo hi"}]] '
        "[[sim:text text=Done.]]",
    )
    messages = answer.messages()
    kinds = [m.event_type for m in messages]
    first_tool, last_tool = (
        kinds.index("toolUseEvent"),
        len(kinds) - 1 - kinds[::-1].index("toolUseEvent"),
    )
    assert "assistantResponseEvent" in kinds[:first_tool]
    assert "assistantResponseEvent" in kinds[last_tool:]
    ((use_id, name, text),) = tool_calls(messages)
    assert name == "Bash"
    assert TOOL_ID.fullmatch(use_id)
    assert orjson.loads(text) == {"command": "echo hi"}
    start_event = payloads(messages, "toolUseEvent")[0]
    assert set(start_event) == {"name", "toolUseId"}


async def test_several_tool_calls_have_distinct_ids(sim: Simulator) -> None:
    answer = await ask(
        sim, '[[sim:tool name=Read input={"path":"a"}]][[sim:tool name=Read input={"path":"b"}]]'
    )
    calls = tool_calls(answer.messages())
    assert [(n, orjson.loads(t)) for _, n, t in calls] == [
        ("Read", {"path": "a"}),
        ("Read", {"path": "b"}),
    ]
    assert calls[0][0] != calls[1][0]


async def test_large_tool_input_arrives_in_many_fragments(sim: Simulator) -> None:
    answer = await ask(sim, "[[sim:tool name=Write size=200000]]")
    messages = answer.messages()
    ((_, name, text),) = tool_calls(messages)
    assert name == "Write"
    assert 199_000 <= len(text.encode()) <= 200_000
    assert len(orjson.loads(text)["content"]) > 190_000
    assert len(payloads(messages, "toolUseEvent")) > 1000


async def test_tool_input_verbatim_and_fragment_size(sim: Simulator) -> None:
    answer = await ask(
        sim, '[[sim:tool name=T input="{\\"broken\\": " fragment=3 id=tooluse_fixed]]'
    )
    events = payloads(answer.messages(), "toolUseEvent")
    assert {e["toolUseId"] for e in events} == {"tooluse_fixed"}
    fragments = [e["input"] for e in events if "input" in e]
    assert "".join(fragments) == '{"broken": '
    assert max(len(f) for f in fragments) == 3


async def test_tool_round_trip_answers_with_the_result(sim: Simulator) -> None:
    first = await ask(sim, '[[sim:tool name=Bash input={"command":"echo hi"}]]')
    ((use_id, _, _),) = tool_calls(first.messages())
    history = [
        user('[[sim:tool name=Bash input={"command":"echo hi"}]]'),
        assistant("", (use_id, "Bash")),
    ]
    second = await ask(
        sim, "", history=history, tools=[tool_spec()], results=[result(use_id, "hi from bash")]
    )
    assert second.status == 200
    assert second.text() == "Tool said: hi from bash"
    assert payloads(second.messages(), "toolUseEvent") == []


async def test_directive_inside_a_tool_result_drives_the_next_answer(sim: Simulator) -> None:
    use_id = "tooluse_Ab12Cd34Ef56Gh78Ij90Kl"
    answer = await ask(
        sim,
        "",
        history=[user("go"), assistant("", (use_id, "Bash"))],
        tools=[tool_spec()],
        results=[result(use_id, "[[sim:tool name=Bash input={}]]")],
    )
    ((_, name, text),) = tool_calls(answer.messages())
    assert (name, text) == ("Bash", "{}")


@pytest.mark.parametrize(
    "name", ["ThrottlingException", "InternalServerException", "ContentLengthExceededException"]
)
async def test_exception_frame_mid_stream(sim: Simulator, name: str) -> None:
    answer = await ask(sim, f"[[sim:exception type={name} after=2 message=boom]] one two three")
    messages = answer.messages()
    assert [m.message_type for m in messages] == ["event", "event", "exception"]
    last = messages[-1]
    assert last.headers[":exception-type"] == name
    assert last.exception_type == name
    assert orjson.loads(last.payload) == {
        "__type": f"com.amazon.aws.codewhisperer#{name}",
        "message": "boom",
    }


async def test_error_frame(sim: Simulator) -> None:
    answer = await ask(sim, "[[sim:error code=InternalFailure message=oops after=0]]")
    (message,) = answer.messages()
    assert message.message_type == "error"
    assert message.headers[":error-code"] == "InternalFailure"
    assert message.headers[":error-message"] == "oops"


async def test_truncated_stream_closes_mid_frame(sim: Simulator) -> None:
    received = bytearray()
    async with (
        httpx.AsyncClient() as client,
        client.stream(
            "POST",
            f"{sim.url}/generateAssistantResponse",
            json=body("[[sim:truncate after=2]] some words to echo back"),
            headers={"authorization": f"Bearer {API_KEY}"},
        ) as response,
    ):
        assert response.status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            await _read_into(response, received)
    decoder = Decoder()
    assert len(decoder.feed(bytes(received))) == 2
    assert decoder.pending > 0
    with pytest.raises(EventStreamError):
        decoder.close()


async def _read_into(response: httpx.Response, received: bytearray) -> None:
    async for chunk in response.aiter_raw():
        received += chunk


@pytest.mark.parametrize(
    ("part", "error"), [("message", MessageChecksumError), ("prelude", PreludeChecksumError)]
)
async def test_bad_crc(sim: Simulator, part: str, error: type[Exception]) -> None:
    answer = await ask(sim, f"[[sim:badcrc after=1 part={part}]] hello hello hello")
    decoder = Decoder()
    with pytest.raises(error):
        decoder.feed(answer.raw)


async def test_first_byte_delay(sim: Simulator) -> None:
    for where in ("headers", "body"):
        started = trio.current_time()
        answer = await ask(sim, f"[[sim:delay seconds=0.3 where={where}]] hi")
        assert trio.current_time() - started >= 0.3
        assert answer.text() == "You said: hi"


@pytest.mark.parametrize(
    ("directive", "status", "reason"),
    [
        ("http status=429 retry_after=2.5", 429, None),
        ("http status=500", 500, None),
        ("http status=503", 503, None),
        ("http status=403", 403, None),
        (
            "http status=500 reason=MODEL_TEMPORARILY_UNAVAILABLE",
            500,
            "MODEL_TEMPORARILY_UNAVAILABLE",
        ),
        ("quota", 402, "MONTHLY_REQUEST_COUNT"),
    ],
)
async def test_http_errors(sim: Simulator, directive: str, status: int, reason: str | None) -> None:
    answer = await ask(sim, f"[[sim:{directive}]] hi")
    assert answer.status == status
    assert answer.json["reason"] == reason
    assert isinstance(answer.json["message"], str)
    if status == 429:
        assert answer.headers["retry-after"] == "2.5"
    if status == 403:
        assert answer.json["message"] == "The bearer token included in the request is invalid."
    assert sim.last_request.status == status


async def test_trickle_paces_events(sim: Simulator) -> None:
    async with (
        httpx.AsyncClient() as client,
        client.stream(
            "POST",
            f"{sim.url}/generateAssistantResponse",
            json=body("[[sim:trickle events=5 interval_ms=60]]"),
            headers={"authorization": f"Bearer {API_KEY}"},
        ) as response,
    ):
        decoder = Decoder()
        arrivals: list[float] = []
        async for chunk in response.aiter_raw():
            for message in decoder.feed(chunk):
                if message.event_type == "assistantResponseEvent":
                    arrivals.append(trio.current_time())
    assert len(arrivals) == 5
    assert arrivals[-1] - arrivals[0] >= 4 * 0.06 - 0.01


@pytest.mark.parametrize("events", [200, 2000, 5000])
async def test_long_answers(sim: Simulator, events: int) -> None:
    answer = await ask(sim, f"[[sim:long events={events} size=16]]")
    texts = payloads(answer.messages(), "assistantResponseEvent")
    assert len(texts) == events
    assert all(len(t["content"]) == 16 for t in texts)


async def test_times_makes_a_fault_happen_only_once(sim: Simulator) -> None:
    text = "[[sim:http status=500 times=1]] retry me"
    statuses = [(await ask(sim, text)).status for _ in range(3)]
    assert statuses == [500, 200, 200]
    assert (await ask(sim, text)).text() == "You said: retry me"
    # a different tag is a different countdown
    assert (await ask(sim, "[[sim:http status=500 times=1 tag=b]]")).status == 500


async def test_account_faults_for_failover(nursery: trio.Nursery) -> None:
    always = AccountConfig(
        id="a429", kind="apikey", api_key="ksk_always_429", faults=("http status=429",)
    )
    flaky = AccountConfig(
        id="a500", kind="apikey", api_key="ksk_first_two_500", faults=("http status=500 times=2",)
    )
    sim = await start(nursery, accounts_config(always, flaky))
    async with httpx.AsyncClient() as client:
        url = sim.url or ""
        throttled = [(await generate(client, url, "ksk_always_429", body())) for _ in range(2)]
        assert [a.status for a in throttled] == [429, 429]
        assert throttled[0].headers["retry-after"] == "1"
        flaky_statuses = [
            (await generate(client, url, "ksk_first_two_500", body())).status for _ in range(3)
        ]
        assert flaky_statuses == [500, 500, 200]
        # other accounts are unaffected
        assert (await generate(client, url, API_KEY, body())).status == 200


async def test_validation_errors_over_http(sim: Simulator) -> None:
    answer = await ask(sim, "Hi", history=[user("a"), user("b"), assistant("c")])
    assert answer.status == 400
    assert answer.json["message"] == "Improperly formed request."
    assert answer.json["reason"] == "HISTORY_NOT_ALTERNATING"
    assert "HISTORY_NOT_ALTERNATING" in answer.json["detail"]
    model = await ask(sim, "Hi", model="gpt-4o")
    assert (model.status, model.json["reason"]) == (400, "INVALID_MODEL_ID")
    assert sim.last_request.reason == "INVALID_MODEL_ID"


async def test_payload_limit_and_invalid_json(nursery: trio.Nursery) -> None:
    sim = await start(nursery, accounts_config(max_body_bytes=2_000))
    async with httpx.AsyncClient() as client:
        big = await generate(client, sim.url or "", API_KEY, body("x" * 3_000))
        assert (big.status, big.json["reason"]) == (400, "CONTENT_LENGTH_EXCEEDS_THRESHOLD")
        broken = await client.post(
            f"{sim.url}/generateAssistantResponse",
            content=b"{not json",
            headers={"authorization": f"Bearer {API_KEY}"},
        )
        assert (broken.status_code, broken.json()["reason"]) == (400, "REQUEST_BODY_INVALID")


async def test_bad_directive_is_reported_not_ignored(sim: Simulator) -> None:
    answer = await ask(sim, "[[sim:tool nmae=Bash]]")
    assert answer.status == 400
    assert answer.json["reason"] == "SIM_DIRECTIVE_INVALID"
    assert "nmae" in answer.json["message"]


async def test_requests_are_recorded_with_headers_and_parsed_body(sim: Simulator) -> None:
    async with httpx.AsyncClient() as client:
        await generate(
            client,
            sim.url or "",
            API_KEY,
            body("recorded"),
            headers={"authorization": f"Bearer {API_KEY}", "X-Amzn-Kiro-Agent-Mode": "spec"},
        )
    record = sim.last_request
    assert record.status == 200
    assert record.account_id == "k"
    assert record.headers["x-amzn-kiro-agent-mode"] == "spec"
    assert (
        record.body["conversationState"]["currentMessage"]["userInputMessage"]["content"]
        == "recorded"
    )
    assert record.seq == 1
    sim.clear_requests()
    assert sim.requests == []


async def test_unknown_route_is_404(sim: Simulator) -> None:
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{sim.url}/nothing-here")).status_code == 404
        assert (await client.get(f"{sim.url}/")).json()["accounts"] == 3


async def test_injected_faults_apply_to_the_next_requests(nursery: trio.Nursery) -> None:
    sim = await start(nursery)
    sim.inject("http status=503", times=2)
    sim.inject("exception type=ThrottlingException after=0", account_id="s", times=None)
    async with httpx.AsyncClient() as client:
        url = sim.url or ""
        statuses = [(await generate(client, url, API_KEY, body())).status for _ in range(3)]
        assert statuses == [503, 503, 200]
        social = sim.issue_access_token("s")
        for _ in range(2):
            (message,) = (await generate(client, url, social, body())).messages()
            assert message.exception_type == "ThrottlingException"
    with pytest.raises(KeyError):
        sim.inject("quota", account_id="nobody")


async def test_recorded_authorization_is_masked(sim: Simulator) -> None:
    await ask(sim, "hi")
    recorded = sim.last_request.headers["authorization"]
    assert API_KEY not in recorded
    assert recorded.startswith("Bearer ksk_")
