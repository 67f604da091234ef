"""The account pool: which Kiro account serves each request, fresh tokens, failover policy.

Usage::

    store = CredentialStore(raw, settings.state_dir)
    pool = AccountPool(store.load(), settings, client, store)
    await nursery.start(pool.run)
    lease = await pool.acquire()
    try:
        ...  # call upstream with lease.access_token
    finally:
        pool.release(lease, Outcome.SUCCESS)
"""

from __future__ import annotations

from kiro2api.pool._account import AccountState as AccountState
from kiro2api.pool._account import Outcome as Outcome
from kiro2api.pool._auth import UsageLimits as UsageLimits
from kiro2api.pool._config import AccountConfig as AccountConfig
from kiro2api.pool._config import AuthKind as AuthKind
from kiro2api.pool._config import load_accounts as load_accounts
from kiro2api.pool._config import parse_accounts as parse_accounts
from kiro2api.pool._mask import mask_email as mask_email
from kiro2api.pool._pool import AccountPool as AccountPool
from kiro2api.pool._pool import Lease as Lease
from kiro2api.pool._pool import PoolSettings as PoolSettings
from kiro2api.pool._select import Selection as Selection
from kiro2api.pool._snapshot import AccountSnapshot as AccountSnapshot
from kiro2api.pool._snapshot import UsageSnapshot as UsageSnapshot
from kiro2api.pool._store import CredentialStore as CredentialStore

__all__ = [
    "AccountConfig",
    "AccountPool",
    "AccountSnapshot",
    "AccountState",
    "AuthKind",
    "CredentialStore",
    "Lease",
    "Outcome",
    "PoolSettings",
    "Selection",
    "UsageLimits",
    "UsageSnapshot",
    "load_accounts",
    "mask_email",
    "parse_accounts",
]
