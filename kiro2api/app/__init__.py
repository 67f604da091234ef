"""The Quart-Trio application: routes, auth, error rendering and streaming."""

from __future__ import annotations

from quart_trio import QuartTrio

from kiro2api.app.http import install
from kiro2api.app.ops import ops
from kiro2api.app.routes import api
from kiro2api.app.state import AppState
from kiro2api.app.streaming import StreamRegistry

__all__ = ["AppState", "StreamRegistry", "create_app"]


def create_app(state: AppState) -> QuartTrio:
    """Build the app around ``state`` (the server owns the state's lifetime)."""
    app = QuartTrio("kiro2api")
    settings = state.settings
    app.config.update(
        KIRO2API_STATE=state,
        # Quart's 60 s response timeout silently cuts long SSE streams; ours are bounded by
        # the upstream timeouts instead.
        RESPONSE_TIMEOUT=None,
        BODY_TIMEOUT=settings.body_timeout,
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        PROVIDE_AUTOMATIC_OPTIONS=True,
    )
    install(app, client_keys=settings.client_tokens, admin_keys=settings.admin_tokens)
    app.register_blueprint(api)
    app.register_blueprint(ops)
    return app
