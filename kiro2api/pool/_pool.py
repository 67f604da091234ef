"""The account pool: leases, the nursery-supervised refresher, failover bookkeeping, reload.

Theory of operation. All live state sits in :class:`~kiro2api.pool._account.Account` objects
that only trio tasks of one run touch, so there is no lock on the request path: ``acquire`` and
``release`` are a few comparisons. One scheduler task (:meth:`AccountPool.run`) sleeps until the
earliest "refresh due" or "usage poll due" deadline of any account, or until something changes,
and starts the work as child tasks. Refresh is single-flight per account: the first caller
installs an event in ``Account.refresh_in_flight`` *before* its first checkpoint, later callers
wait for that event. A request only ever waits for the refresh of the account it was given, and
only when that account has no usable token yet (right after start), bounded by
``acquire_timeout``.

A rotated refresh token is written to disk (in a worker thread, shielded from cancellation)
before the new access token is installed, so no crash or shutdown can lose it.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Sequence, Set
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import trio

from kiro2api.errors import ConfigError, NoAccountAvailableError, UpstreamAuthError, UpstreamError
from kiro2api.pool._account import Account, Outcome, Policy
from kiro2api.pool._auth import TokenGrant, UsageLimits, fetch_usage, refresh_token
from kiro2api.pool._config import AccountConfig, AuthKind
from kiro2api.pool._mask import scrub
from kiro2api.pool._select import Selection, choose
from kiro2api.pool._snapshot import AccountSnapshot, snapshot_account, snapshot_json
from kiro2api.pool._store import CredentialStore

__all__ = ["AccountPool", "Lease", "PoolSettings"]

log = logging.getLogger("kiro2api.pool")


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolSettings:
    """How the pool talks upstream and applies its policy.

    URLs may contain ``{region}``, replaced by the account's region (else :attr:`region`).
    Durations are seconds.
    """

    social_refresh_url: str
    idc_refresh_url: str
    usage_url: str
    state_dir: Path
    region: str = "us-east-1"
    selection: str = "sequential"
    refresh_ahead_fraction: float = 0.8
    usage_poll_interval: float = 300.0
    acquire_timeout: float = 10.0
    #: How many accounts the caller's failover loop tries per request.
    max_retries: int = 3
    #: Deadline of one refresh or usage call.
    request_timeout: float = 30.0
    invalid_cooldown: float = 1800.0
    quota_cooldown: float = 3600.0
    rate_limit_cooldown: float = 30.0
    error_backoff_base: float = 1.0
    error_backoff_max: float = 60.0
    refresh_backoff_base: float = 1.0
    refresh_backoff_max: float = 300.0

    def __post_init__(self) -> None:
        problems = []
        if self.selection not in {s.value for s in Selection}:
            problems.append(f"selection: unknown strategy {self.selection!r}")
        if not 0.0 < self.refresh_ahead_fraction < 1.0:
            problems.append("refresh_ahead_fraction: must be between 0 and 1")
        for name in ("usage_poll_interval", "acquire_timeout", "request_timeout"):
            if not getattr(self, name) > 0:
                problems.append(f"{name}: must be positive")
        if self.max_retries < 1:
            problems.append("max_retries: must be at least 1")
        if problems:
            raise ConfigError("; ".join(problems))

    def policy(self) -> Policy:
        """The outcome policy these settings describe."""
        return Policy(
            refresh_ahead_fraction=self.refresh_ahead_fraction,
            invalid_cooldown=self.invalid_cooldown,
            quota_cooldown=self.quota_cooldown,
            rate_limit_cooldown=self.rate_limit_cooldown,
            error_backoff_base=self.error_backoff_base,
            error_backoff_max=self.error_backoff_max,
            refresh_backoff_base=self.refresh_backoff_base,
            refresh_backoff_max=self.refresh_backoff_max,
        )


class Lease:
    """One request's use of one account. Release it exactly once with the outcome.

    After :meth:`AccountPool.refresh_now`, :attr:`access_token` returns the new token, so the
    caller may retry on the same lease; alternatively release it and ``acquire(prefer=index)``.
    """

    __slots__ = ("_account", "_released", "_token", "account_id", "index", "region")

    def __init__(self, account: Account, region: str) -> None:
        self._account = account
        self._token = account.access_token or ""
        self._released = False
        #: Stable masked id of the account, e.g. ``acct-0 (aorA…x9Zk)``.
        self.account_id = account.account_id
        #: Position of the account in the source list.
        self.index = account.index
        #: The region to send the request to.
        self.region = region

    @property
    def access_token(self) -> str:
        """The bearer token to send (the account's newest one, once refreshed)."""
        current = self._account.access_token
        if current is not None and current != self._token and not self._account.token_rejected:
            self._token = current
        return self._token

    @property
    def profile_arn(self) -> str | None:
        """The ``profileArn`` the social refresh returned, if any."""
        return self._account.profile_arn

    @property
    def released(self) -> bool:
        """Whether :meth:`AccountPool.release` was called."""
        return self._released

    def __repr__(self) -> str:
        return f"Lease({self.account_id}, released={self._released})"


class AccountPool:
    """Decides which account serves each request and keeps every token fresh.

    Args:
        accounts: From :func:`~kiro2api.pool.load_accounts` (or ``store.load()``).
        settings: URLs, strategy and policy numbers.
        client: The shared HTTP client for refresh and usage calls.
        store: Persistence of rotated refresh tokens (its state file overrides ``accounts``).
        rng: Jitter source (tests pass a seeded one).
    """

    def __init__(
        self,
        accounts: Sequence[AccountConfig],
        settings: PoolSettings,
        client: httpx.AsyncClient,
        store: CredentialStore,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._policy = settings.policy()
        self._selection = Selection(settings.selection)
        self._client = client
        self._store = store
        self._rng = rng or random.Random()
        self._accounts = [Account(c, self._policy) for c in store.apply_overrides(accounts)]
        self._cursor = 0
        self._nursery: trio.Nursery | None = None
        self._changed = trio.Event()  # set and replaced whenever an account changes
        self._wakeup = trio.Event()  # wakes the scheduler
        self._persist_lock = trio.Lock()  # one reader/writer of the accounts file at a time

    @property
    def settings(self) -> PoolSettings:
        """The pool's settings."""
        return self._settings

    # ------------------------------------------------------------------ request path

    async def acquire(
        self, exclude: Set[int | str] = frozenset(), *, prefer: int | None = None
    ) -> Lease:
        """Lease an account for one upstream attempt.

        Args:
            exclude: Indexes or account ids already tried by this request.
            prefer: Index of the account to use if it is servable (retry on the same account).

        Raises:
            NoAccountAvailableError: no account can serve now (``retry_after`` set when a
                cooldown or backoff end is known), or the chosen account got no token within
                ``acquire_timeout``.
        """
        deadline = trio.current_time() + self._settings.acquire_timeout
        while True:
            now = trio.current_time()
            candidates = [
                a for a in self._accounts if a.index not in exclude and a.account_id not in exclude
            ]
            account = self._pick(candidates, now, prefer)
            if account is not None:
                return self._lease(account)
            # Nothing servable: wait for an account that only lacks a token, or a free slot.
            pending = self._pick_pending(candidates, now)
            busy = any(a.eligible(now) and a.has_valid_token(now) for a in candidates)
            if pending is None and not busy:
                raise self._unavailable(candidates, now)
            if now >= deadline:
                raise NoAccountAvailableError(
                    "no account became available within "
                    f"{self._settings.acquire_timeout:g} s (waiting for a token or a free slot)",
                    retry_after=1.0,
                )
            changed = self._changed
            with trio.move_on_at(deadline):
                own = None if pending is None else self._start_refresh(pending)
                if pending is not None and own is not None:
                    await self._refresh(pending, own)
                else:
                    await changed.wait()

    def _pick(self, candidates: list[Account], now: float, prefer: int | None) -> Account | None:
        for account in candidates:
            if account.index == prefer and account.servable(now):
                return account
        pos, cursor = choose(
            self._selection,
            self._accounts,
            self._cursor,
            lambda a: a in candidates and a.servable(now),
        )
        if pos is None:
            return None
        self._cursor = cursor
        return self._accounts[pos]

    def _pick_pending(self, candidates: list[Account], now: float) -> Account | None:
        def pending(a: Account) -> bool:
            return (
                a in candidates
                and a.eligible(now)
                and not a.has_valid_token(now)
                and a.refresh_allowed(now)
            )

        pos, _ = choose(self._selection, self._accounts, self._cursor, pending)
        return None if pos is None else self._accounts[pos]

    def release(self, lease: Lease, outcome: Outcome, *, retry_after: float | None = None) -> None:
        """Return a lease with the outcome of its attempt; a second call is ignored.

        Args:
            lease: From :meth:`acquire`.
            outcome: How the attempt ended; drives the cooldown policy.
            retry_after: Seconds the upstream asked to wait (``RATE_LIMITED``).
        """
        if lease._released:
            return
        lease._released = True
        account = lease._account
        account.in_flight = max(account.in_flight - 1, 0)
        now = trio.current_time()
        account.apply_outcome(
            outcome, now, token=lease._token, retry_after=retry_after, rng=self._rng
        )
        if outcome is not Outcome.SUCCESS and outcome is not Outcome.CLIENT_CANCELLED:
            log.info("%s: %s -> %s", account.account_id, outcome.value, account.state(now).value)
        self._notify()

    async def refresh_now(self, lease: Lease) -> bool:
        """Force a refresh of the lease's account after the upstream rejected its token.

        Single-flight: concurrent calls share one refresh. If the account already got a newer
        token than the lease used, nothing is refreshed. Counts as one rejection of the lease's
        token (see the AUTH_FAILED policy).

        Returns:
            Whether the account now holds a usable token.
        """
        account = lease._account
        account.note_auth_failure(lease._token, trio.current_time())
        if account.config.auth is AuthKind.API_KEY:
            return False
        current = account.access_token
        if current is not None and current != lease._token and not account.token_rejected:
            return account.has_valid_token(trio.current_time())
        own = self._start_refresh(account)
        if own is not None:
            await self._refresh(account, own)
        event = account.refresh_in_flight
        if event is not None:
            await event.wait()
        return account.has_valid_token(trio.current_time())

    def ready(self) -> bool:
        """Whether at least one account could serve a request now."""
        now = trio.current_time()
        return any(a.eligible(now) and a.has_valid_token(now) for a in self._accounts)

    def snapshot(self) -> list[AccountSnapshot]:
        """The live state of every account (no upstream call, no secret)."""
        now = trio.current_time()
        return [snapshot_account(a, now, self._settings.region) for a in self._accounts]

    def snapshot_json(self) -> bytes:
        """:meth:`snapshot` as the ``/api/tokens`` JSON body."""
        return snapshot_json(self.snapshot())

    # ------------------------------------------------------------------ internals: leasing

    def _lease(self, account: Account) -> Lease:
        account.in_flight += 1
        account.last_used_wall = time.time()
        return Lease(account, account.config.region or self._settings.region)

    def _unavailable(self, accounts: list[Account], now: float) -> NoAccountAvailableError:
        counts: dict[str, int] = {}
        for a in accounts:
            state = a.state(now).value
            counts[state] = counts.get(state, 0) + 1
        waits = [a.cooldown_until - now for a in accounts if a.cooling(now)]
        waits += [
            a.next_refresh_at - now
            for a in accounts
            if not a.config.disabled and a.next_refresh_at > now and not a.has_valid_token(now)
        ]
        summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "none left"
        retry = max(min(waits), 1.0) if waits else None
        return NoAccountAvailableError(f"no account available ({summary})", retry_after=retry)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()
        self._wakeup.set()

    # ------------------------------------------------------------------ internals: refresh

    def _url(self, template: str, account: Account) -> str:
        return template.replace("{region}", account.config.region or self._settings.region)

    def _start_refresh(self, account: Account) -> trio.Event | None:
        """Start a refresh of ``account`` unless one is running (single-flight).

        Returns:
            ``None`` when a refresh runs in the pool's nursery (or already ran); without a
            running :meth:`run`, the event of a refresh the caller must perform itself with
            ``await self._refresh(account, event)``.
        """
        if account.refresh_in_flight is not None:
            return None
        event = trio.Event()
        account.refresh_in_flight = event  # before any checkpoint: this is the single flight
        if self._nursery is not None:
            self._nursery.start_soon(self._refresh, account, event)
            return None
        return event

    async def _refresh(self, account: Account, event: trio.Event) -> None:
        try:
            config = account.config
            template = (
                self._settings.idc_refresh_url
                if config.auth is AuthKind.IDC
                else self._settings.social_refresh_url
            )
            message: str | None = None
            rejected = False
            grant: TokenGrant | None = None
            with trio.move_on_after(self._settings.request_timeout) as scope:
                try:
                    grant = await refresh_token(self._client, config, self._url(template, account))
                except UpstreamError as exc:
                    message = scrub(exc.message, account.secrets())
                    rejected = isinstance(exc, UpstreamAuthError)
            if scope.cancelled_caught:
                message = f"token refresh: no answer within {self._settings.request_timeout:g} s"
            now = trio.current_time()
            if message is not None or grant is None:
                message = message or "token refresh: no answer"
                delay = account.on_refresh_failure(
                    message, rejected=rejected, now=now, rng=self._rng
                )
                log.warning("%s: %s (next try in %.1f s)", account.account_id, message, delay)
                return
            with trio.CancelScope(shield=True):
                # The old refresh token is dead upstream now: save the new one first.
                problem = None
                if grant.rotated_refresh_token is not None:
                    problem = await self._persist(account, grant.rotated_refresh_token)
                account.on_refresh_success(grant, trio.current_time())
                account.last_error = problem
            log.info(
                "%s: access token refreshed (valid %d s)", account.account_id, grant.expires_in
            )
        finally:
            account.refresh_in_flight = None
            event.set()
            self._notify()

    async def _persist(self, account: Account, new_token: str) -> str | None:
        """Save a rotated refresh token; returns a problem description if it could not be."""
        async with self._persist_lock:
            try:
                account.config = await trio.to_thread.run_sync(
                    self._store.persist, account.config, new_token
                )
            except (OSError, ConfigError) as exc:
                # Keep it in memory: dropping it would lose the account for good.
                account.config = replace(account.config, refresh_token=new_token)
                problem = f"could not save the rotated refresh token: {type(exc).__name__}"
                log.error("%s: %s", account.account_id, problem)
                return problem
        return None

    async def _poll_usage(self, account: Account) -> None:
        account.usage_in_flight = True
        interval = self._settings.usage_poll_interval
        try:
            token = account.access_token or ""
            url = self._url(self._settings.usage_url, account)
            message: str | None = None
            usage: UsageLimits | None = None
            with trio.move_on_after(self._settings.request_timeout) as scope:
                try:
                    usage = await fetch_usage(self._client, account.config, url, token)
                except UpstreamError as exc:
                    message = scrub(exc.message, account.secrets())
            if scope.cancelled_caught:
                message = f"usage limits: no answer within {self._settings.request_timeout:g} s"
            now = trio.current_time()
            if message is not None or usage is None:
                message = message or "usage limits: no answer"
                account.on_usage_failure(message, now, interval)
                log.warning("%s: %s", account.account_id, message)
                return
            account.on_usage(usage, now, interval)
            if usage.available is not None and usage.available <= 1:
                log.warning("%s: %.2f credits left", account.account_id, usage.available)
        finally:
            account.usage_in_flight = False
            self._notify()

    # ------------------------------------------------------------------ supervision

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep every token fresh and the usage limits current until cancelled.

        Reports started at once: the server must come up even when the auth service is down
        (``ready()`` tells when an account is usable).
        """
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            try:
                await self._schedule(nursery)
            finally:
                self._nursery = None

    async def _schedule(self, nursery: trio.Nursery) -> None:
        while True:
            self._wakeup = trio.Event()
            wakeup = self._wakeup
            now = trio.current_time()
            next_at = math.inf
            for account in self._accounts:
                due = account.refresh_due(now)
                if due <= now:
                    self._start_refresh(account)
                else:
                    next_at = min(next_at, due)
                due = account.usage_due(now)
                if due <= now:
                    account.usage_in_flight = True
                    nursery.start_soon(self._poll_usage, account)
                else:
                    next_at = min(next_at, due)
            with trio.move_on_at(next_at):
                await wakeup.wait()

    async def reload(self) -> None:
        """Re-read the accounts source; live state and in-flight leases survive.

        Entries are matched to live accounts by their credential, so an unchanged entry keeps
        its token, counters and cooldowns; removed accounts finish their in-flight requests.

        Raises:
            ConfigError: the new source is invalid (the pool keeps the old accounts).
        """
        async with self._persist_lock:
            configs = await trio.to_thread.run_sync(self._store.load)
            live = {(a.config.auth, a.config.source_key): a for a in self._accounts}
            accounts = []
            added = 0
            for config in configs:
                account = live.pop((config.auth, config.source_key), None)
                if account is None:
                    account = Account(config, self._policy)
                    added += 1
                else:
                    # The live refresh token may be newer than what was read back.
                    refresh = account.config.refresh_token or config.refresh_token
                    account.config = replace(config, refresh_token=refresh)
                accounts.append(account)
            self._accounts = accounts
            self._cursor = 0
        log.info(
            "accounts reloaded: %d accounts (%d new, %d removed)",
            len(accounts),
            added,
            len(live),
        )
        self._notify()
