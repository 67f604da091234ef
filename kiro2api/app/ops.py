"""Operational routes: health, readiness, metrics, the account report, reload and the dashboard."""

from __future__ import annotations

import time
from importlib import resources

from quart import Blueprint, Response

from kiro2api.app.http import json_response
from kiro2api.app.state import current_state
from kiro2api.metrics import CONTENT_TYPE

__all__ = ["ops"]

ops = Blueprint("ops", __name__)


@ops.get("/healthz")
async def healthz() -> Response:
    """The process is alive (no upstream calls, no auth)."""
    state = current_state()
    return json_response({"status": "ok", "uptime_s": round(time.time() - state.started_at, 1)})


@ops.get("/readyz")
async def readyz() -> Response:
    """At least one account is usable (503 otherwise, so orchestrators hold traffic)."""
    state = current_state()
    ready = state.pool.ready() and not state.shutting_down
    body = {
        "ready": ready,
        "shutting_down": state.shutting_down,
        "active_streams": state.streams.active,
    }
    return json_response(body, 200 if ready else 503)


@ops.route("/", methods=["HEAD"])
async def head_root() -> Response:
    """Connectivity probes (``HEAD /``) answer without auth."""
    return Response(b"", status=200)


@ops.get("/metrics")
async def metrics() -> Response:
    """Prometheus text format."""
    return Response(current_state().metrics.render(), status=200, content_type=CONTENT_TYPE)


@ops.get("/api/tokens")
async def tokens() -> Response:
    """The pool's live account report (admin key required; never calls the upstream)."""
    return Response(
        current_state().pool.snapshot_json(), status=200, content_type="application/json"
    )


@ops.post("/api/reload")
async def reload() -> Response:
    """Re-read the accounts source without dropping in-flight streams."""
    state = current_state()
    await state.pool.reload()
    return Response(state.pool.snapshot_json(), status=200, content_type="application/json")


@ops.get("/")
async def dashboard() -> Response:
    """The self-contained dashboard (HTML/CSS/JS shipped in the package; no CDN)."""
    page = resources.files("kiro2api").joinpath("static/dashboard.html").read_bytes()
    return Response(page, status=200, content_type="text/html; charset=utf-8")
