"""Named faults injected into a started stack, each with its recovery.

    faults = Faults(stack, broker)
    with faults.inject("kill_relay", "catalog"):
        ...                 # the relay is dead for the block
    # restarted and healthy again here

:data:`FAULTS` lists the names: ``kill_service`` (every replica), ``kill_relay``
(SIGKILL), ``kill_saga_worker`` (the monolith's Celery worker of the order sagas),
``stop_broker`` (the private Redis only), ``service_db_unreachable`` (PostgreSQL
``ALLOW_CONNECTIONS false`` and the open backends terminated) and
``drop_shadow_upstream`` (the service a shadow copy goes to disappears).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import sql

from migration_plans.control.stack import SAGA_WORKER, Stack, replica_name
from migration_plans.core.database import libpq_url, with_database
from migration_plans.testing.broker import PrivateRedis

__all__ = ["FAULTS", "Faults"]

log = logging.getLogger("strangler.replay")

FAULTS = (
    "kill_service",
    "kill_relay",
    "kill_saga_worker",
    "stop_broker",
    "service_db_unreachable",
    "drop_shadow_upstream",
)
"""Named fault points understood by :meth:`Faults.inject`."""

CONTEXTLESS = frozenset({"stop_broker", "kill_saga_worker"})


class Faults:
    """Inject and recover the named faults on ``stack`` (and its private ``broker``)."""

    def __init__(self, stack: Stack, broker: PrivateRedis | None = None) -> None:
        self.stack = stack
        self.broker = broker
        self.active: list[tuple[str, str | None]] = []
        self._down: set[str] = set()

    @contextmanager
    def inject(self, name: str, context: str | None = None) -> Iterator[None]:
        """Inject fault ``name`` (one of :data:`FAULTS`) for the block, then recover.

        ``context`` names the service whose process, relay or database is hit (not
        needed for ``stop_broker``). Recovery restarts what was killed and waits until
        it is healthy again.
        """
        if name not in FAULTS:
            raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}")
        if name not in CONTEXTLESS and context is None:
            raise ValueError(f"fault {name!r} needs a context")
        getattr(self, name)(context)
        self.active.append((name, context))
        started = time.perf_counter()
        try:
            yield
        finally:
            self.active.remove((name, context))
            injected = time.perf_counter()
            self.recover(name, context)
            log.info(
                "fault %s (%s): held %.1fs, recovered in %.1fs",
                name,
                context or "-",
                injected - started,
                time.perf_counter() - injected,
            )

    # -- the faults -----------------------------------------------------------------------

    def kill_service(self, context: str | None) -> None:
        """SIGKILL every replica of the context's service mid-flight (writes in progress
        are cut; nothing answers for the context until recovery)."""
        assert context is not None
        for index in range(self.stack.config.replicas):
            self.stack.processes[replica_name(context, index)].kill()
        self._down.add(context)

    def kill_saga_worker(self, context: str | None = None) -> None:
        """SIGKILL the monolith's saga worker (retries it held are cut mid-step)."""
        worker = self.stack.processes.get(SAGA_WORKER)
        if worker is None:
            pytest.skip(
                "kill_saga_worker: this stack runs no saga worker "
                f"(monolith_celery_app of {self.stack.config.monolith_settings!r} is empty)"
            )
        worker.kill()

    def kill_relay(self, context: str | None) -> None:
        """SIGKILL the context's relay loop (its in-memory batch is lost; the outbox is not)."""
        assert context is not None
        self.stack.processes[f"relay-{context}"].kill()
        self._down.add(context)

    def drop_shadow_upstream(self, context: str | None) -> None:
        """The shadow upstream (the service, in ``shared``) disappears; users must not notice."""
        self.kill_service(context)

    def stop_broker(self, context: str | None = None) -> None:
        """Stop the private Redis broker (the Celery workers lose their connection)."""
        if self.broker is None:
            pytest.skip("stop_broker needs the PostgreSQL + private Redis topology")
        self.broker.stop()

    def service_db_unreachable(self, context: str | None) -> None:
        """Refuse new connections to the service's database and cut the open ones."""
        assert context is not None
        self._allow_connections(context, False)

    def _allow_connections(self, context: str, allowed: bool) -> None:
        url = self.stack.config.service_dbs[context]
        if not url.startswith("postgres"):
            pytest.skip("service_db_unreachable needs PostgreSQL")
        name = url.rsplit("/", 1)[1].split("?", 1)[0]
        admin = with_database(libpq_url(url), "postgres")
        flag = sql.SQL("true" if allowed else "false")
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(
                sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(sql.Identifier(name), flag)
            )
            if not allowed:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                )

    # -- recovery -------------------------------------------------------------------------

    def recover(self, name: str, context: str | None) -> None:
        """Undo fault ``name``: restart, reopen, and wait until healthy."""
        if name == "stop_broker":
            if self.broker is not None and self.broker.process is None:
                self.broker.start()
        elif name == "kill_saga_worker":
            self.stack.restart_saga_worker()
        elif name == "service_db_unreachable":
            assert context is not None
            self._allow_connections(context, True)
        elif context is not None and context in self._down:
            self._down.discard(context)
            self.stack.restart_dead(context)

    def recover_all(self) -> None:
        """Undo every active fault; restart a context whose service or relay exited."""
        for name, context in reversed(self.active):
            self.recover(name, context)
        self.active.clear()
        self._down.update(
            name.removeprefix("relay-")
            for name in self.stack.dead()
            if name.removeprefix("relay-") in self.stack.config.service_ports
        )
        for context in sorted(self._down):
            self.recover("kill_service", context)
        if SAGA_WORKER in self.stack.dead():
            self.stack.restart_saga_worker()
        if self.broker is not None and self.broker.process is None:
            self.broker.start()
