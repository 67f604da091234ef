"""What every route needs, gathered in one object that the server builds once."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from quart import current_app

if TYPE_CHECKING:
    from kiro2api.app.streaming import StreamRegistry
    from kiro2api.convert.models import ModelMap
    from kiro2api.convert.upstream_request import ConvertSettings
    from kiro2api.metrics import Metrics
    from kiro2api.pool import AccountPool
    from kiro2api.settings import Settings
    from kiro2api.upstream import UpstreamClient

__all__ = ["AppState", "current_state"]


@dataclass(slots=True)
class AppState:
    """The live objects behind the routes (settings, pool, upstream, converters, metrics)."""

    settings: Settings
    pool: AccountPool
    upstream: UpstreamClient
    convert: ConvertSettings
    model_map: ModelMap
    metrics: Metrics
    streams: StreamRegistry
    started_at: float = field(default_factory=time.time)
    #: Set when the server is draining: new requests are refused with 503.
    shutting_down: bool = False


def current_state() -> AppState:
    """The state of the app handling the current request."""
    state: AppState = current_app.config["KIRO2API_STATE"]
    return state
