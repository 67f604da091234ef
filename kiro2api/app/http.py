"""Request plumbing shared by every route: ids, client auth, JSON bodies, and the one error handler.

Errors are rendered here and only here, in the shape of the API the client speaks:
Anthropic's ``{"type": "error", "error": {"type", "message"}}`` for ``/v1/messages`` and most
routes, OpenAI's ``{"error": {"message", "type", "param", "code"}}`` for
``/v1/chat/completions``.
"""

from __future__ import annotations

import hmac
import logging
import re
import uuid
from typing import Any

import orjson
from quart import Quart, Response, current_app, g, request
from werkzeug.exceptions import HTTPException

from kiro2api.errors import (
    AuthenticationError,
    Kiro2ApiError,
    NoAccountAvailableError,
    NotFoundError,
    RequestError,
    RequestTooLargeError,
    UpstreamRateLimitError,
)
from kiro2api.logs import request_id_var

__all__ = ["install", "json_body", "json_response", "render_error"]

log = logging.getLogger("kiro2api.app")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_OPENAI_PREFIXES = ("/v1/chat/",)
# Routes anyone may call: liveness, readiness, metrics, the dashboard shell (it asks for the
# admin key itself) and CORS preflights.
_PUBLIC_PATHS = frozenset({"/", "/healthz", "/readyz", "/metrics", "/favicon.ico"})


def json_response(
    data: object, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A JSON response rendered with orjson."""
    return Response(
        orjson.dumps(data), status=status, content_type="application/json", headers=headers
    )


def render_error(error: Kiro2ApiError, path: str) -> Response:
    """The HTTP response for ``error`` in the dialect of ``path``."""
    headers = {}
    retry_after = getattr(error, "retry_after", None)
    if isinstance(error, UpstreamRateLimitError | NoAccountAvailableError) and retry_after:
        headers["retry-after"] = str(max(1, round(retry_after)))
    if path.startswith(_OPENAI_PREFIXES):
        body: dict[str, Any] = {
            "error": {
                "message": error.message,
                "type": error.openai_type,
                "param": error.param,
                "code": error.openai_code,
            }
        }
    else:
        body = {
            "type": "error",
            "error": {"type": error.error_type, "message": error.message},
            "request_id": request_id_var.get(),
        }
    return json_response(body, error.status_code, headers)


def _client_key() -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def _key_matches(key: str | None, allowed: tuple[str, ...]) -> bool:
    if key is None:
        return False
    # Compare against every key, always, so timing does not reveal which one matched.
    encoded = key.encode()
    matched = False
    for candidate in allowed:
        matched |= hmac.compare_digest(encoded, candidate.encode())
    return matched


async def json_body() -> object:
    """The request body parsed as JSON, or a clear 400."""
    data = await request.get_data(cache=False)
    if not data:
        raise RequestError("the request body is empty; send a JSON object")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"the request body is not valid JSON: {exc}") from None


def install(app: Quart, *, client_keys: tuple[str, ...], admin_keys: tuple[str, ...]) -> None:
    """Register request ids, auth, CORS and the error handlers on ``app``."""

    @app.before_request
    async def _before() -> Response | None:
        incoming = request.headers.get("x-request-id", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else f"req_{uuid.uuid4().hex}"
        g.request_id = request_id
        request_id_var.set(request_id)
        if request.method == "OPTIONS":
            return Response(b"", status=204)
        path = request.path
        if path in _PUBLIC_PATHS or path.startswith("/static/"):
            return None
        keys = admin_keys if path.startswith("/api/") else client_keys
        if not _key_matches(_client_key(), keys):
            log.warning("rejected %s %s: missing or wrong API key", request.method, path)
            raise AuthenticationError(
                "invalid or missing API key; send it as 'x-api-key' or 'Authorization: Bearer'"
            )
        return None

    @app.after_request
    async def _after(response: Response) -> Response:
        response.headers["x-request-id"] = g.get("request_id", request_id_var.get())
        response.headers["request-id"] = response.headers["x-request-id"]
        if current_app.config["KIRO2API_STATE"].shutting_down or response.status_code >= 400:
            # Draining: keep-alive clients should not send their next request here. Refusals:
            # a body we did not read would otherwise stall the connection's next request.
            response.headers["connection"] = "close"
        response.headers["access-control-allow-origin"] = "*"
        response.headers["access-control-allow-methods"] = "GET, POST, OPTIONS"
        response.headers["access-control-allow-headers"] = (
            "content-type, authorization, x-api-key, anthropic-version, anthropic-beta"
        )
        return response

    @app.errorhandler(Kiro2ApiError)
    async def _ours(error: Kiro2ApiError) -> Response:
        if error.status_code >= 500:
            log.warning("%s %s failed: %s", request.method, request.path, error)
        else:
            log.info(
                "%s %s refused (%d): %s", request.method, request.path, error.status_code, error
            )
        return render_error(error, request.path)

    @app.errorhandler(HTTPException)
    async def _http(error: HTTPException) -> Response:
        code = error.code or 500
        ours: Kiro2ApiError
        if code == 404:
            ours = NotFoundError(f"no route for {request.method} {request.path}")
        elif code == 405:
            ours = NotFoundError(f"{request.method} is not allowed on {request.path}")
        elif code == 413:
            ours = RequestTooLargeError("the request body exceeds KIRO_MAX_BODY_BYTES")
        elif code == 408:
            ours = RequestError("the request body arrived too slowly")
        else:
            ours = RequestError(error.description or f"HTTP {code}")
        log.info("%s %s refused (%d): %s", request.method, request.path, code, ours)
        response = render_error(ours, request.path)
        response.status_code = code
        return response

    @app.errorhandler(Exception)
    async def _bug(error: Exception) -> Response:
        log.error("unhandled error in %s %s", request.method, request.path, exc_info=error)
        return render_error(Kiro2ApiError("internal error in the proxy"), request.path)
