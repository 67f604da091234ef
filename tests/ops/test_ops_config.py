"""``kiro2api config check``, ``--help``, ``*_FILE`` secrets and ``.env``, as a user runs them."""

from __future__ import annotations

from pathlib import Path

import pytest
from ops_support import CLIENT_KEY, base_env, run_cli

from kiro2api.errors import ConfigError
from kiro2api.settings import SECRET_SETTINGS, load_settings

ACCOUNTS = '[{"auth": "Social", "refreshToken": "aor-ops-refresh-token-0123456789"}]'


def _rows(stdout: str) -> dict[str, str]:
    rows = {}
    for line in stdout.splitlines():
        name, _, value = line.partition(" ")
        rows[name] = value.strip()
    return rows


def _problems(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def test_help_for_every_command(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    top = run_cli(["--help"], env, tmp_path)
    assert top.returncode == 0
    for command in ("serve", "simulate", "config"):
        assert command in top.stdout
    serve = run_cli(["serve", "--help"], env, tmp_path)
    assert serve.returncode == 0
    assert "--demo" in serve.stdout
    assert "--port" in serve.stdout
    check = run_cli(["config", "check", "--help"], env, tmp_path)
    assert check.returncode == 0
    assert "secrets" in check.stdout
    version = run_cli(["--version"], env, tmp_path)
    assert version.returncode == 0
    assert version.stdout.startswith("kiro2api ")


def test_config_check_prints_effective_config_with_secrets_masked(tmp_path: Path) -> None:
    env = base_env(tmp_path, KIRO_CLIENT_TOKEN=CLIENT_KEY, KIRO_AUTH_TOKEN=ACCOUNTS, PORT="9123")
    done = run_cli(["config", "check"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    rows = _rows(done.stdout)
    assert rows["port"] == "9123"
    assert rows["client_tokens"] == f"{CLIENT_KEY[:4]}…{CLIENT_KEY[-4:]}"
    assert rows["accounts"] == "1 configured"
    assert CLIENT_KEY not in done.stdout + done.stderr
    assert "aor-ops-refresh-token" not in done.stdout + done.stderr


def test_config_check_lists_every_problem_on_its_own_line(tmp_path: Path) -> None:
    env = base_env(tmp_path, PORT="eighty", LOG_FORMAT="xml", KIRO_AUTH_TOKEN=ACCOUNTS)
    done = run_cli(["config", "check"], env, tmp_path)
    assert done.returncode != 0
    problems = _problems(done.stderr)
    assert problems == [
        "error: PORT: expected an integer, got 'eighty'",
        "error: LOG_FORMAT: must be one of json, text, got 'xml'",
        problems[2],
    ]
    assert problems[2].startswith("error: KIRO_CLIENT_TOKEN: not set")
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("PORT", "70000", "PORT: must be between 0 and 65535, got 70000"),
        ("LOG_LEVEL", "chatty", "LOG_LEVEL: must be one of"),
        ("SAVE_RAW_DATA", "perhaps", "SAVE_RAW_DATA: expected true or false, got 'perhaps'"),
        ("KIRO_SHUTDOWN_GRACE", "-1", "KIRO_SHUTDOWN_GRACE: must be >= 0.0, got -1.0"),
    ],
)
def test_config_check_names_the_bad_setting(
    tmp_path: Path, name: str, value: str, expected: str
) -> None:
    env = base_env(
        tmp_path, KIRO_CLIENT_TOKEN=CLIENT_KEY, KIRO_AUTH_TOKEN=ACCOUNTS, **{name: value}
    )
    done = run_cli(["config", "check"], env, tmp_path)
    assert done.returncode != 0
    assert [line for line in _problems(done.stderr) if expected in line], done.stderr


def test_config_check_points_at_invalid_accounts_json(tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.json"
    accounts.write_text('[\n  {"auth": "Social",\n   "refreshToken": oops}\n]\n')
    env = base_env(tmp_path, KIRO_CLIENT_TOKEN=CLIENT_KEY, KIRO_AUTH_TOKEN=str(accounts))
    done = run_cli(["config", "check"], env, tmp_path)
    assert done.returncode != 0
    (problem,) = _problems(done.stderr)
    assert "line 3 column 20" in problem, problem


def test_secret_files_are_read_and_never_printed(tmp_path: Path) -> None:
    (tmp_path / "client_token").write_text(CLIENT_KEY + "\n")
    (tmp_path / "accounts").write_text(ACCOUNTS)
    env = base_env(
        tmp_path,
        KIRO_CLIENT_TOKEN_FILE=str(tmp_path / "client_token"),
        KIRO_AUTH_TOKEN_FILE=str(tmp_path / "accounts"),
    )
    done = run_cli(["config", "check"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"{CLIENT_KEY[:4]}…{CLIENT_KEY[-4:]}" in done.stdout
    assert "1 configured" in done.stdout
    assert CLIENT_KEY not in done.stdout


def test_unreadable_secret_file_is_a_clear_problem(tmp_path: Path) -> None:
    env = base_env(
        tmp_path,
        KIRO_CLIENT_TOKEN_FILE=str(tmp_path / "missing"),
        KIRO_AUTH_TOKEN=ACCOUNTS,
    )
    done = run_cli(["config", "check"], env, tmp_path)
    assert done.returncode != 0
    assert f"error: KIRO_CLIENT_TOKEN_FILE: cannot read {tmp_path / 'missing'}" in done.stderr


@pytest.mark.parametrize("name", sorted(SECRET_SETTINGS))
def test_every_secret_setting_accepts_a_file(tmp_path: Path, name: str) -> None:
    secret = tmp_path / "secret"
    value = ACCOUNTS if name == "KIRO_AUTH_TOKEN" else "sk-from-a-file-0123456789"
    secret.write_text(value + "\n")
    env = {"KIRO_CLIENT_TOKEN": "sk-inline", "KIRO_AUTH_TOKEN": "[]", f"{name}_FILE": str(secret)}
    settings = load_settings(env, dotenv_path=None)
    field = {
        "KIRO_AUTH_TOKEN": settings.auth_token,
        "KIRO_CLIENT_TOKEN": ",".join(settings.client_tokens),
        "KIRO_ADMIN_TOKEN": ",".join(settings.admin_tokens),
    }[name]
    assert field == value  # the file wins over the inline value, without the newline


def test_dotenv_fills_in_and_the_real_environment_wins(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        f"KIRO_CLIENT_TOKEN={CLIENT_KEY}\nKIRO_AUTH_TOKEN='{ACCOUNTS}'\nPORT=9001\nLOG_FORMAT=json\n"
    )
    env = base_env(tmp_path, PORT="9002")
    done = run_cli(["config", "check"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    rows = _rows(done.stdout)
    assert rows["port"] == "9002"  # the real environment wins
    assert rows["log_format"] == "json"  # .env fills in what the environment lacks
    assert rows["accounts"] == "1 configured"


def test_serve_refuses_to_start_with_a_bad_config(tmp_path: Path) -> None:
    done = run_cli(["serve"], base_env(tmp_path, PORT="x"), tmp_path)
    assert done.returncode == 2
    assert "kiro2api: configuration error: PORT: expected an integer, got 'x'" in done.stderr


def test_load_settings_raises_one_config_error_with_all_problems() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"PORT": "x", "LOG_FORMAT": "yaml"}, dotenv_path=None)
    assert len(str(caught.value).splitlines()) == 4
