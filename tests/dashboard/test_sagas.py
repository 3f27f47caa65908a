"""The dashboard's Sagas section: counts by state, stuck sagas first, escaped, no payload."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from dualwrite.sagas import saga_metadata, saga_table
from migration_plans.control.dashboard.data import SAGAS_SHOWN, Sources
from migration_plans.core.database import engine as make_engine
from tests.dashboard.conftest import AUTH, Place, client, dashboard_of, make_proxy

pytestmark = pytest.mark.anyio

TOKEN = "tok_live_dashboard_SECRET_9876"


def plant(url: str, rows: list[dict[str, Any]]) -> None:
    """The saga table in the monolith's database, with ``rows`` (payloads hold a card token)."""
    engine = make_engine(url)
    saga_metadata.create_all(engine)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for number, values in enumerate(rows):
            ago = values.pop("ago", timedelta(0))
            done = values["state"] in ("completed", "compensated")
            conn.execute(
                sa.insert(saga_table).values(
                    kind="place_order",
                    key=f"order:{number}:place",
                    subject=f"order:{number}",
                    step_name="charge",
                    payload=json.dumps({"card_token": TOKEN}),
                    created_at=now - ago - timedelta(seconds=5),
                    updated_at=now - ago,
                    finished_at=now - ago if done else None,
                    **values,
                )
            )
    engine.dispose()


async def payload_and_page(place: Place) -> tuple[dict[str, Any], str, str]:
    proxy = make_proxy(place.routes)
    dashboard_of(proxy).sources = Sources(proxy.admin.view, shadow=lambda: None)
    async with client(proxy) as http:
        data = await http.get("/_strangler/dashboard/data", headers=AUTH)
        page = await http.get("/_strangler/dashboard", headers=AUTH)
    return data.json(), data.text, page.text


async def test_stuck_sagas_come_first_escaped_and_without_payload(place: Place) -> None:
    finished = [{"state": "completed", "ago": timedelta(minutes=n)} for n in range(12)]
    hostile = '<script>alert("x")</script>\x1b[31m "quoted"\nsecond line'
    plant(
        place.databases.monolith,
        [
            *finished,
            {"state": "running", "ago": timedelta(minutes=10)},
            {"state": "dead", "dead_from": "compensating", "attempts": 8, "last_error": hostile},
            {"state": "running"},
        ],
    )
    payload, body, page = await payload_and_page(place)
    section = payload["data"]["sagas"]
    assert section["counts"]["states"] == {
        "running": 2,
        "compensating": 0,
        "completed": 12,
        "compensated": 0,
        "dead": 1,
    }
    assert section["counts"]["stuck"] == 2 and section["counts"]["total"] == 15
    rows = section["sagas"]
    assert len(rows) == SAGAS_SHOWN == 10
    assert [(r["key"], r["stuck"]) for r in rows[:3]] == [
        ("order:13:place", True),
        ("order:12:place", True),
        ("order:14:place", False),
    ]
    assert rows[3]["key"] == "order:0:place"  # then the newest finished
    assert rows[0]["last_error"] == '<script>alert("x")</script>[31m "quoted"\nsecond line'
    html = payload["html"]["sagas"]
    assert '<span class="tag fail" data-stuck="2">2 stuck</span>' in html
    assert '<span class="tag fail" data-state="dead">dead 1</span>' in html
    assert '<tr class="saga stuck" data-saga="14">' in html
    assert (
        "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;[31m &quot;quoted&quot; second line"
        in html
    )
    assert "<script>alert" not in html and "<script>alert" not in page
    assert html in page and 'id="section-sagas"' in page
    for text in (body, page):
        assert TOKEN not in text and "card_token" not in text


async def test_no_saga_table_yet_is_an_empty_section(place: Place) -> None:
    payload, _, page = await payload_and_page(place)
    section = payload["data"]["sagas"]
    assert "error" not in section
    assert section["sagas"] == [] and section["counts"]["total"] == 0
    assert '<p class="muted">No saga recorded yet.</p>' in page


async def test_an_unreachable_monolith_only_blanks_the_sagas(
    place: Place, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRANGLER_MONOLITH_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/nope")
    payload, _, page = await payload_and_page(place)
    error = payload["data"]["sagas"]["error"]
    assert error.startswith("StoreUnavailable: cannot read the monolith database")
    assert "unavailable: StoreUnavailable: cannot read the monolith database" in page
    assert payload["data"]["routes"]["routes"] and payload["data"]["contexts"]
