"""End-to-end benchmark: every scenario straight to the simulator and through the proxy.

``make bench`` runs this script. For each proxy configuration (plain HTTP/1.1 upstream, TLS +
HTTP/2 upstream, and the pure-Python codec) it starts the simulator and the proxy as separate
processes, then for each scenario and concurrency runs the direct measurement and the proxied
one back to back, so both see the same machine noise. Results go to ``benchmarks/results/``: a
JSON file, a markdown table and a PNG chart (see ``_report.py``).

Usage::

    .venv/bin/python benchmarks/run_all.py              # full run, about 8 minutes
    .venv/bin/python benchmarks/run_all.py --quick      # smoke run, about a minute
    .venv/bin/python benchmarks/run_all.py --quick --scenarios nonstream --configs h1 --out /tmp/b
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import _bootstrap  # noqa: F401  (first: puts the checkout on sys.path)
import orjson
import trio
from _h2load import h2load_available, h2load_version, run_h2load
from _load import (
    LoadClient,
    LoadResult,
    RequestSpec,
    bursts,
    closed_loop,
    make_client,
    open_streams,
)
from _report import write_outputs
from _scenarios import (
    SCENARIOS,
    Scenario,
    count_tokens_spec,
    direct_spec,
    healthz_spec,
    proxy_spec,
    trickle_text,
)
from _stack import ProcessStats, ProxyConfig, Stack, raise_fd_limit, running_stack

CONFIGS = {
    c.name: c
    for c in (
        ProxyConfig("h1"),
        ProxyConfig("tls-h2", tls=True),
        ProxyConfig("h1-noext", no_extensions=True),
    )
}
ALL_SCENARIOS = (*SCENARIOS, "count_tokens", "slow_streams")
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True, slots=True)
class Plan:
    """How long and how wide each measurement is."""

    duration: float
    concurrency: tuple[int, ...]
    tool_concurrency: tuple[int, ...]
    streams: int
    trickle_events: int
    trickle_interval_ms: int
    ramp: float
    h2load_duration: float

    @classmethod
    def full(cls) -> Plan:
        return cls(3.0, (1, 16, 64), (1, 8), 1000, 60, 500, 3.0, 3.0)

    @classmethod
    def quick(cls) -> Plan:
        return cls(0.5, (1, 16), (1,), 50, 6, 500, 0.3, 0.5)


def _machine() -> dict[str, Any]:
    import Cython

    import kiro2api.eventstream as codec

    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "cython": str(getattr(Cython, "__version__", "?")),
        "compiled_codec": not codec.NO_EXTENSIONS,
        "kernel": platform.release(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "h2load": h2load_version() or "not installed (apt-get install nghttp2-client)",
    }


class Runner:
    """Runs the measurements of one configuration and appends rows to ``rows``."""

    def __init__(self, stack: Stack, plan: Plan, rows: list[dict[str, Any]], direct: bool) -> None:
        self.stack = stack
        self.plan = plan
        self.rows = rows
        self.direct = direct
        self.config = stack.config

    def _row(
        self,
        scenario: str,
        target: str,
        concurrency: int,
        result: LoadResult,
        server: ProcessStats,
        cpu0: float,
        sim_cpu0: float,
    ) -> dict[str, Any]:
        summary = result.summary()
        done = max(1, summary["requests"])
        row: dict[str, Any] = {
            "config": self.config.name if target == "proxy" else self.config.upstream,
            "upstream": self.config.upstream,
            "target": target,
            "scenario": scenario,
            "concurrency": concurrency,
            **summary,
            "server_cpu_s_per_req": round((server.cpu_seconds() - cpu0) / done, 6),
            "server_peak_rss_mib": round(server.peak_rss() / 2**20, 1),
        }
        if result.probes:
            row["probes"] = result.probes
        if target == "proxy":
            row["sim_cpu_s_per_req"] = round((self.stack.sim.cpu_seconds() - sim_cpu0) / done, 6)
        self.rows.append(row)
        status = "ok" if not row["errors"] else f"{row['errors']} ERRORS: {row.get('first_error')}"
        print(
            f"  {row['config']:>9} {target:>6} {scenario:>12} c={concurrency:<4} "
            f"{row['rps']:>9.1f} req/s  ttfb p50 {row['ttfb_ms']['p50']} ms  "
            f"total p50 {row['total_ms']['p50']} ms  loadgen cpu {row['loadgen_cpu_util']:.2f}"
            f"  {status}",
            flush=True,
        )
        return row

    async def _measure(
        self,
        scenario: str,
        target: str,
        concurrency: int,
        run: Callable[[LoadClient], Any],
        client: LoadClient,
    ) -> dict[str, Any]:
        server = self.stack.proxy if target == "proxy" else self.stack.sim
        assert server is not None
        for proc in (self.stack.sim, self.stack.proxy):
            if proc is not None:
                proc.reset_peak()
        cpu0, sim_cpu0 = server.cpu_seconds(), self.stack.sim.cpu_seconds()
        result: LoadResult = await run(client)
        return self._row(scenario, target, concurrency, result, server, cpu0, sim_cpu0)

    def _direct_client(self, connections: int) -> LoadClient:
        return make_client(
            connections=connections, http2=self.config.tls, verify=self.stack.verify()
        )

    async def closed(self, scenario: Scenario, concurrency: int) -> None:
        """One scenario at one concurrency: direct first (when this config owns it), then proxy."""
        duration = self.plan.duration
        if self.direct:
            spec = direct_spec(self.stack, scenario)
            async with self._direct_client(concurrency + 4) as client:
                await self._measure(
                    scenario.name,
                    "direct",
                    concurrency,
                    partial(closed_loop, spec=spec, concurrency=concurrency, duration=duration),
                    client,
                )
        spec = proxy_spec(self.stack, scenario)
        async with make_client(connections=concurrency + 4) as client:
            await self._measure(
                scenario.name,
                "proxy",
                concurrency,
                partial(closed_loop, spec=spec, concurrency=concurrency, duration=duration),
                client,
            )

    async def count_tokens(self) -> None:
        """Bursts of 26 concurrent ``count_tokens`` calls, and the same bursts on ``/healthz``."""
        for name, spec in (
            ("count_tokens", count_tokens_spec(self.stack)),
            ("healthz", healthz_spec(self.stack)),
        ):
            async with make_client(connections=32) as client:
                row = await self._measure(
                    name,
                    "proxy",
                    26,
                    partial(bursts, spec=spec, size=26, duration=self.plan.duration),
                    client,
                )
                row["scenario_group"] = "count_tokens"

    async def slow_streams(self) -> None:
        """Many slow streams open at once: resident memory per open stream, and errors."""
        plan = self.plan
        text = trickle_text(plan.trickle_events, plan.trickle_interval_ms)
        scenario = Scenario("slow_streams", "6. slow streams", text, stream=True)
        targets: list[tuple[str, RequestSpec, ProcessStats]] = []
        if self.direct:
            targets.append(("direct", direct_spec(self.stack, scenario), self.stack.sim))
        if self.stack.proxy is not None and not self.config.no_extensions:
            targets.append(("proxy", proxy_spec(self.stack, scenario), self.stack.proxy))
        for target, spec, server in targets:
            client = (
                self._direct_client(plan.streams + 8)
                if target == "direct"
                else make_client(connections=plan.streams + 8)
            )
            async with client:
                # Warm the path (imports, caches, first connections) before the baseline.
                await closed_loop(client, spec, concurrency=4, duration=0.01)
                overflows = _listen_overflows()

                def probe(server: ProcessStats = server) -> dict[str, Any]:
                    return {"server_rss": server.rss()}

                row = await self._measure(
                    "slow_streams",
                    target,
                    plan.streams,
                    partial(_slow, spec=spec, count=plan.streams, ramp=plan.ramp, probe=probe),
                    client,
                )
            _memory_figures(row)
            # Connections refused by a full accept queue: the client's SYN is retried after
            # 1, 3, 7, 15 s, which shows as a long time-to-first-byte tail, not as an error.
            row["listen_overflows"] = _listen_overflows() - overflows

    def _rate(self, target: str, scenario: str, concurrency: int) -> float:
        """Requests/s the trio generator measured for the same thing (100 if not measured)."""
        for row in self.rows:
            if (row["target"], row["scenario"], row["concurrency"]) == (
                target,
                scenario,
                concurrency,
            ):
                return float(row["rps"]) or 100.0
        return 100.0

    async def h2load(self, scenarios: list[str]) -> list[dict[str, Any]]:
        """The same requests from h2load: HTTP/1.1 and HTTP/2 to the proxy and to the simulator."""
        out: list[dict[str, Any]] = []
        for name in ("nonstream", "stream200"):
            if name not in scenarios:
                continue
            scenario = SCENARIOS[name]
            for clients in (1, 16):
                runs: list[tuple[str, RequestSpec, bool]] = [
                    ("proxy", proxy_spec(self.stack, scenario), True),
                    ("proxy", proxy_spec(self.stack, scenario), False),
                ]
                if self.direct:
                    runs.insert(
                        0, ("direct", direct_spec(self.stack, scenario), not self.config.tls)
                    )
                for target, spec, http1 in runs:
                    rate = self._rate(target, name, clients)
                    result = await trio.to_thread.run_sync(
                        partial(
                            run_h2load,
                            spec,
                            clients=clients,
                            requests=max(20, round(rate * self.plan.h2load_duration)),
                            http1=http1,
                        )
                    )
                    result.update(
                        config=self.config.name if target == "proxy" else self.config.upstream,
                        target=target,
                        scenario=name,
                    )
                    print(
                        f"  h2load {result['config']:>9} {target:>6} {name:>10} "
                        f"{result['protocol']:>8} c={clients:<3} "
                        f"{result.get('rps', 0):>9.1f} req/s "
                        f"ttfb mean {result.get('ttfb_mean_ms')} ms errors {result['errors']}",
                        flush=True,
                    )
                    out.append(result)
        return out


async def _slow(
    client: LoadClient,
    *,
    spec: RequestSpec,
    count: int,
    ramp: float,
    probe: Callable[[], dict[str, Any]],
) -> LoadResult:
    return await open_streams(client, spec, count=count, ramp=ramp, probe=probe)


def _listen_overflows() -> int:
    """The kernel's count of connections dropped because an accept queue was full."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return 0
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=False))
            return int(table.get("ListenOverflows", 0))
    return 0


def _memory_figures(row: dict[str, Any]) -> None:
    """RSS per open stream: growth from the idle baseline to the fullest moment, per stream."""
    probes = [p for p in row.get("probes", []) if p.get("t_s", 0) >= 0]
    if not probes:
        return
    baseline = probes[0]["server_rss"]
    fullest = max(probes, key=lambda p: (p["open_streams"], p["server_rss"]))
    most_open = fullest["open_streams"]
    rss_open = max(p["server_rss"] for p in probes if p["open_streams"] == most_open)
    row["baseline_rss_mib"] = round(baseline / 2**20, 1)
    row["rss_all_open_mib"] = round(rss_open / 2**20, 1)
    row["max_open_streams"] = most_open
    if most_open:
        row["rss_per_stream_kib"] = round((rss_open - baseline) / most_open / 1024, 1)


async def run_config(
    stack: Stack,
    plan: Plan,
    scenarios: list[str],
    direct: bool,
    use_h2load: bool,
    slow_configs: set[str],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every selected scenario for one configuration."""
    rows: list[dict[str, Any]] = []
    runner = Runner(stack, plan, rows, direct)
    for name in scenarios:
        if name in SCENARIOS:
            levels = plan.tool_concurrency if name == "tool200k" else plan.concurrency
            for concurrency in levels:
                await runner.closed(SCENARIOS[name], concurrency)
        elif name == "count_tokens" and not stack.config.no_extensions:
            await runner.count_tokens()
        elif name == "slow_streams" and stack.config.name in slow_configs:
            await runner.slow_streams()
    h2 = await runner.h2load(scenarios) if use_h2load and not stack.config.no_extensions else []
    return rows, h2


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run (~1 minute)")
    parser.add_argument(
        "--scenarios", default=",".join(ALL_SCENARIOS), help="comma-separated subset"
    )
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset")
    parser.add_argument("--duration", type=float, help="seconds per measurement")
    parser.add_argument("--streams", type=int, help="open streams in the slow-stream scenario")
    parser.add_argument("--no-h2load", action="store_true", help="skip the h2load runs")
    parser.add_argument(
        "--slow-configs",
        default="h1",
        help="configurations that run the slow-stream scenario (it takes ~90 s each)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="output directory")
    parser.add_argument(
        "--update-readme", action="store_true", help="put the table into benchmarks/README.md"
    )
    parser.add_argument(
        "--report-only", type=Path, metavar="JSON", help="only re-render a saved result file"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return 1 if any request failed."""
    args = _parse_args(argv)
    if args.report_only is not None:
        # Re-render the tables, chart and README block from a saved result file.
        saved: dict[str, Any] = orjson.loads(args.report_only.read_bytes())
        paths = write_outputs(saved, args.out, update_readme=args.update_readme)
        print("wrote " + ", ".join(map(str, paths)))
        return 0
    plan = Plan.quick() if args.quick else Plan.full()
    if args.duration is not None or args.streams is not None:
        plan = Plan(
            args.duration or plan.duration,
            plan.concurrency,
            plan.tool_concurrency,
            args.streams or plan.streams,
            plan.trickle_events,
            plan.trickle_interval_ms,
            plan.ramp,
            plan.h2load_duration,
        )
    scenarios = [s for s in args.scenarios.split(",") if s]
    configs = [CONFIGS[c] for c in args.configs.split(",") if c]
    unknown = set(scenarios) - set(ALL_SCENARIOS)
    if unknown:
        print(f"unknown scenario(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    # Each open stream holds a socket on the client, two in the proxy and one in the simulator.
    fd_limit = raise_fd_limit(plan.streams * 3 + 1024)
    use_h2load = not args.no_h2load and h2load_available()
    if not args.no_h2load and not use_h2load:
        print("h2load not found (apt-get install nghttp2-client): skipping its runs", flush=True)
    started = time.time()
    report: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "quick": args.quick,
        "machine": _machine(),
        "plan": _plan_dict(plan),
        "fd_limit": fd_limit,
        "h2load_used": use_h2load,
        "runs": [],
        "h2load": [],
    }
    seen_upstreams: set[str] = set()
    slow_configs = set(args.slow_configs.split(","))
    with tempfile.TemporaryDirectory(prefix="kiro2api-bench-") as tmp:
        for config in configs:
            direct = config.upstream not in seen_upstreams
            seen_upstreams.add(config.upstream)
            print(f"configuration {config.name}:", flush=True)
            work = Path(tmp, config.name)
            work.mkdir()
            with running_stack(work, config) as stack:
                rows, h2 = trio.run(
                    run_config, stack, plan, scenarios, direct, use_h2load, slow_configs
                )
            report["runs"].extend(rows)
            report["h2load"].extend(h2)
    report["elapsed_s"] = round(time.time() - started, 1)
    errors = sum(r["errors"] for r in report["runs"]) + sum(h["errors"] for h in report["h2load"])
    report["errors_total"] = errors
    paths = write_outputs(report, args.out, update_readme=args.update_readme)
    print(f"\n{errors} error(s); {report['elapsed_s']} s; wrote " + ", ".join(map(str, paths)))
    return 1 if errors else 0


def _plan_dict(plan: Plan) -> dict[str, Any]:
    return {name: getattr(plan, name) for name in Plan.__slots__}


if __name__ == "__main__":
    raise SystemExit(main())
