"""Rotated refresh tokens are persisted atomically and win on the next start."""

from __future__ import annotations

import os
import random
import stat
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from kiro2api.pool import CredentialStore
from kiro2api.pool._config import credential_key

OLD = "aorAAAAAGoriginal-refresh-token-0123456789"
OTHER = "aorAAAAAGsecond-account-refresh-token-98765"
WRITER = Path(__file__).with_name("pool_crash_writer.py")
ROOT = Path(__file__).resolve().parents[2]


def _accounts_file(tmp_path: Path) -> Path:
    path = tmp_path / "accounts.json"
    path.write_text(
        "[\n"
        f'  {{"description": "first", "auth": "Social", "refreshToken": "{OLD}", "x": [1, 2]}},\n'
        f'  {{"auth": "Social", "refreshToken": "{OTHER}", "disabled": false}}\n'
        "]\n"
    )
    path.chmod(0o644)
    return path


def test_file_source_is_rewritten_keeping_other_fields_and_order(tmp_path: Path) -> None:
    path = _accounts_file(tmp_path)
    store = CredentialStore(str(path), tmp_path / "state")
    first, _ = store.load()
    updated = store.persist(first, "aorNEW-token-1")
    assert updated.refresh_token == "aorNEW-token-1"
    assert updated.source_key == credential_key("aorNEW-token-1")
    data = orjson.loads(path.read_bytes())
    assert list(data[0]) == ["description", "auth", "refreshToken", "x"]
    assert data[0] == {
        "description": "first",
        "auth": "Social",
        "refreshToken": "aorNEW-token-1",
        "x": [1, 2],
    }
    assert data[1] == {"auth": "Social", "refreshToken": OTHER, "disabled": False}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not (tmp_path / "state").exists()  # nothing needed in the state file
    # A second rotation finds the entry by its new token.
    store.persist(updated, "aorNEW-token-2")
    assert [a.refresh_token for a in CredentialStore(str(path), tmp_path / "s").load()] == [
        "aorNEW-token-2",
        OTHER,
    ]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_file_edited_meanwhile_the_entry_is_found_by_its_token(tmp_path: Path) -> None:
    path = _accounts_file(tmp_path)
    store = CredentialStore(str(path), tmp_path / "state")
    first, _ = store.load()
    data = orjson.loads(path.read_bytes())
    path.write_bytes(orjson.dumps([data[1], data[0]]))  # the user swapped the entries
    store.persist(first, "aorNEW-token-1")
    assert [a.refresh_token for a in store.load()] == [OTHER, "aorNEW-token-1"]


def test_inline_source_uses_a_hashed_state_file_that_wins_on_next_start(tmp_path: Path) -> None:
    raw = f'[{{"refreshToken": "{OLD}"}}, {{"refreshToken": "{OTHER}"}}]'
    state_dir = tmp_path / "state"
    store = CredentialStore(raw, state_dir)
    first, _second = store.load()
    first = store.persist(first, "aorNEW-token-1")
    first = store.persist(first, "aorNEW-token-2")
    assert first.source_key == credential_key(OLD)  # the key stays that of the source
    state = state_dir / "credentials.json"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    text = state.read_text()
    assert OLD not in text  # keyed by hash, never by the token
    assert orjson.loads(text)["refreshTokens"] == {credential_key(OLD): "aorNEW-token-2"}
    restarted = CredentialStore(raw, state_dir).load()
    assert [a.refresh_token for a in restarted] == ["aorNEW-token-2", OTHER]


def test_read_only_file_falls_back_to_the_state_file(tmp_path: Path) -> None:
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    path = _accounts_file(secrets_dir)
    path.chmod(0o400)
    secrets_dir.chmod(0o500)  # like a read-only container secret mount
    try:
        if os.access(secrets_dir, os.W_OK):
            pytest.skip("running as a user that ignores permissions")
        store = CredentialStore(str(path), tmp_path / "state")
        first, _ = store.load()
        store.persist(first, "aorNEW-token-1")
        assert OLD in path.read_text()  # untouched
        assert [a.refresh_token for a in store.load()] == ["aorNEW-token-1", OTHER]
    finally:
        secrets_dir.chmod(0o700)


def _run_writer(raw: str, state_dir: Path, kill_at: str, count: int = 1) -> int:
    """Run the writer process; return how many rotations it reported complete."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(WRITER), raw, str(state_dir), kill_at, str(count)],
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    if kill_at == "none":
        assert proc.returncode == 0, proc.stderr.decode()
    else:
        assert proc.returncode == -9, proc.stderr.decode()
    return len(proc.stdout.split())


@pytest.mark.parametrize(
    ("kill_at", "expect_new"),
    [
        ("write", False),
        ("half-write", False),
        ("fsync", False),
        ("replace", False),
        ("dirsync", True),
        ("none", True),
    ],
)
@pytest.mark.parametrize("source", ["file", "inline"])
def test_sigkill_at_each_step_leaves_the_old_or_the_new_token(
    tmp_path: Path, kill_at: str, expect_new: bool, source: str
) -> None:
    state_dir = tmp_path / "state"
    if source == "file":
        path = _accounts_file(tmp_path)
        path.write_bytes(orjson.dumps(orjson.loads(path.read_bytes())[:1]))
        raw = str(path)
    else:
        raw = f'{{"refreshToken": "{OLD}"}}'
    _run_writer(raw, state_dir, kill_at)
    # Whatever happened, the source still loads (no torn file) with exactly one of the tokens.
    (account,) = CredentialStore(raw, state_dir).load()
    assert account.refresh_token == (f"{OLD}.1" if expect_new else OLD)
    if source == "file":
        data = orjson.loads((tmp_path / "accounts.json").read_bytes())
        assert data[0]["x"] == [1, 2]  # other fields survive every crash point


def test_sigkill_at_random_moments_never_loses_the_newest_reported_token(tmp_path: Path) -> None:
    path = _accounts_file(tmp_path)
    data = orjson.loads(path.read_bytes())
    path.write_bytes(orjson.dumps(data[:1]))
    state_dir = tmp_path / "state"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rng = random.Random(7)
    for _ in range(4):
        with subprocess.Popen(
            [sys.executable, str(WRITER), str(path), str(state_dir), "none", "100000"],
            stdout=subprocess.PIPE,
            env=env,
        ) as proc:
            assert proc.stdout is not None
            first = proc.stdout.readline()  # the interpreter is up and writing
            assert first
            time.sleep(rng.uniform(0.0, 0.05))
            proc.kill()
            rest = proc.stdout.read()
        reported = int((first + rest).split()[-1])
        (account,) = CredentialStore(str(path), state_dir).load()
        base, _, suffix = account.refresh_token.rpartition(".")
        assert base == OLD
        # The newest token on disk is the last one reported done, or the one being written.
        assert int(suffix) in (reported, reported + 1)
        path.write_bytes(orjson.dumps(data[:1]))


def test_unwritable_file_falls_back_to_the_state_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Root ignores permission bits, so simulate the read-only mount (EROFS) of a podman secret.
    from kiro2api.pool import _store

    path = _accounts_file(tmp_path)
    real = _store.atomic_write

    def read_only_source(target: Path, data: bytes) -> None:
        if target == path.resolve():
            raise OSError(30, "Read-only file system")
        real(target, data)

    monkeypatch.setattr(_store, "atomic_write", read_only_source)
    store = CredentialStore(str(path), tmp_path / "state")
    first, _ = store.load()
    first = store.persist(first, "aorNEW-token-1")
    first = store.persist(first, "aorNEW-token-2")
    assert OLD in path.read_text()
    assert [a.refresh_token for a in CredentialStore(str(path), tmp_path / "state").load()] == [
        "aorNEW-token-2",
        OTHER,
    ]
