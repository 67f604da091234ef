"""Small typed accessors for validating decoded JSON, shared by the request parsers.

Each helper either returns a value of the promised type or raises
:class:`~kiro2api.errors.RequestError` whose ``param`` is the JSON path of the offending
field (``messages[3].content[0].text``). Nothing here lets an ``AttributeError``,
``KeyError`` or ``TypeError`` escape to the caller.
"""

from __future__ import annotations

import math

from kiro2api.convert.canonical import JSONObject
from kiro2api.errors import RequestError

__all__ = [
    "json_type_name",
    "opt_bool",
    "opt_int",
    "opt_number",
    "opt_object",
    "opt_str",
    "req_list",
    "req_object",
    "req_str",
]


def json_type_name(value: object) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _wrong(param: str, expected: str, value: object) -> RequestError:
    return RequestError(f"{param}: expected {expected}, got {json_type_name(value)}", param=param)


def req_object(value: object, param: str) -> JSONObject:
    """``value`` as a JSON object, else a 400."""
    if not isinstance(value, dict):
        raise _wrong(param, "an object", value)
    return value


def opt_object(value: object, param: str) -> JSONObject | None:
    """``value`` as a JSON object, ``None`` for null/absent, else a 400."""
    return None if value is None else req_object(value, param)


def req_list(value: object, param: str) -> list[object]:
    """``value`` as a JSON array, else a 400."""
    if not isinstance(value, list):
        raise _wrong(param, "an array", value)
    return value


def req_str(value: object, param: str, *, non_empty: bool = False) -> str:
    """``value`` as a string (optionally non-empty), else a 400."""
    if not isinstance(value, str):
        if value is None:
            raise RequestError(f"{param}: field required", param=param)
        raise _wrong(param, "a string", value)
    if non_empty and not value:
        raise RequestError(f"{param}: must not be empty", param=param)
    return value


def opt_str(value: object, param: str) -> str | None:
    """``value`` as a string, ``None`` for null/absent, else a 400."""
    return None if value is None else req_str(value, param)


def opt_bool(value: object, param: str, default: bool = False) -> bool:
    """``value`` as a boolean, ``default`` for null/absent, else a 400."""
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _wrong(param, "a boolean", value)
    return value


def opt_int(value: object, param: str, *, minimum: int | None = None) -> int | None:
    """``value`` as an integer (not a boolean), ``None`` for null/absent, else a 400.

    An integral float such as ``1024.0`` is accepted, as JSON does not distinguish them.
    """
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong(param, "an integer", value)
    if minimum is not None and value < minimum:
        raise RequestError(f"{param}: must be at least {minimum}, got {value}", param=param)
    return value


def opt_number(value: object, param: str) -> float | None:
    """``value`` as a finite number, ``None`` for null/absent, else a 400."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _wrong(param, "a number", value)
    number = float(value)
    if not math.isfinite(number):
        raise RequestError(f"{param}: must be a finite number", param=param)
    return number
