"""Outcome policy, cooldowns, selection and concurrency, on trio's mock clock.

ApiKey accounts need no refresh, so these tests drive the real pool without any server;
``autojump_clock`` makes the cooldowns pass instantly.
"""

from __future__ import annotations

import random
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing

from kiro2api.errors import NoAccountAvailableError
from kiro2api.pool import (
    AccountPool,
    AccountState,
    CredentialStore,
    Outcome,
    PoolSettings,
    load_accounts,
)
from kiro2api.pool._account import Account, Policy, backoff
from kiro2api.pool._auth import TokenGrant
from kiro2api.pool._select import Selection, choose

KEYS = [f"ksk_{i}abcdefghijklmnopqrstuvwxyz0123456789" for i in range(3)]


def _pool(tmp_path: Path, n: int = 3, *, extra: str = "", **settings: object) -> AccountPool:
    entries = ",".join(f'{{"auth": "ApiKey", "apiKey": "{KEYS[i]}"{extra}}}' for i in range(n))
    raw = f"[{entries}]"
    config = PoolSettings(
        social_refresh_url="http://127.0.0.1:9/refreshToken",
        idc_refresh_url="http://127.0.0.1:9/token",
        usage_url="http://127.0.0.1:9/getUsageLimits",
        state_dir=tmp_path / "state",
        **settings,  # type: ignore[arg-type]
    )
    store = CredentialStore(raw, tmp_path / "state")
    return AccountPool(
        load_accounts(raw, source_hint="T"),
        config,
        httpx.AsyncClient(),
        store,
        rng=random.Random(1),
    )


def _state(pool: AccountPool, index: int) -> AccountState:
    return pool.snapshot()[index].status


async def test_sequential_sticks_to_one_account_until_it_is_unusable(tmp_path: Path) -> None:
    pool = _pool(tmp_path)
    leases = [await pool.acquire() for _ in range(3)]
    assert [lease.index for lease in leases] == [0, 0, 0]
    assert leases[0].access_token == KEYS[0]
    assert leases[0].account_id == "acct-0 (ksk_…6789)"
    pool.release(leases[0], Outcome.RATE_LIMITED, retry_after=5)
    assert (await pool.acquire()).index == 1
    assert (await pool.acquire()).index == 1  # sticky on the new one


async def test_round_robin_spreads_and_skips_excluded(tmp_path: Path) -> None:
    pool = _pool(tmp_path, selection="round_robin")
    assert [(await pool.acquire()).index for _ in range(5)] == [0, 1, 2, 0, 1]
    assert (await pool.acquire(exclude=frozenset({2}))).index == 0
    lease = await pool.acquire(exclude=frozenset({"acct-0 (ksk_…6789)", 1}))
    assert lease.index == 2


async def test_least_used_prefers_fewest_in_flight_then_fewest_served(tmp_path: Path) -> None:
    pool = _pool(tmp_path, selection="least_used")
    a, b, c = [await pool.acquire() for _ in range(3)]
    assert [a.index, b.index, c.index] == [0, 1, 2]
    pool.release(b, Outcome.SUCCESS)
    # 1 has no request in flight now.
    d = await pool.acquire()
    assert d.index == 1
    pool.release(a, Outcome.SUCCESS)
    pool.release(c, Outcome.SUCCESS)
    pool.release(d, Outcome.SUCCESS)
    # None in flight: 0 and 2 served once, 1 twice.
    assert (await pool.acquire()).index == 0


def test_choose_on_plain_data() -> None:
    class A:
        def __init__(self, in_flight: int, served: int) -> None:
            self.in_flight, self.served = in_flight, served

    xs = [A(1, 0), A(0, 5), A(0, 2)]
    assert choose(Selection.LEAST_USED, xs, 0, lambda a: True) == (2, 0)
    assert choose(Selection.SEQUENTIAL, xs, 1, lambda a: a is not xs[1]) == (2, 2)
    assert choose(Selection.ROUND_ROBIN, xs, 2, lambda a: True) == (2, 0)
    assert choose(Selection.ROUND_ROBIN, xs, 0, lambda a: False) == (None, 0)
    assert choose(Selection.SEQUENTIAL, [], 0, lambda a: True) == (None, 0)


async def test_rate_limit_cooldown_honours_retry_after_and_expires(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    pool = _pool(tmp_path, n=1)
    lease = await pool.acquire()
    pool.release(lease, Outcome.RATE_LIMITED, retry_after=7.0)
    assert _state(pool, 0) is AccountState.COOLING_DOWN
    with pytest.raises(NoAccountAvailableError) as info:
        await pool.acquire()
    assert info.value.retry_after == pytest.approx(7.0)
    assert "cooling_down" in info.value.message
    assert not pool.ready()
    await trio.sleep(6.9)
    with pytest.raises(NoAccountAvailableError):
        await pool.acquire()
    await trio.sleep(0.2)
    assert pool.ready()
    assert (await pool.acquire()).index == 0
    assert _state(pool, 0) is AccountState.ACTIVE


async def test_rate_limit_without_retry_after_uses_a_default_cooldown(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    pool = _pool(tmp_path, n=1, rate_limit_cooldown=20.0)
    pool.release(await pool.acquire(), Outcome.RATE_LIMITED)
    with pytest.raises(NoAccountAvailableError) as info:
        await pool.acquire()
    assert info.value.retry_after is not None
    assert 10.0 <= info.value.retry_after <= 20.0


async def test_server_errors_back_off_exponentially_and_success_resets(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    pool = _pool(tmp_path, n=1, error_backoff_base=1.0, error_backoff_max=8.0)
    # A dropped connection never parks the account, and a single 5xx does not either.
    for _ in range(5):
        pool.release(await pool.acquire(), Outcome.CONNECTION_ERROR)
        assert pool.ready()
    pool.release(await pool.acquire(), Outcome.SUCCESS)
    pool.release(await pool.acquire(), Outcome.SERVER_ERROR)
    assert pool.ready()
    waits = []
    for _ in range(6):
        pool.release(await pool.acquire(), Outcome.SERVER_ERROR)
        with pytest.raises(NoAccountAvailableError) as info:
            await pool.acquire()
        assert info.value.retry_after is not None
        waits.append(info.value.retry_after)
        await trio.sleep(info.value.retry_after)
    # From the second 5xx in a row: 1, 2, 4, 8, 8, 8 seconds, each jittered to 50-100%
    # (floored at 1 s for the hint).
    for wait, full in zip(waits, [1, 2, 4, 8, 8, 8], strict=True):
        assert max(full / 2, 1.0) <= wait <= full
    pool.release(await pool.acquire(), Outcome.SUCCESS)
    pool.release(await pool.acquire(), Outcome.SERVER_ERROR)
    assert pool.ready()  # the streak restarted
    pool.release(await pool.acquire(), Outcome.SERVER_ERROR)
    assert pool.snapshot()[0].cooldown_until is not None
    await trio.sleep(1.0)
    assert pool.ready()


def test_backoff_bounds() -> None:
    rng = random.Random(3)
    for failures in range(1, 12):
        delay = backoff(failures, 2.0, 60.0, rng)
        full = min(60.0, 2.0 * 2 ** (failures - 1))
        assert full / 2 <= delay <= full


async def test_quota_exceeded_is_exhausted_for_the_default_hour_without_usage_data(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    pool = _pool(tmp_path, n=2)
    pool.release(await pool.acquire(), Outcome.QUOTA_EXCEEDED)
    assert _state(pool, 0) is AccountState.EXHAUSTED
    assert pool.snapshot()[0].remaining_usage == 0.0
    assert (await pool.acquire()).index == 1  # fails over
    await trio.sleep(3599)
    assert _state(pool, 0) is AccountState.EXHAUSTED
    await trio.sleep(2)
    assert _state(pool, 0) is AccountState.ACTIVE


async def test_a_rejected_api_key_is_invalid_until_the_long_cooldown_ends(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    pool = _pool(tmp_path, n=2, invalid_cooldown=1800.0)
    lease = await pool.acquire()
    pool.release(lease, Outcome.AUTH_FAILED)
    assert await pool.refresh_now(lease) is False  # an API key cannot be refreshed
    assert _state(pool, 0) is AccountState.INVALID
    assert "rejected" in (pool.snapshot()[0].last_error or "")
    retry = await pool.acquire(prefer=0)
    assert retry.index == 1  # the rejected key is not handed out again
    pool.release(retry, Outcome.SUCCESS)
    await trio.sleep(1801)
    assert (await pool.acquire(prefer=0)).index == 0


def test_rejections_count_once_per_token_and_twice_makes_invalid() -> None:
    config = load_accounts('{"refreshToken": "aorAAAAAG-some-refresh-token-0123456789"}')[0]
    account = Account(config, Policy(invalid_cooldown=100.0))
    account.on_refresh_success(TokenGrant("aoa-token-1", 3600.0, None), now=0.0)
    assert account.state(1.0) is AccountState.ACTIVE
    for _ in range(5):  # five requests in flight with the same bad token
        account.apply_outcome(
            Outcome.AUTH_FAILED, 1.0, token="aoa-token-1", retry_after=None, rng=random.Random()
        )
    assert account.state(1.0) is AccountState.REFRESHING  # must refresh, not invalid
    assert not account.servable(1.0)
    account.on_refresh_success(TokenGrant("aoa-token-2", 3600.0, None), now=2.0)
    assert account.servable(2.0)
    account.apply_outcome(  # a late report about the old token changes nothing
        Outcome.AUTH_FAILED, 2.0, token="aoa-token-1", retry_after=None, rng=random.Random()
    )
    assert account.servable(2.0)
    account.note_auth_failure("aoa-token-2", 3.0)
    assert account.state(3.0) is AccountState.INVALID
    assert account.state(104.0) is not AccountState.INVALID  # the long cooldown ends


async def test_success_and_cancel_count_requests_and_release_is_idempotent(
    tmp_path: Path,
) -> None:
    pool = _pool(tmp_path, n=1)
    a, b = await pool.acquire(), await pool.acquire()
    assert pool.snapshot()[0].in_flight == 2
    pool.release(a, Outcome.SUCCESS)
    pool.release(a, Outcome.SERVER_ERROR)  # ignored: already released
    pool.release(b, Outcome.CLIENT_CANCELLED)
    snap = pool.snapshot()[0]
    assert (snap.in_flight, snap.requests_served, snap.status) == (0, 2, AccountState.ACTIVE)
    assert snap.last_used is not None
    assert snap.cooldown_until is None
    assert a.released


async def test_max_concurrency_waits_for_a_slot_then_times_out(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    pool = _pool(tmp_path, n=1, extra=', "maxConcurrency": 1', acquire_timeout=5.0)
    first = await pool.acquire()
    got: list[int] = []

    async def second() -> None:
        lease = await pool.acquire()
        got.append(lease.index)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(second)
        await trio.sleep(2.0)
        assert got == []  # waiting for the slot
        pool.release(first, Outcome.SUCCESS)
    assert got == [0]
    start = trio.current_time()
    with pytest.raises(NoAccountAvailableError, match="within 5 s"):
        await pool.acquire()
    assert trio.current_time() - start == pytest.approx(5.0)


async def test_disabled_accounts_are_reported_but_never_used(tmp_path: Path) -> None:
    raw = f'[{{"auth": "ApiKey", "apiKey": "{KEYS[0]}", "disabled": true}},' + (
        f'{{"auth": "ApiKey", "apiKey": "{KEYS[1]}", "description": "spare"}}]'
    )
    pool = AccountPool(
        load_accounts(raw),
        PoolSettings(
            social_refresh_url="x", idc_refresh_url="x", usage_url="x", state_dir=tmp_path
        ),
        httpx.AsyncClient(),
        CredentialStore(raw, tmp_path),
    )
    snap = pool.snapshot()
    assert [s.status for s in snap] == [AccountState.DISABLED, AccountState.ACTIVE]
    assert snap[1].description == "spare"
    assert all(KEYS[0] not in s.token_preview for s in snap)
    assert [(await pool.acquire()).index for _ in range(3)] == [1, 1, 1]


async def test_lease_region_comes_from_the_account_or_the_default(tmp_path: Path) -> None:
    raw = (
        f'[{{"auth": "ApiKey", "apiKey": "{KEYS[0]}", "region": "eu-central-1"}},'
        f' {{"auth": "ApiKey", "apiKey": "{KEYS[1]}"}}]'
    )
    pool = AccountPool(
        load_accounts(raw),
        PoolSettings(
            social_refresh_url="x",
            idc_refresh_url="x",
            usage_url="x",
            state_dir=tmp_path,
            region="us-west-2",
            selection="round_robin",
        ),
        httpx.AsyncClient(),
        CredentialStore(raw, tmp_path),
    )
    assert [(await pool.acquire()).region for _ in range(2)] == ["eu-central-1", "us-west-2"]
    assert [s.region for s in pool.snapshot()] == ["eu-central-1", "us-west-2"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("selection", "random"),
        ("refresh_ahead_fraction", 1.5),
        ("acquire_timeout", 0),
        ("max_retries", 0),
    ],
)
def test_invalid_pool_settings_are_config_errors(tmp_path: Path, field: str, value: object) -> None:
    from kiro2api.errors import ConfigError

    with pytest.raises(ConfigError, match=field):
        PoolSettings(
            social_refresh_url="x",
            idc_refresh_url="x",
            usage_url="x",
            state_dir=tmp_path,
            **{field: value},  # type: ignore[arg-type]
        )
