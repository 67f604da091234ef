"""Public model names → upstream ``modelId`` (protocol.md §2.3.5, with the [REC] updates).

Resolution order for a client's ``model`` string (case-insensitive, surrounding blanks and a
trailing ``-thinking`` tolerated — peers.md §3 item 6):

1. an exact entry of the map (defaults merged with the user's configuration);
2. an upstream id itself (``claude-sonnet-4.5``), so clients may use Kiro's own names;
3. the Anthropic naming rule: ``claude-{family}-{major}[-{minor}][-{date}]`` →
   ``claude-{family}-{major}[.{minor}]`` and the legacy
   ``claude-{major}-{minor}-{family}[-{date}]`` → ``claude-{major}.{minor}-{family}``, when that
   id is known (``claude-sonnet-4-5-20250929`` → ``claude-sonnet-4.5``);
4. family fallback: a version of a known family that is *newer* than every known id of that
   family resolves to the family's newest id. Claude Code's aliases run ahead of what the
   upstream offers (``claude-opus-5-5`` in the 2.1.330 captures) and must work out of the box.

Anything else is a 400 ``invalid_request_error`` (param ``model``) listing the names that work —
never a silent default model (protocol.md §9 item 19).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from kiro2api.errors import ConfigError, RequestError

__all__ = ["DEFAULT_CONTEXT_WINDOW", "ModelInfo", "ModelMap"]

DEFAULT_CONTEXT_WINDOW = 200_000

# The upstream's current ids, newest first within a family. `auto` lets the upstream pick.
_UPSTREAM_IDS: tuple[str, ...] = (
    "claude-opus-4.6",
    "claude-opus-4.5",
    "claude-sonnet-4.5",
    "claude-sonnet-4",
    "claude-haiku-4.5",
    "claude-3.7-sonnet",
    "auto",
)

# Names from the original's table (§2.3.5) that the naming rule alone does not cover, and
# well-known names the upstream does not offer, mapped to the closest current id.
_DEFAULT_ALIASES: dict[str, str] = {
    "claude-sonnet-4-5": "claude-sonnet-4.5",
    "claude-sonnet-4-5-20250929": "claude-sonnet-4.5",
    "claude-sonnet-4-20250514": "claude-sonnet-4",
    "claude-3-7-sonnet-20250219": "claude-3.7-sonnet",
    "claude-haiku-4-5-20251001": "claude-haiku-4.5",
    # The original sent this to `auto`; Haiku 3.5 is not offered, Haiku 4.5 is its successor.
    "claude-3-5-haiku-20241022": "claude-haiku-4.5",
    "claude-opus-4-5-20251101": "claude-opus-4.5",
    "claude-opus-4-6": "claude-opus-4.6",
    # Claude Code 2.1.330's `opus` / `sonnet` / `haiku` aliases (also covered by rule 4; listed
    # so that they appear in /v1/models).
    "claude-opus-5-5": "claude-opus-4.6",
    "claude-sonnet-5-5": "claude-sonnet-4.5",
    "claude-haiku-5-5": "claude-haiku-4.5",
}

_DISPLAY_NAMES: dict[str, str] = {
    "claude-opus-4.6": "Claude Opus 4.6",
    "claude-opus-4.5": "Claude Opus 4.5",
    "claude-sonnet-4.5": "Claude Sonnet 4.5",
    "claude-sonnet-4": "Claude Sonnet 4",
    "claude-haiku-4.5": "Claude Haiku 4.5",
    "claude-3.7-sonnet": "Claude Sonnet 3.7",
    "auto": "Auto (upstream's choice)",
}

# A fixed creation timestamp for /v1/models (2025-10-01T00:00:00Z): stable across restarts.
_CREATED = 1_759_276_800

_FAMILY_FIRST = re.compile(r"claude-([a-z]+)-(\d+)(?:-(\d{1,2}))?(?:-(\d{8}))?")
_VERSION_FIRST = re.compile(r"claude-(\d+)-(\d{1,2})-([a-z]+)(?:-(\d{8}))?")
_UPSTREAM_ID = re.compile(r"claude-(?:([a-z]+)-(\d+)(?:\.(\d+))?|(\d+)(?:\.(\d+))?-([a-z]+))")


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One entry of ``GET /v1/models``.

    Attributes:
        id: The public name clients send.
        display_name: Human-readable name.
        created: Unix seconds (fixed; the upstream publishes no dates).
        context_window: Input limit in tokens.
    """

    id: str
    display_name: str
    created: int
    context_window: int


@dataclass(frozen=True, slots=True)
class _Target:
    upstream_id: str
    context_window: int | None = None
    display_name: str | None = None


def _family_version(upstream_id: str) -> tuple[str, tuple[int, int]] | None:
    match = _UPSTREAM_ID.fullmatch(upstream_id)
    if match is None:
        return None
    family, major, minor, vmajor, vminor, vfamily = match.groups()
    if family is not None:
        return family, (int(major), int(minor or 0))
    return vfamily, (int(vmajor), int(vminor or 0))


class ModelMap:
    """Maps client model names to upstream ids; also the source of ``/v1/models``.

    Build it with :meth:`default` or :meth:`from_config`; instances are immutable.
    """

    __slots__ = ("_aliases", "_upstream")

    def __init__(self, aliases: Mapping[str, _Target], upstream: Mapping[str, _Target]) -> None:
        self._aliases = {name.lower(): target for name, target in aliases.items()}
        self._upstream = dict(upstream)

    @classmethod
    def default(cls) -> ModelMap:
        """The built-in map: the upstream's ids plus the common Anthropic names."""
        upstream = {uid: _Target(uid) for uid in _UPSTREAM_IDS}
        aliases = {name: _Target(uid) for name, uid in _DEFAULT_ALIASES.items()}
        return cls(aliases, upstream)

    @classmethod
    def from_config(cls, obj: object) -> ModelMap:
        """The default map with the user's entries merged over it.

        ``obj`` maps public names to either an upstream id string or an object
        ``{"id": <upstream id>, "context_window": <int>, "display_name": <str>}`` (only ``id``
        is required). A name equal to an upstream id configures that id itself (e.g. its
        context window). ``None`` means no overrides.

        Raises:
            ConfigError: ``obj`` has the wrong shape.
        """
        base = cls.default()
        if obj is None:
            return base
        if not isinstance(obj, Mapping):
            raise ConfigError("model map: expected an object of name -> upstream id")
        aliases = dict(base._aliases)
        upstream = dict(base._upstream)
        for name, value in obj.items():
            if not isinstance(name, str) or not name.strip():
                raise ConfigError(f"model map: invalid model name {name!r}")
            target = _parse_target(name, value)
            key = name.strip().lower()
            if key == target.upstream_id or key in upstream:
                upstream[key] = target
                aliases.pop(key, None)
            else:
                aliases[key] = target
        return cls(aliases, upstream)

    # ------------------------------------------------------------------ lookup

    def _lookup(self, name: str) -> _Target | None:
        key = name.strip().lower()
        key = key.removesuffix("-thinking")
        if (target := self._aliases.get(key)) is not None:
            return target
        if (target := self._upstream.get(key)) is not None:
            return target
        return self._by_rule(key)

    def _by_rule(self, key: str) -> _Target | None:
        if (match := _FAMILY_FIRST.fullmatch(key)) is not None:
            family, major, minor, _date = match.groups()
        elif (match := _VERSION_FIRST.fullmatch(key)) is not None:
            major, minor, family, _date = match.groups()
        else:
            return None
        version = (int(major), int(minor or 0))
        known = [
            (fv[1], uid)
            for uid in self._upstream
            if (fv := _family_version(uid)) is not None and fv[0] == family
        ]
        for known_version, uid in known:
            if known_version == version:
                return self._upstream[uid]
        newer_than_all = known and all(version > kv for kv, _ in known)
        if newer_than_all:
            return self._upstream[max(known)[1]]
        return None

    def resolve(self, name: str) -> str:
        """The upstream ``modelId`` for a client's model name.

        Raises:
            RequestError: The name is unknown (``param="model"``); the message lists the
                names that work.
        """
        target = self._lookup(name)
        if target is None:
            names = ", ".join(info.id for info in self.public_models())
            raise RequestError(
                f"model {name!r} is not available; available models: {names}", param="model"
            )
        return target.upstream_id

    def context_window(self, name: str) -> int:
        """The input limit in tokens for a client model name (200,000 when not configured)."""
        target = self._lookup(name)
        if target is None:
            return DEFAULT_CONTEXT_WINDOW
        if target.context_window is not None:
            return target.context_window
        base = self._upstream.get(target.upstream_id)
        if base is not None and base.context_window is not None:
            return base.context_window
        return DEFAULT_CONTEXT_WINDOW

    def public_models(self) -> list[ModelInfo]:
        """The models to list on ``/v1/models``: upstream ids first, then the aliases."""
        models: list[ModelInfo] = []
        for uid, target in self._upstream.items():
            models.append(
                ModelInfo(
                    id=uid,
                    display_name=target.display_name or _DISPLAY_NAMES.get(uid, uid),
                    created=_CREATED,
                    context_window=self.context_window(uid),
                )
            )
        for name, target in self._aliases.items():
            display = target.display_name or _DISPLAY_NAMES.get(target.upstream_id, name)
            models.append(
                ModelInfo(
                    id=name,
                    display_name=display,
                    created=_CREATED,
                    context_window=self.context_window(name),
                )
            )
        return models


def _parse_target(name: str, value: object) -> _Target:
    if isinstance(value, str):
        if not value.strip():
            raise ConfigError(f"model map: empty upstream id for {name!r}")
        return _Target(value.strip())
    if not isinstance(value, Mapping):
        raise ConfigError(f"model map: {name!r} must map to a string or an object")
    uid = value.get("id")
    window = value.get("context_window")
    display = value.get("display_name")
    if not isinstance(uid, str) or not uid.strip():
        raise ConfigError(f"model map: {name!r} needs a non-empty string 'id'")
    if window is not None and (
        isinstance(window, bool) or not isinstance(window, int) or window <= 0
    ):
        raise ConfigError(f"model map: {name!r} context_window must be a positive integer")
    if display is not None and not isinstance(display, str):
        raise ConfigError(f"model map: {name!r} display_name must be a string")
    return _Target(uid.strip(), window, display)
