"""Typed events decoded from the upstream's EventStream messages.

Strategy: :class:`UpstreamEventParser` receives each decoded EventStream message as three
primitives (``:message-type``, the event/exception/error type, the payload bytes) and returns a
list of small frozen events. It owns the only per-request state the upstream protocol needs on
this side: which ``toolUseId`` values were already announced and which were stopped, so that

* the first sight of an id yields :class:`ToolUseStart` exactly once (a one-shot call whose first
  event already carries the whole input and ``stop`` is processed once, not twice);
* every string ``input`` fragment is kept, the first and the stop event's included (the original
  dropped those, losing or corrupting arguments);
* a ``stop`` without ``input`` adds nothing (appending ``"{}"`` to a complete buffer broke JSON);
* events for an id that already stopped are ignored (duplicates are per ``toolUseId``, never per
  tool name: the same tool is legitimately called repeatedly).

Unknown event types are ignored, never fatal: the upstream adds new ones without notice
(``messageMetadataEvent``, ``codeReferenceEvent``, ...). Malformed JSON in a known event is an
:class:`~kiro2api.errors.UpstreamProtocolError`.

Exceptions and errors reported inside the stream become :class:`UpstreamFailure`;
:func:`failure_to_error` maps them onto our exception hierarchy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import orjson

from kiro2api.errors import (
    Kiro2ApiError,
    PromptTooLongError,
    RequestError,
    UpstreamOverloadedError,
    UpstreamProtocolError,
    UpstreamQuotaError,
    UpstreamStreamError,
)

__all__ = [
    "ContextUsage",
    "Metering",
    "TextDelta",
    "ToolUseInput",
    "ToolUseStart",
    "ToolUseStop",
    "UpstreamEvent",
    "UpstreamEventParser",
    "UpstreamFailure",
    "failure_to_error",
    "is_content_length_exceeded",
]

# Upstream messages can be long raw bodies; a client-facing message needs only the gist.
_MAX_MESSAGE_CHARS = 500


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A fragment of assistant text (``assistantResponseEvent.content``), never empty."""

    text: str


# The hot path builds one TextDelta per upstream text frame. A frozen dataclass's __init__
# sets the field through object.__setattr__ (~230 ns); the slot's own descriptor sets the same
# field of a fresh instance in ~140 ns. The instance is the same (frozen, equal, same repr).
_new_text_delta = TextDelta.__new__
_set_text: Callable[[TextDelta, str], None] = vars(TextDelta)["text"].__set__


@dataclass(frozen=True, slots=True)
class ToolUseStart:
    """The first sight of a tool call: its upstream id and (upstream) tool name."""

    id: str
    name: str


@dataclass(frozen=True, slots=True)
class ToolUseInput:
    """A fragment of a tool call's JSON arguments; the fragments of one id concatenate to JSON."""

    id: str
    fragment: str


@dataclass(frozen=True, slots=True)
class ToolUseStop:
    """The upstream finished the tool call with this id."""

    id: str


@dataclass(frozen=True, slots=True)
class ContextUsage:
    """How full the model's context window is, in percent (``contextUsageEvent``)."""

    percentage: float


@dataclass(frozen=True, slots=True)
class Metering:
    """Credits the request consumed (``meteringEvent.usage``)."""

    usage: float


@dataclass(frozen=True, slots=True)
class UpstreamFailure:
    """An exception or error the upstream reported inside the stream.

    Attributes:
        kind: ``"exception"`` or ``"error"`` (the ``:message-type``).
        exception_type: The upstream's name for it, e.g. ``ThrottlingException``, without the
            ``namespace#`` prefix; ``""`` if the upstream gave none.
        message: The upstream's human-readable message (possibly the raw payload text).
        reason: The upstream's machine-readable ``reason`` (e.g. ``MONTHLY_REQUEST_COUNT``).
    """

    kind: str
    exception_type: str
    message: str
    reason: str | None = None


#: Everything :meth:`UpstreamEventParser.feed` can return.
UpstreamEvent = (
    TextDelta
    | ToolUseStart
    | ToolUseInput
    | ToolUseStop
    | ContextUsage
    | Metering
    | UpstreamFailure
)


def _loads(payload: bytes, event_type: str) -> object:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise UpstreamProtocolError(f"upstream sent malformed JSON in {event_type}") from exc


def _unwrap(obj: object, event_type: str) -> dict[str, object] | None:
    """Return the event's JSON object, unwrapping ``{"<eventType>": {...}}`` if present."""
    if not isinstance(obj, dict):
        return None
    inner = obj.get(event_type)
    if isinstance(inner, dict):
        return inner
    return obj


class UpstreamEventParser:
    """Turns the decoded upstream EventStream messages of one response into typed events.

    One parser per upstream response: it remembers the tool calls it has seen.
    """

    __slots__ = ("_started", "_stopped")

    def __init__(self) -> None:
        # id -> True once any input fragment was seen (to drop a stray "{}" after real input).
        self._started: dict[str, bool] = {}
        self._stopped: set[str] = set()

    def feed(self, message_type: str, event_type: str, payload: bytes) -> list[UpstreamEvent]:
        """Parse one upstream message.

        Args:
            message_type: The ``:message-type`` header (``event``, ``exception`` or ``error``).
            event_type: For events the ``:event-type`` header; for exceptions the
                ``:exception-type`` header; for errors the ``:error-code`` header; ``""`` if
                absent.
            payload: The message payload (JSON for every known event).

        Returns:
            Zero or more events, in order. Unknown message and event types give ``[]``.

        Raises:
            UpstreamProtocolError: A known event's payload is not valid JSON.
        """
        if message_type == "event":
            if event_type == "assistantResponseEvent":
                return self._text(payload)
            if event_type == "toolUseEvent":
                return self._tool(payload)
            if event_type == "contextUsageEvent":
                return _number_event(payload, event_type, "contextUsagePercentage", ContextUsage)
            if event_type == "meteringEvent":
                return _number_event(payload, event_type, "usage", Metering)
            return []
        if message_type in ("exception", "error"):
            return [_failure(message_type, event_type, payload)]
        return []

    def _text(self, payload: bytes) -> list[UpstreamEvent]:
        delta = self.text_delta(payload)
        return [] if delta is None else [delta]

    def text_delta(self, payload: bytes) -> TextDelta | None:
        """Parse one ``assistantResponseEvent`` payload: what :meth:`feed` does for it.

        Nearly every frame of an answer is one of these, so this is the hot path: it returns
        the event itself (no list) and inlines the unwrapping.

        Raises:
            UpstreamProtocolError: The payload is not valid JSON.
        """
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise UpstreamProtocolError(
                "upstream sent malformed JSON in assistantResponseEvent"
            ) from exc
        if type(obj) is not dict:
            return None
        inner = obj.get("assistantResponseEvent")
        if type(inner) is dict:
            obj = inner
        content = obj.get("content")
        if type(content) is str and content:
            delta = _new_text_delta(TextDelta)
            _set_text(delta, content)
            return delta
        return None

    def _tool(self, payload: bytes) -> list[UpstreamEvent]:
        obj = _unwrap(_loads(payload, "toolUseEvent"), "toolUseEvent")
        if obj is None:
            return []
        tool_id = obj.get("toolUseId")
        # Without an id the fragments cannot be attributed to a call; the upstream always sends
        # one, so dropping such an event is safer than guessing.
        if not isinstance(tool_id, str) or not tool_id or tool_id in self._stopped:
            return []
        out: list[UpstreamEvent] = []
        has_input = self._started.get(tool_id)
        if has_input is None:
            name = obj.get("name")
            out.append(ToolUseStart(tool_id, name if isinstance(name, str) else ""))
            has_input = False
        fragment = _input_fragment(obj.get("input"))
        # A "{}" after real fragments can only be filler; appending it would break the JSON.
        if fragment and not (has_input and fragment == "{}"):
            out.append(ToolUseInput(tool_id, fragment))
            has_input = True
        self._started[tool_id] = has_input
        if obj.get("stop") is True:
            self._stopped.add(tool_id)
            out.append(ToolUseStop(tool_id))
        return out


def _input_fragment(value: object) -> str:
    """The argument text an ``input`` field contributes: strings verbatim, objects as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    # An object (or any other JSON value) is a complete input in one go.
    return orjson.dumps(value).decode()


def _number_event(
    payload: bytes, event_type: str, key: str, cls: type[ContextUsage] | type[Metering]
) -> list[UpstreamEvent]:
    obj = _unwrap(_loads(payload, event_type), event_type)
    if obj is None:
        return []
    value = obj.get(key)
    # These events only feed usage figures; a missing or odd value must not break the answer.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return []
    return [cls(float(value))]


def _failure(kind: str, header_type: str, payload: bytes) -> UpstreamFailure:
    obj: object
    try:
        obj = orjson.loads(payload) if payload else None
    except orjson.JSONDecodeError:
        obj = None
    exception_type = header_type
    reason: str | None = None
    if isinstance(obj, dict):
        raw_message = obj.get("message", obj.get("Message"))
        message = raw_message if isinstance(raw_message, str) else ""
        if not exception_type:
            raw_type = obj.get("__type")
            if isinstance(raw_type, str):
                exception_type = raw_type
        raw_reason = obj.get("reason")
        if isinstance(raw_reason, str) and raw_reason:
            reason = raw_reason
    else:
        message = payload.decode("utf-8", "replace").strip()
    # "com.amazon.aws.codewhisperer#ThrottlingException" -> "ThrottlingException"
    exception_type = exception_type.rpartition("#")[2]
    if len(message) > _MAX_MESSAGE_CHARS:
        message = message[:_MAX_MESSAGE_CHARS] + "…"
    return UpstreamFailure(kind, exception_type, message, reason)


def is_content_length_exceeded(failure: UpstreamFailure) -> bool:
    """Whether the upstream stopped because the conversation outgrew the model's context.

    Mid-answer this means the output was cut (``stop_reason: max_tokens``); before any output it
    means the prompt was too long.
    """
    return (
        failure.exception_type == "ContentLengthExceededException"
        or "CONTENT_LENGTH_EXCEEDS" in failure.exception_type
        or (failure.reason is not None and "CONTENT_LENGTH_EXCEEDS" in failure.reason)
    )


def failure_to_error(failure: UpstreamFailure) -> Kiro2ApiError:
    """Map an in-stream upstream failure onto the exception the client should see.

    ``ThrottlingException`` (and ``ServiceUnavailableException``) become
    :class:`~kiro2api.errors.UpstreamOverloadedError` (529 ``overloaded_error``, which Claude
    Code retries); a used-up quota becomes :class:`~kiro2api.errors.UpstreamQuotaError` (429);
    a context overflow becomes :class:`~kiro2api.errors.PromptTooLongError` (Claude Code compacts
    on it); ``ValidationException`` is the client's request (400); anything else is an
    :class:`~kiro2api.errors.UpstreamStreamError` (502 ``api_error``).

    Args:
        failure: The failure from :meth:`UpstreamEventParser.feed`.

    Returns:
        A new, unraised exception instance.
    """
    etype = failure.exception_type
    detail = failure.message or etype or "upstream reported an error"
    if etype in ("ThrottlingException", "ServiceUnavailableException"):
        return UpstreamOverloadedError(f"upstream is overloaded: {detail}")
    if (
        etype == "ServiceQuotaExceededException"
        or etype == "MONTHLY_REQUEST_COUNT"
        or failure.reason == "MONTHLY_REQUEST_COUNT"
    ):
        # The HTTP exchange itself succeeded (200); the quota error came inside the stream.
        return UpstreamQuotaError(
            f"upstream quota exceeded: {detail}",
            upstream_status=200,
            reason=failure.reason or etype,
        )
    if is_content_length_exceeded(failure):
        return PromptTooLongError(detail)
    if etype == "ValidationException":
        return RequestError(f"upstream rejected the request: {detail}")
    label = f"upstream {failure.kind} {etype}" if etype else f"upstream {failure.kind}"
    message = f"{label}: {failure.message}" if failure.message else label
    return UpstreamStreamError(message, exception_type=etype)
