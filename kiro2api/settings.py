"""Every setting of kiro2api: its name, default and validation, in one place.

Settings come from the process environment and an optional ``.env`` file (real environment
variables win). The seed's names work (``PORT``, ``LOG_LEVEL``, ``MAX_TOOL_DESCRIPTION_LENGTH``,
...). Every secret setting also accepts the ``NAME_FILE`` convention used by container secrets:
``KIRO_CLIENT_TOKEN_FILE=/run/secrets/client_token`` reads the value from that file.

:func:`load_settings` collects *all* problems before failing, so ``kiro2api config check``
prints one clear line per problem.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TypeVar

from kiro2api.errors import ConfigError

__all__ = ["SECRET_SETTINGS", "Settings", "load_settings", "mask_secret"]

#: Settings whose values are secrets: masked in every output, and readable from ``NAME_FILE``.
SECRET_SETTINGS = frozenset({"KIRO_AUTH_TOKEN", "KIRO_CLIENT_TOKEN", "KIRO_ADMIN_TOKEN"})

_T = TypeVar("_T")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_LOG_LEVELS = {"debug", "info", "warning", "warn", "error", "critical", "fatal"}
_SELECTIONS = {"sequential", "round_robin", "least_used"}


def mask_secret(value: str) -> str:
    """Show at most the first and last 4 characters of a secret (nothing of a short one)."""
    if len(value) <= 12:
        return "*" * len(value) if value else ""
    return f"{value[:4]}…{value[-4:]}"


def _default_state_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "kiro2api"


@dataclass(frozen=True, slots=True)
class Settings:
    """The effective configuration. Field docs name the environment variable."""

    # ----------------------------------------------------------------- server
    host: str = "127.0.0.1"  #: HOST
    port: int = 8080  #: PORT
    client_tokens: tuple[str, ...] = ()  #: KIRO_CLIENT_TOKEN (comma-separated keys)
    admin_tokens: tuple[str, ...] = ()  #: KIRO_ADMIN_TOKEN (defaults to the client keys)
    max_body_bytes: int = 32 * 1024 * 1024  #: KIRO_MAX_BODY_BYTES
    body_timeout: float = 120.0  #: SERVER_READ_TIMEOUT_MINUTES (seconds here)
    shutdown_grace: float = 30.0  #: KIRO_SHUTDOWN_GRACE
    ping_interval: float = 15.0  #: KIRO_PING_INTERVAL
    demo: bool = False  #: KIRO_DEMO or ``serve --demo``

    # ----------------------------------------------------------------- upstream
    auth_token: str = ""  #: KIRO_AUTH_TOKEN (inline JSON or a file path)
    region: str = "us-east-1"  #: KIRO_REGION
    api_url: str = "https://q.{region}.amazonaws.com/generateAssistantResponse"  #: KIRO_API_URL
    usage_url: str = "https://q.{region}.amazonaws.com/getUsageLimits"  #: KIRO_USAGE_URL
    social_refresh_url: str = "https://prod.{region}.auth.desktop.kiro.dev/refreshToken"
    idc_refresh_url: str = "https://oidc.{region}.amazonaws.com/token"  #: KIRO_IDC_REFRESH_URL
    upstream_ca_file: str = ""  #: KIRO_UPSTREAM_CA_FILE (extra CA bundle, e.g. the simulator's)
    upstream_http2: bool = True  #: KIRO_UPSTREAM_HTTP2
    connect_timeout: float = 15.0  #: KIRO_CONNECT_TIMEOUT
    first_byte_timeout: float = 120.0  #: KIRO_FIRST_BYTE_TIMEOUT
    stream_idle_timeout: float = 300.0  #: KIRO_STREAM_IDLE_TIMEOUT
    request_timeout: float = 15 * 60.0  #: REQUEST_TIMEOUT_MINUTES (whole upstream request)
    max_retries: int = 3  #: KIRO_MAX_RETRIES
    upstream_payload_limit: int = 600_000  #: KIRO_UPSTREAM_PAYLOAD_LIMIT (bytes)

    # ----------------------------------------------------------------- account pool
    selection: str = "sequential"  #: KIRO_SELECTION
    state_dir: Path = field(default_factory=lambda: _default_state_dir(os.environ))
    refresh_ahead: float = 0.8  #: KIRO_REFRESH_AHEAD (fraction of token lifetime)
    usage_poll_interval: float = 300.0  #: KIRO_USAGE_POLL_INTERVAL
    acquire_timeout: float = 10.0  #: KIRO_ACQUIRE_TIMEOUT
    #: KIRO_RATE_LIMIT_COOLDOWN: how long a throttled account rests when the upstream gave no
    #: Retry-After (it doubles while throttling goes on). Short, so a one-account set-up
    #: recovers as fast as the client retries.
    rate_limit_cooldown: float = 5.0

    # ----------------------------------------------------------------- conversion
    model_map: str = ""  #: KIRO_MODEL_MAP (JSON object or a file path)
    max_tool_description_length: int = 10_000  #: MAX_TOOL_DESCRIPTION_LENGTH

    # ----------------------------------------------------------------- observability
    log_level: str = "info"  #: LOG_LEVEL
    log_format: str = "text"  #: LOG_FORMAT (text | json)
    log_file: str = ""  #: LOG_FILE
    log_console: bool = True  #: LOG_CONSOLE
    save_raw_data: bool = False  #: SAVE_RAW_DATA
    raw_data_dir: Path = Path("raw_data")  #: KIRO_RAW_DATA_DIR

    def upstream_url(self, template: str, region: str | None = None) -> str:
        """Fill ``{region}`` in one of the upstream URL templates."""
        return template.replace("{region}", region or self.region)

    def describe(self) -> list[tuple[str, str]]:
        """Every field with its effective value, secrets masked (for ``config check``)."""
        rows: list[tuple[str, str]] = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in {"client_tokens", "admin_tokens"}:
                text = ", ".join(mask_secret(v) for v in value) or "(none)"
            elif f.name == "auth_token":
                text = _describe_auth_token(value)
            else:
                text = str(value)
            rows.append((f.name, text))
        return rows


def _describe_auth_token(value: str) -> str:
    if not value:
        return "(none)"
    if not value.lstrip().startswith(("{", "[")):
        return f"file {value}"
    return f"inline JSON ({len(value)} characters)"


class _Reader:
    """Reads typed values from a merged environment, collecting problems instead of raising."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def raw(self, *names: str) -> str | None:
        """The first of ``names`` that is set (``NAME_FILE`` honoured for secrets)."""
        for name in names:
            file_name = f"{name}_FILE"
            if name in SECRET_SETTINGS and self.env.get(file_name):
                path = Path(self.env[file_name])
                try:
                    return path.read_text(encoding="utf-8").strip()
                except OSError as exc:
                    self.problems.append(f"{file_name}: cannot read {path}: {exc.strerror}")
                    return None
            if name in self.env:
                return self.env[name]
        return None

    def convert(self, name: str, default: _T, parse: Callable[[str], _T], what: str) -> _T:
        text = self.raw(name)
        if text is None or text.strip() == "":
            return default
        try:
            return parse(text.strip())
        except ValueError:
            self.problems.append(f"{name}: expected {what}, got {text.strip()!r}")
            return default

    def integer(
        self, name: str, default: int, *, minimum: int = 0, maximum: int | None = None
    ) -> int:
        value = self.convert(name, default, int, "an integer")
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            self.problems.append(f"{name}: must be {bound}, got {value}")
            return default
        return value

    def number(self, name: str, default: float, *, minimum: float = 0.0) -> float:
        value = self.convert(name, default, float, "a number")
        if value < minimum:
            self.problems.append(f"{name}: must be >= {minimum}, got {value}")
            return default
        return value

    def minutes(self, name: str, default_seconds: float) -> float:
        return self.number(name, default_seconds / 60.0) * 60.0

    def boolean(self, name: str, default: bool) -> bool:
        text = self.raw(name)
        if text is None:
            return default
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        self.problems.append(f"{name}: expected true or false, got {text.strip()!r}")
        return default

    def choice(self, name: str, default: str, allowed: set[str]) -> str:
        text = (self.raw(name) or default).strip().lower()
        if text not in allowed:
            self.problems.append(
                f"{name}: must be one of {', '.join(sorted(allowed))}, got {text!r}"
            )
            return default
        return text

    def string(self, name: str, default: str) -> str:
        text = self.raw(name)
        return default if text is None or text.strip() == "" else text.strip()

    def keys(self, name: str) -> tuple[str, ...]:
        text = self.raw(name) or ""
        return tuple(k.strip() for k in text.split(",") if k.strip())


def load_settings(
    environ: Mapping[str, str] | None = None,
    *,
    dotenv_path: str | os.PathLike[str] | None = ".env",
    overrides: Mapping[str, object] | None = None,
) -> Settings:
    """Read the settings from ``environ`` (default: ``os.environ``) and a ``.env`` file.

    Args:
        environ: the environment to read; ``os.environ`` when omitted.
        dotenv_path: a ``.env`` file whose values fill in names missing from ``environ``;
            ``None`` disables it. A missing file is not an error.
        overrides: field values that win over the environment (command-line flags).

    Raises:
        ConfigError: listing every problem found, one per line.
    """
    env: dict[str, str] = {}
    if dotenv_path is not None and Path(dotenv_path).is_file():
        from dotenv import dotenv_values  # noqa: PLC0415  (optional file, read once at start-up)

        env.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    env.update(os.environ if environ is None else environ)
    r = _Reader(env)
    defaults = Settings(state_dir=_default_state_dir(env))
    client_tokens = r.keys("KIRO_CLIENT_TOKEN")
    values: dict[str, object] = {
        "host": r.string("HOST", defaults.host),
        "port": r.integer("PORT", defaults.port, maximum=65535),
        "client_tokens": client_tokens,
        "admin_tokens": r.keys("KIRO_ADMIN_TOKEN") or client_tokens,
        "max_body_bytes": r.integer("KIRO_MAX_BODY_BYTES", defaults.max_body_bytes, minimum=1024),
        "body_timeout": r.minutes("SERVER_READ_TIMEOUT_MINUTES", defaults.body_timeout),
        "shutdown_grace": r.number("KIRO_SHUTDOWN_GRACE", defaults.shutdown_grace),
        "ping_interval": r.number("KIRO_PING_INTERVAL", defaults.ping_interval, minimum=0.01),
        "demo": r.boolean("KIRO_DEMO", defaults.demo),
        "auth_token": r.string("KIRO_AUTH_TOKEN", ""),
        "region": r.string("KIRO_REGION", defaults.region),
        "api_url": r.string("KIRO_API_URL", defaults.api_url),
        "usage_url": r.string("KIRO_USAGE_URL", defaults.usage_url),
        "social_refresh_url": r.string("KIRO_SOCIAL_REFRESH_URL", defaults.social_refresh_url),
        "idc_refresh_url": r.string("KIRO_IDC_REFRESH_URL", defaults.idc_refresh_url),
        "upstream_ca_file": r.string("KIRO_UPSTREAM_CA_FILE", ""),
        "upstream_http2": r.boolean("KIRO_UPSTREAM_HTTP2", defaults.upstream_http2),
        "connect_timeout": r.number("KIRO_CONNECT_TIMEOUT", defaults.connect_timeout, minimum=0.1),
        "first_byte_timeout": r.number(
            "KIRO_FIRST_BYTE_TIMEOUT", defaults.first_byte_timeout, minimum=0.1
        ),
        "stream_idle_timeout": r.number(
            "KIRO_STREAM_IDLE_TIMEOUT", defaults.stream_idle_timeout, minimum=0.1
        ),
        "request_timeout": r.minutes("REQUEST_TIMEOUT_MINUTES", defaults.request_timeout),
        "max_retries": r.integer("KIRO_MAX_RETRIES", defaults.max_retries, maximum=20),
        "upstream_payload_limit": r.integer(
            "KIRO_UPSTREAM_PAYLOAD_LIMIT", defaults.upstream_payload_limit, minimum=1024
        ),
        "selection": r.choice("KIRO_SELECTION", defaults.selection, _SELECTIONS),
        "state_dir": Path(r.string("KIRO_STATE_DIR", str(defaults.state_dir))),
        "refresh_ahead": r.number("KIRO_REFRESH_AHEAD", defaults.refresh_ahead),
        "usage_poll_interval": r.number(
            "KIRO_USAGE_POLL_INTERVAL", defaults.usage_poll_interval, minimum=1.0
        ),
        "acquire_timeout": r.number("KIRO_ACQUIRE_TIMEOUT", defaults.acquire_timeout),
        "rate_limit_cooldown": r.number(
            "KIRO_RATE_LIMIT_COOLDOWN", defaults.rate_limit_cooldown, minimum=0.1
        ),
        "model_map": r.string("KIRO_MODEL_MAP", ""),
        "max_tool_description_length": r.integer(
            "MAX_TOOL_DESCRIPTION_LENGTH", defaults.max_tool_description_length, minimum=16
        ),
        "log_level": r.choice("LOG_LEVEL", defaults.log_level, _LOG_LEVELS),
        "log_format": r.choice("LOG_FORMAT", defaults.log_format, {"text", "json"}),
        "log_file": r.string("LOG_FILE", ""),
        "log_console": r.boolean("LOG_CONSOLE", defaults.log_console),
        "save_raw_data": r.boolean("SAVE_RAW_DATA", defaults.save_raw_data),
        "raw_data_dir": Path(r.string("KIRO_RAW_DATA_DIR", str(defaults.raw_data_dir))),
    }
    # The seed's other timeout names are accepted so old .env files keep working.
    r.minutes("SIMPLE_REQUEST_TIMEOUT_MINUTES", 0.0)
    r.minutes("SERVER_WRITE_TIMEOUT_MINUTES", 0.0)
    if overrides:
        values.update(overrides)
    if not 0.1 <= float(str(values["refresh_ahead"])) <= 0.99:
        r.problems.append("KIRO_REFRESH_AHEAD: must be between 0.1 and 0.99")
        values["refresh_ahead"] = defaults.refresh_ahead
    if not values["demo"]:
        if not values["client_tokens"]:
            r.problems.append(
                "KIRO_CLIENT_TOKEN: not set; clients need a key to call /v1/* "
                "(set KIRO_CLIENT_TOKEN or KIRO_CLIENT_TOKEN_FILE, or run with --demo)"
            )
        if not values["auth_token"]:
            r.problems.append(
                "KIRO_AUTH_TOKEN: not set; give the Kiro accounts as JSON or a file path "
                "(or run with --demo to use the built-in upstream simulator)"
            )
    if r.problems:
        raise ConfigError("\n".join(r.problems))
    return Settings(**values)  # type: ignore[arg-type]
