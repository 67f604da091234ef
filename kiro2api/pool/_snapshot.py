"""Read-only views of the pool for ``GET /api/tokens`` and the metrics.

A snapshot is built from in-memory state only (it never calls upstream) and holds no secret:
tokens appear as previews of at most their first and last 4 characters, e-mails masked as the
seed's dashboard does them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from kiro2api.pool._account import Account, AccountState
from kiro2api.pool._mask import mask_email, mask_secret

__all__ = ["AccountSnapshot", "UsageSnapshot", "iso", "snapshot_account", "snapshot_json"]


def iso(wall: float | None) -> str | None:
    """Epoch seconds as ISO 8601 in UTC (``None`` stays ``None``)."""
    if wall is None:
        return None
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class UsageSnapshot:
    """``usage_limits`` of one account (protocol.md §8.6)."""

    total_limit: float
    current_usage: float
    is_exceeded: bool


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """The live state of one account, safe to show to anyone."""

    index: int
    account_id: str
    description: str
    auth_type: str
    status: AccountState
    #: ``userInfo.email`` masked; ``None`` until the usage limits were fetched.
    user_email: str | None
    #: The access token (or, before the first refresh, the credential) masked.
    token_preview: str
    #: Credits left (protocol.md §1.4 "available", counted down locally per request).
    remaining_usage: float | None
    usage_limits: UsageSnapshot | None
    expires_at: str | None
    last_used: str | None
    cooldown_until: str | None
    last_error: str | None
    requests_served: int
    #: Token refreshes that succeeded / failed since start (lifetime totals).
    refresh_successes: int
    refresh_failures: int
    in_flight: int
    max_concurrency: int | None
    region: str
    usable: bool

    def to_dict(self) -> dict[str, Any]:
        """The snapshot as plain JSON-ready data."""
        return asdict(self)


def snapshot_account(account: Account, now: float, default_region: str) -> AccountSnapshot:
    """Build the snapshot of one account at trio time ``now``."""
    usage = account.usage
    limits = None
    if usage is not None and usage.available is not None:
        used_locally = max((usage.available or 0.0) - (account.available or 0.0), 0.0)
        limits = UsageSnapshot(
            total_limit=usage.total_limit,
            current_usage=usage.current_usage + used_locally,
            is_exceeded=account.over_quota(),
        )
    token = account.access_token or account.config.credential
    cooling = account.cooling(now)
    return AccountSnapshot(
        index=account.index,
        account_id=account.account_id,
        description=account.config.description,
        auth_type=account.config.auth.value,
        status=account.state(now),
        user_email=mask_email(usage.email) if usage is not None and usage.email else None,
        token_preview=mask_secret(token),
        remaining_usage=account.available,
        usage_limits=limits,
        expires_at=iso(account.expires_wall),
        last_used=iso(account.last_used_wall),
        cooldown_until=iso(account.cooldown_wall) if cooling else None,
        last_error=account.last_error,
        requests_served=account.served,
        refresh_successes=account.refresh_successes_total,
        refresh_failures=account.refresh_failures_total,
        in_flight=account.in_flight,
        max_concurrency=account.config.max_concurrency,
        region=account.config.region or default_region,
        usable=account.eligible(now) and account.has_valid_token(now),
    )


def snapshot_json(snapshots: Sequence[AccountSnapshot]) -> bytes:
    """The ``/api/tokens`` body: timestamp, the accounts and pool stats, as JSON bytes."""
    usable = sum(1 for s in snapshots if s.usable)
    body = {
        "timestamp": iso(time.time()),
        "total_tokens": len(snapshots),
        "active_tokens": usable,
        "tokens": [s.to_dict() for s in snapshots],
        "pool_stats": {"total_tokens": len(snapshots), "active_tokens": usable},
    }
    return orjson.dumps(body)
