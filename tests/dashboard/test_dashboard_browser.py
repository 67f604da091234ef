"""The dashboard in a real headless Chromium against the server and the upstream simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import trio
from dashboard_cdp import Page, find_chromium, launch
from kiro_stack import CLIENT_KEY, Stack, messages_body, social_account, start_stack

pytestmark = pytest.mark.slow

#: One entry per row of the accounts table, as the user reads it.
ROWS_JS = """
[...document.querySelectorAll('#accounts-body tr[data-index]')].map((tr) => ({
  index: tr.dataset.index,
  status: tr.querySelector('.badge').textContent,
  account: tr.querySelector('th').innerText,
  email: tr.querySelector('td.email').textContent,
  cells: [...tr.cells].map((c) => c.innerText.trim()),
  stale: tr.classList.contains('stale'),
}))
"""
MESSAGE_JS = """
(() => { const m = document.getElementById('message'); return m.hidden ? '' : m.textContent; })()
"""
#: Everything a person or a script in the page could read: markup, rendered text, form values.
PAGE_TEXT_JS = """
document.documentElement.outerHTML + '\\n' + document.body.innerText + '\\n' +
[...document.querySelectorAll('input')].map((i) => i.value).join('\\n')
"""
TWO_ACCOUNTS = (
    social_account(0, email="alice.smith@example.com"),
    social_account(1, email="bob@corp.example.org", exhausted=True),
)
#: Plus one whose refresh token upstream rejects: it never gets usage data, only an error.
THREE_ACCOUNTS = (*TWO_ACCOUNTS, social_account(2, refresh_faults=("http status=401",)))


@pytest.fixture
def chromium() -> str:
    # A plain (not trio) fixture, so a skip or a CI failure keeps its reason unwrapped.
    return find_chromium()


@pytest.fixture
async def page(chromium: str, nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[Page]:
    async with launch(nursery, chromium, tmp_path) as browser:
        yield await browser.new_page()


async def wait_for_usage(stack: Stack) -> None:
    """Wait until the pool has fetched the usage (and e-mail) of every account it can use."""
    async with httpx.AsyncClient(base_url=stack.url, headers={"x-api-key": stack.key}) as client:
        with trio.fail_after(10):
            while True:
                report = (await client.get("/api/tokens")).json()
                if all(t["user_email"] or t["last_error"] for t in report["tokens"]):
                    return
                await trio.sleep(0.05)


async def sign_in(page: Page, stack: Stack, key: str) -> None:
    """Open the dashboard and type ``key`` into its form, as a user would."""
    await page.goto(f"{stack.url}/")
    await page.wait_for("!document.getElementById('key-panel').hidden")
    await page.click("#admin-key")
    await page.type_text(key)
    await page.press_enter()


async def rows(page: Page, count: int) -> list[dict[str, Any]]:
    """The table rows once there are ``count`` of them."""
    await page.wait_for(f"({ROWS_JS}).length === {count}")
    found: list[dict[str, Any]] = await page.evaluate(ROWS_JS)
    return found


async def send_message(stack: Stack) -> None:
    async with stack.client() as client:
        response = await client.post("/v1/messages", json=messages_body("hello"))
    assert response.status_code == 200, response.text


async def test_accounts_table_shows_the_pool(
    page: Page, nursery: trio.Nursery, tmp_path: Path
) -> None:
    stack = await start_stack(nursery, tmp_path, accounts=THREE_ACCOUNTS)
    await wait_for_usage(stack)
    await sign_in(page, stack, CLIENT_KEY)

    first, second, third = await rows(page, 3)
    assert first["status"] == "active"
    assert second["status"] == "exhausted"
    assert first["email"] == "al*******th@*******.com"
    assert second["email"] == "***@****.example.org"
    assert first["account"].startswith("acct-0")
    assert "10,000" in first["cells"][4]  # credits left
    assert second["cells"][4].startswith("0")
    assert second["cells"][6].startswith("in "), "the exhausted account shows its cooldown"
    assert first["cells"][6] == "–"
    assert third["status"] == "invalid"
    assert third["email"] == "–"
    assert "HTTP 401" in third["cells"][10], "the last error is shown"
    assert first["cells"][10] == "–"

    totals = await page.evaluate(
        "[...document.querySelectorAll('.totals div')].map((d) => d.innerText.replace('\\n', ': '))"
    )
    assert "Accounts: 3" in totals
    assert "Usable now: 1" in totals
    assert "Credits left: 10,000" in totals
    assert await page.evaluate(MESSAGE_JS) == ""
    assert await page.evaluate("document.getElementById('auto-refresh').checked") is True

    # No secret reaches the page: not the refresh or access tokens, not the key just typed.
    text = await page.evaluate(PAGE_TEXT_JS)
    secrets = [CLIENT_KEY, *(a.refresh_token or "" for a in THREE_ACCOUNTS)]
    for account in ("acct0", "acct1"):
        upstream = stack.sim.account(account)
        secrets.extend([upstream.refresh_token or "", *upstream.access_tokens])
    secrets = [secret for secret in secrets if secret]
    assert len(secrets) >= 8
    for secret in secrets:
        assert secret not in text
    # The key lives in this tab's session storage, never in the address bar.
    assert CLIENT_KEY not in await page.evaluate("location.href")
    stored = await page.evaluate("sessionStorage.getItem('kiro2api.adminKey')")
    assert stored == CLIENT_KEY
    assert page.errors() == [], "no script error and no CSP violation"
    stack.server.stop.set()


async def test_wrong_key_is_rejected_and_asked_again(
    page: Page, nursery: trio.Nursery, tmp_path: Path
) -> None:
    stack = await start_stack(nursery, tmp_path, accounts=TWO_ACCOUNTS)
    await sign_in(page, stack, "sk-not-the-admin-key")

    message = await page.wait_for(MESSAGE_JS)
    assert "admin key was rejected (401)" in message
    assert await page.evaluate("document.getElementById('report').hidden") is True
    assert await page.evaluate("document.getElementById('key-panel').hidden") is False
    assert await page.evaluate("document.activeElement.id") == "admin-key"
    assert await page.evaluate("sessionStorage.getItem('kiro2api.adminKey')") is None

    # The form is ready for a second try; the right key then shows the table.
    await page.type_text(CLIENT_KEY)
    await page.press_enter()
    assert len(await rows(page, 2)) == 2
    assert await page.evaluate(MESSAGE_JS) == ""

    # "Forget key" drops it from the tab and hides the accounts.
    await page.click("#forget-key")
    assert "removed" in await page.wait_for(MESSAGE_JS)
    assert await page.evaluate("sessionStorage.getItem('kiro2api.adminKey')") is None
    assert await page.evaluate("document.getElementById('report').hidden") is True
    stack.server.stop.set()


async def test_auto_refresh_and_its_toggle(
    page: Page, nursery: trio.Nursery, tmp_path: Path
) -> None:
    stack = await start_stack(nursery, tmp_path, accounts=TWO_ACCOUNTS)
    await sign_in(page, stack, CLIENT_KEY)
    (first, _) = await rows(page, 2)
    assert first["cells"][8] == "0"

    # Auto-refresh picks up a request served meanwhile, with no click (every 5 s).
    await send_message(stack)
    served = "document.querySelector('#accounts-body tr[data-index=\"0\"]').cells[8].innerText"
    await page.wait_for(f"{served} === '1'", within=8)
    last_used = await page.evaluate(
        "document.querySelector('#accounts-body tr[data-index=\"0\"]').cells[7].innerText"
    )
    assert last_used != "–"

    # Switched off, the table stays put until "Refresh now".
    await page.click("#auto-refresh")
    assert await page.evaluate("document.getElementById('auto-refresh').checked") is False
    await send_message(stack)
    await trio.sleep(6)
    assert await page.evaluate(served) == "1"
    await page.click("#refresh-now")
    await page.wait_for(f"{served} === '2'", within=5)
    stack.server.stop.set()


async def test_network_error_keeps_the_last_table(
    page: Page, nursery: trio.Nursery, tmp_path: Path
) -> None:
    stack = await start_stack(nursery, tmp_path, accounts=TWO_ACCOUNTS)
    await sign_in(page, stack, CLIENT_KEY)
    await rows(page, 2)

    # While shutting down, the server leaves the page's keep-alive connection hanging until its
    # graceful deadline; the dashboard must still end up telling the user.
    stack.server.stop.set()
    async with httpx.AsyncClient(base_url=stack.url) as client:
        with trio.fail_after(10):
            while True:
                try:
                    await client.get("/healthz")
                except httpx.TransportError:
                    break
                await trio.sleep(0.05)
    await page.click("#refresh-now")
    message = await page.wait_for(MESSAGE_JS, within=15)
    assert "Cannot reach the proxy" in message
    table = await rows(page, 2)
    assert all(row["stale"] for row in table), "the old rows are marked as out of date"
    assert table[1]["status"] == "exhausted"


async def test_account_text_is_shown_as_text(
    page: Page, nursery: trio.Nursery, tmp_path: Path
) -> None:
    markup = '<img src=x onerror="document.title=\'pwned\'"><b id="injected">bold</b>'
    auth = [{"auth": "Social", "refreshToken": "refresh-token-0-abcdef", "description": markup}]
    env = {"KIRO_AUTH_TOKEN": orjson.dumps(auth).decode()}
    stack = await start_stack(nursery, tmp_path, accounts=TWO_ACCOUNTS[:1], env=env)
    await sign_in(page, stack, CLIENT_KEY)
    (row,) = await rows(page, 1)
    assert markup in row["account"]
    assert await page.evaluate("document.getElementById('injected')") is None
    assert await page.evaluate("document.querySelectorAll('#accounts img').length") == 0
    assert await page.evaluate("document.title") != "pwned"
    stack.server.stop.set()


async def test_reload_button_redraws_from_the_reloaded_pool(
    page: Page, nursery: trio.Nursery, tmp_path: Path
) -> None:
    stack = await start_stack(nursery, tmp_path, accounts=TWO_ACCOUNTS)
    await sign_in(page, stack, CLIENT_KEY)
    await rows(page, 2)
    await page.click("#auto-refresh")  # only the button may redraw the table now
    await page.evaluate("document.querySelector('#accounts-body tr').dataset.drawn = 'before'")
    await page.click("#reload-accounts")
    await page.wait_for("!document.querySelector('#accounts-body tr').dataset.drawn")
    (first, second) = await rows(page, 2)
    assert (first["status"], second["status"]) == ("active", "exhausted")
    assert await page.evaluate(MESSAGE_JS) == ""
    stack.server.stop.set()
