"""What a phase replay needs of a project's traffic: the :class:`Workload` protocol.

A workload drives writes through the proxy while a context changes phase, and keeps
every write the system acknowledged as an :class:`AckedWrite`, so that
:func:`~migration_plans.testing.assertions.assert_no_lost_writes` can look for each one
on the phase's source of truth. :class:`ThreadedWorkload` is a base that runs named
writer loops in threads; a project gives it its steps (example, for a shop)::

    class ShopWorkload(ThreadedWorkload):
        def steps(self) -> dict[str, Step]:
            return {"catalog": self.create_product}

        def create_product(self, client: httpx.Client, rng: random.Random) -> None:
            answer = client.post("/api/products/", json={"sku": "X-1", "price": "9.50"})
            if answer.status_code != 201:
                return self.refuse("catalog", answer)
            key = answer.json()["id"]
            self.record(AckedWrite("catalog", "products", key, {"price": "9.50"}, "shared"))
"""

from __future__ import annotations

import random
import re
import threading
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import httpx
from sqlalchemy import Connection

from migration_plans.control.processes import wait_until
from migration_plans.core.phase import Side

if TYPE_CHECKING:
    from migration_plans.testing.topology import Topology

__all__ = ["AckedWrite", "Step", "ThreadedWorkload", "Workload", "WriteCheck"]


WriteCheck = Callable[[Connection, Side, "AckedWrite"], "str | None"]
"""Looks for a write that is not one mapped row on ``side``; a problem, or None if it is there."""


@dataclass(frozen=True)
class AckedWrite:
    """A write the system acknowledged (2xx) and must therefore never lose.

    ``table`` names a table pair of ``context``'s mapping and ``key`` the row's key;
    ``expected`` holds the row's monolith-form values by monolith column name
    (``{"price": "12.50"}``). A write that is not one mapped row (an order and the
    reservations it made) brings its own ``check``. ``phase`` is the context's phase
    when the write was acknowledged and ``request_id`` the answer's ``X-Request-ID``.
    """

    context: str
    table: str
    key: Any
    expected: Mapping[Any, Any]
    phase: str
    request_id: str = ""
    check: WriteCheck | None = field(default=None, compare=False, repr=False)


class Workload(Protocol):
    """Traffic through a topology that keeps its acknowledged writes."""

    @property
    def topology(self) -> Topology: ...

    def start(self) -> None:
        """Start writing (idempotent)."""

    def stop(self) -> None:
        """Stop writing; raise what broke a writer, if anything did."""

    def running(self) -> AbstractContextManager[Workload]:
        """Writing for the length of a ``with`` block."""
        ...

    def paused(self) -> AbstractContextManager[None]:
        """No request in flight and none started for the block (a write freeze)."""
        ...

    def acked_writes(self) -> list[AckedWrite]:
        """Every acknowledged write so far, in order."""
        ...

    @property
    def refused(self) -> Counter[str]:
        """Refused writes by kind (a killed service, a phase in the middle of changing)."""
        ...


Step = Callable[[httpx.Client, random.Random], None]
"""One request (or a few) of a writer; records what was acknowledged, refuses the rest."""


_TITLE = re.compile(r"<title>\s*(.*?)\s*</title>", re.IGNORECASE | re.DOTALL)


def answer_sample(answer: httpx.Response, limit: int = 300) -> str:
    """What a refused answer said, in ``limit`` characters: an HTML error page (Django's
    debug page, a server's default page) by its title, which names the exception."""
    body = answer.text
    title = _TITLE.search(body[:4096]) if "html" in answer.headers.get("content-type", "") else None
    if title is not None:
        body = "HTML page: " + " ".join(title.group(1).split())
    return body[:limit]


@dataclass
class _Stats:
    acked: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    samples: dict[str, str] = field(default_factory=dict)


class ThreadedWorkload(ABC):
    """A :class:`Workload` whose writers are threads, each calling its step in a loop.

    ``writers`` names a step of :meth:`steps` per thread (a name twice: two threads);
    each thread has its own logged-in client on the proxy and waits ``pace`` seconds
    between steps. Connection-level failures (a fault or a restart under way) count as
    refused; any other exception stops that writer and is raised by :meth:`stop`.
    """

    def __init__(
        self,
        topology: Topology,
        *,
        writers: Sequence[str],
        pace: float = 0.15,
        seed: int = 0,
    ) -> None:
        self.topology = topology
        self.writers = list(writers)
        self.pace = pace
        self.rng = random.Random(seed)
        self.writes: list[AckedWrite] = []
        self.stats = _Stats()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._go = threading.Event()
        self._go.set()
        self._busy = 0
        self._idle = threading.Condition(self._lock)
        self._threads: list[threading.Thread] = []
        self._errors: list[BaseException] = []

    @abstractmethod
    def steps(self) -> Mapping[str, Step]:
        """The writer steps by name."""

    def prepare(self) -> None:  # noqa: B027 (an optional hook, empty by default)
        """Called by :meth:`start` before the writers run (e.g. to pick rows to write)."""

    # -- what was written ---------------------------------------------------------------

    @property
    def refused(self) -> Counter[str]:
        return self.stats.refused

    def acked_writes(self) -> list[AckedWrite]:
        with self._lock:
            return list(self.writes)

    def acked(self, table: str | None = None) -> int:
        """How many writes (of ``table``) were acknowledged so far."""
        with self._lock:
            return sum(1 for w in self.writes if table is None or w.table == table)

    def record(self, write: AckedWrite) -> None:
        """Keep an acknowledged write."""
        with self._lock:
            self.writes.append(write)
            self.stats.acked[write.table] += 1

    def refuse(self, kind: str, answer: httpx.Response) -> None:
        """Count a refused write (and keep the first answer of its kind and status)."""
        name = f"{kind}: {answer.status_code}"
        self.stats.refused[name] += 1
        self.stats.samples.setdefault(name, answer_sample(answer))

    # -- running ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer threads (idempotent)."""
        if self._threads:
            return
        self.prepare()
        self._stop.clear()
        for index, kind in enumerate(self.writers):
            # Seeded here, in writer order: each writer's sequence is the same every run.
            rng = random.Random(self.rng.random() + index)
            thread = threading.Thread(
                target=self._loop, args=(kind, rng), name=f"workload-{kind}-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop the writers after their current request; re-raise a writer's crash."""
        self._stop.set()
        self._go.set()
        for thread in self._threads:
            thread.join(timeout=60)
        self._threads.clear()
        if self._errors:
            raise self._errors[0]

    @contextmanager
    def running(self) -> Iterator[ThreadedWorkload]:
        self.start()
        try:
            yield self
        finally:
            self.stop()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No request in flight and none started for the block (a write freeze)."""
        self._go.clear()
        with self._idle:
            self._idle.wait_for(lambda: self._busy == 0, timeout=60)
        try:
            yield
        finally:
            self._go.set()

    def wait_for_writes(self, count: int, *, table: str | None = None, timeout: float = 60) -> None:
        """Wait until ``count`` more writes (of ``table``) were acknowledged."""
        target = self.acked(table) + count
        wait_until(
            lambda: self.acked(table) >= target or bool(self._errors),
            timeout=timeout,
            interval=0.1,
            what=f"{count} more acknowledged writes ({table or 'any'}); refused: "
            f"{self.refused}, e.g. {self.stats.samples}",
        )
        if self._errors:
            raise self._errors[0]

    def _loop(self, kind: str, rng: random.Random) -> None:
        step = self.steps()[kind]
        with self.topology.client() as client:
            while not self._stop.is_set():
                self._go.wait()
                if self._stop.is_set():
                    return
                with self._lock:
                    self._busy += 1
                try:
                    step(client, rng)
                except httpx.TransportError as exc:
                    self.stats.refused[f"{kind}: {type(exc).__name__}"] += 1
                except Exception as exc:
                    self._errors.append(exc)
                    return
                finally:
                    with self._idle:
                        self._busy -= 1
                        self._idle.notify_all()
                self._stop.wait(self.pace)
