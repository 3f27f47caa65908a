"""`strangler reconcile CONTEXT ...` and `strangler reconcile history`, and the history store."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.history import clean_streak, last_runs_clean, recent_runs, repairs_of
from tests.reconciler.reconcile_tables import Pair, products

MakePair = Callable[[str], Pair]


def _args(pair: Pair, *extra: str) -> list[str]:
    return [
        "catalog",
        "--monolith-url",
        pair.monolith_url,
        "--service-url",
        pair.service_url,
        "--grace",
        "0.05",
        "--no-progress",
        *extra,
    ]


def test_reconcile_report_formats_repair_and_history(
    make_pair: MakePair, cli_env: str, tmp_path: Path
) -> None:
    pair = make_pair("sqlite")
    pair.seed(50)
    pair.execute("service", products.update().where(products.c.id == 9).values(price_cents=1))
    runner = CliRunner()

    as_json = runner.invoke(app, _args(pair, "--format", "json"))
    assert as_json.exit_code == 1, as_json.output
    report = json.loads(as_json.stdout)
    assert report["verdict"] == "divergent"
    table = next(t for t in report["tables"] if t["name"] == "products")
    assert table["differing"] == 1 and table["divergences"][0]["key"] == 9

    html_path = tmp_path / "report.html"
    as_html = runner.invoke(
        app, _args(pair, "--table", "products", "--format", "html", "-o", str(html_path))
    )
    assert as_html.exit_code == 1
    page = html_path.read_text()
    assert page.startswith("<!doctype html>") and "price_cents" in page and "<script" not in page

    as_table = runner.invoke(app, _args(pair, "--table", "products"))
    assert (
        as_table.exit_code == 1
        and "divergent" in as_table.stdout
        and "price_cents" in as_table.stdout
    )

    dry = runner.invoke(app, _args(pair, "--dry-run", "--format", "json"))
    assert "would write 1 rows" in dry.stderr
    assert (
        runner.invoke(app, _args(pair, "--format", "json")).exit_code == 1
    )  # dry run wrote nothing

    repaired = runner.invoke(app, _args(pair, "--repair", "--format", "json"))
    assert "wrote 1 rows" in repaired.stderr, repaired.output
    clean = runner.invoke(app, _args(pair, "--format", "json"))
    assert clean.exit_code == 0, clean.output

    history = runner.invoke(app, ["history", "catalog", "--json"])
    assert history.exit_code == 0, history.output
    verdicts = [json.loads(line)["verdict"] for line in history.stdout.splitlines()]
    assert verdicts[0] == "clean" and verdicts.count("divergent") == 6
    assert "catalog" in runner.invoke(app, ["history"]).stdout
    assert last_runs_clean("catalog", 1) and not last_runs_clean("catalog", 2)
    assert clean_streak("catalog", table="products") == 1
    divergent_run = recent_runs("catalog", limit=2)[1].run_id
    assert [r["row_key"] for r in repairs_of(divergent_run)] == ["9"]


def test_bad_input_exits_2_with_a_message(make_pair: MakePair, cli_env: str) -> None:
    pair = make_pair("sqlite")
    runner = CliRunner()
    unknown = runner.invoke(app, ["nosuch", "--no-progress"])
    assert unknown.exit_code == 2 and "unknown context 'nosuch'" in unknown.stderr
    table = runner.invoke(app, _args(pair, "--table", "nosuch"))
    assert table.exit_code == 2 and "no table 'nosuch'" in table.stderr


def test_gates_read_the_last_k_runs(cli_env: str) -> None:
    assert not last_runs_clean("catalog", 1)  # no runs yet: not clean
    assert clean_streak("catalog") == 0
