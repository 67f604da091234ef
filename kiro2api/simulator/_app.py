"""The simulator's HTTP surface: a plain ASGI app (no framework; it is the benchmark baseline).

Routes, all on one base URL:

* ``POST /refreshToken`` — Social refresh (protocol.md §1.2), rotating the refresh token.
* ``POST /token`` — IdC / SSO-OIDC refresh (protocol.md §1.3), rotating too.
* ``GET /getUsageLimits`` — per-account usage (protocol.md §1.4).
* ``POST /generateAssistantResponse`` — validation, then an EventStream answer (§2, §5).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import orjson
import trio

from kiro2api.errors import RequestError
from kiro2api.settings import mask_secret
from kiro2api.simulator._directives import Directive, parse_directives
from kiro2api.simulator._script import HttpAnswer, Plan, build_plan, directive_source, http_answer
from kiro2api.simulator._state import AccountState, ReceivedRequest, SimState
from kiro2api.simulator._validate import error_body, find_violations

__all__ = ["SimulatorApp"]

Scope = Mapping[str, Any]
AsgiMessage = dict[str, Any]
Receive = Callable[[], Awaitable[AsgiMessage]]
Send = Callable[[AsgiMessage], Awaitable[None]]
Handler = Callable[[Scope, Receive, Send], Awaitable[None]]

logger = logging.getLogger("kiro2api.simulator")

#: Bodies above this are refused outright (413) instead of being buffered.
HARD_BODY_LIMIT = 32 * 1024 * 1024
_EVENTSTREAM = b"application/vnd.amazon.eventstream"
_INVALID_BEARER = {
    "message": "The bearer token included in the request is invalid.",
    "reason": None,
}


class _Disconnected(Exception):
    """The client went away while we were reading its body."""


class SimulatorApp:
    """ASGI application serving one :class:`SimState`."""

    def __init__(self, state: SimState) -> None:
        self.state = state
        self._routes: dict[tuple[str, str], Handler] = {
            ("POST", "/refreshToken"): self._social_refresh,
            ("POST", "/token"): self._idc_refresh,
            ("GET", "/getUsageLimits"): self._usage_limits,
            ("POST", "/generateAssistantResponse"): self._generate,
            ("GET", "/"): self._index,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        handler = self._routes.get((scope["method"], scope["path"]))
        try:
            if handler is None:
                await _json(send, 404, {"message": f"No route {scope['path']}", "reason": None})
            else:
                await handler(scope, receive, send)
        except _Disconnected:
            logger.debug("client disconnected before sending its whole body")

    # ------------------------------------------------------------------ auth

    async def _index(self, scope: Scope, receive: Receive, send: Send) -> None:
        info = {"service": "kiro2api upstream simulator", "accounts": len(self.state.accounts)}
        await _json(send, 200, info)

    async def _refresh_faults(self, account: AccountState, send: Send) -> bool:
        """Apply the account's refresh faults; return True when an answer was sent."""
        for d in self._account_directives(account, account.config.refresh_faults):
            if d.kind == "delay":
                await trio.sleep(d.number("seconds", 1.0) or 0.0)
            elif d.kind in ("http", "quota"):
                status = 402 if d.kind == "quota" else d.integer("status", 500, minimum=100) or 500
                retry = d.number("retry_after", 1.0 if status == 429 else None)
                answer = http_answer(
                    status, reason=d.text("reason"), message=d.text("message"), retry_after=retry
                )
                await _answer(send, answer)
                return True
        return False

    async def _social_refresh(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = _loads(await _read_body(receive))
        token = body.get("refreshToken") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            await _json(send, 400, {"message": "refreshToken is required", "reason": None})
            return
        account = self.state.refresh_owner(token, "social")
        if account is None:
            logger.info("social refresh with unknown token %s", mask_secret(token))
            await _json(send, 401, {"message": "Invalid refresh token provided", "reason": None})
            return
        if await self._refresh_faults(account, send):
            return
        access, rotated = self.state.rotate(account, token, trio.current_time())
        logger.debug("social refresh for %s", account.config.id)
        await _json(
            send,
            200,
            {
                "accessToken": access,
                "expiresIn": max(1, int(account.config.access_token_ttl)),
                "profileArn": account.config.profile_arn,
                "refreshToken": rotated,
            },
        )

    async def _idc_refresh(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = _loads(await _read_body(receive))
        fields = body if isinstance(body, dict) else {}
        required = ("clientId", "clientSecret", "grantType", "refreshToken")
        missing = [k for k in required if not isinstance(fields.get(k), str) or not fields[k]]
        if missing:
            description = f"missing or invalid: {', '.join(missing)}"
            await _json(send, 400, {"error": "invalid_request", "error_description": description})
            return
        if fields["grantType"] != "refresh_token":
            await _json(send, 400, {"error": "unsupported_grant_type"})
            return
        account = self.state.refresh_owner(fields["refreshToken"], "idc")
        if account is None:
            logger.info("idc refresh with unknown token %s", mask_secret(fields["refreshToken"]))
            await _json(
                send,
                400,
                {"error": "invalid_grant", "error_description": "Invalid refresh token provided"},
            )
            return
        cfg = account.config
        if (fields["clientId"], fields["clientSecret"]) != (cfg.client_id, cfg.client_secret):
            await _json(send, 401, {"error": "invalid_client"})
            return
        if await self._refresh_faults(account, send):
            return
        access, rotated = self.state.rotate(account, fields["refreshToken"], trio.current_time())
        await _json(
            send,
            200,
            {
                "accessToken": access,
                "expiresIn": max(1, int(cfg.access_token_ttl)),
                "refreshToken": rotated,
                "tokenType": "Bearer",
            },
        )

    def _authenticate(self, headers: Mapping[str, str]) -> AccountState | None:
        value = headers.get("authorization", "")
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        account = self.state.authenticate(token.strip(), trio.current_time())
        if account is None:
            logger.info("rejected bearer token %s", mask_secret(token.strip()))
        return account

    async def _usage_limits(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _read_body(receive)
        account = self._authenticate(_headers(scope))
        if account is None:
            await _json(send, 403, _INVALID_BEARER)
            return
        account.usage_calls += 1
        await _json(send, 200, account.usage_limits(time.time()))

    # ------------------------------------------------------------------ chat

    def _account_directives(self, account: AccountState, texts: Iterable[str]) -> list[Directive]:
        out: list[Directive] = []
        for text in texts:
            for d in parse_directives(f"[[sim:{text}]]"):
                if self.state.applies(f"{account.config.id}\x00{d.source}", d.times):
                    out.append(d)
        return out

    def _record(
        self,
        seq: int,
        account: AccountState | None,
        headers: Mapping[str, str],
        body: object,
        size: int,
        status: int,
        reason: str | None = None,
    ) -> None:
        if "authorization" in headers:  # records are shown in test failures: no secrets
            scheme, _, token = headers["authorization"].partition(" ")
            headers = {**headers, "authorization": f"{scheme} {mask_secret(token)}"}
        self.state.records.append(
            ReceivedRequest(
                seq=seq,
                account_id=account.config.id if account else None,
                headers=headers,
                body=body,
                raw_size=size,
                status=status,
                reason=reason,
            )
        )
        logger.debug(
            "request %d account=%s status=%d reason=%s",
            seq,
            account.config.id if account else None,
            status,
            reason,
        )

    async def _generate(self, scope: Scope, receive: Receive, send: Send) -> None:
        seq = self.state.next_seq()
        headers = _headers(scope)
        account = self._authenticate(headers)
        raw = await _read_body(receive)
        body = _loads(raw)
        if account is None:
            self._record(seq, None, headers, body, len(raw), 403)
            await _json(send, 403, _INVALID_BEARER)
            return
        try:
            plan = self._plan(seq, account, body, len(raw))
        except RequestError as exc:
            # A malformed directive: say so plainly, it is the test author's typo.
            answer = http_answer(400, reason="SIM_DIRECTIVE_INVALID", message=exc.message)
            self._record(seq, account, headers, body, len(raw), 400, "SIM_DIRECTIVE_INVALID")
            await _answer(send, answer)
            return
        if plan.head_delay:
            await trio.sleep(plan.head_delay)
        if plan.http is not None:
            reason = plan.http.body.get("reason")
            self._record(
                seq,
                account,
                headers,
                body,
                len(raw),
                plan.http.status,
                reason if isinstance(reason, str) else None,
            )
            await _answer(send, plan.http)
            return
        account.charge(plan.credits)
        self._record(seq, account, headers, body, len(raw), 200)
        await _stream(plan, receive, send, http2=scope.get("http_version") == "2")

    def _plan(self, seq: int, account: AccountState, body: object, size: int) -> Plan:
        directives = self._account_directives(account, account.config.faults)
        for key, account_id, text in self.state.injected:
            if account_id in (None, account.config.id):
                for d in parse_directives(f"[[sim:{text}]]"):
                    if self.state.applies(key, d.times):
                        directives.append(d)
        # Faults configured on the account come first: a throttled account is throttled
        # whatever the request looks like.
        if any(d.kind in ("http", "quota") for d in directives):
            early = [d for d in directives if d.kind in ("http", "quota", "delay")]
            return build_plan({}, early, seq=seq, body_size=size, context_window_tokens=1)
        if account.exhausted:
            return Plan(http=http_answer(402))
        cfg = self.state.config
        violations = find_violations(body, body_size=size, max_body_bytes=cfg.max_body_bytes)
        if violations:
            return Plan(http=HttpAnswer(400, error_body(violations)))
        assert isinstance(body, dict)  # find_violations guarantees the shape
        for d in parse_directives(directive_source(body)):
            if self.state.applies(d.source, d.times):
                directives.append(d)
        return build_plan(
            body,
            directives,
            seq=seq,
            body_size=size,
            context_window_tokens=cfg.context_window_tokens,
        )


# ---------------------------------------------------------------------- helpers


def _headers(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def _loads(raw: bytes) -> object:
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return None


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= HARD_BODY_LIMIT:
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _json(
    send: Send, status: int, body: object, headers: Iterable[tuple[str, str]] = ()
) -> None:
    data = orjson.dumps(body)
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(data)).encode()),
        (b"x-amzn-requestid", str(uuid.uuid4()).encode()),
    ]
    raw_headers.extend((k.encode(), v.encode()) for k, v in headers)
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": data, "more_body": False})


async def _answer(send: Send, answer: HttpAnswer) -> None:
    await _json(send, answer.status, answer.body, answer.headers)


async def _watch_disconnect(receive: Receive, scope: trio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


async def _stream(plan: Plan, receive: Receive, send: Send, *, http2: bool) -> None:
    headers = [
        (b"content-type", _EVENTSTREAM),
        (b"x-amzn-requestid", str(uuid.uuid4()).encode()),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    async with trio.open_nursery() as nursery:
        # Stop pacing output to a client that left (a trickle can last minutes).
        nursery.start_soon(_watch_disconnect, receive, nursery.cancel_scope)
        for delay, data in plan.segments:
            if delay:
                await trio.sleep(delay)
            if data:
                await send({"type": "http.response.body", "body": data, "more_body": True})
        # With abort set we return without ending the body: over HTTP/1.1 hypercorn then
        # closes the connection mid-message, exactly a truncated upstream stream. Over HTTP/2
        # it would leave the stream open forever (ASGI cannot reset a stream), so there the
        # body ends cleanly in the middle of a frame instead.
        if not plan.abort or http2:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        nursery.cancel_scope.cancel()
