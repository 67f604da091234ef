"""The server process: builds the app's state and runs everything under one nursery tree.

::

    root nursery
    ├── simulator.serve          (demo mode only: the upstream runs in process)
    ├── pool.run                 (token refresher and usage poller)
    └── stream nursery
        ├── hypercorn.trio.serve (HTTP/1.1 and h2c; stops accepting on shutdown)
        ├── shutdown coordinator (drains streams for KIRO_SHUTDOWN_GRACE, then aborts them)
        └── one producer per client stream (see kiro2api.app.streaming)

Shutdown (SIGTERM/SIGINT, or :attr:`Server.stop`): stop accepting connections, let in-flight
streams finish for up to ``KIRO_SHUTDOWN_GRACE`` seconds, end the rest with an SSE error event,
close the upstream client and return.
"""

from __future__ import annotations

import gc
import logging
import secrets
from dataclasses import dataclass, field, replace
from functools import partial

import hypercorn.trio
import orjson
import trio
from hypercorn.config import Config as HypercornConfig

from kiro2api.app import AppState, StreamRegistry, create_app
from kiro2api.convert.models import ModelMap
from kiro2api.convert.upstream_request import ConvertSettings
from kiro2api.errors import ConfigError
from kiro2api.metrics import Metrics
from kiro2api.pool import AccountPool, CredentialStore, PoolSettings
from kiro2api.settings import Settings
from kiro2api.upstream import UpstreamClient, build_http_client

__all__ = ["Server", "load_model_map", "tune_gc"]

log = logging.getLogger("kiro2api.server")


def load_model_map(raw: str) -> ModelMap:
    """``KIRO_MODEL_MAP``: inline JSON or the path of a JSON file; empty means the defaults."""
    if not raw:
        return ModelMap.default()
    text = raw
    if not raw.lstrip().startswith("{"):
        try:
            with open(raw, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise ConfigError(f"KIRO_MODEL_MAP: cannot read {raw}: {exc.strerror}") from None
    try:
        return ModelMap.from_config(orjson.loads(text))
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"KIRO_MODEL_MAP: not valid JSON: {exc}") from None


#: First-generation threshold of the garbage collector while serving (CPython's default is
#: 700): above one upstream read's worth of decoded frames and their events.
_GC_THRESHOLD = 20_000


def tune_gc() -> None:
    """Keep the cyclic garbage collector off the streaming hot path.

    A long answer allocates a few container objects per upstream event (decoded frames,
    events, parsed payloads) that die within their batch. With the default thresholds the
    young generations fill several times per request, survivors of in-flight batches are
    promoted, and every few requests a full collection walks the whole heap (the imported
    framework included, ~40 ms each): together about a tenth of the proxy's CPU on a 5,000-event
    stream. Freezing what exists at start-up (modules, the app, the routes: it lives until
    exit) takes it out of every collection, and a larger first threshold lets a batch's
    objects die before a collection would promote them.
    """
    gc.collect()
    gc.freeze()
    threshold, *older = gc.get_threshold()
    gc.set_threshold(max(threshold, _GC_THRESHOLD), *older)


def pool_settings(settings: Settings) -> PoolSettings:
    """The pool's view of the settings."""
    return PoolSettings(
        social_refresh_url=settings.social_refresh_url,
        idc_refresh_url=settings.idc_refresh_url,
        usage_url=settings.usage_url,
        state_dir=settings.state_dir,
        region=settings.region,
        selection=settings.selection,
        refresh_ahead_fraction=settings.refresh_ahead,
        usage_poll_interval=settings.usage_poll_interval,
        acquire_timeout=settings.acquire_timeout,
        max_retries=max(1, settings.max_retries),
        rate_limit_cooldown=settings.rate_limit_cooldown,
    )


@dataclass
class Server:
    """One kiro2api server. ``await nursery.start(server.run)`` returns its base URL."""

    settings: Settings
    #: Set it to begin a graceful shutdown.
    stop: trio.Event = field(default_factory=trio.Event)
    state: AppState | None = None
    base_url: str = ""
    #: Demo mode: the in-process simulator (for tests and the banner).
    simulator: object | None = None
    #: Demo mode without KIRO_CLIENT_TOKEN: the key made up for this run (shown once).
    generated_key: str | None = None

    async def _start_demo(self, nursery: trio.Nursery) -> Settings:
        from kiro2api.simulator import (  # noqa: PLC0415  (demo mode only)
            DEMO_REFRESH_TOKEN,
            Simulator,
            SimulatorConfig,
        )

        simulator = Simulator(SimulatorConfig.demo())
        url: str = await nursery.start(simulator.serve)
        self.simulator = simulator
        s = self.settings
        if not s.client_tokens:
            self.generated_key = f"sk-demo-{secrets.token_hex(8)}"
        return replace(
            s,
            api_url=f"{url}/generateAssistantResponse",
            usage_url=f"{url}/getUsageLimits",
            social_refresh_url=f"{url}/refreshToken",
            idc_refresh_url=f"{url}/token",
            auth_token=s.auth_token
            or orjson.dumps(
                [{"auth": "Social", "refreshToken": DEMO_REFRESH_TOKEN, "description": "demo"}]
            ).decode(),
            client_tokens=s.client_tokens or (str(self.generated_key),),
            admin_tokens=s.admin_tokens or s.client_tokens,
        )

    async def run(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until :attr:`stop` is set; report the base URL once listening."""
        async with trio.open_nursery() as root:
            settings = self.settings
            if settings.demo:
                settings = await self._start_demo(root)
                if not settings.admin_tokens:
                    settings = replace(settings, admin_tokens=settings.client_tokens)
                self.settings = settings
            model_map = load_model_map(settings.model_map)
            http = build_http_client(settings)
            try:
                store = CredentialStore(settings.auth_token, settings.state_dir)
                pool = AccountPool(store.load(), pool_settings(settings), http, store)
                await root.start(pool.run)
                metrics = Metrics()
                metrics.watch_pool(pool.snapshot)
                streams = StreamRegistry(
                    ping_interval=settings.ping_interval,
                    request_timeout=settings.request_timeout,
                    metrics=metrics,
                )
                state = AppState(
                    settings=settings,
                    pool=pool,
                    upstream=UpstreamClient(settings, pool, http, metrics),
                    convert=ConvertSettings(
                        model_map=model_map,
                        max_tool_description_length=settings.max_tool_description_length,
                        max_payload_bytes=settings.upstream_payload_limit,
                    ),
                    model_map=model_map,
                    metrics=metrics,
                    streams=streams,
                )
                self.state = state
                app = create_app(state)
                config = HypercornConfig()
                config.bind = [f"{settings.host}:{settings.port}"]
                # Hypercorn's own deadline only backs ours up: streams get the grace period,
                # then a few seconds to deliver their final error event.
                config.graceful_timeout = settings.shutdown_grace + 5
                config.keep_alive_timeout = 75
                # Bursts of new connections (Claude Code's parallel count_tokens, load tests)
                # must wait in the kernel's queue, not be dropped: hypercorn's default is 100.
                config.backlog = 2048
                config.accesslog = None
                config.errorlog = logging.getLogger("hypercorn.error")
                config.h11_max_incomplete_size = 64 * 1024
                async with trio.open_nursery() as stream_nursery:
                    streams.attach(stream_nursery)
                    # Everything kept for the server's lifetime exists now.
                    tune_gc()
                    binds: list[str] = await stream_nursery.start(
                        partial(hypercorn.trio.serve, app, config, shutdown_trigger=self.stop.wait)
                    )
                    self.base_url = binds[0]
                    stream_nursery.start_soon(self._drain_on_stop, state)
                    task_status.started(self.base_url)
                log.info("server stopped")
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    await http.aclose()
                root.cancel_scope.cancel()

    async def _drain_on_stop(self, state: AppState) -> None:
        await self.stop.wait()
        state.shutting_down = True
        log.info(
            "shutting down: no new connections; %d stream(s) get up to %.0f s to finish",
            state.streams.active,
            state.settings.shutdown_grace,
        )
        await state.streams.drain(state.settings.shutdown_grace)
