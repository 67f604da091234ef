"""Shared helpers for the pool tests that talk to the upstream simulator over real sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import trio

from kiro2api.pool import AccountPool, CredentialStore, PoolSettings
from kiro2api.simulator import AccountConfig, Simulator, SimulatorConfig

SOCIAL_TOKEN = "aorAAAAAG-social-refresh-token-0123456789abcdef"
SOCIAL2_TOKEN = "aorAAAAAG-second-social-refresh-token-98765432"
IDC_TOKEN = "aorAAAAAG-idc-refresh-token-0123456789abcdefgh"
IDC_SECRET = "idc-client-secret-value-0123456789abcdef"
API_KEY = "ksk_apikey0123456789abcdefghijklmnopqrstu"


def social(id: str = "social", token: str = SOCIAL_TOKEN, **kw: object) -> AccountConfig:
    """A strict-rotation social account of the simulator."""
    return AccountConfig(id=id, kind="social", refresh_token=token, **kw)  # type: ignore[arg-type]


def idc(id: str = "idc", **kw: object) -> AccountConfig:
    """An IdC account of the simulator."""
    return AccountConfig(
        id=id,
        kind="idc",
        refresh_token=IDC_TOKEN,
        client_id="idc-client-id",
        client_secret=IDC_SECRET,
        **kw,  # type: ignore[arg-type]
    )


def apikey(id: str = "apikey", **kw: object) -> AccountConfig:
    """An API-key account of the simulator."""
    return AccountConfig(id=id, kind="apikey", api_key=API_KEY, **kw)  # type: ignore[arg-type]


def entry(account: AccountConfig, **extra: object) -> dict[str, object]:
    """The proxy's KIRO_AUTH_TOKEN entry for a simulator account."""
    if account.kind == "apikey":
        data: dict[str, object] = {"auth": "ApiKey", "apiKey": account.api_key}
    elif account.kind == "idc":
        data = {
            "auth": "IdC",
            "refreshToken": account.refresh_token,
            "clientId": account.client_id,
            "clientSecret": account.client_secret,
        }
    else:
        data = {"auth": "Social", "refreshToken": account.refresh_token}
    data.update(extra)
    return data


def settings(url: str, state_dir: Path, **kw: object) -> PoolSettings:
    """Pool settings pointing at the simulator, with short intervals."""
    values: dict[str, object] = {
        "social_refresh_url": f"{url}/refreshToken",
        "idc_refresh_url": f"{url}/token",
        "usage_url": f"{url}/getUsageLimits",
        "state_dir": state_dir,
        "acquire_timeout": 5.0,
        "request_timeout": 5.0,
        "refresh_backoff_base": 0.05,
        "refresh_backoff_max": 0.2,
    }
    values.update(kw)
    return PoolSettings(**values)  # type: ignore[arg-type]


@asynccontextmanager
async def simulator(*accounts: AccountConfig) -> AsyncIterator[tuple[Simulator, str]]:
    """Run a simulator with ``accounts``; yields it and its base URL."""
    sim = Simulator(SimulatorConfig(accounts=accounts))
    async with trio.open_nursery() as nursery:
        url = await nursery.start(sim.serve)
        yield sim, url
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def running_pool(
    raw: str, pool_settings: PoolSettings, *, start: bool = True
) -> AsyncIterator[AccountPool]:
    """A pool over ``raw`` (KIRO_AUTH_TOKEN), its refresher running unless ``start`` is false."""
    store = CredentialStore(raw, pool_settings.state_dir)
    async with httpx.AsyncClient() as client, trio.open_nursery() as nursery:
        pool = AccountPool(store.load(), pool_settings, client, store)
        if start:
            await nursery.start(pool.run)
        yield pool
        nursery.cancel_scope.cancel()


async def wait_for(predicate: object, seconds: float = 5.0) -> None:
    """Poll ``predicate()`` every 10 ms until true, failing after ``seconds``."""
    assert callable(predicate)
    with trio.fail_after(seconds):
        # Polling on purpose: the tests observe the pool from outside, as an operator would.
        while not predicate():
            await trio.sleep(0.01)
