"""Configuration of the upstream simulator: accounts, limits and per-account faults.

Everything here is plain data. The live state (issued tokens, usage counters) lives in
:mod:`kiro2api.simulator._state`; a config can therefore be reused for many runs.

An accounts file (``kiro2api simulate --accounts FILE``) is a JSON list of account objects. Keys
are the field names of :class:`AccountConfig` in ``snake_case`` or ``camelCase``; the proxy's own
``KIRO_AUTH_TOKEN`` entries (``{"auth": "Social", "refreshToken": ...}``) are accepted as they are,
so one file can configure both sides of a test.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Literal

import orjson

from kiro2api.errors import ConfigError

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEMO_REFRESH_TOKEN",
    "AccountConfig",
    "AccountKind",
    "SimulatorConfig",
]

AccountKind = Literal["social", "idc", "apikey"]

#: Upstream rejects larger bodies with ``CONTENT_LENGTH_EXCEEDS_THRESHOLD``. The peers measured
#: the real limit at about 615 KB and guard at 600,000 bytes (peers.md §0 item 2).
DEFAULT_MAX_BODY_BYTES = 600_000

#: The refresh token of :meth:`SimulatorConfig.demo`'s only account. Not a secret: it opens
#: nothing but the simulator.
DEMO_REFRESH_TOKEN = "aorDEMO-kiro2api-simulator-demo-refresh-token"

_KINDS: dict[str, AccountKind] = {
    "social": "social",
    "idc": "idc",
    "apikey": "apikey",
    "api_key": "apikey",
}
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


@dataclass(frozen=True, slots=True)
class AccountConfig:
    """One upstream account as the simulator knows it.

    Attributes:
        id: A short name used in logs, records and :class:`Simulator` helpers.
        kind: ``social`` (``POST /refreshToken``), ``idc`` (``POST /token``) or ``apikey``
            (the key itself is the Bearer token; there is nothing to refresh).
        refresh_token: The initial refresh token (social and idc).
        client_id: The OIDC client id (idc only).
        client_secret: The OIDC client secret (idc only).
        api_key: The key accepted as a Bearer token (apikey only).
        email: Reported by ``getUsageLimits`` in ``userInfo.email``.
        usage_limit: The monthly CREDIT limit.
        current_usage: CREDIT already used when the simulator starts.
        free_trial_limit: The free-trial CREDIT limit; 0 means no ``freeTrialInfo``.
        free_trial_usage: Free-trial CREDIT already used.
        exhausted: Start with the quota used up (402 ``MONTHLY_REQUEST_COUNT``).
        exhaust_after: Answer 402 after this many successful requests.
        access_token_ttl: Seconds an access token stays valid (``expiresIn``).
        faults: Directives (the text inside ``[[sim: ...]]``) applied to every
            ``generateAssistantResponse`` of this account before the message's own directives,
            e.g. ``"http status=429"`` or ``"http status=500 times=3"``; ``times`` counts per
            account.
        refresh_faults: Directives applied to this account's token refreshes (``http`` and
            ``delay`` only).
        strict_rotation: Refreshing rotates the refresh token and the old one stops working,
            as upstream does. When false, every token this account ever issued keeps working and
            any token of the form ``<refresh_token>.<suffix>`` is accepted, so a proxy that
            persisted a rotated token survives a simulator restart (demo mode).
        profile_arn: Returned by the social refresh.
    """

    id: str
    kind: AccountKind = "social"
    refresh_token: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    api_key: str | None = None
    email: str = "user@example.com"
    usage_limit: float = 10_000.0
    current_usage: float = 0.0
    free_trial_limit: float = 0.0
    free_trial_usage: float = 0.0
    exhausted: bool = False
    exhaust_after: int | None = None
    access_token_ttl: float = 3600.0
    faults: tuple[str, ...] = ()
    refresh_faults: tuple[str, ...] = ()
    strict_rotation: bool = True
    profile_arn: str = "arn:aws:codewhisperer:us-east-1:699475941385:profile/SIMULATOR"

    def __post_init__(self) -> None:
        if self.kind not in _KINDS.values():
            raise ConfigError(f"account {self.id!r}: unknown kind {self.kind!r}")
        if self.kind in ("social", "idc") and not self.refresh_token:
            raise ConfigError(f"account {self.id!r}: a {self.kind} account needs a refresh_token")
        if self.kind == "idc" and not (self.client_id and self.client_secret):
            raise ConfigError(f"account {self.id!r}: an idc account needs client_id/client_secret")
        if self.kind == "apikey" and not self.api_key:
            raise ConfigError(f"account {self.id!r}: an apikey account needs an api_key")
        if self.access_token_ttl <= 0:
            raise ConfigError(f"account {self.id!r}: access_token_ttl must be positive")
        if self.exhaust_after is not None and self.exhaust_after < 0:
            raise ConfigError(f"account {self.id!r}: exhaust_after must not be negative")

    @classmethod
    def from_mapping(cls, data: Mapping[str, object], *, index: int = 0) -> AccountConfig:
        """Build an account from JSON-like data (snake_case, camelCase or proxy-style keys).

        Raises:
            ConfigError: on unknown keys or values of the wrong type.
        """
        known = {f.name: f for f in fields(cls)}
        values: dict[str, object] = {}
        for raw_key, value in data.items():
            key = "kind" if raw_key == "auth" else _CAMEL.sub("_", raw_key).lower()
            if key in ("description", "disabled"):
                continue  # the proxy's informational keys; nothing to simulate
            if key not in known:
                raise ConfigError(f"account #{index}: unknown key {raw_key!r}")
            values[key] = value
        if isinstance(values.get("kind"), str):
            kind = _KINDS.get(str(values["kind"]).lower())
            if kind is None:
                raise ConfigError(f"account #{index}: unknown kind {values['kind']!r}")
            values["kind"] = kind
        for name in ("faults", "refresh_faults"):
            if name in values:
                raw = values[name]
                if isinstance(raw, str):
                    raw = [raw]
                if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
                    raise ConfigError(f"account #{index}: {name} must be a list of strings")
                values[name] = tuple(raw)
        values.setdefault("id", f"acct-{index + 1}")
        _check_types(values, index)
        return cls(**values)  # type: ignore[arg-type]


def _check_types(values: Mapping[str, object], index: int) -> None:
    """Reject values whose JSON type cannot be what the field means."""
    numbers = {"usage_limit", "current_usage", "free_trial_limit", "free_trial_usage"}
    for name, value in values.items():
        ok: bool
        if name in numbers or name == "access_token_ttl":
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        elif name == "exhaust_after":
            ok = value is None or (isinstance(value, int) and not isinstance(value, bool))
        elif name in ("exhausted", "strict_rotation"):
            ok = isinstance(value, bool)
        elif name in ("faults", "refresh_faults"):
            ok = True
        else:
            ok = value is None or isinstance(value, str)
        if not ok:
            raise ConfigError(f"account #{index}: {name} has the wrong type ({value!r})")


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """How a :class:`~kiro2api.simulator.Simulator` behaves.

    Attributes:
        accounts: The known accounts.
        max_body_bytes: Bodies larger than this get 400 ``CONTENT_LENGTH_EXCEEDS_THRESHOLD``.
        context_window_tokens: The window ``contextUsageEvent`` is computed against.
        host: The address to bind.
        port: The port to bind; 0 picks a free one.
        tls: Serve HTTPS with a throw-away CA (HTTP/2 through ALPN, HTTP/1.1 otherwise).
        record_limit: How many received ``generateAssistantResponse`` requests to keep.
    """

    accounts: tuple[AccountConfig, ...] = ()
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    context_window_tokens: int = 200_000
    host: str = "127.0.0.1"
    port: int = 0
    tls: bool = False
    record_limit: int = 256

    def __post_init__(self) -> None:
        ids = [a.id for a in self.accounts]
        if len(set(ids)) != len(ids):
            raise ConfigError("account ids must be unique")
        secrets = [s for a in self.accounts for s in (a.refresh_token, a.api_key) if s is not None]
        if len(set(secrets)) != len(secrets):
            raise ConfigError("refresh tokens and api keys must be unique across accounts")
        if self.max_body_bytes <= 0 or self.context_window_tokens <= 0:
            raise ConfigError("max_body_bytes and context_window_tokens must be positive")
        if self.record_limit < 0:
            raise ConfigError("record_limit must not be negative")

    @classmethod
    def demo(cls) -> SimulatorConfig:
        """One social account with the well-known :data:`DEMO_REFRESH_TOKEN`.

        Rotation is lenient (see :attr:`AccountConfig.strict_rotation`) so a long demo session,
        proxy restarts and simulator restarts all keep working.
        """
        account = AccountConfig(
            id="demo",
            kind="social",
            refresh_token=DEMO_REFRESH_TOKEN,
            email="demo@kiro2api.invalid",
            usage_limit=1_000_000.0,
            strict_rotation=False,
        )
        return cls(accounts=(account,))

    @classmethod
    def from_accounts_data(cls, data: object, **options: object) -> SimulatorConfig:
        """Build a config from parsed JSON: a list of accounts or one account object.

        Raises:
            ConfigError: when the data is not a list of objects or an account is invalid.
        """
        items: Sequence[object] = data if isinstance(data, list) else [data]
        accounts = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise ConfigError(f"account #{i}: expected a JSON object")
            accounts.append(AccountConfig.from_mapping(item, index=i))
        return replace(cls(), accounts=tuple(accounts), **options)  # type: ignore[arg-type]

    @classmethod
    def from_file(cls, path: str | Path, **options: object) -> SimulatorConfig:
        """Read an accounts file (JSON) as :meth:`from_accounts_data` does.

        Raises:
            ConfigError: when the file cannot be read or parsed.
        """
        try:
            data = orjson.loads(Path(path).read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read accounts file {path}: {exc}") from exc
        return cls.from_accounts_data(data, **options)
