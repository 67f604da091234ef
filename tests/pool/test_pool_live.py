"""The pool against the upstream simulator over real sockets (real time, short intervals)."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import orjson
import pytest
import trio
from pool_sim import (
    API_KEY,
    IDC_SECRET,
    IDC_TOKEN,
    SOCIAL2_TOKEN,
    SOCIAL_TOKEN,
    apikey,
    entry,
    idc,
    running_pool,
    settings,
    simulator,
    social,
    wait_for,
)

from kiro2api.errors import ConfigError, NoAccountAvailableError
from kiro2api.pool import AccountState, CredentialStore, Outcome, mask_email


async def _usage_status(url: str, token: str) -> int:
    async with httpx.AsyncClient() as client:
        response = await client.get(
            f"{url}/getUsageLimits", headers={"Authorization": f"Bearer {token}"}
        )
        return response.status_code


async def test_refreshes_ahead_of_expiry_and_persists_each_rotation(tmp_path: Path) -> None:
    account = social(access_token_ttl=1.0)
    path = tmp_path / "accounts.json"
    path.write_bytes(orjson.dumps([entry(account, description="main")]))
    async with simulator(account) as (sim, url):
        pool_settings = settings(url, tmp_path / "state", refresh_ahead_fraction=0.5)
        async with running_pool(str(path), pool_settings) as pool:
            lease = await pool.acquire()  # waits for the first refresh only
            assert sim.refresh_count("social") == 1
            assert await _usage_status(url, lease.access_token) == 200
            pool.release(lease, Outcome.SUCCESS)
            # Every 0.5 s a new token, long before the old one expires: never a wait.
            tokens = set()
            for _ in range(13):
                with trio.fail_after(0.05):
                    lease = await pool.acquire()
                assert await _usage_status(url, lease.access_token) == 200
                tokens.add(lease.access_token)
                pool.release(lease, Outcome.SUCCESS)
                await trio.sleep(0.1)
            assert sim.refresh_count("social") >= 3
            assert len(tokens) >= 2
            # Each rotated refresh token reached the file (the old one is dead upstream).
            current = sim.account("social").refresh_token
            await wait_for(lambda: orjson.loads(path.read_bytes())[0]["refreshToken"] == current)
            assert orjson.loads(path.read_bytes())[0]["description"] == "main"


@pytest.mark.parametrize("source", ["file", "inline"])
async def test_rotation_survives_a_restart(tmp_path: Path, source: str) -> None:
    account = social()
    raw = orjson.dumps([entry(account)]).decode()
    if source == "file":
        path = tmp_path / "accounts.json"
        path.write_text(raw)
        raw = str(path)
    state_dir = tmp_path / "state"
    async with simulator(account) as (sim, url):
        async with running_pool(raw, settings(url, state_dir)) as pool:
            pool.release(await pool.acquire(), Outcome.SUCCESS)
        assert sim.refresh_count("social") == 1
        rotated = sim.account("social").refresh_token
        assert rotated != SOCIAL_TOKEN  # the original is dead now
        if source == "inline":
            assert SOCIAL_TOKEN not in (state_dir / "credentials.json").read_text()
        # A new process: it must start from the rotated token, or the account is lost.
        assert [a.refresh_token for a in CredentialStore(raw, state_dir).load()] == [rotated]
        async with running_pool(raw, settings(url, state_dir)) as pool:
            lease = await pool.acquire()
            assert await _usage_status(url, lease.access_token) == 200
        assert sim.refresh_count("social") == 2


@pytest.mark.parametrize("start", [True, False], ids=["refresher", "no-refresher"])
async def test_100_concurrent_acquires_make_exactly_one_refresh(
    tmp_path: Path, start: bool
) -> None:
    account = social(refresh_faults=("delay seconds=0.3",))
    async with simulator(account) as (sim, url):
        raw = orjson.dumps([entry(account)]).decode()
        async with running_pool(raw, settings(url, tmp_path), start=start) as pool:
            tokens: list[str] = []

            async def one() -> None:
                lease = await pool.acquire()
                tokens.append(lease.access_token)

            async with trio.open_nursery() as nursery:
                for _ in range(100):
                    nursery.start_soon(one)
                await trio.sleep(0.1)
                # refresh_now while that refresh runs joins it too
                assert pool.snapshot()[0].status is AccountState.REFRESHING
            assert len(tokens) == 100
            assert len(set(tokens)) == 1
            assert sim.refresh_count("social") == 1
            assert pool.snapshot()[0].in_flight == 100


async def test_mixed_social_idc_and_api_key_pool(tmp_path: Path) -> None:
    accounts = (
        social(email="first.user@example.com", usage_limit=50.0),
        idc(email="idc.person@corp.example.org"),
        apikey(email="keyholder@example.net"),
    )
    raw = orjson.dumps([entry(a, description=a.id) for a in accounts]).decode()
    async with simulator(*accounts) as (sim, url):
        pool_settings = settings(url, tmp_path, selection="round_robin")
        async with running_pool(raw, pool_settings) as pool:
            # The API key serves at once; nobody waits for the other two refreshes.
            assert (await pool.acquire()).index == 2
            await wait_for(lambda: all(s.usable for s in pool.snapshot()))
            leases = [await pool.acquire() for _ in range(3)]
            assert [lease.index for lease in leases] == [0, 1, 2]
            assert leases[2].access_token == API_KEY
            assert leases[0].profile_arn == accounts[0].profile_arn
            assert leases[1].profile_arn is None
            for lease in leases:
                assert await _usage_status(url, lease.access_token) == 200
                pool.release(lease, Outcome.SUCCESS)
            assert sim.refresh_count("social") == 1
            assert sim.refresh_count("idc") == 1
            # The usage poll ran for each and the snapshot shows masked e-mails and credits.
            await wait_for(lambda: all(s.user_email for s in pool.snapshot()))
            snap = pool.snapshot()
            assert [s.user_email for s in snap] == [mask_email(a.email) for a in accounts]
            assert [s.auth_type for s in snap] == ["social", "idc", "apikey"]
            assert all(s.status is AccountState.ACTIVE for s in snap)
            assert snap[0].usage_limits is not None
            assert snap[0].usage_limits.total_limit == 50.0
            body = orjson.loads(pool.snapshot_json())
            assert body["pool_stats"] == {"total_tokens": 3, "active_tokens": 3}
            text = pool.snapshot_json().decode()
            for secret in (
                SOCIAL_TOKEN,
                IDC_TOKEN,
                IDC_SECRET,
                API_KEY,
                *(x.access_token for x in leases),
            ):
                assert secret not in text
            # IdC rotation was persisted too (inline → state file).
            rotated = sim.account("idc").refresh_token
            assert CredentialStore(raw, tmp_path).load()[1].refresh_token == rotated


async def test_usage_limits_feed_the_available_count(tmp_path: Path) -> None:
    account = social(
        usage_limit=50.0, current_usage=3.25, free_trial_limit=500.0, free_trial_usage=20.5
    )
    raw = orjson.dumps([entry(account)]).decode()
    async with (
        simulator(account) as (_sim, url),
        running_pool(raw, settings(url, tmp_path)) as pool,
    ):
        await wait_for(lambda: pool.snapshot()[0].remaining_usage is not None)
        assert pool.snapshot()[0].remaining_usage == pytest.approx(526.25)
        pool.release(await pool.acquire(), Outcome.SUCCESS)
        snap = pool.snapshot()[0]
        assert snap.remaining_usage == pytest.approx(525.25)  # counted down locally
        assert snap.usage_limits is not None
        assert snap.usage_limits.current_usage == pytest.approx(24.75)
        assert snap.usage_limits.is_exceeded is False


async def test_server_starts_while_the_auth_service_is_unreachable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    raw = orjson.dumps([entry(social())]).decode()
    with trio.fail_after(1):
        async with running_pool(raw, settings(f"http://127.0.0.1:{port}", tmp_path)) as pool:
            assert not pool.ready()
            await wait_for(lambda: pool.snapshot()[0].status is AccountState.ERROR)
            snap = pool.snapshot()[0]
            assert snap.last_error is not None
            assert "ConnectError" in snap.last_error
            with pytest.raises(NoAccountAvailableError) as info:
                await pool.acquire()
            assert info.value.retry_after is not None
    assert SOCIAL_TOKEN not in caplog.text


async def test_refresh_failures_back_off_then_recover(tmp_path: Path) -> None:
    account = social(refresh_faults=("http status=500 times=3",))
    raw = orjson.dumps([entry(account)]).decode()
    async with (
        simulator(account) as (sim, url),
        running_pool(raw, settings(url, tmp_path)) as pool,
    ):
        await wait_for(pool.ready)
        assert sim.refresh_count("social") == 1
        snap = pool.snapshot()[0]
        assert snap.status is AccountState.ACTIVE
        assert snap.last_error is None


async def test_auth_failure_refreshes_once_then_the_account_turns_invalid(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    accounts = (social(), social("spare", SOCIAL2_TOKEN))
    raw = orjson.dumps([entry(a) for a in accounts]).decode()
    async with (
        simulator(*accounts) as (sim, url),
        running_pool(raw, settings(url, tmp_path)) as pool,
    ):
        await wait_for(lambda: all(s.usable for s in pool.snapshot()))
        lease = await pool.acquire()
        assert lease.index == 0
        first_token = lease.access_token
        sim.expire_access_tokens("social")  # upstream now answers 403
        assert await _usage_status(url, first_token) == 403
        pool.release(lease, Outcome.AUTH_FAILED)
        assert await pool.refresh_now(lease) is True
        assert sim.refresh_count("social") == 2
        retry = await pool.acquire(prefer=lease.index)  # retry once on the same account
        assert retry.index == 0
        assert retry.access_token != first_token
        assert await _usage_status(url, retry.access_token) == 200
        # Rejected again: the account is parked as invalid and requests move on.
        pool.release(retry, Outcome.AUTH_FAILED)
        snap = pool.snapshot()[0]
        assert snap.status is AccountState.INVALID
        assert snap.cooldown_until is not None
        assert (await pool.acquire()).index == 1
        assert (await pool.acquire(prefer=0)).index == 1
    for secret in (SOCIAL_TOKEN, SOCIAL2_TOKEN, first_token, retry.access_token):
        assert secret not in caplog.text


async def test_refresh_now_on_an_unreleased_lease_updates_its_token(tmp_path: Path) -> None:
    account = social()
    raw = orjson.dumps([entry(account)]).decode()
    async with (
        simulator(account) as (sim, url),
        running_pool(raw, settings(url, tmp_path)) as pool,
    ):
        lease = await pool.acquire()
        old = lease.access_token
        sim.expire_access_tokens()
        results = []

        async def refresh() -> None:
            results.append(await pool.refresh_now(lease))

        async with trio.open_nursery() as nursery:  # concurrent callers share one refresh
            for _ in range(10):
                nursery.start_soon(refresh)
        assert results == [True] * 10
        assert sim.refresh_count("social") == 2
        assert lease.access_token != old
        assert await _usage_status(url, lease.access_token) == 200
        pool.release(lease, Outcome.SUCCESS)
        assert pool.snapshot()[0].status is AccountState.ACTIVE


async def test_quota_exceeded_is_exhausted_until_the_reset_date(tmp_path: Path) -> None:
    accounts = (social(), social("spare", SOCIAL2_TOKEN))
    raw = orjson.dumps([entry(a) for a in accounts]).decode()
    async with (
        simulator(*accounts) as (sim, url),
        running_pool(raw, settings(url, tmp_path)) as pool,
    ):
        await wait_for(lambda: pool.snapshot()[0].usage_limits is not None)
        pool.release(await pool.acquire(), Outcome.QUOTA_EXCEEDED)
        snap = pool.snapshot()[0]
        assert snap.status is AccountState.EXHAUSTED
        reset = sim.account("social").usage_limits(0)["nextDateReset"]
        assert isinstance(reset, float)
        # The cooldown ends at the usage limits' reset date (12 days ahead), not in 1 hour.
        assert snap.cooldown_until is not None
        assert snap.cooldown_until[:10] > "1970"
        assert (await pool.acquire()).index == 1


async def test_a_usage_poll_showing_no_credits_exhausts_the_account(tmp_path: Path) -> None:
    accounts = (social(exhausted=True), social("spare", SOCIAL2_TOKEN))
    raw = orjson.dumps([entry(a) for a in accounts]).decode()
    async with (
        simulator(*accounts) as (_sim, url),
        running_pool(raw, settings(url, tmp_path)) as pool,
    ):
        await wait_for(lambda: pool.snapshot()[0].status is AccountState.EXHAUSTED)
        assert pool.snapshot()[0].remaining_usage == 0.0
        assert [(await pool.acquire()).index for _ in range(3)] == [1, 1, 1]


async def test_reload_keeps_in_flight_leases_and_live_state(tmp_path: Path) -> None:
    accounts = (social(), social("spare", SOCIAL2_TOKEN), apikey())
    path = tmp_path / "accounts.json"
    path.write_bytes(orjson.dumps([entry(a) for a in accounts[:2]]))
    async with simulator(*accounts) as (sim, url):
        pool_settings = settings(url, tmp_path / "state", selection="round_robin")
        async with running_pool(str(path), pool_settings) as pool:
            await wait_for(lambda: all(s.usable for s in pool.snapshot()))
            first = await pool.acquire()
            second = await pool.acquire()
            assert (first.index, second.index) == (0, 1)
            pool.release(second, Outcome.SUCCESS)
            # The operator removes account 0 and adds an API key; the file also holds the
            # rotated tokens the pool wrote.
            data = orjson.loads(path.read_bytes())
            path.write_bytes(orjson.dumps([data[1], entry(accounts[2], description="new")]))
            await pool.reload()
            snap = pool.snapshot()
            assert [s.auth_type for s in snap] == ["social", "apikey"]
            assert snap[0].requests_served == 1  # the same live account, not a new one
            assert snap[1].description == "new"
            assert sim.refresh_count("spare") == 1  # no refresh needed for a kept account
            # The lease on the removed account still works and can be released.
            assert await _usage_status(url, first.access_token) == 200
            pool.release(first, Outcome.SUCCESS)
            assert {(await pool.acquire()).access_token for _ in range(2)} >= {API_KEY}


async def test_reload_with_a_broken_file_keeps_the_old_accounts(tmp_path: Path) -> None:
    account = social()
    path = tmp_path / "accounts.json"
    path.write_bytes(orjson.dumps([entry(account)]))
    async with (
        simulator(account) as (_sim, url),
        running_pool(str(path), settings(url, tmp_path / "state")) as pool,
    ):
        await wait_for(pool.ready)
        path.write_text('[{"refreshToken": "x"},\n oops]')
        with pytest.raises(ConfigError, match="line 2 column 2"):
            await pool.reload()
        assert pool.ready()
        assert len(pool.snapshot()) == 1


async def test_an_invalid_refresh_token_is_reported_without_leaking_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "aorAAAAAG-this-refresh-token-is-not-known-0123456789"
    raw = orjson.dumps([{"auth": "Social", "refreshToken": wrong}]).decode()
    async with (
        simulator(social()) as (_sim, url),
        running_pool(raw, settings(url, tmp_path)) as pool,
    ):
        await wait_for(lambda: pool.snapshot()[0].status is AccountState.INVALID)
        snap = pool.snapshot()[0]
        assert snap.last_error is not None
        assert "HTTP 401" in snap.last_error
        with pytest.raises(NoAccountAvailableError) as info:
            await pool.acquire()
        assert wrong not in info.value.message
        assert wrong not in snap.last_error
        assert wrong not in pool.snapshot_json().decode()
    assert wrong not in caplog.text
    assert any("HTTP 401" in r.getMessage() for r in caplog.records)


async def test_acquire_times_out_when_the_token_never_comes(tmp_path: Path) -> None:
    account = social(refresh_faults=("delay seconds=3",))
    raw = orjson.dumps([entry(account)]).decode()
    async with (
        simulator(account) as (_sim, url),
        running_pool(raw, settings(url, tmp_path, acquire_timeout=0.3)) as pool,
    ):
        start = trio.current_time()
        with pytest.raises(NoAccountAvailableError, match=r"within 0\.3 s"):
            await pool.acquire()
        assert trio.current_time() - start == pytest.approx(0.3, abs=0.15)


async def test_requests_never_wait_for_a_refresh_ahead_or_another_account(
    tmp_path: Path,
) -> None:
    slow = social(access_token_ttl=2.0, refresh_faults=("delay seconds=1 times=10",))
    accounts = (slow, social("spare", SOCIAL2_TOKEN))
    raw = orjson.dumps([entry(a) for a in accounts]).decode()
    async with simulator(*accounts) as (sim, url):
        pool_settings = settings(url, tmp_path, refresh_ahead_fraction=0.25)
        async with running_pool(raw, pool_settings) as pool:
            # Account 1 serves while account 0's first refresh is still slow.
            with trio.fail_after(0.5):
                assert (await pool.acquire()).index == 1
            await wait_for(lambda: pool.snapshot()[0].usable)
            await wait_for(lambda: pool.snapshot()[0].status is AccountState.REFRESHING)
            # Account 0 is refreshing ahead of expiry, but its current token is still good.
            with trio.fail_after(0.05):
                lease = await pool.acquire(prefer=0)
            assert lease.index == 0
            assert await _usage_status(url, lease.access_token) == 200
            assert sim.refresh_count("social") == 1


async def test_usage_limits_are_polled_every_interval(tmp_path: Path) -> None:
    account = social()
    raw = orjson.dumps([entry(account)]).decode()
    async with simulator(account) as (sim, url):
        pool_settings = settings(url, tmp_path, usage_poll_interval=0.2)
        async with running_pool(raw, pool_settings) as pool:
            await wait_for(lambda: sim.account("social").usage_calls >= 1)
            await trio.sleep(0.5)
            assert 2 <= sim.account("social").usage_calls <= 5
            limits = pool.snapshot()[0].usage_limits
            assert limits is not None
            assert pool.snapshot()[0].remaining_usage == limits.total_limit - limits.current_usage


async def test_no_secret_reaches_any_log_record_or_snapshot(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    accounts = (
        social(access_token_ttl=1.0, refresh_faults=("http status=500 times=1",)),
        idc(access_token_ttl=1.0),
        apikey(),
    )
    path = tmp_path / "accounts.json"
    path.write_bytes(orjson.dumps([entry(a) for a in accounts]))
    async with simulator(*accounts) as (sim, url):
        pool_settings = settings(
            url, tmp_path / "state", refresh_ahead_fraction=0.5, error_backoff_base=0.01
        )
        async with running_pool(str(path), pool_settings) as pool:
            await wait_for(lambda: all(s.usable for s in pool.snapshot()))
            for outcome in Outcome:
                if outcome is not Outcome.QUOTA_EXCEEDED:
                    lease = await pool.acquire()
                    pool.release(lease, outcome, retry_after=0.01)
                    await trio.sleep(0.05)
            sim.expire_access_tokens()
            await wait_for(pool.ready)
            lease = await pool.acquire(prefer=0)
            await pool.refresh_now(lease)
            pool.release(lease, Outcome.QUOTA_EXCEEDED)
            await trio.sleep(1.2)  # a few refresh-ahead rotations
            snapshot = pool.snapshot_json().decode()
        secrets = [SOCIAL_TOKEN, IDC_TOKEN, IDC_SECRET, API_KEY]
        for account_id in ("social", "idc"):
            state = sim.account(account_id)
            assert state.refresh_calls >= 2
            secrets.append(state.refresh_token or "")
            secrets.extend(state.access_tokens)
    text = caplog.text + "".join(repr(r.args) for r in caplog.records)
    for secret in secrets:
        assert secret not in text
        assert secret not in snapshot


async def test_a_malformed_refresh_url_is_an_account_error_not_a_crash(tmp_path: Path) -> None:
    raw = orjson.dumps([entry(social()), entry(apikey())]).decode()
    for bad in ("http://[not-a-host", "ftp://127.0.0.1/x", "http://exa mple:99999/"):
        async with running_pool(raw, settings(bad, tmp_path)) as pool:
            await wait_for(lambda: pool.snapshot()[0].status is AccountState.ERROR)
            assert pool.snapshot()[0].last_error
            assert pool.snapshot()[0].refresh_failures >= 1
            assert (await pool.acquire()).index == 1  # the pool keeps serving


async def test_an_unwritable_state_dir_keeps_the_token_in_memory_and_says_so(
    tmp_path: Path,
) -> None:
    account = social(access_token_ttl=1.0)
    raw = orjson.dumps([entry(account)]).decode()
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")  # the state dir cannot be created below a file
    async with simulator(account) as (sim, url):
        pool_settings = settings(url, blocker / "state", refresh_ahead_fraction=0.5)
        async with running_pool(raw, pool_settings) as pool:
            lease = await pool.acquire()
            assert "could not save the rotated refresh token" in (
                pool.snapshot()[0].last_error or ""
            )
            pool.release(lease, Outcome.SUCCESS)
            # The next refresh uses the rotated token from memory and works.
            await wait_for(lambda: sim.refresh_count("social") >= 2)
            assert pool.ready()
