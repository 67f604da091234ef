"""Profile the proxy under scenarios 1–3 and print the top of the profile.

The proxy runs under ``python -m cProfile`` (CPU per function, the default) or ``python -m
pyinstrument`` (a sampled call tree) in its own process; the load generator drives
each scenario at the given concurrency, then the proxy is stopped and the report is written.

    .venv/bin/python benchmarks/profile_proxy.py [--seconds 4] [--concurrency 16] [--lines 60]
"""

from __future__ import annotations

import argparse
import pstats
import tempfile
from pathlib import Path

import _bootstrap  # noqa: F401  (first: puts the checkout on sys.path)
import trio
from _load import closed_loop, make_client
from _scenarios import SCENARIOS, proxy_spec
from _stack import ProxyConfig, Stack, running_stack

RESULTS = Path(__file__).resolve().parent / "results"


async def _drive(stack: Stack, scenarios: list[str], concurrency: int, seconds: float) -> None:
    for name in scenarios:
        spec = proxy_spec(stack, SCENARIOS[name])
        async with make_client(connections=concurrency + 4) as client:
            result = await closed_loop(client, spec, concurrency=concurrency, duration=seconds)
        summary = result.summary()
        print(f"{name}: {summary['rps']} req/s, {summary['errors']} errors", flush=True)


def main() -> int:
    """Run the profile; write ``results/profile-<config>.txt`` and print its top lines."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="per scenario")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--scenarios", default="nonstream,stream200,stream5000")
    parser.add_argument("--config", default="h1", choices=["h1", "tls-h2", "h1-noext"])
    parser.add_argument("--lines", type=int, default=70, help="lines of the report to print")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--tool",
        choices=["cprofile", "pyinstrument"],
        default="cprofile",
        help="cProfile: CPU per function; pyinstrument: sampled wall-clock call tree",
    )
    args = parser.parse_args()
    config = {
        "h1": ProxyConfig("h1"),
        "tls-h2": ProxyConfig("tls-h2", tls=True),
        "h1-noext": ProxyConfig("h1-noext", no_extensions=True),
    }[args.config]
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "pstats" if args.tool == "cprofile" else "txt"
    report = args.out / f"profile-{config.name}.{suffix}"
    with (
        tempfile.TemporaryDirectory(prefix="kiro2api-profile-") as tmp,
        running_stack(Path(tmp), config, profile=report) as stack,
    ):
        trio.run(_drive, stack, args.scenarios.split(","), args.concurrency, args.seconds)
    if args.tool == "cprofile":
        text = report.with_suffix(".txt")
        with text.open("w") as out:
            stats = pstats.Stats(str(report), stream=out)
            stats.sort_stats("tottime").print_stats(args.lines)
            stats.sort_stats("cumulative").print_stats(args.lines)
        report = text
    lines = report.read_text().splitlines()
    print("\n".join(lines[: args.lines + 20]))
    print(f"\nfull report: {report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
