"""Helper process for the crash-safety tests: persist rotated tokens, dying on request.

Usage: ``python pool_crash_writer.py RAW STATE_DIR KILL_AT COUNT``

* ``RAW`` is the KIRO_AUTH_TOKEN value (a file path or inline JSON);
* ``KILL_AT`` names the file operation before which the process SIGKILLs itself
  (``write``, ``fsync``, ``replace``, ``dirsync``, ``half-write``) or ``none``;
* ``COUNT`` rotations are persisted in a row: token ``<old>`` becomes ``<old>.1``, ``.2``, ...
  Each completed rotation is printed (flushed) so the parent can tell how far it got.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from kiro2api.pool import CredentialStore


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    raw, state_dir, kill_at, count = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    real_write, real_fsync, real_replace = os.write, os.fsync, os.replace
    fsyncs = 0

    def write(fd: int, data: bytes | memoryview) -> int:
        if kill_at == "write":
            _die()
        if kill_at == "half-write":
            real_write(fd, bytes(data[: len(data) // 2]))
            _die()
        return real_write(fd, data)

    def fsync(fd: int) -> None:
        nonlocal fsyncs
        fsyncs += 1
        if kill_at == "fsync" and fsyncs == 1:
            _die()
        if kill_at == "dirsync" and fsyncs == 2:
            _die()
        real_fsync(fd)

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if kill_at == "replace":
            _die()
        real_replace(src, dst)

    os.write, os.fsync, os.replace = write, fsync, replace  # type: ignore[assignment]
    store = CredentialStore(raw, state_dir)
    (account,) = store.load()
    for i in range(1, count + 1):
        account = store.persist(account, f"{account.refresh_token.split('.')[0]}.{i}")
        print(i, flush=True)


if __name__ == "__main__":
    main()
