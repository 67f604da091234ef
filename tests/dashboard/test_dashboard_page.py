"""The dashboard page as served by ``GET /``: public, self-contained and locked down by its CSP."""

from __future__ import annotations

import base64
import hashlib
import re
from importlib import resources
from pathlib import Path

import trio
from kiro_stack import start_stack

PAGE = resources.files("kiro2api").joinpath("static/dashboard.html").read_text("utf-8")
_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)
_STYLE = re.compile(r"<style>(.*?)</style>", re.S)


def _csp_hash(body: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"


def _csp() -> dict[str, str]:
    match = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', PAGE)
    assert match, "the page must carry its own Content-Security-Policy"
    directives: dict[str, str] = {}
    for part in match.group(1).split(";"):
        name, _, value = part.strip().partition(" ")
        directives[name] = value
    return directives


async def test_dashboard_is_served_without_a_key(nursery: trio.Nursery, tmp_path: Path) -> None:
    import httpx

    stack = await start_stack(nursery, tmp_path)
    async with httpx.AsyncClient(base_url=stack.url) as client:
        response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.text == PAGE
    assert "<table" in response.text
    stack.server.stop.set()


def test_inline_script_and_style_match_the_csp_hashes() -> None:
    # Editing the inline script or style without updating the hashes would leave a dead page.
    scripts, styles = _SCRIPT.findall(PAGE), _STYLE.findall(PAGE)
    assert len(scripts) == 1, "exactly one inline script, no external ones"
    assert len(styles) == 1, "exactly one inline stylesheet"
    csp = _csp()
    assert csp["default-src"] == "'none'"
    assert csp["connect-src"] == "'self'"
    assert csp["script-src"] == _csp_hash(scripts[0]), "update the script hash in the CSP"
    assert csp["style-src"] == _csp_hash(styles[0]), "update the style hash in the CSP"


def test_page_loads_nothing_from_elsewhere() -> None:
    # No CDN, no web fonts, no remote images: the dashboard works on an air-gapped host.
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", PAGE, re.I)
    assert "@import" not in PAGE
    assert "@font-face" not in PAGE
    assert not re.search(r"url\(", PAGE)
    assert "<script src" not in PAGE
    assert " style=" not in PAGE, "inline style attributes are blocked by the CSP"


def test_script_never_parses_api_data_as_markup() -> None:
    (script,) = _SCRIPT.findall(PAGE)
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, f"{sink} would let account data inject markup"
    # The key travels in a header only, never in a URL or a cookie.
    assert "Authorization" in script
    assert "document.cookie" not in script
    assert "localStorage" not in script
