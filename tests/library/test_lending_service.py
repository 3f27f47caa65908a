"""The lending service on the library monolith: the same answers in shared, and a write
path that reports every shape of key to the outbox in dual_write (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from deepdiff import DeepDiff
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select, text

from migration_plans.control.processes import ManagedProcess, free_port
from migration_plans.core.database import sqlalchemy_url
from migration_plans.core.idmap import record
from migration_plans.core.settings import PLANS_DIR_ENV
from tests.library.conftest import MONOLITH_SETTINGS, identity_headers
from tests.library.services.lending.models import Loan

SHARED_READS = (
    "/api/v1/branches/",
    "/api/v1/branches/?ordering=-name",
    "/api/v1/branches/EAS/",
    "/api/v1/branches/NOPE/",
    "/api/v1/books/?page_size=5&page=2",
    "/api/v1/books/?ordering=-title&page_size=3",
    "/api/v1/books/9780000000005/",
    "/api/v1/copies/?page_size=7",
    "/api/v1/copies/?book=9780000000003",
    "/api/v1/copies/CEN/9780000000001/1/",
    "/api/v1/copies/CEN/9780000000001/9/",
    "/api/v1/copies/CEN/9780000000001/x/",
    "/api/v1/members/?page_size=4&page=2",
    "/api/v1/members/3/",
    "/api/v1/members/999/",
    "/api/v1/loans/?page_size=6",
    "/api/v1/loans/?status=o",
    "/api/v1/loans/?member=2",
    "/api/v1/loans/4/",
    "/api/v1/loans/abc/",
)


@pytest.fixture(scope="module")
def monolith_server(
    library_monolith: str, library_plans: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The library monolith served by uvicorn on a free loopback port."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": library_monolith,
        "DEBUG": "false",
        "SECRET_KEY": "library-tests-secret-key",
        "DJANGO_SETTINGS_MODULE": MONOLITH_SETTINGS,
        PLANS_DIR_ENV: str(library_plans),
    }
    argv = [sys.executable, "-m", "uvicorn", "tests.library.monolith.asgi:application",
            "--host", "127.0.0.1", "--port", str(port), "--lifespan", "off"]  # fmt: skip
    process = ManagedProcess.start(
        argv,
        name="library-monolith",
        env=env,
        log_dir=tmp_path_factory.mktemp("library-logs"),
        health_url=f"http://127.0.0.1:{port}/healthz",
        timeout=60,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()


def test_shared_reads_answer_like_the_monolith(
    monolith_server: str, lending_app: Callable[[str], TestClient]
) -> None:
    service = lending_app("shared")
    differences: dict[str, object] = {}
    with httpx.Client(base_url=monolith_server, headers={"Host": "testserver"}) as monolith:
        for path in SHARED_READS:
            want, got = monolith.get(path), service.get(path)
            if want.status_code != got.status_code:
                differences[path] = (want.status_code, got.status_code, got.text[:300])
                continue
            diff = DeepDiff(want.json(), got.json())
            if diff:
                differences[path] = diff.to_dict()
    assert not differences, json.dumps(differences, indent=1, default=str)


def test_shared_refuses_writes(lending_app: Callable[[str], TestClient]) -> None:
    service = lending_app("shared")
    answer = service.post(
        "/api/v1/branches/",
        json={"code": "X", "name": "X", "city": "X"},
        headers=identity_headers(),
    )
    assert answer.status_code == 409 and answer.json()["code"] == "phase_read_only"


def _events(service_url: str) -> list[tuple[str, str, str]]:
    engine = create_engine(sqlalchemy_url(service_url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT aggregate_type, aggregate_key, operation FROM strangler_outbox "
                    "ORDER BY id"
                )
            )
            return [(str(a), str(b), str(c)) for a, b, c in rows]
    finally:
        engine.dispose()


def test_dual_write_reports_every_key_shape(lending_app: Callable[[str], TestClient]) -> None:
    service = lending_app("dual_write")
    url = service.app.state.test_service_url  # type: ignore[attr-defined]
    auth = identity_headers()
    steps = [
        ("/api/v1/branches/", {"code": "W|1", "name": "West", "city": ""}),
        ("/api/v1/books/", {"isbn": "9781111111111", "title": "Tides", "author": "C. Poet"}),
        ("/api/v1/copies/", {"branch": "W|1", "book": "9781111111111", "copy_no": 2}),
    ]
    for path, body in steps:
        answer = service.post(path, json=body, headers=auth)
        assert answer.status_code == 201, (path, answer.text)
    copy = service.get("/api/v1/copies/W%7C1/9781111111111/2/").json()
    assert copy["condition"] == "n" and copy["branch"] == "W|1"
    assert service.get("/api/v1/branches/W%7C1/").json()["city"] == ""

    member = service.post(
        "/api/v1/members/", json={"name": "Ada", "email": "ada@library.test"}, headers=auth
    )
    assert member.status_code == 201, member.text
    member_id = member.json()["id"]
    assert member.json()["phone"] == "" and member.json()["address"] == ""
    loan = service.post(
        "/api/v1/loans/",
        json={"member": member_id, "book": "9781111111111", "branch": "W|1",
              "due_at": "2027-01-01T00:00:00Z", "meta": {"renewals": [1, {"b": None}]},
              "fine": "12.05"},
        headers=auth,
    )  # fmt: skip
    assert loan.status_code == 201, loan.text
    loan_id = uuid.UUID(loan.json()["id"])
    assert loan.json()["status"] == "o" and loan.json()["notes"] == ""
    assert loan.json()["meta"] == {"renewals": [1, {"b": None}]}
    assert loan.json()["fine"] == "12.05"

    renamed = service.patch(
        "/api/v1/books/9781111111111/", json={"title": "Tides II"}, headers=auth
    )
    assert renamed.status_code == 200, renamed.text
    returned = service.patch(f"/api/v1/loans/{loan_id}/", json={"status": "r"}, headers=auth)
    assert returned.status_code == 200 and returned.json()["status"] == "r", returned.text

    events = _events(url)
    assert events == [
        ("branches", "W|1", "insert"),
        ("books", "9781111111111", "insert"),
        ("copies", "W\\|1|9781111111111|2", "insert"),
        ("members", str(member_id), "insert"),
        ("member_contacts", str(member_id), "insert"),
        ("loans", str(loan_id), "insert"),
        ("books", "9781111111111", "update"),
        ("loans", str(loan_id), "update"),  # its book_title follows the book
        ("loans", str(loan_id), "update"),
    ]
    engine = create_engine(sqlalchemy_url(url))
    try:
        with engine.begin() as conn:
            title, status, notes, fine = conn.execute(
                select(Loan.book_title, Loan.status, Loan.notes, Loan.fine_cents).where(
                    Loan.id == loan_id
                )
            ).one()
            record(conn, "loans", [("4242", str(loan_id))])
    finally:
        engine.dispose()
    assert (title, status, notes, fine) == ("Tides II", "returned", None, 1205)

    by_monolith_id = service.get("/api/v1/loans/4242/")
    assert by_monolith_id.status_code == 200 and by_monolith_id.json()["id"] == str(loan_id)
    assert service.get("/api/v1/loans/4243/").status_code == 404
    assert service.get(f"/api/v1/loans/{uuid.uuid4()}/").status_code == 404
    assert service.delete(f"/api/v1/members/{member_id}/", headers=auth).status_code == 409
    in_use = service.delete("/api/v1/books/9781111111111/", headers=auth)
    assert in_use.status_code == 409 and in_use.json()["code"] == "in_use", in_use.text
    deleted = service.delete("/api/v1/copies/W%7C1/9781111111111/2/", headers=auth)
    assert deleted.status_code == 204
    assert _events(url)[-1] == ("copies", "W\\|1|9781111111111|2", "delete")


def test_dual_write_validates_like_the_monolith(lending_app: Callable[[str], TestClient]) -> None:
    service = lending_app("dual_write")
    auth = identity_headers()
    answer = service.post(
        "/api/v1/loans/",
        json={"member": 999, "book": "nope", "branch": "CEN", "status": "z", "fine": "1.5"},
        headers=auth,
    )
    assert answer.status_code == 400
    fields = answer.json()["fields"]
    assert fields["due_at"] == ["This field is required."]
    assert fields["status"] == ['"z" is not a valid choice.']
    assert fields["member"] == ['Invalid pk "999" - object does not exist.']
    assert fields["fine"] == ["Enter a valid value."]
    assert service.post("/api/v1/branches/", json={}, headers={}).status_code == 401
