"""Operational routes: health, readiness, metrics, the account report, reload and the dashboard."""

from __future__ import annotations

import time
from importlib import resources

import orjson
from quart import Blueprint, Response, current_app

from kiro2api.app.state import AppState
from kiro2api.metrics import CONTENT_TYPE

__all__ = ["ops"]

ops = Blueprint("ops", __name__)


def _state() -> AppState:
    state: AppState = current_app.config["KIRO2API_STATE"]
    return state


def _json(data: object, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status=status, content_type="application/json")


@ops.get("/healthz")
async def healthz() -> Response:
    """The process is alive (no upstream calls, no auth)."""
    state = _state()
    return _json({"status": "ok", "uptime_s": round(time.time() - state.started_at, 1)})


@ops.get("/readyz")
async def readyz() -> Response:
    """At least one account is usable (503 otherwise, so orchestrators hold traffic)."""
    state = _state()
    ready = state.pool.ready() and not state.shutting_down
    body = {
        "ready": ready,
        "shutting_down": state.shutting_down,
        "active_streams": state.streams.active,
    }
    return _json(body, 200 if ready else 503)


@ops.route("/", methods=["HEAD"])
async def head_root() -> Response:
    """Connectivity probes (``HEAD /``) answer without auth."""
    return Response(b"", status=200)


@ops.get("/metrics")
async def metrics() -> Response:
    """Prometheus text format."""
    return Response(_state().metrics.render(), status=200, content_type=CONTENT_TYPE)


@ops.get("/api/tokens")
async def tokens() -> Response:
    """The pool's live account report (admin key required; never calls the upstream)."""
    return Response(_state().pool.snapshot_json(), status=200, content_type="application/json")


@ops.post("/api/reload")
async def reload() -> Response:
    """Re-read the accounts source without dropping in-flight streams."""
    state = _state()
    await state.pool.reload()
    return Response(state.pool.snapshot_json(), status=200, content_type="application/json")


@ops.get("/")
async def dashboard() -> Response:
    """The self-contained dashboard (HTML/CSS/JS shipped in the package; no CDN)."""
    page = resources.files("kiro2api").joinpath("static/dashboard.html").read_bytes()
    return Response(page, status=200, content_type="text/html; charset=utf-8")
