"""The :class:`Simulator`: config, live state and the hypercorn (trio worker) server around them."""

from __future__ import annotations

import logging
import shutil
import ssl
import tempfile
from functools import partial
from pathlib import Path
from typing import cast

import trio
import trustme
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve
from hypercorn.typing import ASGIFramework

from kiro2api.errors import ConfigError
from kiro2api.simulator._app import SimulatorApp
from kiro2api.simulator._config import SimulatorConfig
from kiro2api.simulator._directives import parse_directives
from kiro2api.simulator._state import AccountState, ReceivedRequest, SimState

__all__ = ["Simulator"]

logger = logging.getLogger("kiro2api.simulator")


class Simulator:
    """A faithful fake of the Kiro upstream, served in process.

    Start it in a nursery; ``serve`` reports the base URL once it listens and runs until the
    nursery is cancelled::

        sim = Simulator(SimulatorConfig.demo())
        async with trio.open_nursery() as nursery:
            url = await nursery.start(sim.serve)
            ...
            nursery.cancel_scope.cancel()

    The live state is inspectable while it runs: :attr:`requests` (what
    ``generateAssistantResponse`` received), :meth:`account` (usage and refresh counters).

    Args:
        config: Accounts and limits; :meth:`SimulatorConfig.demo` when omitted.
    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig.demo()
        self.state = SimState(self.config)
        self.app = SimulatorApp(self.state)
        #: The base URL, e.g. ``http://127.0.0.1:54321``, once :meth:`serve` listens.
        self.url: str | None = None
        #: The throw-away CA that signed the server certificate (``tls`` only).
        self.ca: trustme.CA | None = trustme.CA() if self.config.tls else None
        #: The CA certificate as a PEM file, while :meth:`serve` runs with ``tls``.
        self.ca_pem_path: Path | None = None

    # ------------------------------------------------------------------ serving

    async def serve(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        """Bind, report the base URL through ``task_status.started(url)``, serve until cancelled.

        Raises:
            ConfigError: when the address cannot be bound.
        """
        hc = HypercornConfig()
        hc.bind = [f"{self.config.host}:{self.config.port}"]
        hc.accesslog = None
        hc.errorlog = logging.getLogger("kiro2api.simulator.hypercorn")
        hc.graceful_timeout = 1.0
        # hypercorn closes a connection after 1,000 requests by default and, over HTTP/2, resets
        # the streams still open on it; the real upstream drains connections gracefully, so the
        # simulator must not make load tests measure hypercorn's recycling instead.
        hc.keep_alive_max_requests = 1_000_000
        hc.backlog = 2048
        tls_dir: str | None = None
        try:
            if self.ca is not None:
                tls_dir = tempfile.mkdtemp(prefix="kiro2api-sim-")
                cert = self.ca.issue_cert("127.0.0.1", "localhost", "::1")
                pem = Path(tls_dir, "server.pem")
                cert.private_key_and_cert_chain_pem.write_to_path(str(pem))
                self.ca_pem_path = Path(tls_dir, "ca.pem")
                self.ca.cert_pem.write_to_path(str(self.ca_pem_path))
                hc.certfile = hc.keyfile = str(pem)
                hc.alpn_protocols = ["h2", "http/1.1"]
            async with trio.open_nursery() as nursery:
                try:
                    binds: list[str] = await nursery.start(
                        partial(
                            hypercorn_serve,
                            cast("ASGIFramework", self.app),
                            hc,
                            shutdown_trigger=trio.sleep_forever,
                        )
                    )
                except OSError as exc:
                    raise ConfigError(f"simulator cannot bind {hc.bind[0]}: {exc}") from exc
                self.url = binds[0]
                logger.info("upstream simulator listening on %s", self.url)
                task_status.started(self.url)
        finally:
            self.url = None
            if tls_dir is not None:
                shutil.rmtree(tls_dir, ignore_errors=True)
                self.ca_pem_path = None

    def client_ssl_context(self) -> ssl.SSLContext:
        """An SSL context that trusts this simulator's CA (offers h2 and http/1.1 by ALPN).

        Raises:
            ConfigError: when the simulator does not serve TLS.
        """
        if self.ca is None:
            raise ConfigError("the simulator was configured without tls")
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        context.set_alpn_protocols(["h2", "http/1.1"])
        return context

    # ------------------------------------------------------------------ inspection

    @property
    def requests(self) -> list[ReceivedRequest]:
        """The ``generateAssistantResponse`` requests received so far (oldest first)."""
        return list(self.state.records)

    @property
    def last_request(self) -> ReceivedRequest:
        """The latest ``generateAssistantResponse`` request.

        Raises:
            LookupError: when none was received yet.
        """
        if not self.state.records:
            raise LookupError("the simulator has not received a generateAssistantResponse yet")
        return self.state.records[-1]

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        self.state.records.clear()

    def account(self, account_id: str) -> AccountState:
        """The live state of one account: usage, request/refresh counters, current tokens.

        Raises:
            KeyError: for an unknown account id.
        """
        return self.state.accounts[account_id]

    def refresh_count(self, account_id: str) -> int:
        """How many successful token refreshes ``account_id`` had."""
        return self.account(account_id).refresh_calls

    def issue_access_token(self, account_id: str) -> str:
        """Issue an access token directly, skipping the refresh call (call inside trio)."""
        return self.state.issue_access_token(self.account(account_id), trio.current_time())

    def inject(
        self, directive: str, *, account_id: str | None = None, times: int | None = 1
    ) -> None:
        """Apply a directive to the next ``generateAssistantResponse`` requests.

        Like an account's standing :attr:`AccountConfig.faults`, but added while running; for
        faults a test cannot write into the message (e.g. the proxy's own retries).

        Args:
            directive: The text inside ``[[sim: ...]]``, e.g. ``"http status=503"``.
            account_id: Only requests of this account; ``None`` for every account.
            times: How many requests it applies to; ``None`` for all of them.

        Raises:
            RequestError: when the directive does not parse.
            KeyError: for an unknown account id.
        """
        if account_id is not None:
            self.account(account_id)
        (parsed,) = parse_directives(f"[[sim:{directive}]]")
        text = parsed.source[len("[[sim:") : -len("]]")]
        if times is not None:
            text = f"{text} times={times}" if parsed.times is None else text
        key = f"inject\x00{len(self.state.injected)}"
        self.state.injected.append((key, account_id, text))

    def expire_access_tokens(self, account_id: str | None = None) -> None:
        """Invalidate every access token issued so far (of one account, or of all)."""
        self.state.expire_access_tokens(account_id)
