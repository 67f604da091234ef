"""The one exception hierarchy of kiro2api.

Every error the proxy raises on purpose derives from :class:`Kiro2ApiError`. Each class
carries, as class data, how it is shown to a client: the HTTP status, the Anthropic error
``type`` and the OpenAI error ``type``/``code``. Rendering to JSON happens in one place (the
app's error handler); this module only describes.

Strategy (after h11 and httpcore): a client's bad input is a :class:`RequestError` (4xx); the
upstream misbehaving is an :class:`UpstreamError` (5xx or 429); the EventStream codec raises
:class:`EventStreamError`, which is an upstream protocol error, because the bytes came from
there. Foreign exceptions (trio, httpx, orjson) are translated at layer boundaries with
``raise OurError(...) from exc``.

This module is part of the sans-IO core: it imports nothing but the standard library.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "ANTHROPIC_ERROR_TYPES",
    "AuthenticationError",
    "ConfigError",
    "EventStreamError",
    "FrameLengthError",
    "HeaderError",
    "Kiro2ApiError",
    "MessageChecksumError",
    "NoAccountAvailableError",
    "NotFoundError",
    "PermissionDeniedError",
    "PreludeChecksumError",
    "PromptTooLongError",
    "RequestError",
    "RequestTooLargeError",
    "UpstreamAuthError",
    "UpstreamConnectionError",
    "UpstreamError",
    "UpstreamHTTPError",
    "UpstreamOverloadedError",
    "UpstreamProtocolError",
    "UpstreamQuotaError",
    "UpstreamRateLimitError",
    "UpstreamStreamError",
    "UpstreamTimeoutError",
]

#: The ``error.type`` strings the Anthropic API documents.
ANTHROPIC_ERROR_TYPES = frozenset(
    {
        "invalid_request_error",
        "authentication_error",
        "permission_error",
        "not_found_error",
        "request_too_large",
        "rate_limit_error",
        "api_error",
        "overloaded_error",
        "timeout_error",
    }
)


class Kiro2ApiError(Exception):
    """Root of every error kiro2api raises on purpose."""

    #: HTTP status sent to the client when this error happens before the first byte.
    status_code: ClassVar[int] = 500
    #: Anthropic ``error.type``.
    error_type: ClassVar[str] = "api_error"
    #: OpenAI ``error.type``.
    openai_type: ClassVar[str] = "server_error"
    #: OpenAI ``error.code`` (``None`` is sent as JSON null).
    openai_code: ClassVar[str | None] = None

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: The request field the error is about (OpenAI's ``param``), if any.
        self.param = param


# --------------------------------------------------------------------------- client side


class RequestError(Kiro2ApiError):
    """The client's request is malformed or asks for something we cannot do."""

    status_code = 400
    error_type = "invalid_request_error"
    openai_type = "invalid_request_error"
    openai_code = "invalid_request_error"


class PromptTooLongError(RequestError):
    """The conversation is larger than the upstream accepts.

    The message always starts with ``prompt is too long``: Claude Code compacts on it.
    """

    openai_code = "context_length_exceeded"

    def __init__(self, detail: str, *, param: str | None = "messages") -> None:
        super().__init__(f"prompt is too long: {detail}", param=param)


class RequestTooLargeError(RequestError):
    """The request body exceeds the configured size limit."""

    status_code = 413
    error_type = "request_too_large"
    openai_code = "request_too_large"


class AuthenticationError(Kiro2ApiError):
    """The client's API key is missing or wrong."""

    status_code = 401
    error_type = "authentication_error"
    openai_type = "invalid_request_error"
    openai_code = "invalid_api_key"


class PermissionDeniedError(Kiro2ApiError):
    """The client's key is valid but may not use this route."""

    status_code = 403
    error_type = "permission_error"
    openai_type = "invalid_request_error"
    openai_code = "permission_denied"


class NotFoundError(Kiro2ApiError):
    """No such route or resource."""

    status_code = 404
    error_type = "not_found_error"
    openai_type = "invalid_request_error"
    openai_code = "not_found"


class ConfigError(Kiro2ApiError):
    """The proxy's own configuration is invalid (raised at start-up or on reload)."""

    status_code = 500
    error_type = "api_error"


# --------------------------------------------------------------------------- upstream side


class UpstreamError(Kiro2ApiError):
    """The upstream service failed or misbehaved."""

    status_code = 502
    error_type = "api_error"
    openai_type = "server_error"
    openai_code = "upstream_error"


class UpstreamHTTPError(UpstreamError):
    """The upstream answered with an unexpected HTTP status."""

    def __init__(self, message: str, *, upstream_status: int, reason: str | None = None) -> None:
        super().__init__(message)
        self.upstream_status = upstream_status
        #: The upstream's machine-readable ``reason`` (e.g. ``INVALID_MODEL_ID``), if any.
        self.reason = reason


class UpstreamAuthError(UpstreamHTTPError):
    """The upstream rejected the account's access token (401/403)."""


class UpstreamQuotaError(UpstreamHTTPError):
    """The account's monthly quota is used up (402-style ``MONTHLY_REQUEST_COUNT``)."""

    status_code = 429
    error_type = "rate_limit_error"
    openai_type = "insufficient_quota"
    openai_code = "insufficient_quota"


class UpstreamRateLimitError(UpstreamHTTPError):
    """The upstream throttled the request with HTTP 429."""

    status_code = 429
    error_type = "rate_limit_error"
    openai_type = "rate_limit_error"
    openai_code = "rate_limit_exceeded"

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int = 429,
        reason: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, upstream_status=upstream_status, reason=reason)
        #: Seconds the upstream asked us to wait, from ``Retry-After``.
        self.retry_after = retry_after


class UpstreamOverloadedError(UpstreamError):
    """The upstream is overloaded or throttling (``ThrottlingException``, 503)."""

    status_code = 529
    error_type = "overloaded_error"
    openai_type = "server_error"
    openai_code = "overloaded"


class UpstreamTimeoutError(UpstreamError):
    """The upstream did not answer (first byte or next byte) in time."""

    status_code = 504
    error_type = "timeout_error"
    openai_code = "timeout"


class UpstreamConnectionError(UpstreamError):
    """The connection to the upstream could not be made or broke."""


class UpstreamProtocolError(UpstreamError):
    """The upstream sent bytes or JSON that do not follow its protocol."""


class UpstreamStreamError(UpstreamError):
    """The upstream reported an exception inside the EventStream (exception or error frame)."""

    def __init__(self, message: str, *, exception_type: str) -> None:
        super().__init__(message)
        #: The upstream's exception name, e.g. ``ThrottlingException``.
        self.exception_type = exception_type


class NoAccountAvailableError(UpstreamError):
    """No account in the pool can serve the request right now."""

    status_code = 503
    error_type = "overloaded_error"
    openai_code = "no_account_available"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# --------------------------------------------------------------------------- EventStream codec


class EventStreamError(UpstreamProtocolError):
    """The upstream's binary EventStream is corrupt. ``offset`` is the stream byte offset."""

    def __init__(self, message: str, *, offset: int) -> None:
        super().__init__(f"{message} (at stream offset {offset})")
        self.offset = offset


class PreludeChecksumError(EventStreamError):
    """The CRC32 of a frame's 8-byte prelude does not match."""


class MessageChecksumError(EventStreamError):
    """The CRC32 of a whole frame does not match."""


class FrameLengthError(EventStreamError):
    """A frame's total or headers length is outside the allowed bounds."""


class HeaderError(EventStreamError):
    """A frame's header block is malformed (bad type, truncated, duplicate name)."""
