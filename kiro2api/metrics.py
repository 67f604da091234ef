"""Prometheus metrics, on a registry of the app's own (so several apps can live in one process).

Account states and refresh counters are not pushed by the pool: a collector reads the pool's
live snapshot at scrape time, so ``/metrics``, ``/api/tokens`` and the endpoints agree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from kiro2api.pool import AccountSnapshot

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class _PoolCollector(Collector):
    """Reads account states at scrape time from a snapshot function."""

    def __init__(self, snapshot: Callable[[], Iterable[AccountSnapshot]]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[GaugeMetricFamily]:
        states = GaugeMetricFamily(
            "kiro2api_account_state",
            "1 for the state each account is in",
            labels=["account", "state"],
        )
        refresh_ok = GaugeMetricFamily(
            "kiro2api_account_refresh_successes",
            "Token refreshes that succeeded",
            labels=["account"],
        )
        refresh_failed = GaugeMetricFamily(
            "kiro2api_account_refresh_failures", "Token refreshes that failed", labels=["account"]
        )
        in_flight = GaugeMetricFamily(
            "kiro2api_account_in_flight", "Requests in flight per account", labels=["account"]
        )
        for account in self._snapshot():
            label = str(account.index)
            states.add_metric([label, str(account.status)], 1.0)
            refresh_ok.add_metric([label], float(account.refresh_successes))
            refresh_failed.add_metric([label], float(account.refresh_failures))
            in_flight.add_metric([label], float(account.in_flight))
        yield states
        yield refresh_ok
        yield refresh_failed
        yield in_flight


class Metrics:
    """Every metric kiro2api exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "kiro2api_requests",
            "Requests by route, status and model",
            ["route", "status", "model"],
            registry=r,
        )
        self.upstream_latency = Histogram(
            "kiro2api_upstream_duration_seconds",
            "Whole upstream request time",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_ttfb = Histogram(
            "kiro2api_upstream_ttfb_seconds",
            "Time to the upstream's first frame",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.client_ttfb = Histogram(
            "kiro2api_ttfb_seconds",
            "Time from request to the first byte sent to the client",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.active_streams = Gauge("kiro2api_active_streams", "Open client streams", registry=r)
        self.retries = Counter(
            "kiro2api_upstream_retries", "Upstream attempts after the first", registry=r
        )
        self.failovers = Counter(
            "kiro2api_upstream_failovers", "Attempts that moved to another account", registry=r
        )
        self.tokens = Counter("kiro2api_tokens", "Tokens by direction", ["direction"], registry=r)

    def watch_pool(self, snapshot: Callable[[], Iterable[AccountSnapshot]]) -> None:
        """Export account states read from ``snapshot()`` at scrape time."""
        self.registry.register(_PoolCollector(snapshot))

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
