"""Live state of a simulator run: accounts, issued tokens, usage and a record of requests.

No I/O here. Times are passed in by the caller (the app uses ``trio.current_time()`` for expiry,
so token lifetimes follow trio's clock, and the wall clock only for ``nextDateReset``).
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kiro2api.simulator._config import AccountConfig, SimulatorConfig

__all__ = ["AccountState", "ReceivedRequest", "SimState"]

_DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """One ``generateAssistantResponse`` request as the simulator received it.

    Attributes:
        seq: Position in the run, from 1.
        account_id: The account the Bearer token belongs to, ``None`` if it matched none.
        headers: Request headers, names lower-cased (repeated headers joined with ``", "``).
        body: The parsed JSON body, ``None`` when it was not valid JSON.
        raw_size: Body size in bytes.
        status: The HTTP status the simulator answered.
        reason: The ``reason`` of an error answer, if any.
    """

    seq: int
    account_id: str | None
    headers: Mapping[str, str]
    body: Any
    raw_size: int
    status: int
    reason: str | None = None


@dataclass(slots=True)
class AccountState:
    """Mutable per-account state."""

    config: AccountConfig
    usage: float = 0.0
    trial_usage: float = 0.0
    #: Successful ``generateAssistantResponse`` requests (what ``exhaust_after`` counts).
    requests: int = 0
    refresh_calls: int = 0
    usage_calls: int = 0
    #: The refresh token that works now (social and idc).
    refresh_token: str | None = None
    #: Access tokens issued to this account, token → expiry (trio clock).
    access_tokens: dict[str, float] = field(default_factory=dict)

    @property
    def exhausted(self) -> bool:
        """Whether the account's quota is used up."""
        cfg = self.config
        if cfg.exhausted:
            return True
        if cfg.exhaust_after is not None and self.requests >= cfg.exhaust_after:
            return True
        return self.usage >= cfg.usage_limit and self.trial_usage >= cfg.free_trial_limit

    def charge(self, credits: float) -> None:
        """Add ``credits`` of usage, free trial first (as upstream bills)."""
        self.requests += 1
        room = max(0.0, self.config.free_trial_limit - self.trial_usage)
        from_trial = min(room, credits)
        self.trial_usage += from_trial
        self.usage += credits - from_trial

    def usage_limits(self, wall_now: float) -> dict[str, object]:
        """The ``getUsageLimits`` answer (protocol.md §1.4)."""
        cfg = self.config
        used, trial_used = self.usage, self.trial_usage
        if self.exhausted:  # show the quota as spent, whatever the counters say
            used, trial_used = max(used, cfg.usage_limit), max(trial_used, cfg.free_trial_limit)
        days = 12
        reset = float(int(wall_now // _DAY) * _DAY + days * _DAY)
        credit: dict[str, object] = {
            "resourceType": "CREDIT",
            "unit": "INVOCATIONS",
            "currency": "USD",
            "displayName": "Credit",
            "displayNamePlural": "Credits",
            "usageLimit": int(cfg.usage_limit),
            "usageLimitWithPrecision": float(cfg.usage_limit),
            "currentUsage": int(used),
            "currentUsageWithPrecision": round(used, 6),
            "overageCap": 0,
            "overageCapWithPrecision": 0.0,
            "overageRate": 0.04,
            "overageCharges": 0.0,
            "currentOverages": 0,
            "currentOveragesWithPrecision": 0.0,
            "nextDateReset": reset,
        }
        if cfg.free_trial_limit > 0:
            credit["freeTrialInfo"] = {
                "freeTrialStatus": "ACTIVE",
                "freeTrialExpiry": reset,
                "usageLimit": int(cfg.free_trial_limit),
                "usageLimitWithPrecision": float(cfg.free_trial_limit),
                "currentUsage": int(trial_used),
                "currentUsageWithPrecision": round(trial_used, 6),
            }
        return {
            "daysUntilReset": days,
            "nextDateReset": reset,
            "limits": [],
            "overageConfiguration": {"overageStatus": "DISABLED"},
            "subscriptionInfo": {
                "type": "Q_DEVELOPER_STANDALONE_FREE",
                "subscriptionTitle": "KIRO FREE",
                "subscriptionManagementTarget": "PURCHASE",
                "overageCapability": "OVERAGE_INCAPABLE",
                "upgradeCapability": "UPGRADE_CAPABLE",
            },
            "userInfo": {"email": cfg.email, "userId": f"sim-{cfg.id}"},
            "usageBreakdownList": [credit],
        }


class SimState:
    """Every account's state plus what the simulator received."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.accounts: dict[str, AccountState] = {}
        #: Refresh tokens that work now → account.
        self._refresh: dict[str, AccountState] = {}
        #: Access tokens (and api keys) → account.
        self._access: dict[str, AccountState] = {}
        #: How often each ``times=N`` directive was applied, by key.
        self._applied: dict[str, int] = {}
        self.records: deque[ReceivedRequest] = deque(maxlen=config.record_limit)
        #: Faults added at run time: (countdown key, account id or None for all, directive).
        self.injected: list[tuple[str, str | None, str]] = []
        self.seq = 0
        for acct in config.accounts:
            state = AccountState(
                config=acct,
                usage=acct.current_usage,
                trial_usage=acct.free_trial_usage,
                refresh_token=acct.refresh_token,
            )
            self.accounts[acct.id] = state
            if acct.refresh_token:
                self._refresh[acct.refresh_token] = state
            if acct.api_key:
                self._access[acct.api_key] = state

    # ---------------------------------------------------------------- tokens

    def _lenient_owner(self, token: str) -> AccountState | None:
        for state in self.accounts.values():
            initial = state.config.refresh_token
            if state.config.strict_rotation or not initial:
                continue
            if token == initial or token.startswith(initial + "."):
                return state
        return None

    def refresh_owner(self, token: str, kind: str) -> AccountState | None:
        """The account of kind ``kind`` that ``token`` refreshes now, if any."""
        state = self._refresh.get(token) or self._lenient_owner(token)
        if state is None or state.config.kind != kind:
            return None
        return state

    def rotate(self, state: AccountState, token: str, now: float) -> tuple[str, str]:
        """Exchange ``token`` (owned by ``state``) for (access token, rotated refresh token).

        With strict rotation the old refresh token stops working.
        """
        state.refresh_calls += 1
        if state.config.strict_rotation:
            self._refresh.pop(token, None)
            new_refresh = "aor" + secrets.token_urlsafe(48)
        else:
            new_refresh = f"{state.config.refresh_token}.{secrets.token_urlsafe(12)}"
        self._refresh[new_refresh] = state
        state.refresh_token = new_refresh
        return self.issue_access_token(state, now), new_refresh

    def issue_access_token(self, state: AccountState, now: float) -> str:
        """Issue a fresh access token for ``state`` valid for its ``access_token_ttl``."""
        token = "aoa" + secrets.token_urlsafe(40)
        expires = now + state.config.access_token_ttl
        state.access_tokens[token] = expires
        self._access[token] = state
        return token

    def authenticate(self, bearer: str, now: float) -> AccountState | None:
        """The account a Bearer token belongs to, if the token is known and not expired."""
        state = self._access.get(bearer)
        if state is None:
            return None
        expires = state.access_tokens.get(bearer)
        if expires is not None and now >= expires:
            return None
        return state

    def expire_access_tokens(self, account_id: str | None = None) -> None:
        """Make every issued access token (of one account, or all) invalid at once."""
        for state in self.accounts.values():
            if account_id is None or state.config.id == account_id:
                for token in state.access_tokens:
                    self._access.pop(token, None)
                state.access_tokens.clear()

    # ---------------------------------------------------------------- once / countdown

    def applies(self, key: str, times: int | None) -> bool:
        """Whether a directive limited to ``times`` requests still applies; counts one use."""
        if times is None:
            return True
        used = self._applied.get(key, 0)
        if used >= times:
            return False
        self._applied[key] = used + 1
        return True

    def next_seq(self) -> int:
        """The next request sequence number (from 1)."""
        self.seq += 1
        return self.seq
