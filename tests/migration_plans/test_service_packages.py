"""Services by module: a plan's ``service_module`` and ``port``, the port choice, unknown
contexts refused with the known ones listed, and `strangler service serve|migrate`
serving and migrating a service package that lives outside the toolkit."""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from extracted_services.cli import app as service_cli
from extracted_services.common.package import ServicePackage, ServicePackageError
from migration_plans.control.processes import ManagedProcess, free_port
from migration_plans.core.database import sqlalchemy_url
from migration_plans.core.plan import Plan, load_plan
from migration_plans.core.settings import (
    DERIVED_PORTS,
    PLANS_DIR_ENV,
    PROJECT_PATH_ENV,
    BadSetting,
    UnknownContext,
    derived_port,
    known_contexts,
    project_path,
    service_module_for,
    service_port,
    use_project_path,
)
from migration_plans.core.yamlfile import ConfigError

PLAN = """\
context: parcels
service: parcels
upstream: parcels
{extra}
tables:
  - name: parcels
    monolith_table: post_parcel
    service_table: parcels
    key: {{monolith: id, service: id}}
    fields:
      - {{monolith: weight, service: weight}}
"""


def write_plan(folder: Path, extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "parcels.yaml"
    path.write_text(PLAN.format(extra=extra))
    return path


# -- the plan's fields --------------------------------------------------------------------


def test_service_module_defaults_to_the_shipped_package_of_the_service(tmp_path: Path) -> None:
    plan = load_plan(write_plan(tmp_path))
    assert plan.service_module == "extracted_services.parcels"
    assert plan.port is None


def test_service_module_and_port_are_read_from_the_plan(tmp_path: Path) -> None:
    plan = load_plan(write_plan(tmp_path, "service_module: acme.parcels_service\nport: 9120"))
    assert (plan.service_module, plan.port) == ("acme.parcels_service", 9120)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ("service_module: acme/parcels", "service_module"),
        ("service_module: acme..parcels", "service_module"),
        ("service_module: 1acme.parcels", "service_module"),
        ("port: 80", "port"),
        ("port: 70000", "port"),
    ],
)
def test_bad_module_or_port_is_refused_at_its_line(tmp_path: Path, extra: str, field: str) -> None:
    path = write_plan(tmp_path, extra)
    with pytest.raises(ConfigError) as caught:
        load_plan(path)
    message = str(caught.value)
    assert f"{path}:4" in message and field in message


# -- the port choice ----------------------------------------------------------------------


def test_port_environment_then_plan_then_shipped_then_derived() -> None:
    assert service_port("parcels", 9120, {"STRANGLER_PARCELS_PORT": "9300"}) == 9300
    assert service_port("parcels", 9120, {}) == 9120
    assert service_port("catalog", None, {}) == 8101
    assert service_port("catalog", 9120, {}) == 9120
    derived = service_port("parcels", None, {})
    assert derived == derived_port("parcels") and derived in DERIVED_PORTS
    assert derived_port("parcels") != derived_port("parcel")  # the name decides


@pytest.mark.parametrize("value", ["http", "80", "8101.5"])
def test_a_bad_port_variable_is_refused_naming_it(value: str) -> None:
    with pytest.raises(BadSetting, match="STRANGLER_PARCELS_PORT"):
        service_port("parcels", None, {"STRANGLER_PARCELS_PORT": value})


def test_project_path_is_absolute_and_ordered(tmp_path: Path) -> None:
    raw = os.pathsep.join([str(tmp_path / "a"), "", "relative"])
    assert project_path({"STRANGLER_PROJECT_PATH": raw}) == (
        tmp_path / "a",
        Path("relative").resolve(),
    )
    assert project_path({}) == ()


# -- which package a context is -----------------------------------------------------------


def test_a_context_is_known_by_its_plan_or_as_a_shipped_one(tmp_path: Path) -> None:
    write_plan(tmp_path, "service_module: acme.parcels_service")
    assert known_contexts(tmp_path) == ("catalog", "inventory", "parcels", "payments")
    assert service_module_for("parcels", tmp_path) == "acme.parcels_service"
    assert service_module_for("payments", tmp_path) == "extracted_services.payments"
    with pytest.raises(UnknownContext) as caught:
        service_module_for("shipping", tmp_path)
    message = str(caught.value)
    assert "'shipping'" in message and str(tmp_path / "shipping.yaml") in message
    assert "catalog, inventory, parcels, payments" in message


def test_the_cli_refuses_an_unknown_context_listing_the_known_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_plan(tmp_path)
    monkeypatch.setenv(PLANS_DIR_ENV, str(tmp_path))
    for command in ("serve", "migrate", "downgrade"):
        result = CliRunner().invoke(service_cli, [command, "shipping"])
        assert result.exit_code == 2, result.output
        assert "unknown context 'shipping'" in result.output
        assert "known contexts: catalog, inventory, parcels, payments" in result.output
        assert "--module" in result.output


def test_the_cli_names_a_package_that_cannot_be_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_plan(tmp_path, "service_module: nowhere_to_be_found.parcels")
    monkeypatch.setenv(PLANS_DIR_ENV, str(tmp_path))
    result = CliRunner().invoke(service_cli, ["migrate", "parcels", "--sql"])
    assert result.exit_code == 2
    assert "cannot import nowhere_to_be_found.parcels.config" in result.output
    assert "PYTHONPATH" in result.output
    result = CliRunner().invoke(service_cli, ["serve", "parcels", "--module", "not a module"])
    assert result.exit_code == 2 and "'not a module' is not a Python module path" in result.output


def test_a_settings_class_of_another_context_is_refused(tmp_path: Path) -> None:
    package = ServicePackage("parcels", "extracted_services.catalog")
    with pytest.raises(ServicePackageError, match=r"Settings\.context is 'catalog', not 'parcels'"):
        package.settings_class()


def test_the_shipped_contexts_keep_their_packages_and_ports(tmp_path: Path) -> None:
    package = ServicePackage.resolve("inventory", directory=tmp_path)
    assert (package.module, package.port) == ("extracted_services.inventory", 8102)
    assert package.app_factory == "extracted_services.inventory.main:create_app"
    assert package.alembic_ini.parent.name == "inventory"


# -- a package of the user's own, served and migrated by the CLI ----------------------------

PACKAGE_FILES = {
    "__init__.py": '"""A service package outside the toolkit (test)."""\n',
    "config.py": """
        from typing import ClassVar

        from extracted_services.common.settings import ServiceSettings


        class Settings(ServiceSettings):
            context: ClassVar[str] = "parcels"
    """,
    "models.py": """
        import sqlalchemy as sa

        metadata = sa.MetaData()
        parcels = sa.Table(
            "parcels",
            metadata,
            sa.Column("id", sa.BigInteger, primary_key=True),
            sa.Column("weight", sa.Integer, nullable=False),
        )
    """,
    "main.py": """
        from fastapi import FastAPI

        from {module}.config import Settings


        def create_app() -> FastAPI:
            settings = Settings()
            app = FastAPI()

            @app.get("/healthz")
            def healthz() -> dict[str, str]:
                return {{"status": "ok", "service": settings.context, "module": __name__}}

            return app
    """,
    "alembic.ini": """
        [alembic]
        script_location = %(here)s/alembic
        path_separator = os
    """,
    "alembic/env.py": """
        from alembic import context

        from extracted_services.common.migrations import run_migrations
        from {module}.models import metadata

        run_migrations(context, [metadata])
    """,
    "alembic/script.py.mako": "",
    "alembic/versions/0001_parcels.py": """
        import sqlalchemy as sa
        from alembic import op

        revision = "0001"
        down_revision = None


        def upgrade() -> None:
            op.create_table(
                "parcels",
                sa.Column("id", sa.BigInteger, primary_key=True),
                sa.Column("weight", sa.Integer, nullable=False),
            )


        def downgrade() -> None:
            op.drop_table("parcels")
    """,
}


def make_package(root: Path, module: str) -> Path:
    """Write the service package ``module`` (one level) under the project folder ``root``."""
    folder = root / module
    for name, text in PACKAGE_FILES.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text.format(module=module)).lstrip())
    return folder


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A project folder with the package ``parcels_service`` and a plan naming it; the
    environment a process serving it needs (the folder on PYTHONPATH)."""
    root = tmp_path / "project"
    make_package(root, "parcels_service")
    plans = tmp_path / "plans"
    write_plan(plans, "service_module: parcels_service")
    env = {
        PLANS_DIR_ENV: str(plans),
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
        "PARCELS_PHASE": "shared",
        "PARCELS_MONOLITH_DATABASE_URL": "sqlite:///unused.sqlite3",
        "PARCELS_ALLOW_DEV_IDENTITY_KEY": "true",
    }
    return root, env


STRANGLER = [sys.executable, "-m", "migration_plans.control.cli"]


def test_serve_runs_a_package_from_the_pythonpath(
    project: tuple[Path, dict[str, str]], processes: Callable[..., ManagedProcess]
) -> None:
    _, env = project
    port = free_port()
    url = f"http://127.0.0.1:{port}/healthz"
    argv = [*STRANGLER, "service", "serve", "parcels", "--port", str(port)]
    processes(argv, name="parcels", env=env, health_url=url)
    answer = httpx.get(url, trust_env=False).json()
    assert answer == {"status": "ok", "service": "parcels", "module": "parcels_service.main"}


def test_serve_without_the_project_on_the_path_says_so(
    project: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    import subprocess

    _, env = project
    env = {**os.environ, **env, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    done = subprocess.run(
        [*STRANGLER, "service", "serve", "parcels", "--port", str(free_port())],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "cannot import parcels_service.main" in done.stderr


def test_serve_finds_the_package_through_strangler_project_path(
    project: tuple[Path, dict[str, str]], processes: Callable[..., ManagedProcess]
) -> None:
    root, env = project
    env = {**env, "PYTHONPATH": os.environ.get("PYTHONPATH", ""), PROJECT_PATH_ENV: str(root)}
    port = free_port()
    url = f"http://127.0.0.1:{port}/healthz"
    argv = [*STRANGLER, "service", "serve", "parcels", "--port", str(port), "--workers", "2"]
    processes(argv, name="parcels", env=env, health_url=url)  # workers import it too
    assert httpx.get(url, trust_env=False).json()["module"] == "parcels_service.main"


def test_use_project_path_goes_first_on_both_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    environ = {PROJECT_PATH_ENV: os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b")])}
    environ["PYTHONPATH"] = str(tmp_path / "b") + os.pathsep + "/elsewhere"
    assert use_project_path(environ) == (tmp_path / "a", tmp_path / "b")
    assert sys.path[:2] == [str(tmp_path / "a"), str(tmp_path / "b")]
    assert environ["PYTHONPATH"].split(os.pathsep) == [
        str(tmp_path / "a"),
        str(tmp_path / "b"),
        "/elsewhere",
    ]
    before = list(sys.path)
    assert use_project_path({}) == () and sys.path == before


def test_migrate_and_downgrade_run_the_package_alembic_on_postgresql(
    project: tuple[Path, dict[str, str]],
    pg_database: Callable[[str], str],
    tmp_path: Path,
) -> None:
    import subprocess

    _, env = project
    url = pg_database("parcels")

    def strangler(*args: str) -> None:
        done = subprocess.run(
            [*STRANGLER, "service", *args],
            env={**os.environ, **env, "PARCELS_DATABASE_URL": url},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr

    def tables() -> set[str]:
        engine = sa.create_engine(sqlalchemy_url(url))
        try:
            return set(sa.inspect(engine).get_table_names())
        finally:
            engine.dispose()

    strangler("migrate", "parcels")
    assert tables() == {"parcels", "alembic_version"}
    strangler("downgrade", "parcels", "--revision", "base")
    assert tables() == {"alembic_version"}


def test_module_option_serves_a_package_with_no_plan(
    project: tuple[Path, dict[str, str]], tmp_path: Path, processes: Callable[..., ManagedProcess]
) -> None:
    _, env = project
    empty = tmp_path / "no-plans"
    empty.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}/healthz"
    argv = [*STRANGLER, "service", "serve", "parcels", "--module", "parcels_service"]
    processes(
        [*argv, "--port", str(port)],
        name="parcels",
        env={**env, PLANS_DIR_ENV: str(empty)},
        health_url=url,
    )
    assert httpx.get(url, trust_env=False).json()["service"] == "parcels"


def test_plan_model_accepts_the_new_fields_directly() -> None:
    plan = Plan.model_validate(
        {
            "context": "parcels",
            "service": "parcels",
            "upstream": "parcels",
            "port": 9120,
            "tables": [],
        }
    )
    assert plan.service_module == "extracted_services.parcels" and plan.port == 9120
