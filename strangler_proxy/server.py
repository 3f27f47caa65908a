"""Run the proxy under uvicorn (uvloop, httptools) with JSON logs on stderr.

Under ``workers > 1`` the proxy is built (and its table validated) once, then forked;
each worker starts its own threads, processes and tasks in the ASGI lifespan startup
(:meth:`StranglerProxy.start`) and stops them at shutdown.

run(ProxyConfig.from_env(routes=Path("routes.yaml"), port=8000))
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Mapping
from contextlib import suppress

import uvicorn

from migration_plans.core.logs import configure_json_logging
from strangler_proxy.app import StranglerProxy
from strangler_proxy.config import ProxyConfig
from strangler_proxy.edge.limits import EdgeLimits
from strangler_proxy.edge.protocol import EdgeProtocol
from strangler_proxy.introspection import AdminMount
from strangler_proxy.routetable import PhaseRules

log = logging.getLogger("strangler.proxy")
ACCESS_LOGGER = "strangler.proxy.access"


def configure_logging(access_log: bool) -> None:
    """JSON lines on stderr for the ``strangler`` loggers; access-log lines are JSON already."""
    configure_json_logging(["strangler"], level="INFO", raw_loggers={ACCESS_LOGGER})
    logging.getLogger(ACCESS_LOGGER).disabled = not access_log


def run(
    config: ProxyConfig,
    phase_rules: PhaseRules | None = None,
    admin_mounts: Mapping[str, AdminMount] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT; SIGHUP reloads the route table (in every worker)."""
    configure_logging(config.access_log)
    # The table is validated before anything listens.
    proxy = StranglerProxy(config, phase_rules=phase_rules, admin_mounts=admin_mounts)
    if config.workers == 1:
        serve(proxy, config)
        return
    Supervisor(proxy, config, bind(config.host, config.port)).run()


def serve(proxy: StranglerProxy, config: ProxyConfig, sock: socket.socket | None = None) -> None:
    """Run one uvicorn server for ``proxy`` (on ``sock`` when given)."""
    proxy.handle_sighup = True
    limits = edge_limits(config)
    protocol = EdgeProtocol.bound(limits)  # its own connection gate in each worker
    proxy.metrics.watch_edge(protocol.gate)
    uvicorn_config = uvicorn.Config(
        proxy,
        host=config.host,
        port=config.port,
        loop="uvloop",
        http=protocol,
        ws="none",
        lifespan="on",
        access_log=False,
        server_header=False,
        date_header=False,
        log_level="warning",
        timeout_keep_alive=limits.idle_timeout,  # type: ignore[arg-type]  # a float works
        proxy_headers=False,  # X-Forwarded-* from clients are never trusted
    )
    uvicorn.Server(uvicorn_config).run(sockets=[sock] if sock is not None else None)


def edge_limits(config: ProxyConfig) -> EdgeLimits:
    """The limits every client connection of this process gets."""
    return EdgeLimits(
        header_timeout=config.client_header_timeout_seconds,
        body_idle_timeout=config.client_body_idle_seconds,
        idle_timeout=config.client_idle_seconds,
        max_connections=config.connection_cap,
        max_connections_per_client=config.max_connections_per_client,
        max_header_bytes=config.max_header_bytes,
        max_target_bytes=config.max_target_bytes,
    )


def bind(host: str, port: int) -> socket.socket:
    """The listening socket the workers share."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(4096)
    sock.set_inheritable(True)
    return sock


class Supervisor:
    """Forks ``config.workers`` proxies sharing one socket; forwards SIGHUP, stops on SIGTERM.

    Each worker is a whole proxy: its own table holder (all watch the same file), its own
    upstream pools and breakers, its own admin API and metrics (scrape each worker, or
    run one worker per port). A worker that dies is replaced; one that dies within a
    second of starting stops the whole proxy rather than crash-looping.
    """

    def __init__(self, proxy: StranglerProxy, config: ProxyConfig, sock: socket.socket) -> None:
        self.proxy = proxy
        self.config = config
        self.sock = sock
        self.children: dict[int, float] = {}
        self.stopping = False

    def run(self) -> None:
        for _ in range(self.config.workers):
            self._spawn()
        signal.signal(signal.SIGHUP, lambda *_: self._forward(signal.SIGHUP))
        signal.signal(signal.SIGTERM, lambda *_: self._stop(signal.SIGTERM))
        signal.signal(signal.SIGINT, lambda *_: self._stop(signal.SIGINT))
        while self.children:
            try:
                pid, _ = os.wait()
            except ChildProcessError:
                break
            started = self.children.pop(pid, time.monotonic())
            if self.stopping:
                continue
            if time.monotonic() - started < 1.0:
                log.error("worker %d died at start; stopping", pid)
                self._stop(signal.SIGTERM)
                continue
            log.warning("worker %d died; starting another", pid)
            self._spawn()

    def _spawn(self) -> None:
        pid = os.fork()
        if pid == 0:
            for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, signal.SIG_DFL)
            code = 0
            try:
                serve(self.proxy, self.config, self.sock)
            except BaseException:
                log.exception("worker failed")
                code = 1
            os._exit(code)
        self.children[pid] = time.monotonic()

    def _forward(self, signum: int) -> None:
        for pid in list(self.children):
            with suppress(ProcessLookupError):
                os.kill(pid, signum)

    def _stop(self, signum: int) -> None:
        self.stopping = True
        self._forward(signum)
