"""Pruning relayed events: only old applied ones go, the newest stays, relaying goes on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert
from typer.testing import CliRunner

from dualwrite.cli import app
from dualwrite.engines import relay_engine
from dualwrite.prune import parse_retention, prune_outbox, prune_outboxes
from migration_plans.core.outbox import outbox_metadata, outbox_table
from tests.dualwrite.test_dualwrite_round_trip import relay_all, service_write

AGE_OLD = "UPDATE strangler_outbox SET created_at = created_at - interval '10 days' WHERE id <= :id"


def _statuses(pair: Any, side: str) -> list[tuple[int, str]]:
    run = pair.monolith if side == "monolith" else pair.service
    return [(row[0], row[1]) for row in run("SELECT id, status FROM strangler_outbox ORDER BY id")]


def _write_categories(pair: Any, first: int, count: int) -> None:
    """Per key, one monolith insert (captured) and one service update, each relayed."""
    for key in range(first, first + count):
        pair.monolith(
            "INSERT INTO catalog_category (id, name, slug, description) "
            f"VALUES ({key}, 'C{key}', 'c-{key}', 'from the monolith')"
        )
        relay_all(pair)
        service_write(
            pair,
            "UPDATE categories SET description = 'from the service' WHERE id = :id",
            {"id": key},
            table="categories",
            key=key,
            operation="update",
        )
        relay_all(pair)


def test_prunes_old_relayed_events_only_and_keeps_the_newest(pair: Any) -> None:
    pair.relay()
    _write_categories(pair, 101, 4)  # 4 events in each outbox, all applied
    monolith_ids = [event_id for event_id, _ in _statuses(pair, "monolith")]
    newest = {side: _statuses(pair, side)[-1][0] for side in ("monolith", "service")}
    pair.monolith(AGE_OLD, {"id": newest["monolith"]})
    pair.service(AGE_OLD, {"id": newest["service"]})
    # Old, but not relayed: one pending, one dead. Both must stay.
    pending_id, dead_id = monolith_ids[0], monolith_ids[1]
    pair.monolith(f"UPDATE strangler_outbox SET status = 'pending' WHERE id = {pending_id}")
    pair.monolith(f"UPDATE strangler_outbox SET status = 'dead' WHERE id = {dead_id}")

    deleted = prune_outboxes(pair.relays[0], older_than=timedelta(days=7), batch_size=2)

    assert deleted == {"monolith": 1, "service": 3}
    assert _statuses(pair, "monolith") == [
        (pending_id, "pending"),
        (dead_id, "dead"),
        (newest["monolith"], "applied"),
    ]
    assert _statuses(pair, "service") == [(newest["service"], "applied")]

    # Relaying goes on after the prune (the old pending event is redelivered and changes
    # nothing), and new events get ids above the kept newest ones.
    _write_categories(pair, 201, 2)
    for side in ("monolith", "service"):
        later = [event_id for event_id, _ in _statuses(pair, side) if event_id > newest[side]]
        assert len(later) == 2, side
    pair.assert_in_sync(timeout=30)


def test_recent_events_are_kept(pair: Any) -> None:
    pair.relay()
    _write_categories(pair, 301, 3)
    before = {side: _statuses(pair, side) for side in ("monolith", "service")}
    assert prune_outboxes(pair.relays[0], older_than=timedelta(hours=1)) == {
        "monolith": 0,
        "service": 0,
    }
    assert {side: _statuses(pair, side) for side in ("monolith", "service")} == before


def test_cli_prunes_and_names_a_bad_retention(pair: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    pair.relay()
    _write_categories(pair, 401, 3)
    for side, run in (("monolith", pair.monolith), ("service", pair.service)):
        run(AGE_OLD, {"id": _statuses(pair, side)[-1][0]})
    for name, value in pair.env().items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()
    result = runner.invoke(app, ["prune", "catalog", "--older-than", "7d"])
    assert result.exit_code == 0, result.output
    assert "catalog: pruned relayed events older than 7d (monolith 2, service 2)" in result.output
    bad = runner.invoke(app, ["prune", "catalog", "--older-than", "a week"])
    assert bad.exit_code == 2
    assert "--older-than" in bad.output and "'a week' is not a retention" in bad.output


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("30m", 1800), ("12h", 43200), ("7d", 604800), ("0d", 0)]
)
def test_parse_retention(text: str, seconds: int) -> None:
    assert parse_retention(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "7", "d", "-1d", "1.5h", "7w"])
def test_parse_retention_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="is not a retention"):
        parse_retention(text)


def test_prune_on_sqlite(tmp_path: Any) -> None:
    """The embedded default: SQLite keeps timestamps as text, and reuses a deleted max rowid."""
    engine = relay_engine(f"sqlite:///{tmp_path}/outbox.sqlite3")
    outbox_metadata.create_all(engine)
    now = datetime.now(UTC)
    ages = {1: 10, 2: 10, 3: 0}  # days; event 3 is recent
    with engine.begin() as conn:
        for event_id, days in ages.items():
            conn.execute(
                insert(outbox_table).values(
                    id=event_id,
                    event_id=f"e{event_id}",
                    context="catalog",
                    aggregate_type="categories",
                    aggregate_key=str(event_id),
                    operation="update",
                    origin="service",
                    status="applied",
                    created_at=now - timedelta(days=days),
                )
            )
    assert prune_outbox(engine, "catalog", older_than=timedelta(days=7)) == 2
    assert (
        prune_outbox(engine, "catalog", older_than=timedelta(0), now=now + timedelta(days=1)) == 0
    )
    with engine.connect() as conn:
        assert [row[0] for row in conn.execute(outbox_table.select())] == [3]
    engine.dispose()
