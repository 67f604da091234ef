"""The three upstream calls of the pool: social refresh, IdC refresh and usage limits.

Shapes follow protocol.md §1.2-§1.4. Every failure becomes one of our errors with a message
that has been scrubbed of the account's secrets; foreign exceptions (httpx, orjson) do not leave
this module.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from kiro2api.errors import (
    UpstreamAuthError,
    UpstreamConnectionError,
    UpstreamHTTPError,
    UpstreamProtocolError,
    UpstreamTimeoutError,
)
from kiro2api.pool._config import AccountConfig, AuthKind
from kiro2api.pool._mask import scrub

__all__ = ["TokenGrant", "UsageLimits", "fetch_usage", "parse_usage", "refresh_token"]

#: Default lifetime when the auth service omits ``expiresIn`` (the observed value).
_DEFAULT_EXPIRES_IN = 3600.0

#: Headers of the IdC refresh, as the Kiro IDE sends them (protocol.md §1.3). ``Accept-Encoding``
#: is left to httpx: the IDE's ``br`` would need a decoder we do not ship.
_IDC_HEADERS = {
    "Content-Type": "application/json",
    "x-amz-user-agent": (
        "aws-sdk-js/3.738.0 ua/2.1 os/other lang/js md/browser#unknown_unknown "
        "api/sso-oidc#3.738.0 m/E KiroIDE"
    ),
    "Accept": "*/*",
    "Accept-Language": "*",
    "sec-fetch-mode": "cors",
    "User-Agent": "node",
}
_KIRO_UA = "KiroIDE-0.2.13-66c23a8c5d15afabec89ef9954ef52a119f10d369df04d548fc6c1eac694b0d1"
_USAGE_HEADERS = {
    "x-amz-user-agent": f"aws-sdk-js/1.0.0 {_KIRO_UA}",
    "user-agent": (
        "aws-sdk-js/1.0.0 ua/2.1 os/darwin#24.6.0 lang/js md/nodejs#20.16.0 "
        f"api/codewhispererruntime#1.0.0 m/E {_KIRO_UA}"
    ),
    "amz-sdk-request": "attempt=1; max=1",
}
_USAGE_PARAMS = {
    "isEmailRequired": "true",
    "origin": "AI_EDITOR",
    "resourceType": "AGENTIC_REQUEST",
}


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """A successful refresh: the access token, its lifetime and a possibly rotated refresh token."""

    access_token: str
    expires_in: float
    #: The new refresh token when the service rotated it, else ``None``.
    rotated_refresh_token: str | None
    profile_arn: str | None = None

    def __repr__(self) -> str:
        rotated = self.rotated_refresh_token is not None
        return f"TokenGrant(expires_in={self.expires_in}, rotated={rotated})"


@dataclass(frozen=True, slots=True)
class UsageLimits:
    """The parts of ``getUsageLimits`` the pool uses (protocol.md §1.4)."""

    #: Credits left: active free trial plus base allowance, never negative; ``None`` when the
    #: answer has no ``CREDIT`` breakdown (nothing to limit on).
    available: float | None
    #: Base limit plus the active free-trial limit.
    total_limit: float
    #: Base usage plus the active free-trial usage.
    current_usage: float
    #: ``userInfo.email`` (clear text; mask before showing).
    email: str | None
    #: Wall-clock time (epoch seconds) of the next monthly reset, when known.
    next_reset: float | None


def _secrets(account: AccountConfig, *extra: str) -> list[str]:
    return [account.refresh_token, account.client_secret, account.api_key, *extra]


async def _send(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    what: str,
    secrets: Iterable[str],
    **kwargs: Any,
) -> Any:
    """One request; the decoded JSON body of a 200 answer, or one of our errors."""
    secrets = list(secrets)
    try:
        response = await client.request(method, url, **kwargs)
    except httpx.TimeoutException as exc:
        raise UpstreamTimeoutError(f"{what}: timed out ({type(exc).__name__})") from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise UpstreamConnectionError(
            f"{what}: {type(exc).__name__}: {scrub(str(exc), secrets)}"
        ) from None
    if response.status_code != 200:
        body = scrub(response.text, secrets)
        message = f"{what}: HTTP {response.status_code}: {body}"
        reason = _reason(response.content)
        if response.status_code in (400, 401, 403):
            # The service rejected the credential itself (expired, revoked or rotated away).
            raise UpstreamAuthError(message, upstream_status=response.status_code, reason=reason)
        raise UpstreamHTTPError(message, upstream_status=response.status_code, reason=reason)
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise UpstreamProtocolError(f"{what}: the answer is not JSON") from None


def _reason(content: bytes) -> str | None:
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, dict):
        for key in ("reason", "error", "__type"):
            value = data.get(key)
            if isinstance(value, str):
                return value[:80]
    return None


async def refresh_token(client: httpx.AsyncClient, account: AccountConfig, url: str) -> TokenGrant:
    """Exchange the account's refresh token for a new access token.

    Args:
        client: The shared HTTP client.
        account: A Social or IdC account.
        url: The refresh URL for the account's kind, already formatted for its region.

    Raises:
        UpstreamAuthError: the service rejected the refresh token (HTTP 400/401/403).
        UpstreamError: any other failure (HTTP status, connection, timeout, bad JSON).
    """
    if account.auth is AuthKind.IDC:
        payload = {
            "clientId": account.client_id,
            "clientSecret": account.client_secret,
            "grantType": "refresh_token",
            "refreshToken": account.refresh_token,
        }
        data = await _send(
            client,
            "POST",
            url,
            what="IdC token refresh",
            secrets=_secrets(account),
            content=orjson.dumps(payload),
            headers=_IDC_HEADERS,
        )
    else:
        data = await _send(
            client,
            "POST",
            url,
            what="token refresh",
            secrets=_secrets(account),
            content=orjson.dumps({"refreshToken": account.refresh_token}),
            headers={"Content-Type": "application/json"},
        )
    if not isinstance(data, dict) or not isinstance(data.get("accessToken"), str):
        raise UpstreamProtocolError("token refresh: the answer has no accessToken")
    expires_in = data.get("expiresIn")
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float) or expires_in <= 0:
        expires_in = _DEFAULT_EXPIRES_IN
    rotated = data.get("refreshToken")
    if not isinstance(rotated, str) or not rotated or rotated == account.refresh_token:
        rotated = None
    arn = data.get("profileArn")
    return TokenGrant(
        access_token=data["accessToken"],
        expires_in=float(expires_in),
        rotated_refresh_token=rotated,
        profile_arn=arn if isinstance(arn, str) else None,
    )


async def fetch_usage(
    client: httpx.AsyncClient, account: AccountConfig, url: str, access_token: str
) -> UsageLimits:
    """Call ``getUsageLimits`` with the account's access token.

    Raises:
        UpstreamAuthError: the access token was rejected (HTTP 401/403).
        UpstreamError: any other failure.
    """
    headers = {
        **_USAGE_HEADERS,
        "amz-sdk-invocation-id": f"{time.time_ns()}-kiro2api",
        "Authorization": f"Bearer {access_token}",
    }
    data = await _send(
        client,
        "GET",
        url,
        what="usage limits",
        secrets=_secrets(account, access_token),
        params=_USAGE_PARAMS,
        headers=headers,
    )
    if not isinstance(data, dict):
        raise UpstreamProtocolError("usage limits: the answer is not a JSON object")
    return parse_usage(data)


def _number(data: Mapping[str, Any], *names: str) -> float:
    for name in names:
        value = data.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return 0.0


def parse_usage(data: Mapping[str, Any]) -> UsageLimits:
    """Compute the "available" count and totals from a ``getUsageLimits`` answer (§1.4).

    The first ``CREDIT`` breakdown counts; an active free trial adds its remainder.
    """
    user = data.get("userInfo")
    email = user.get("email") if isinstance(user, dict) else None
    breakdowns = data.get("usageBreakdownList")
    credit: Mapping[str, Any] = {}
    if isinstance(breakdowns, list):
        credit = next(
            (b for b in breakdowns if isinstance(b, dict) and b.get("resourceType") == "CREDIT"),
            {},
        )
    total = used = 0.0
    trial = credit.get("freeTrialInfo")
    if isinstance(trial, dict) and trial.get("freeTrialStatus") == "ACTIVE":
        total += _number(trial, "usageLimitWithPrecision", "usageLimit")
        used += _number(trial, "currentUsageWithPrecision", "currentUsage")
    if credit:
        total += _number(credit, "usageLimitWithPrecision", "usageLimit")
        used += _number(credit, "currentUsageWithPrecision", "currentUsage")
    reset = credit.get("nextDateReset", data.get("nextDateReset"))
    next_reset = float(reset) if isinstance(reset, int | float) and reset > 0 else None
    return UsageLimits(
        available=max(total - used, 0.0) if credit else None,
        total_limit=total,
        current_usage=used,
        email=email if isinstance(email, str) and email else None,
        next_reset=next_reset,
    )
