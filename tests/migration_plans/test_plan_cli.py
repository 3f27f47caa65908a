"""`strangler plan`: init makes the plans folder, every command reads it, templates stay as shipped."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from migration_plans.control.plan_cli import app
from migration_plans.control.plan_file import init_plans, set_phase
from migration_plans.core.phase import Phase
from migration_plans.core.plan import load_plan
from migration_plans.core.settings import PLANS_DIR_ENV, TEMPLATES_DIR

ROUTES = """default_upstream: monolith
upstreams:
  monolith: {url: "http://127.0.0.1:8001"}
  catalog: {url: "http://127.0.0.1:8101"}
contexts:
  catalog:
    routes:
      - name: product-writes
        prefix: /api/v1/products/
        methods: [POST, PUT, PATCH, DELETE]
        upstream: catalog
"""

runner = CliRunner()


def template_bytes() -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(TEMPLATES_DIR.glob("*.yaml"))}


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.glob("*.yaml"))}


@pytest.fixture(autouse=True)
def own_control_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRANGLER_CONTROL_DB_URL", f"sqlite:///{tmp_path / 'control.sqlite3'}")
    monkeypatch.delenv("STRANGLER_ROUTES", raising=False)


def test_init_creates_the_plans_folder_from_the_templates(tmp_path: Path) -> None:
    folder = tmp_path / "deploy" / "plans"
    result = runner.invoke(app, ["init", "--plans-dir", str(folder)])
    assert result.exit_code == 0, result.output
    assert folder_bytes(folder) == template_bytes()
    assert f"wrote {folder / 'catalog.yaml'}" in result.stdout
    assert f"export STRANGLER_PLANS_DIR={folder.resolve()}" in result.stdout


def test_init_defaults_to_plans_in_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PLANS_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["init"])
    assert result.exit_code == 0, result.output
    assert folder_bytes(tmp_path / "plans") == template_bytes()
    assert f"export STRANGLER_PLANS_DIR={tmp_path / 'plans'}" in result.stdout


def test_init_keeps_existing_plans_unless_forced(tmp_path: Path) -> None:
    folder = tmp_path / "plans"
    init_plans(folder)
    edited = folder / "catalog.yaml"
    set_phase(edited, Phase.DUAL_WRITE)
    mine = edited.read_bytes()

    kept = runner.invoke(app, ["init", "--plans-dir", str(folder)])
    assert kept.exit_code == 0, kept.output
    assert edited.read_bytes() == mine
    assert f"kept {edited} (it exists; --force overwrites it)" in kept.stdout
    assert "wrote" not in kept.stdout

    forced = runner.invoke(app, ["init", "--plans-dir", str(folder), "--force"])
    assert forced.exit_code == 0, forced.output
    assert f"wrote {edited}" in forced.stdout
    assert folder_bytes(folder) == template_bytes()


def test_init_refuses_a_folder_inside_the_package() -> None:
    before = template_bytes()
    result = runner.invoke(app, ["init", "--plans-dir", str(TEMPLATES_DIR), "--force"])
    assert result.exit_code == 1
    assert "inside the installed package" in result.stderr
    assert template_bytes() == before


@pytest.mark.parametrize("args", [["status"], ["advance", "catalog"], ["rollback", "catalog"]])
def test_a_missing_plans_folder_is_named_with_the_command_that_makes_it(
    tmp_path: Path, args: list[str]
) -> None:
    missing = tmp_path / "nowhere"
    result = runner.invoke(app, [*args, "--plans-dir", str(missing)])
    assert result.exit_code == 1
    assert f"no plans folder at {missing}" in result.stderr
    assert "strangler plan init" in result.stderr


def test_an_unknown_context_names_the_plans_folder(tmp_path: Path) -> None:
    folder = tmp_path / "plans"
    init_plans(folder)
    result = runner.invoke(app, ["rollback", "shipping", "--plans-dir", str(folder)])
    assert result.exit_code == 1
    assert f"no plan for context 'shipping' in {folder}" in result.stderr


def test_rollback_moves_the_configured_folder_and_never_the_templates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = template_bytes()
    folder = tmp_path / "plans"
    init_plans(folder)
    set_phase(folder / "catalog.yaml", Phase.SPLIT)
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES)
    monkeypatch.setenv(PLANS_DIR_ENV, str(folder))

    result = runner.invoke(
        app, ["rollback", "catalog", "--routes", str(routes), "--reason", "drill"]
    )
    assert result.exit_code == 0, result.output
    assert "catalog: split -> dual_write (rollback)" in result.stdout
    assert load_plan(folder / "catalog.yaml").phase is Phase.DUAL_WRITE
    assert template_bytes() == before

    history = runner.invoke(app, ["history", "catalog"])
    assert history.exit_code == 0, history.output
    assert "catalog: split -> dual_write by" in history.stdout
    assert "(drill)" in history.stdout
