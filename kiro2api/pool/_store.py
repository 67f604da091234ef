"""Credentials that are never lost: persisting rotated refresh tokens before they are used.

Kiro's social ``/refreshToken`` rotates the refresh token and invalidates the old one, so a
rotated token that only lives in memory dies with the process (the seed's "tokens die after an
hour" bug). :class:`CredentialStore` writes every rotated token to disk *before* the pool uses
the new access token:

* when ``KIRO_AUTH_TOKEN`` names a file, that file is rewritten in place, keeping every other
  field and the key order;
* when it is inline JSON (or the file cannot be written, e.g. a read-only container secret), a
  state file ``<state_dir>/credentials.json`` maps each entry's :func:`credential_key` (a hash of
  the token written in the source, never the token itself) to its newest refresh token. It wins
  over the source on the next start.

Every write is atomic: a temporary file in the same directory, written and fsynced, renamed over
the target, then the directory fsynced. A crash at any instant leaves the old or the new file,
never a torn one. All methods block (file I/O); the pool calls them in a worker thread.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

from kiro2api.errors import ConfigError
from kiro2api.pool._config import (
    AccountConfig,
    AuthKind,
    credential_key,
    find_key,
    parse_accounts,
    read_source,
    source_path,
)

__all__ = ["STATE_FILE_NAME", "CredentialStore", "atomic_write"]

log = logging.getLogger("kiro2api.pool")

#: Name of the state file inside ``state_dir``.
STATE_FILE_NAME = "credentials.json"
#: Suffix of temporary files; leftovers of a crash are removed on the next load.
_TMP_SUFFIX = ".kiro2api-tmp"
#: Leftover temporary files older than this are removed (younger ones may be another writer's).
_STALE_TMP_SECONDS = 60.0
_STATE_VERSION = 1


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably, with file mode 0600.

    Steps: create a unique temporary file beside ``path`` (mode 0600), write everything,
    ``fsync`` it, ``rename`` it over ``path``, ``fsync`` the directory. A crash before the
    rename leaves the old file (plus a temporary file); after it, the new one.
    """
    directory = path.parent
    tmp = directory / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{_TMP_SUFFIX}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # the umask cannot widen it, but be explicit
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _remove_stale_temporaries(directory: Path, name: str) -> None:
    now = time.time()
    with contextlib.suppress(OSError):
        for leftover in directory.glob(f".{name}.*{_TMP_SUFFIX}"):
            with contextlib.suppress(OSError):
                if now - leftover.stat().st_mtime > _STALE_TMP_SECONDS:
                    leftover.unlink()


class CredentialStore:
    """Persistence of rotated refresh tokens for one ``KIRO_AUTH_TOKEN`` source.

    Args:
        raw: The value of ``KIRO_AUTH_TOKEN``: inline JSON or a file path.
        state_dir: Directory of the state file (created with mode 0700 when first written).
        source_hint: The name used in error messages.
    """

    def __init__(self, raw: str, state_dir: Path, *, source_hint: str = "KIRO_AUTH_TOKEN") -> None:
        self._raw = raw
        self._state_dir = state_dir
        self._source_hint = source_hint
        self._path = source_path(raw)
        # Read-modify-write of one file must not interleave between worker threads.
        self._lock = threading.Lock()

    @property
    def source_file(self) -> Path | None:
        """The accounts file, or ``None`` when the accounts are inline JSON."""
        return self._path

    @property
    def state_file(self) -> Path:
        """The state file that maps source credentials to their newest refresh token."""
        return self._state_dir / STATE_FILE_NAME

    def load(self) -> list[AccountConfig]:
        """Read the source again and apply the state file (used at start and on reload).

        Raises:
            ConfigError: the source or the state file is invalid.
        """
        source = read_source(self._raw, source_hint=self._source_hint)
        hint = self._source_hint if source.path is None else f"{self._source_hint} ({source.path})"
        accounts = parse_accounts(source.text, source_hint=hint)
        if source.path is not None:
            resolved = source.path.resolve()
            _remove_stale_temporaries(resolved.parent, resolved.name)
        _remove_stale_temporaries(self._state_dir, STATE_FILE_NAME)
        return self.apply_overrides(accounts)

    def apply_overrides(self, accounts: Iterable[AccountConfig]) -> list[AccountConfig]:
        """Replace each entry's refresh token with the newest one recorded in the state file."""
        with self._lock:
            newest = self._read_state()
        result = []
        for account in accounts:
            token = newest.get(account.source_key)
            if token and account.auth is not AuthKind.API_KEY:
                account = replace(account, refresh_token=token)
            result.append(account)
        return result

    def persist(self, account: AccountConfig, new_refresh_token: str) -> AccountConfig:
        """Durably record that ``account``'s refresh token is now ``new_refresh_token``.

        Rewrites the accounts file when there is one and it can be written; otherwise (inline
        JSON, read-only file, entry no longer in the file) records the token in the state file.

        Returns:
            The account with the new refresh token and, if the file was rewritten, the new
            ``source_key``.

        Raises:
            OSError: neither the file nor the state file could be written. The caller must
                keep the token in memory and report the failure.
        """
        with self._lock:
            if self._path is not None:
                try:
                    if self._rewrite_source(account, new_refresh_token):
                        log.info(
                            "account [%d]: rotated refresh token saved to the accounts file",
                            account.index,
                        )
                        return replace(
                            account,
                            refresh_token=new_refresh_token,
                            source_key=credential_key(new_refresh_token),
                        )
                except (OSError, ConfigError) as exc:
                    log.warning(
                        "account [%d]: cannot rewrite the accounts file (%s); "
                        "saving the rotated refresh token in the state file instead",
                        account.index,
                        type(exc).__name__,
                    )
            state = self._read_state()
            state[account.source_key] = new_refresh_token
            self._write_state(state)
            log.info("account [%d]: rotated refresh token saved to the state file", account.index)
            return replace(account, refresh_token=new_refresh_token)

    # ------------------------------------------------------------------ the accounts file

    def _rewrite_source(self, account: AccountConfig, new_token: str) -> bool:
        assert self._path is not None
        path = self._path.resolve()  # a symlinked secret: replace the target, not the link
        try:
            data = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"{path}: invalid JSON at line {exc.lineno}") from None
        if isinstance(data, dict):
            entries: list[Any] = [data]
        elif isinstance(data, list):
            entries = data
        else:
            return False
        entry = self._find_entry(entries, account)
        if entry is None:
            return False
        key = find_key(entry, "refreshToken") or "refreshToken"
        entry[key] = new_token
        atomic_write(path, orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
        return True

    @staticmethod
    def _find_entry(entries: list[Any], account: AccountConfig) -> dict[str, Any] | None:
        def matches(entry: dict[str, Any]) -> bool:
            key = find_key(entry, "refreshToken")
            token = entry.get(key) if key is not None else None
            return isinstance(token, str) and credential_key(token.strip()) == account.source_key

        objects = [e for e in entries if isinstance(e, dict)]
        # The entry usually is still where it was; if the file was edited, look for it.
        if account.index < len(entries):
            at_index = entries[account.index]
            if isinstance(at_index, dict) and matches(at_index):
                return at_index
        return next((entry for entry in objects if matches(entry)), None)

    # ------------------------------------------------------------------ the state file

    def _read_state(self) -> dict[str, str]:
        path = self.state_file
        try:
            raw = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return {}  # nothing was ever saved there (writing will report its own problem)
        except OSError as exc:
            raise ConfigError(f"cannot read the state file {path}: {type(exc).__name__}") from None
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ConfigError(
                f"state file {path}: invalid JSON at line {exc.lineno} column {exc.colno}"
            ) from None
        tokens = data.get("refreshTokens") if isinstance(data, dict) else None
        if not isinstance(tokens, dict):
            raise ConfigError(f"state file {path}: missing the 'refreshTokens' object")
        return {k: v for k, v in tokens.items() if isinstance(k, str) and isinstance(v, str)}

    def _write_state(self, tokens: dict[str, str]) -> None:
        self._state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        body = {"version": _STATE_VERSION, "refreshTokens": tokens}
        atomic_write(self.state_file, orjson.dumps(body, option=orjson.OPT_INDENT_2) + b"\n")
