"""Loading KIRO_AUTH_TOKEN: inline JSON or a file, every problem named by entry index."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiro2api.errors import ConfigError
from kiro2api.pool import AuthKind, load_accounts, mask_email
from kiro2api.pool._config import credential_key
from kiro2api.pool._mask import scrub

SOCIAL = "aorAAAAAGsocialrefreshtoken0123456789abcdef"
IDC = "aorAAAAAGidcrefreshtoken0123456789abcdefXYZ"
SECRET = "idc-client-secret-0123456789abcdef"
APIKEY = "ksk_0123456789abcdefghijklmnopqrstuv"


def test_inline_array_with_all_three_kinds() -> None:
    raw = (
        f'[{{"auth": "Social", "refreshToken": "{SOCIAL}", "description": "main"}},'
        f' {{"auth": "idc", "refreshToken": "{IDC}", "clientId": "cid", "clientSecret": "{SECRET}",'
        f'   "region": "eu-west-1", "maxConcurrency": 2}},'
        f' {{"auth": "ApiKey", "apiKey": "{APIKEY}", "disabled": true}}]'
    )
    social, idc, key = load_accounts(raw, source_hint="KIRO_AUTH_TOKEN")
    assert (social.auth, social.refresh_token, social.description) == (
        AuthKind.SOCIAL,
        SOCIAL,
        "main",
    )
    assert (idc.auth, idc.client_id, idc.client_secret, idc.region, idc.max_concurrency) == (
        AuthKind.IDC,
        "cid",
        SECRET,
        "eu-west-1",
        2,
    )
    assert (key.auth, key.credential, key.disabled, key.index) == (
        AuthKind.API_KEY,
        APIKEY,
        True,
        2,
    )
    assert social.source_key == credential_key(SOCIAL)
    assert SOCIAL not in social.source_key
    # A repr never shows a secret (it ends up in tracebacks and debug logs).
    assert SECRET not in repr(idc)
    assert IDC not in repr(idc)


def test_single_object_and_default_auth_and_case_insensitive_keys() -> None:
    (account,) = load_accounts(f'{{"RefreshToken": "{SOCIAL}"}}', source_hint="X")
    assert account.auth is AuthKind.SOCIAL
    assert account.refresh_token == SOCIAL


def test_file_source(tmp_path: Path) -> None:
    path = tmp_path / "accounts.json"
    path.write_text(f'[{{"refreshToken": "{SOCIAL}"}}]')
    (account,) = load_accounts(str(path), source_hint="KIRO_AUTH_TOKEN")
    assert account.refresh_token == SOCIAL


def test_every_invalid_entry_gets_its_own_error_naming_its_index() -> None:
    raw = (
        "["
        f'{{"auth": "Social", "refreshToken": "{SOCIAL}"}},'
        '{"auth": "Social"},'
        f'{{"auth": "IdC", "refreshToken": "{IDC}"}},'
        '{"auth": "Magic", "refreshToken": "x"},'
        '"just a string",'
        '{"auth": "ApiKey"},'
        f'{{"refreshToken": "{APIKEY}", "maxConcurrency": 0, "disabled": "yes"}}'
        "]"
    )
    with pytest.raises(ConfigError) as info:
        load_accounts(raw, source_hint="KIRO_AUTH_TOKEN")
    lines = info.value.message.splitlines()
    assert any("[1]" in line and "refreshToken" in line for line in lines)
    assert any("[2]" in line and "clientId" in line for line in lines)
    assert any("[2]" in line and "clientSecret" in line for line in lines)
    assert any("[3]" in line and "unknown 'auth'" in line for line in lines)
    assert any("[4]" in line and "JSON object" in line for line in lines)
    assert any("[5]" in line and "apiKey" in line for line in lines)
    assert any("[6]" in line and "maxConcurrency" in line for line in lines)
    assert any("[6]" in line and "disabled" in line for line in lines)
    assert not any("[0]" in line for line in lines)
    for secret in (SOCIAL, IDC, APIKEY):
        assert secret not in info.value.message


def test_wrong_type_errors_do_not_echo_the_value() -> None:
    raw = f'[{{"refreshToken": ["{SOCIAL}"]}}]'
    with pytest.raises(ConfigError) as info:
        load_accounts(raw, source_hint="KIRO_AUTH_TOKEN")
    assert "[0]" in info.value.message
    assert "an array" in info.value.message
    assert SOCIAL not in info.value.message


def test_json_syntax_error_reports_line_and_column() -> None:
    raw = f'[\n  {{"refreshToken": "{SOCIAL}",}}\n]'
    with pytest.raises(ConfigError) as info:
        load_accounts(raw, source_hint="KIRO_AUTH_TOKEN")
    assert "line 2 column" in info.value.message
    assert SOCIAL not in info.value.message


def test_json_syntax_error_in_a_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "accounts.json"
    path.write_text(f'[{{"refreshToken": "{SOCIAL}"}}\n{{"refreshToken": "x"}}]')
    with pytest.raises(ConfigError) as info:
        load_accounts(str(path), source_hint="KIRO_AUTH_TOKEN")
    assert str(path) in info.value.message
    assert "line 2 column 1" in info.value.message


def test_a_value_that_is_neither_json_nor_a_file_is_not_echoed() -> None:
    with pytest.raises(ConfigError) as info:
        load_accounts(SOCIAL, source_hint="KIRO_AUTH_TOKEN")
    assert SOCIAL not in info.value.message
    assert "neither inline JSON" in info.value.message


@pytest.mark.parametrize("raw", ["", "   ", "[]", "42"])
def test_empty_or_non_list_is_an_error(raw: str) -> None:
    with pytest.raises(ConfigError):
        load_accounts(raw, source_hint="KIRO_AUTH_TOKEN")


def test_all_disabled_and_duplicates_are_errors() -> None:
    with pytest.raises(ConfigError, match="every account is disabled"):
        load_accounts(f'{{"refreshToken": "{SOCIAL}", "disabled": true}}', source_hint="X")
    raw = f'[{{"refreshToken": "{SOCIAL}"}}, {{"refreshToken": "{SOCIAL}"}}]'
    with pytest.raises(ConfigError, match=r"account \[1\]: same credential as account \[0\]"):
        load_accounts(raw, source_hint="X")


@pytest.mark.parametrize(
    ("email", "masked"),
    [
        ("caidaoli@gmail.com", "ca****li@*****.com"),
        ("caidaolihz888@sun.edu.pl", "ca*********88@***.edu.pl"),
        ("user@mail.company.com", "****@****.company.com"),
        ("admin@dev.mail.company.com", "ad*in@***.****.company.com"),
        ("user@localhost", "****@*********"),
        ("not-an-email", "not-an-email"),
    ],
)
def test_email_masking_follows_the_dashboard_rules(email: str, masked: str) -> None:
    assert mask_email(email) == masked


def test_scrub_masks_known_and_token_like_secrets() -> None:
    text = f'HTTP 401: {{"message": "bad token {SOCIAL}", "other": "{"Z" * 40}"}}'
    clean = scrub(text, [SOCIAL, ""])
    assert SOCIAL not in clean
    assert "Z" * 40 not in clean
    assert "aorA…cdef" in clean
    assert len(scrub("x" * 1000, [])) <= 300
