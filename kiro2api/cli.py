"""The command line: ``kiro2api serve``, ``kiro2api simulate`` and ``kiro2api config check``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import trio

from kiro2api import __version__
from kiro2api.errors import ConfigError
from kiro2api.logs import configure_logging
from kiro2api.settings import Settings, load_settings

if TYPE_CHECKING:
    from kiro2api.server import Server

__all__ = ["main"]

log = logging.getLogger("kiro2api.cli")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kiro2api",
        description="Serve the Anthropic Messages and OpenAI Chat Completions APIs from Kiro "
        "accounts. Settings come from the environment and ./.env (see README).",
    )
    parser.add_argument("--version", action="version", version=f"kiro2api {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = commands.add_parser(
        "serve",
        help="run the proxy",
        description="Run the proxy (Hypercorn, trio worker, in process).",
    )
    serve.add_argument("--host", help="address to bind (HOST; default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (PORT; default 8080)")
    serve.add_argument(
        "--demo",
        action="store_true",
        help="run the built-in upstream simulator in process; no credentials needed",
    )

    simulate = commands.add_parser(
        "simulate",
        help="run the upstream simulator alone",
        description="Run the fake Kiro upstream (auth, usage limits, generateAssistantResponse).",
        add_help=False,
    )
    simulate.add_argument("args", nargs=argparse.REMAINDER, help="simulator options (see --help)")

    config = commands.add_parser("config", help="inspect the configuration")
    config_commands = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    config_commands.add_parser(
        "check",
        help="print the effective configuration (secrets masked); non-zero exit on problems",
        description="Print the effective configuration (environment, then ./.env) with secrets "
        "masked, and check the accounts and the model map. Exits 2 with one line per problem.",
    )
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    overrides: dict[str, object] = {}
    if getattr(args, "host", None):
        overrides["host"] = args.host
    if getattr(args, "port", None) is not None:
        overrides["port"] = args.port
    if getattr(args, "demo", False):
        overrides["demo"] = True
    return overrides


def _config_check() -> int:
    try:
        settings = load_settings()
    except ConfigError as exc:
        for line in str(exc).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return 2
    for name, value in settings.describe():
        print(f"{name:32} {value}")
    try:
        from kiro2api.pool import CredentialStore  # noqa: PLC0415  (only for this command)
        from kiro2api.server import load_model_map  # noqa: PLC0415

        load_model_map(settings.model_map)
        accounts = CredentialStore(settings.auth_token, settings.state_dir).load()
    except ConfigError as exc:
        for line in str(exc).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return 2
    print(f"{'accounts':32} {len(accounts)} configured")
    return 0


async def _serve(settings: Settings) -> None:
    from kiro2api.server import Server  # noqa: PLC0415  (keeps `--help` fast)

    server = Server(settings)
    async with trio.open_nursery() as nursery:

        async def run_server(
            *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
        ) -> None:
            try:
                await server.run(task_status=task_status)
            finally:
                nursery.cancel_scope.cancel()  # the server is done: stop watching signals

        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            url = await nursery.start(run_server)
            _banner(server, url)
            async for signum in signals:
                if signum == signal.SIGHUP:
                    if server.state is not None:
                        log.info("SIGHUP: reloading the accounts")
                        try:
                            await server.state.pool.reload()
                        except ConfigError as exc:
                            log.error("reload failed, keeping the current accounts: %s", exc)
                    continue
                if server.stop.is_set():
                    log.warning("second signal: exiting at once")
                    nursery.cancel_scope.cancel()
                    return
                log.info("received %s: shutting down gracefully", signal.Signals(signum).name)
                server.stop.set()


def _banner(server: Server, url: str) -> None:
    settings = server.settings
    log.info("kiro2api %s listening on %s", __version__, url)
    if not settings.demo:
        return
    log.warning("DEMO MODE: the upstream is the built-in simulator; answers are not real")
    # Only a key made up for this run is printed; a configured key stays out of every output.
    key = server.generated_key or "<your KIRO_CLIENT_TOKEN>"
    print(
        "\nkiro2api demo is running; the upstream is SIMULATED. Try it with:\n"
        f"  export ANTHROPIC_BASE_URL={url} ANTHROPIC_API_KEY={key}\n"
        f"  curl -s {url}/v1/messages -H 'x-api-key: {key}' "
        "-H 'content-type: application/json' "
        '-d \'{"model":"claude-sonnet-4-5","max_tokens":100,'
        '"messages":[{"role":"user","content":"Hello"}]}\'\n',
        file=sys.stderr,
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kiro2api`` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["simulate"]:
        # Everything after `simulate` belongs to the simulator's own parser (its --help too).
        from kiro2api.simulator.__main__ import main as simulate  # noqa: PLC0415

        return simulate(argv[1:])
    args = _parser().parse_args(argv)
    if args.command == "config":
        return _config_check()
    try:
        settings = load_settings(overrides=_overrides(args))
    except ConfigError as exc:
        for line in str(exc).splitlines():
            print(f"kiro2api: configuration error: {line}", file=sys.stderr)
        return 2
    configure_logging(settings)
    try:
        trio.run(_serve, settings)
    except ConfigError as exc:
        for line in str(exc).splitlines():
            print(f"kiro2api: configuration error: {line}", file=sys.stderr)
        return 2
    return 0
