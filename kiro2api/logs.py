"""Logging set-up: text or JSON lines, to the console and/or a file, with request ids.

Every record carries the current request id (a context variable set by the app). A filter
replaces every configured secret that might still reach a message with its masked form; code
should never log a secret in the first place, this is the second line of defence.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import time
from collections.abc import Iterable
from typing import Any

import orjson

from kiro2api.settings import Settings, mask_secret

__all__ = ["ACCESS_LOG", "configure_logging", "request_id_var"]

#: The id of the request being handled, or ``-`` outside requests.
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

#: One line per request (method, path, status, model, account, ttfb, duration, tokens).
ACCESS_LOG = logging.getLogger("kiro2api.access")

_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class _ContextFilter(logging.Filter):
    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        if self._secrets:
            text = record.getMessage()
            if any(secret in text for secret in self._secrets):
                for secret in self._secrets:
                    text = text.replace(secret, mask_secret(secret))
                record.msg, record.args = text, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, request id, message and extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


_TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s"


def configure_logging(settings: Settings, *, secrets: Iterable[str] = ()) -> None:
    """Install handlers on the ``kiro2api`` logger tree (and hypercorn's) per the settings."""
    level = {"warn": "WARNING", "fatal": "CRITICAL"}.get(
        settings.log_level, settings.log_level.upper()
    )
    formatter: logging.Formatter = (
        JsonFormatter() if settings.log_format == "json" else logging.Formatter(_TEXT_FORMAT)
    )
    handlers: list[logging.Handler] = []
    if settings.log_console or not settings.log_file:
        handlers.append(logging.StreamHandler(sys.stderr))
    if settings.log_file:
        handlers.append(logging.FileHandler(settings.log_file, encoding="utf-8"))
    context = _ContextFilter([*secrets, *settings.client_tokens, *settings.admin_tokens])
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(context)
    for name in ("kiro2api", "hypercorn.error"):
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
            old.close()
        for handler in handlers:
            logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
