"""Parsing and validating the account list given in ``KIRO_AUTH_TOKEN``.

The value is either inline JSON or the path of a JSON file (a container secret such as
``/run/secrets/kiro_auth_token`` works). The JSON is an array of account objects or a single
object. Every entry is checked and *all* problems are reported at once, each naming the entry's
index; a JSON syntax error names its line and column. No secret is ever echoed.

This module does no network I/O; it reads the file only in :func:`read_source`.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from kiro2api.errors import ConfigError

__all__ = [
    "AccountConfig",
    "AuthKind",
    "Source",
    "credential_key",
    "find_key",
    "load_accounts",
    "parse_accounts",
    "read_source",
    "source_path",
]


class AuthKind(enum.StrEnum):
    """How an account obtains its bearer token."""

    #: Kiro social login: ``POST /refreshToken`` (rotates the refresh token).
    SOCIAL = "social"
    #: AWS IAM Identity Center (SSO-OIDC): ``POST /token`` with a client id and secret.
    IDC = "idc"
    #: A long-lived ``ksk_`` key sent directly as the bearer token; never refreshed.
    API_KEY = "apikey"


#: Accepted spellings of ``auth`` (compared case-insensitively).
_AUTH_NAMES = {"social": AuthKind.SOCIAL, "idc": AuthKind.IDC, "apikey": AuthKind.API_KEY}


def credential_key(secret: str) -> str:
    """A stable, non-reversible key for a credential (used in the state file and on reload).

    The key is a SHA-256 digest, so the credential itself never appears as a key on disk.
    """
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()


def find_key(entry: Mapping[str, Any], name: str) -> str | None:
    """The actual spelling of field ``name`` in ``entry``, matched case-insensitively.

    Go's ``encoding/json`` matches keys case-insensitively, so ``RefreshToken`` works there too.
    """
    if name in entry:
        return name
    lowered = name.lower()
    for key in entry:
        if key.lower() == lowered:
            return key
    return None


@dataclass(frozen=True, slots=True)
class AccountConfig:
    """One validated entry of the account list.

    ``index`` is the entry's position in the source list (disabled entries keep theirs), and
    ``source_key`` is :func:`credential_key` of the credential *as written in the source*: it
    identifies the entry in the state file and across reloads even after the refresh token
    rotates. ``refresh_token`` is the newest known refresh token (the state file may override
    the source's).
    """

    index: int
    auth: AuthKind
    source_key: str
    refresh_token: str = ""
    client_id: str = ""
    client_secret: str = ""
    api_key: str = ""
    disabled: bool = False
    description: str = ""
    region: str | None = None
    max_concurrency: int | None = None

    def __repr__(self) -> str:
        # The default dataclass repr would print every secret.
        return (
            f"AccountConfig(index={self.index}, auth={self.auth.value}, "
            f"disabled={self.disabled}, description={self.description!r})"
        )

    @property
    def credential(self) -> str:
        """The secret that identifies the account: its refresh token or API key."""
        return self.api_key if self.auth is AuthKind.API_KEY else self.refresh_token


@dataclass(frozen=True, slots=True)
class Source:
    """Where the account list came from: a file (rewritable) or inline JSON."""

    text: str
    path: Path | None = None


def source_path(raw: str) -> Path | None:
    """The file named by ``raw``, or ``None`` when ``raw`` is inline JSON."""
    stripped = raw.strip()
    if stripped.startswith(("[", "{")):
        return None
    return Path(stripped)


def read_source(raw: str, *, source_hint: str = "KIRO_AUTH_TOKEN") -> Source:
    """Decide whether ``raw`` is inline JSON or a file path, and read the file if it is one.

    Raises:
        ConfigError: the value is empty, or names a file that cannot be read.
    """
    if not raw.strip():
        raise ConfigError(f"{source_hint}: empty; give the accounts as JSON or a file path")
    path = source_path(raw)
    if path is None:
        return Source(text=raw)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        # Never echo the value: a mistyped inline token would end up in the logs.
        raise ConfigError(
            f"{source_hint}: neither inline JSON (it must start with '[' or '{{') "
            "nor the path of an existing file"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source_hint}: cannot read {path}: {type(exc).__name__}") from None
    return Source(text=text, path=path)


def parse_accounts(text: str, *, source_hint: str = "KIRO_AUTH_TOKEN") -> list[AccountConfig]:
    """Parse and validate the JSON text of an account list.

    Returns:
        One :class:`AccountConfig` per entry, disabled entries included, in source order.

    Raises:
        ConfigError: listing every problem, one line each, naming the entry index (or the
            JSON line and column of a syntax error). Secrets are never included.
    """
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(
            f"{source_hint}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    if isinstance(data, dict):
        entries: list[Any] = [data]
    elif isinstance(data, list):
        entries = data
    else:
        raise ConfigError(f"{source_hint}: expected a JSON array of accounts or one object")
    if not entries:
        raise ConfigError(f"{source_hint}: the account list is empty")
    problems: list[str] = []
    accounts: list[AccountConfig] = []
    for index, entry in enumerate(entries):
        account = _parse_entry(index, entry, problems, source_hint)
        if account is not None:
            accounts.append(account)
    seen: dict[str, int] = {}
    for account in accounts:
        first = seen.setdefault(account.source_key, account.index)
        if first != account.index:
            # The state file and reloads identify an entry by its credential.
            problems.append(
                f"{source_hint}: account [{account.index}]: same credential as account [{first}]"
            )
    if not problems and all(a.disabled for a in accounts):
        problems.append(f"{source_hint}: every account is disabled")
    if problems:
        raise ConfigError("\n".join(problems))
    return accounts


def load_accounts(raw: str, *, source_hint: str = "KIRO_AUTH_TOKEN") -> list[AccountConfig]:
    """Load the account list from ``raw``: inline JSON, or the path of a JSON file.

    Args:
        raw: The value of ``KIRO_AUTH_TOKEN``.
        source_hint: The name used in error messages.

    Raises:
        ConfigError: see :func:`parse_accounts` and :func:`read_source`.
    """
    source = read_source(raw, source_hint=source_hint)
    hint = f"{source_hint} ({source.path})" if source.path is not None else source_hint
    return parse_accounts(source.text, source_hint=hint)


def _parse_entry(
    index: int, entry: Any, problems: list[str], source_hint: str
) -> AccountConfig | None:
    where = f"{source_hint}: account [{index}]"
    if not isinstance(entry, dict):
        problems.append(f"{where}: expected a JSON object, got {_json_type(entry)}")
        return None
    before = len(problems)

    def text(name: str) -> str:
        key = find_key(entry, name)
        if key is None or entry[key] is None:
            return ""
        value = entry[key]
        if not isinstance(value, str):
            problems.append(f"{where}: {name!r} must be a string, got {_json_type(value)}")
            return ""
        return value.strip()

    auth_name = text("auth") or "Social"
    auth = _AUTH_NAMES.get(auth_name.lower())
    if auth is None:
        problems.append(
            f"{where}: unknown 'auth' {auth_name[:20]!r} (expected Social, IdC or ApiKey)"
        )
    refresh_token, api_key = text("refreshToken"), text("apiKey")
    client_id, client_secret = text("clientId"), text("clientSecret")
    description, region = text("description"), text("region")
    if auth is AuthKind.API_KEY:
        if not api_key:
            problems.append(f"{where}: 'apiKey' is required for auth ApiKey")
    elif auth is not None and not refresh_token:
        problems.append(f"{where}: 'refreshToken' is missing or empty")
    if auth is AuthKind.IDC:
        for name, value in (("clientId", client_id), ("clientSecret", client_secret)):
            if not value:
                problems.append(f"{where}: {name!r} is required for auth IdC")
    disabled = _boolean(entry, "disabled", where, problems)
    max_concurrency = _positive_int(entry, "maxConcurrency", where, problems)
    if len(problems) > before or auth is None:
        return None
    credential = api_key if auth is AuthKind.API_KEY else refresh_token
    return AccountConfig(
        index=index,
        auth=auth,
        source_key=credential_key(credential),
        refresh_token=refresh_token if auth is not AuthKind.API_KEY else "",
        client_id=client_id,
        client_secret=client_secret,
        api_key=api_key if auth is AuthKind.API_KEY else "",
        disabled=disabled,
        description=description,
        region=region or None,
        max_concurrency=max_concurrency,
    )


def _boolean(entry: Mapping[str, Any], name: str, where: str, problems: list[str]) -> bool:
    key = find_key(entry, name)
    value = None if key is None else entry[key]
    if value is None:
        return False
    if not isinstance(value, bool):
        problems.append(f"{where}: {name!r} must be true or false, got {_json_type(value)}")
        return False
    return value


def _positive_int(
    entry: Mapping[str, Any], name: str, where: str, problems: list[str]
) -> int | None:
    key = find_key(entry, name)
    value = None if key is None else entry[key]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        problems.append(f"{where}: {name!r} must be a positive integer")
        return None
    return value


def _json_type(value: object) -> str:
    # Name the JSON type only: the value itself may be a secret.
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
