"""``python -m kiro2api.simulator``: run the upstream simulator on its own.

For benchmarks and manual poking. Prints the base URL and the credentials to use, then serves
until interrupted.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from dataclasses import replace
from typing import TextIO

import trio

from kiro2api.errors import ConfigError
from kiro2api.settings import mask_secret
from kiro2api.simulator._config import DEMO_REFRESH_TOKEN, SimulatorConfig
from kiro2api.simulator._server import Simulator

__all__ = ["build_parser", "main"]


def build_parser(prog: str = "kiro2api simulate") -> argparse.ArgumentParser:
    """The command-line parser (also used by ``kiro2api simulate``)."""
    parser = argparse.ArgumentParser(prog=prog, description="Run the Kiro upstream simulator.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port to bind (8765; 0 = any)")
    parser.add_argument("--tls", action="store_true", help="serve HTTPS (h2 + http/1.1)")
    parser.add_argument("--accounts", metavar="FILE", help="JSON accounts file (default: demo)")
    parser.add_argument("--max-body-bytes", type=int, default=None, help="payload limit (600000)")
    parser.add_argument("--log-level", default="info", help="logging level (info)")
    return parser


def _show(value: str | None) -> str:
    # Only the demo token is shown in full: it is public and opens nothing but this process.
    if value is None:
        return "-"
    return value if value.startswith(DEMO_REFRESH_TOKEN) else mask_secret(value)


def _describe(sim: Simulator, url: str, out: TextIO) -> None:
    print(f"kiro2api upstream simulator on {url}", file=out)
    for acct in sim.config.accounts:
        if acct.kind == "apikey":
            line = f"  account {acct.id} (apikey): api key {_show(acct.api_key)}"
        else:
            line = f"  account {acct.id} ({acct.kind}): refresh token {_show(acct.refresh_token)}"
        if acct.kind == "idc":
            line += f", client id {acct.client_id}, client secret {_show(acct.client_secret)}"
        print(line, file=out)
    if sim.ca_pem_path is not None:
        print(f"  trust this CA: {sim.ca_pem_path}", file=out)
    out.flush()


async def _run(sim: Simulator, out: TextIO) -> None:
    # SIGTERM (container stop, test harness) ends the run like Ctrl-C, so the temporary TLS
    # files are removed.
    with trio.open_signal_receiver(signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            url = await nursery.start(sim.serve)
            _describe(sim, url, out)
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break


def main(argv: list[str] | None = None) -> int:
    """Run the simulator until interrupted; return the process exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    options: dict[str, object] = {"host": args.host, "port": args.port, "tls": args.tls}
    if args.max_body_bytes is not None:
        options["max_body_bytes"] = args.max_body_bytes
    try:
        base = SimulatorConfig.from_file(args.accounts) if args.accounts else SimulatorConfig.demo()
        config = replace(base, **options)  # type: ignore[arg-type]
        sim = Simulator(config)
        trio.run(_run, sim, sys.stdout)
    except ConfigError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
