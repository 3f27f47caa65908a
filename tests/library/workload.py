"""The library's side of the phase replay: how it is seeded, how the librarian logs in,
and the traffic (:class:`LibraryWorkload`) the journey runs while ``lending`` changes phase.

Every write goes through the proxy and touches one mapping shape:

- catalogue: a branch (text key, an empty city), a book (ISBN key) and its title change,
  a copy (composite key) and its condition change (an enum map);
- members: a member (one monolith row, two service rows) and their new e-mail;
- loans: a loan (an integer id from the monolith, a UUID from the service), with JSON
  ``meta``, empty or written ``notes`` and a fine (decimal text, a user transform), then
  returned (the status enum map);
- backoffice: the monolith's own code writing its tables with SQL, not through the API
  (a member renamed, a book retitled, a branch's copies marked worn in one statement):
  captured and relayed to the service in dual_write. It writes in shared and dual_write
  only, and not while :meth:`LibraryWorkload.backoffice_stopped` (around a move to
  split: in split the monolith's code calls the service instead).

Books are retitled from both sides, never the same ones: the API retitles the seeded
books 11-20, the backoffice 1-10; loans of all of them copy the title (``copy_of``).

The acknowledged key is the one the answer shows (a loan's monolith id or UUID); the
checks find the row on either side through the mapping and the id map.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Engine, bindparam, create_engine, text

from migration_plans.control.processes import wait_until
from migration_plans.control.stack import Stack
from migration_plans.core.database import sqlalchemy_url
from migration_plans.testing import AckedWrite, Step, ThreadedWorkload, Topology

CONTEXT = "lending"
USERNAME, PASSWORD = "librarian", "password"
SEEDED_BRANCHES = ("CEN", "NOR", "EAS")
SEEDED_BOOKS = tuple(f"978{index:010d}" for index in range(1, 21))
SEEDED_MEMBERS = tuple(range(1, 9))
API_RETITLED, MONOLITH_RETITLED = SEEDED_BOOKS[10:], SEEDED_BOOKS[:10]
MONOLITH_WRITES = ("shared", "dual_write")
"""The phases in which the monolith's own code writes the context's tables."""
CONDITIONS = ("n", "g", "w", "d")


def seed_library(stack: Stack) -> None:
    """Seed the migrated monolith (the ``replay_seed`` hook): the same commands as the shop's."""
    stack.run_cli("monolith", "manage", "seed_library", "--seed", "7")


def log_librarian_in(client: httpx.Client) -> dict[str, str]:
    """The seeded librarian's token, as the header the library's API wants."""
    answer = client.post("/api/v1/auth/token/", json={"username": USERNAME, "password": PASSWORD})
    answer.raise_for_status()
    return {"Authorization": f"Token {answer.json()['token']}"}


class LibraryWorkload(ThreadedWorkload):
    """Concurrent library traffic through the proxy; keeps every acknowledged write.

    Only 2xx answers are recorded; refusals (a killed service, a phase in the middle of
    changing) are counted in :attr:`refused`.
    """

    def __init__(
        self,
        topology: Topology,
        *,
        writers: tuple[str, ...] = ("catalogue", "members", "loans", "backoffice"),
        pace: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__(topology, writers=writers, pace=pace, seed=seed)
        self._backoffice = threading.Lock()
        self._backoffice_on = True
        self._engine: Engine | None = None
        self.monolith_writes: Counter[str] = Counter()
        """SQL writes of the monolith's own code, by phase."""

    def steps(self) -> Mapping[str, Step]:
        return {
            "catalogue": self._catalogue,
            "members": self._members,
            "loans": self._loans,
            "backoffice": self._monolith_code,
        }

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

    @contextmanager
    def backoffice_stopped(self) -> Iterator[None]:
        """No monolith-side write in flight or started for the block (the one in flight
        finishes first)."""
        with self._backoffice:
            self._backoffice_on = False
        try:
            yield
        finally:
            with self._backoffice:
                self._backoffice_on = True

    def _ack(self, table: str, key: Any, expected: Mapping[str, Any], answer: httpx.Response,
             phase: str) -> None:  # fmt: skip
        rid = answer.headers.get("x-request-id", "")
        self.record(AckedWrite(CONTEXT, table, key, dict(expected), phase, rid))

    def _write(
        self, client: httpx.Client, kind: str, method: str, path: str, body: dict[str, Any],
        status: int,
    ) -> tuple[httpx.Response | None, str]:  # fmt: skip
        """One write: its answer if it is ``status``, else None (refused); the phase it was
        acknowledged in (read after the answer: a write answered during a switch counts
        for the phase that follows, whose source of truth must hold it)."""
        answer = client.request(method, path, json=body)
        if answer.status_code != status:
            self.refuse(kind, answer)
            return None, ""
        return answer, self.topology.phase(CONTEXT)

    def _change(
        self, client: httpx.Client, table: str, key: Any, path: str,
        before: Mapping[str, Any], change: dict[str, Any],
    ) -> bool:  # fmt: skip
        """PATCH ``change`` onto an acknowledged row whose values were ``before``.

        Acknowledged: the row holds ``before`` and ``change``. Answered with a 5xx or
        not at all (a service killed between its commit and its answer), the change may
        or may not have landed: only the columns it did not touch stay certain.
        """
        try:
            answer = client.patch(path, json=change)
        except httpx.TransportError:
            self._uncertain(table, key, before, change)
            raise  # the workload counts it as refused
        if answer.status_code == 200:
            self._ack(table, key, {**before, **change}, answer, self.topology.phase(CONTEXT))
            return True
        self.refuse(table, answer)
        if answer.status_code >= 500:
            self._uncertain(table, key, before, change)
        return False

    def _uncertain(
        self, table: str, key: Any, before: Mapping[str, Any], change: Mapping[str, Any]
    ) -> None:
        certain = {name: value for name, value in before.items() if name not in change}
        phase = self.topology.phase(CONTEXT)
        self.record(AckedWrite(CONTEXT, table, key, certain, phase))

    def _catalogue(self, client: httpx.Client, rng: random.Random) -> None:
        number = rng.randrange(10**9)
        if number % 3 == 0:
            seeded = rng.choice(API_RETITLED)
            change = {"title": f"Retitled {number}"}
            self._change(client, "books", seeded, f"/api/v1/books/{seeded}/", {}, change)
        if number % 4 == 0:
            code = f"B{number}"
            branch = {"code": code, "name": f"Branch {number}", "city": ""}
            answer, phase = self._write(
                client, "branches", "POST", "/api/v1/branches/", branch, 201
            )
            if answer is not None:
                self._ack("branches", code, {"name": branch["name"], "city": ""}, answer, phase)
        isbn = f"979{number:010d}"
        book = {"isbn": isbn, "title": f"Replay {number}", "author": "Phase Replay"}
        answer, phase = self._write(client, "books", "POST", "/api/v1/books/", book, 201)
        if answer is None:
            return
        before = {"title": book["title"], "author": book["author"]}
        self._ack("books", isbn, before, answer, phase)
        title = {"title": f"Replay {number}, revised"}
        if not self._change(client, "books", isbn, f"/api/v1/books/{isbn}/", before, title):
            return
        branch_code = rng.choice(SEEDED_BRANCHES)
        copy = {"branch": branch_code, "book": isbn, "copy_no": 1, "condition": "n"}
        answer, phase = self._write(client, "copies", "POST", "/api/v1/copies/", copy, 201)
        if answer is None:
            return
        key = (branch_code, isbn, 1)
        self._ack("copies", key, {"condition": "n"}, answer, phase)
        condition = {"condition": rng.choice(CONDITIONS[1:])}
        path = f"/api/v1/copies/{branch_code}/{isbn}/1/"
        self._change(client, "copies", key, path, {"condition": "n"}, condition)

    def _members(self, client: httpx.Client, rng: random.Random) -> None:
        number = rng.randrange(10**9)
        phone = "" if number % 2 else f"+1555{number % 10000:04d}"
        member = {"name": f"Reader {number}", "email": f"r{number}@library.test", "phone": phone}
        answer, phase = self._write(client, "members", "POST", "/api/v1/members/", member, 201)
        if answer is None:
            return
        key = int(answer.json()["id"])
        self._ack("members", key, {"name": member["name"]}, answer, phase)
        contact = {"email": member["email"], "phone": phone, "address": ""}
        self._ack("member_contacts", key, contact, answer, phase)
        change = {"email": f"new{number}@library.test", "address": f"{number} Oak Lane"}
        # Answered with a 5xx or not at all, the change may have landed: _change keeps
        # only the contact's untouched columns as certain.
        self._change(client, "member_contacts", key, f"/api/v1/members/{key}/", contact, change)

    def _monolith_code(self, client: httpx.Client, rng: random.Random) -> None:
        """One write of the monolith's own code, in SQL, while the phase lets it write."""
        with self._backoffice:
            phase = self.topology.phase(CONTEXT)
            if not self._backoffice_on or phase not in MONOLITH_WRITES:
                return
            number = rng.randrange(10**9)
            acked: list[tuple[str, Any, dict[str, Any]]]
            with self._monolith().begin() as conn:
                kind = number % 3
                if kind == 0:
                    member, name = rng.choice(SEEDED_MEMBERS), f"Member renamed {number}"
                    update = "UPDATE lending_member SET name = :name WHERE id = :id"
                    conn.execute(text(update), {"name": name, "id": member})
                    acked = [("members", member, {"name": name})]
                elif kind == 1:
                    book, title = rng.choice(MONOLITH_RETITLED), f"Back office {number}"
                    update = "UPDATE lending_book SET title = :title WHERE isbn = :isbn"
                    conn.execute(text(update), {"title": title, "isbn": book})
                    acked = [("books", book, {"title": title})]
                else:
                    branch, condition = rng.choice(SEEDED_BRANCHES), rng.choice(CONDITIONS)
                    bulk = text(
                        "UPDATE lending_copy SET condition = :condition "
                        "WHERE branch_id = :branch AND book_id IN :books "
                        "RETURNING branch_id, book_id, copy_no"
                    ).bindparams(bindparam("books", expanding=True))
                    rows = conn.execute(
                        bulk, {"condition": condition, "branch": branch, "books": SEEDED_BOOKS}
                    )
                    acked = [("copies", tuple(row), {"condition": condition}) for row in rows]
            for table, key, expected in acked:
                self.record(AckedWrite(CONTEXT, table, key, expected, phase))
            self.monolith_writes[phase] += 1

    def wait_for_monolith_writes(self, count: int, timeout: float = 60) -> None:
        """``count`` more SQL writes of the monolith's own code (in the current phase)."""
        phase = self.topology.phase(CONTEXT)
        target = self.monolith_writes[phase] + count
        wait_until(
            lambda: self.monolith_writes[phase] >= target,
            timeout=timeout,
            interval=0.1,
            what=f"{count} more monolith-side writes in {phase}",
        )

    def _monolith(self) -> Engine:
        if self._engine is None:
            url = sqlalchemy_url(self.topology.config.monolith_db)
            self._engine = create_engine(url, pool_size=1, pool_pre_ping=True)
        return self._engine

    def _loans(self, client: httpx.Client, rng: random.Random) -> None:
        borrowed = datetime(2026, 12, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(10**6))
        loan = {
            "member": rng.choice(SEEDED_MEMBERS),
            "book": rng.choice(SEEDED_BOOKS),
            "branch": rng.choice(SEEDED_BRANCHES),
            "meta": {"channel": rng.choice(["desk", "app"]), "renewals": [rng.randrange(3)]},
            "notes": rng.choice(["", "fragile spine"]),
            "fine": f"{rng.randrange(10)}.{rng.randrange(100):02d}",
            "borrowed_at": borrowed.isoformat(),
            "due_at": (borrowed + timedelta(days=21)).isoformat(),
        }
        answer, phase = self._write(client, "loans", "POST", "/api/v1/loans/", loan, 201)
        if answer is None:
            return
        key = answer.json()["id"]
        expected = {"member_id": loan["member"], "book_id": loan["book"], "status": "o",
                    "meta": loan["meta"], "notes": loan["notes"], "fine": loan["fine"]}  # fmt: skip
        self._ack("loans", key, expected, answer, phase)
        status = {"status": rng.choice(["r", "d", "l"])}
        self._change(client, "loans", key, f"/api/v1/loans/{key}/", expected, status)
