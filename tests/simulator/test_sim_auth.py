"""Token refresh (Social, IdC), API keys, bearer checks and usage limits, over real sockets."""

from __future__ import annotations

import httpx
import orjson
import trio
from sim_support import (
    API_KEY,
    IDC_CLIENT,
    IDC_TOKEN,
    SOCIAL_TOKEN,
    accounts_config,
    body,
    generate,
    start,
)

from kiro2api.simulator import DEMO_REFRESH_TOKEN, AccountConfig, Simulator, SimulatorConfig

INVALID_BEARER = {"message": "The bearer token included in the request is invalid.", "reason": None}


def available(usage: dict[str, object]) -> float:
    """protocol.md §1.4: the proxy's available count from a getUsageLimits answer."""
    credit = usage["usageBreakdownList"][0]  # type: ignore[index]
    total = credit["usageLimitWithPrecision"] - credit["currentUsageWithPrecision"]
    trial = credit.get("freeTrialInfo")
    if trial and trial["freeTrialStatus"] == "ACTIVE":
        total += trial["usageLimitWithPrecision"] - trial["currentUsageWithPrecision"]
    return float(max(0.0, total))


async def test_social_refresh_rotates_and_the_old_token_dies(nursery: trio.Nursery) -> None:
    sim = await start(nursery)
    async with httpx.AsyncClient(base_url=sim.url or "") as client:
        first = await client.post("/refreshToken", json={"refreshToken": SOCIAL_TOKEN})
        assert first.status_code == 200
        data = first.json()
        assert set(data) == {"accessToken", "expiresIn", "profileArn", "refreshToken"}
        assert data["expiresIn"] == 3600
        assert data["profileArn"].startswith("arn:aws:codewhisperer:")
        assert data["refreshToken"] != SOCIAL_TOKEN
        again = await client.post("/refreshToken", json={"refreshToken": SOCIAL_TOKEN})
        assert again.status_code == 401
        assert again.json()["message"] == "Invalid refresh token provided"
        rotated = await client.post("/refreshToken", json={"refreshToken": data["refreshToken"]})
        assert rotated.status_code == 200
        answer = await generate(client, sim.url or "", rotated.json()["accessToken"], body())
        assert answer.status == 200
    assert sim.refresh_count("s") == 2
    assert sim.account("s").refresh_token == rotated.json()["refreshToken"]


async def test_social_refresh_rejects_missing_or_foreign_tokens(nursery: trio.Nursery) -> None:
    sim = await start(nursery)
    async with httpx.AsyncClient(base_url=sim.url or "") as client:
        assert (await client.post("/refreshToken", json={})).status_code == 400
        assert (await client.post("/refreshToken", content=b"not json")).status_code == 400
        # an IdC refresh token is not a Social one
        idc = await client.post("/refreshToken", json={"refreshToken": IDC_TOKEN})
        assert idc.status_code == 401


async def test_idc_refresh(nursery: trio.Nursery) -> None:
    sim = await start(nursery)
    good = {
        "clientId": IDC_CLIENT[0],
        "clientSecret": IDC_CLIENT[1],
        "grantType": "refresh_token",
        "refreshToken": IDC_TOKEN,
    }
    async with httpx.AsyncClient(base_url=sim.url or "") as client:
        missing = await client.post("/token", json={**good, "clientSecret": ""})
        assert missing.status_code == 400
        assert missing.json()["error"] == "invalid_request"
        assert "clientSecret" in missing.json()["error_description"]
        snake = {"client_id": IDC_CLIENT[0], "refresh_token": IDC_TOKEN}
        assert (await client.post("/token", json=snake)).status_code == 400
        grant = await client.post("/token", json={**good, "grantType": "password"})
        assert grant.json()["error"] == "unsupported_grant_type"
        wrong = await client.post("/token", json={**good, "clientSecret": "nope"})
        assert wrong.status_code == 401
        assert wrong.json()["error"] == "invalid_client"
        ok = await client.post("/token", json=good)
        assert ok.status_code == 200
        data = ok.json()
        assert data["tokenType"] == "Bearer"
        assert data["expiresIn"] == 3600
        assert data["refreshToken"] != IDC_TOKEN
        stale = await client.post("/token", json=good)
        assert stale.status_code == 400
        assert stale.json()["error"] == "invalid_grant"
        usage = await client.get(
            "/getUsageLimits", headers={"authorization": f"Bearer {data['accessToken']}"}
        )
        assert usage.status_code == 200
    assert sim.refresh_count("i") == 1


async def test_api_key_is_a_bearer_token(nursery: trio.Nursery) -> None:
    sim = await start(nursery)
    async with httpx.AsyncClient() as client:
        answer = await generate(client, sim.url or "", API_KEY, body())
    assert answer.status == 200
    assert sim.last_request.account_id == "k"


async def test_unknown_and_expired_tokens_get_403(nursery: trio.Nursery) -> None:
    short = AccountConfig(id="short", refresh_token="aorSHORT-0000000000", access_token_ttl=0.3)
    sim = await start(nursery, accounts_config(short))
    url = sim.url or ""
    async with httpx.AsyncClient() as client:
        unknown = await generate(client, url, "aoa-never-issued", body())
        assert (unknown.status, unknown.json) == (403, INVALID_BEARER)
        no_header = await client.post(f"{url}/generateAssistantResponse", json=body())
        assert no_header.status_code == 403
        token = sim.issue_access_token("short")
        assert (await generate(client, url, token, body())).status == 200
        await trio.sleep(0.35)
        expired = await generate(client, url, token, body())
        assert (expired.status, expired.json) == (403, INVALID_BEARER)
        other = sim.issue_access_token("s")
        sim.expire_access_tokens("s")
        assert (await generate(client, url, other, body())).status == 403
        usage = await client.get(f"{url}/getUsageLimits", headers={"authorization": "Bearer x"})
        assert usage.status_code == 403
    assert [r.status for r in sim.requests] == [403, 403, 200, 403, 403]


async def test_usage_limits_shape_and_growth(nursery: trio.Nursery) -> None:
    acct = AccountConfig(
        id="u",
        refresh_token="aorUSAGE-000000000000",
        email="someone@example.com",
        usage_limit=50,
        current_usage=3.27,
        free_trial_limit=500,
        free_trial_usage=20.5,
    )
    sim = await start(nursery, accounts_config(acct))
    url = sim.url or ""
    token = sim.issue_access_token("u")
    query = "isEmailRequired=true&origin=AI_EDITOR&resourceType=AGENTIC_REQUEST"
    headers = {"authorization": f"Bearer {token}"}
    async with httpx.AsyncClient() as client:
        before = (await client.get(f"{url}/getUsageLimits?{query}", headers=headers)).json()
        assert before["userInfo"]["email"] == "someone@example.com"
        assert before["daysUntilReset"] > 0
        assert before["nextDateReset"] > 0
        credit = before["usageBreakdownList"][0]
        assert credit["resourceType"] == "CREDIT"
        assert credit["freeTrialInfo"]["freeTrialStatus"] == "ACTIVE"
        # The example numbers of protocol.md §1.4: (500 - 20.5) + (50 - 3.27) = 526.23
        assert abs(available(before) - 526.23) < 1e-9
        answer = await generate(client, url, token, body())
        assert answer.status == 200
        (metering,) = [m for m in answer.messages() if m.event_type == "meteringEvent"]
        after = (await client.get(f"{url}/getUsageLimits?{query}", headers=headers)).json()
    spent = available(before) - available(after)
    assert spent > 0
    assert abs(spent - orjson.loads(metering.payload)["usage"]) < 1e-6
    assert sim.account("u").usage_calls == 2
    assert sim.account("u").requests == 1


async def test_exhausted_and_exhaust_after(nursery: trio.Nursery) -> None:
    dead = AccountConfig(id="dead", refresh_token="aorDEAD-000000000000", exhausted=True)
    two = AccountConfig(id="two", refresh_token="aorTWO-0000000000000", exhaust_after=2)
    sim = await start(nursery, accounts_config(dead, two))
    url = sim.url or ""
    async with httpx.AsyncClient() as client:
        answer = await generate(client, url, sim.issue_access_token("dead"), body())
        assert answer.status == 402
        assert answer.json["reason"] == "MONTHLY_REQUEST_COUNT"
        token = sim.issue_access_token("two")
        statuses = [(await generate(client, url, token, body())).status for _ in range(3)]
        assert statuses == [200, 200, 402]
        usage = await client.get(
            f"{url}/getUsageLimits", headers={"authorization": f"Bearer {token}"}
        )
        assert available(usage.json()) == 0.0


async def test_refresh_faults_per_account(nursery: trio.Nursery) -> None:
    flaky = AccountConfig(
        id="flaky",
        refresh_token="aorFLAKY-00000000000",
        refresh_faults=("http status=500 times=2",),
    )
    sim = await start(nursery, accounts_config(flaky))
    async with httpx.AsyncClient(base_url=sim.url or "") as client:
        payload = {"refreshToken": "aorFLAKY-00000000000"}
        statuses = [
            (await client.post("/refreshToken", json=payload)).status_code for _ in range(3)
        ]
    # The failed attempts did not rotate the token, so the third attempt still succeeds.
    assert statuses == [500, 500, 200]
    assert sim.refresh_count("flaky") == 1


async def test_demo_rotation_survives_restarts(nursery: trio.Nursery) -> None:
    sim = await start(nursery, SimulatorConfig.demo())
    async with httpx.AsyncClient(base_url=sim.url or "") as client:
        first = (
            await client.post("/refreshToken", json={"refreshToken": DEMO_REFRESH_TOKEN})
        ).json()
        # The proxy persists the rotated token; both it and the well-known one keep working.
        for token in (first["refreshToken"], DEMO_REFRESH_TOKEN, first["refreshToken"]):
            answer = await client.post("/refreshToken", json={"refreshToken": token})
            assert answer.status_code == 200
    # A brand-new simulator (a restart) accepts the token the proxy persisted.
    restarted = Simulator(SimulatorConfig.demo())
    url = await nursery.start(restarted.serve)
    async with httpx.AsyncClient(base_url=url) as client:
        again = await client.post("/refreshToken", json={"refreshToken": first["refreshToken"]})
        assert again.status_code == 200
        forged = await client.post("/refreshToken", json={"refreshToken": "aorDEMO-other"})
        assert forged.status_code == 401
