"""The live state of one account and the policy behind request outcomes.

Theory of operation: every deadline is on trio's clock (``now`` is passed in, so the policy is
plain arithmetic and testable without a loop); the wall-clock twin of each deadline is kept
beside it only for display. An account is *eligible* when nothing rules it out (disabled,
cooling down, exhausted, at its concurrency limit) and *servable* when it is eligible and holds
an access token that is not about to expire and was not rejected. The pool never hands out a
token that is not servable.

Outcome policy (the caller reports one outcome per upstream attempt):

========================  =============================================================
``SUCCESS``               clear every error streak; count a served request and a credit
``AUTH_FAILED``           1st: the token is marked rejected (refresh before next use);
                          2nd in a row: INVALID for ``invalid_cooldown``
``QUOTA_EXCEEDED``        EXHAUSTED until the usage limits' reset date (default 1 hour)
``RATE_LIMITED``          cooling down for ``retry_after`` (or a growing default)
``SERVER_ERROR``          from the 2nd in a row: cooling down, exponential backoff with
                          jitter per account (the 1st only moves that request on)
``CONNECTION_ERROR``      no cooldown: the route to the upstream is shared by every account
``CLIENT_CANCELLED``      no penalty; counts as served (upstream may have charged it)
========================  =============================================================
"""

from __future__ import annotations

import enum
import math
import random
import time
from dataclasses import dataclass

import trio

from kiro2api.pool._auth import TokenGrant, UsageLimits
from kiro2api.pool._config import AccountConfig, AuthKind
from kiro2api.pool._mask import mask_secret

__all__ = ["Account", "AccountState", "Outcome", "Policy", "backoff"]


class AccountState(enum.StrEnum):
    """What an account is doing, as shown by ``/api/tokens`` and the metrics."""

    ACTIVE = "active"
    REFRESHING = "refreshing"
    COOLING_DOWN = "cooling_down"
    EXHAUSTED = "exhausted"
    INVALID = "invalid"
    DISABLED = "disabled"
    ERROR = "error"


class Outcome(enum.Enum):
    """How one upstream attempt with a leased account ended."""

    SUCCESS = "success"
    AUTH_FAILED = "auth_failed"
    QUOTA_EXCEEDED = "quota_exceeded"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    CONNECTION_ERROR = "connection_error"
    CLIENT_CANCELLED = "client_cancelled"


@dataclass(frozen=True, slots=True)
class Policy:
    """The numbers behind the outcome policy (seconds)."""

    refresh_ahead_fraction: float = 0.8
    invalid_cooldown: float = 1800.0
    quota_cooldown: float = 3600.0
    rate_limit_cooldown: float = 30.0
    error_backoff_base: float = 1.0
    error_backoff_max: float = 60.0
    refresh_backoff_base: float = 1.0
    refresh_backoff_max: float = 300.0
    #: A token this close to its expiry is not handed out (at most 10% of its lifetime).
    expiry_margin: float = 30.0
    #: ``Retry-After`` values above this are capped (a broken header must not park an account).
    max_retry_after: float = 3600.0


def backoff(failures: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: ``min(cap, base * 2**(failures-1))`` times 0.5-1.0.

    The jitter keeps accounts (and replicas) that failed together from retrying in lockstep.
    """
    delay = min(cap, base * 2.0 ** max(failures - 1, 0))
    return delay * rng.uniform(0.5, 1.0)


class Account:
    """Mutable live state of one configured account (owned by the pool's trio task)."""

    def __init__(self, config: AccountConfig, policy: Policy) -> None:
        self.config = config
        self.policy = policy
        #: The first and last 4 characters of the credential the account was loaded with;
        #: kept when the refresh token rotates so the id stays stable.
        self.credential_preview = mask_secret(config.credential)
        self.access_token: str | None = config.api_key or None
        self.obtained_at = -math.inf
        self.expires_at = math.inf if config.auth is AuthKind.API_KEY else -math.inf
        self.expires_wall: float | None = None
        self.token_rejected = False
        self.profile_arn: str | None = None
        # refresh bookkeeping
        self.refresh_in_flight: trio.Event | None = None
        self.refresh_failures = 0
        self.refresh_rejected = False
        self.next_refresh_at = -math.inf
        #: Lifetime totals for /metrics (``refresh_failures`` above resets on success).
        self.refresh_successes_total = 0
        self.refresh_failures_total = 0
        # outcome bookkeeping
        self.cooldown_until = -math.inf
        self.cooldown_wall: float | None = None
        self.cooldown_state = AccountState.COOLING_DOWN
        self.error_streak = 0
        self.rate_streak = 0
        self.auth_failures = 0
        #: The last access token counted as rejected: many requests failing with one token
        #: count as one failure.
        self.rejected_token: str | None = None
        self.last_error: str | None = None
        # counters
        self.in_flight = 0
        self.served = 0
        self.last_used_wall: float | None = None
        # usage limits
        self.usage: UsageLimits | None = None
        self.available: float | None = None
        self.next_usage_at = -math.inf
        self.usage_in_flight = False

    # ------------------------------------------------------------------ identity

    @property
    def index(self) -> int:
        """Position of the account in the source list."""
        return self.config.index

    @property
    def account_id(self) -> str:
        """Stable masked id, e.g. ``acct-0 (aorA…x9Zk)``."""
        return f"acct-{self.index} ({self.credential_preview})"

    def secrets(self) -> tuple[str, ...]:
        """Every secret of this account, for scrubbing messages."""
        c = self.config
        return (c.refresh_token, c.client_secret, c.api_key, self.access_token or "")

    # ------------------------------------------------------------------ predicates

    def has_valid_token(self, now: float) -> bool:
        """Whether the access token can be handed out now."""
        if self.access_token is None or self.token_rejected:
            return False
        if self.config.auth is AuthKind.API_KEY:
            return True
        margin = min(self.policy.expiry_margin, 0.1 * (self.expires_at - self.obtained_at))
        return now < self.expires_at - margin

    def cooling(self, now: float) -> bool:
        """Whether an outcome cooldown is still running."""
        return now < self.cooldown_until

    def over_quota(self) -> bool:
        """Whether the known (or locally counted) credits are used up.

        Display only: the local count is an estimate (one credit per request), so only the
        upstream's 402 or a usage poll showing zero (an EXHAUSTED cooldown) blocks the account.
        """
        return self.available is not None and self.available <= 0

    def at_capacity(self) -> bool:
        """Whether ``maxConcurrency`` leases are already out."""
        limit = self.config.max_concurrency
        return limit is not None and self.in_flight >= limit

    def eligible(self, now: float) -> bool:
        """Nothing but the token (and capacity) rules the account out."""
        return not self.config.disabled and not self.cooling(now)

    def servable(self, now: float) -> bool:
        """A lease can be handed out right now."""
        return self.eligible(now) and not self.at_capacity() and self.has_valid_token(now)

    def refresh_allowed(self, now: float) -> bool:
        """A refresh may start now (none running, and no failure backoff pending)."""
        return self.config.auth is not AuthKind.API_KEY and (
            self.refresh_in_flight is not None or now >= self.next_refresh_at
        )

    def state(self, now: float) -> AccountState:
        """The account's display state (precedence: disabled, cooldowns, refresh, errors)."""
        if self.config.disabled:
            return AccountState.DISABLED
        if self.cooling(now):
            return self.cooldown_state
        if self.refresh_in_flight is not None:
            return AccountState.REFRESHING
        if self.has_valid_token(now):
            return AccountState.ACTIVE
        if self.refresh_failures:
            return AccountState.INVALID if self.refresh_rejected else AccountState.ERROR
        return AccountState.REFRESHING  # no token yet; the refresher is about to get one

    def refresh_due(self, now: float) -> float:
        """When the refresher should next refresh this account (``inf``: never)."""
        if self.config.auth is AuthKind.API_KEY or self.config.disabled:
            return math.inf
        if self.refresh_in_flight is not None:
            return math.inf
        if self.access_token is None or self.token_rejected:
            return self.next_refresh_at
        lifetime = self.expires_at - self.obtained_at
        ahead = self.obtained_at + self.policy.refresh_ahead_fraction * lifetime
        return max(ahead, self.next_refresh_at)

    def usage_due(self, now: float) -> float:
        """When the usage limits should next be polled (``inf``: not now)."""
        if self.config.disabled or self.usage_in_flight or not self.has_valid_token(now):
            return math.inf
        return self.next_usage_at

    # ------------------------------------------------------------------ transitions

    def _cool(self, now: float, seconds: float, state: AccountState) -> None:
        until = now + seconds
        if until > self.cooldown_until or state is not AccountState.COOLING_DOWN:
            self.cooldown_until = until
            self.cooldown_wall = time.time() + seconds
            self.cooldown_state = state

    def clear_cooldown(self) -> None:
        """End any cooldown now (e.g. new credits appeared)."""
        self.cooldown_until = -math.inf
        self.cooldown_wall = None

    def on_refresh_success(self, grant: TokenGrant, now: float) -> None:
        """Install a new access token."""
        self.access_token = grant.access_token
        self.obtained_at = now
        self.expires_at = now + grant.expires_in
        self.expires_wall = time.time() + grant.expires_in
        self.profile_arn = grant.profile_arn or self.profile_arn
        self.token_rejected = False
        self.refresh_successes_total += 1
        self.refresh_failures = 0
        self.refresh_rejected = False
        self.next_refresh_at = -math.inf
        self.last_error = None

    def on_refresh_failure(
        self, message: str, *, rejected: bool, now: float, rng: random.Random
    ) -> float:
        """Record a failed refresh; returns the backoff delay before the next attempt."""
        self.refresh_failures += 1
        self.refresh_failures_total += 1
        self.refresh_rejected = rejected
        self.last_error = message
        delay = backoff(
            self.refresh_failures,
            self.policy.refresh_backoff_base,
            self.policy.refresh_backoff_max,
            rng,
        )
        self.next_refresh_at = now + delay
        return delay

    def on_usage(self, usage: UsageLimits, now: float, interval: float) -> None:
        """Install fresh usage limits; this also re-syncs the local credit counter."""
        self.usage = usage
        self.available = usage.available
        self.next_usage_at = now + interval
        if usage.available is not None and usage.available <= 0:
            self._cool(now, self._until_reset(), AccountState.EXHAUSTED)
        elif self.cooling(now) and self.cooldown_state is AccountState.EXHAUSTED:
            self.clear_cooldown()  # credits were added (or the month rolled over)

    def on_usage_failure(self, message: str, now: float, interval: float) -> None:
        """Keep the last known limits; a failed poll does not block the account."""
        self.last_error = message
        self.next_usage_at = now + min(interval, 60.0)

    def note_auth_failure(self, token: str | None, now: float) -> None:
        """The upstream rejected ``token`` (401/403).

        The first rejection marks the token for refresh; a rejection of the token obtained
        after that makes the account INVALID for ``invalid_cooldown``. Reports about a token
        already counted are ignored, so concurrent requests and the refresh-then-release
        sequence count once per token.
        """
        if token is not None and token == self.rejected_token:
            return
        self.rejected_token = token
        self.auth_failures += 1
        if self.config.auth is AuthKind.API_KEY:
            # Nothing to refresh: the key itself was refused. Park it, retry after the cooldown.
            self.last_error = "the upstream rejected the API key"
            self._cool(now, self.policy.invalid_cooldown, AccountState.INVALID)
            return
        if token is not None and token == self.access_token:
            self.token_rejected = True
        if self.auth_failures >= 2:
            self.last_error = "the upstream rejected the access token twice in a row"
            self._cool(now, self.policy.invalid_cooldown, AccountState.INVALID)

    def _until_reset(self) -> float:
        if self.usage is not None and self.usage.next_reset is not None:
            remaining = self.usage.next_reset - time.time()
            if remaining > 0:
                return remaining
        return self.policy.quota_cooldown

    def apply_outcome(
        self,
        outcome: Outcome,
        now: float,
        *,
        token: str | None,
        retry_after: float | None,
        rng: random.Random,
    ) -> None:
        """Apply the policy for one attempt's outcome (see the module docstring).

        Args:
            outcome: How the attempt ended.
            now: trio's clock.
            token: The access token the attempt used (a rejection of an older token must not
                mark a newer one as rejected).
            retry_after: Seconds the upstream asked to wait (``RATE_LIMITED``).
            rng: Jitter source.
        """
        p = self.policy
        if outcome is Outcome.SUCCESS or outcome is Outcome.CLIENT_CANCELLED:
            self.served += 1
            if self.available is not None:
                self.available = max(self.available - 1.0, 0.0)
            if outcome is Outcome.SUCCESS:
                self.error_streak = self.rate_streak = self.auth_failures = 0
        elif outcome is Outcome.AUTH_FAILED:
            self.note_auth_failure(token, now)
        elif outcome is Outcome.QUOTA_EXCEEDED:
            self.available = 0.0
            self.last_error = "monthly quota exceeded"
            self._cool(now, self._until_reset(), AccountState.EXHAUSTED)
        elif outcome is Outcome.RATE_LIMITED:
            self.rate_streak += 1
            if retry_after is not None and retry_after >= 0:
                seconds = min(retry_after, p.max_retry_after)
            else:
                seconds = backoff(self.rate_streak, p.rate_limit_cooldown, p.max_retry_after, rng)
            self._cool(now, seconds, AccountState.COOLING_DOWN)
        else:  # SERVER_ERROR, CONNECTION_ERROR
            # These are rarely the account's fault (an upstream hiccup, a connection closed by a
            # GOAWAY), and the failing request has already moved on to another account. Parking
            # the account at the first one turned a single dropped HTTP/2 connection into 503s
            # for every request of a one-account pool, so the backoff starts with a streak.
            self.error_streak += 1
            # A connection failure says nothing about the account (every account shares the
            # route to the upstream): it never parks one. Server errors do from the second on.
            if outcome is Outcome.SERVER_ERROR and self.error_streak >= 2:
                seconds = backoff(
                    self.error_streak - 1, p.error_backoff_base, p.error_backoff_max, rng
                )
                self._cool(now, seconds, AccountState.COOLING_DOWN)
