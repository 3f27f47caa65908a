"""The service package `strangler init` writes: it passes ruff and mypy, and on real
PostgreSQL its Alembic migration runs and uvicorn serves the monolith's shipments in
the shared phase (identity, row visibility, filters, pagination) over loopback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from migration_plans.control.contract.allowances import load_allowances
from migration_plans.control.contract.check import check_context
from migration_plans.control.init.generate import InitRequest, InitResult, run_init
from migration_plans.control.processes import ManagedProcess, free_port, uvicorn_argv
from migration_plans.core.database import sqlalchemy_url
from migration_plans.core.identity import IDENTITY_HEADER, Identity, sign_identity
from migration_plans.core.phase import Phase
from migration_plans.core.settings import copy_templates

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _generate(tmp_path: Path, context: str, app_label: str, *models: str) -> InitResult:
    """Generate ``context`` into a copy of the shop's plans. A shop context (catalog,
    payments) is generated again in place of its shipped plan (a table belongs to one
    context); what its viewsets cannot map stays on the monolith."""
    plans = tmp_path / "plans"
    copy_templates(plans)
    shop = (plans / f"{context}.yaml").exists()
    request = InitRequest(
        context=context, app_label=app_label, out=tmp_path / "out", plans_dir=plans,
        models=models, skip_unmappable=shop, force=shop,
    )  # fmt: skip
    return run_init(request)


@pytest.mark.slow
def test_generated_packages_pass_ruff_its_format_and_mypy(
    django_shop: None, tmp_path: Path
) -> None:
    """Reads with row visibility and filters (shipping); full CRUD (catalog's categories);
    a decimal amount as integer cents (payments). One ruff and one mypy run over the three
    packages (mypy's start-up is most of its time)."""
    packages = [
        _generate(tmp_path / context, context, context).package_dir
        for context in ("shipping", "catalog", "payments")
    ]
    folders = [str(package.parent) for package in packages]
    ruff = subprocess.run(
        [str(BIN / "ruff"), "check", "--config", str(REPO / "pyproject.toml"),
         "--config", f"src = {[str(REPO), *folders]!r}", "--no-cache", *folders],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert ruff.returncode == 0, ruff.stdout + ruff.stderr
    formatted = subprocess.run(
        [str(BIN / "ruff"), "format", "--check", "--diff", "--config", str(REPO / "pyproject.toml"),
         "--no-cache", *folders],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr
    mypy = subprocess.run(
        [str(BIN / "mypy"), "--config-file", str(REPO / "pyproject.toml"), "--no-incremental",
         *(arg for package in packages for arg in ("-p", package.name))],
        capture_output=True, text=True, check=False, timeout=300, cwd=tmp_path,
        env={**os.environ, "MYPYPATH": os.pathsep.join([str(REPO), *folders])},
    )  # fmt: skip
    assert mypy.returncode == 0, mypy.stdout + mypy.stderr
    checked = re.search(r"no issues found in (\d+) source files", mypy.stdout)
    assert checked and int(checked[1]) >= 3 * 10, mypy.stdout  # every module of the three


def _monolith(url: str) -> None:
    """Migrate and seed the shop's database (shipped orders have shipments)."""
    env = {**os.environ, "DATABASE_URL": url, "DEBUG": "true"}
    for args in (
        ["migrate", "--no-input"],
        ["seed", "--products=10", "--customers=3", "--orders=12", "--seed=3"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "legacy_monolith.manage", *args],
            env=env, capture_output=True, text=True, timeout=300, check=False, cwd=REPO,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]


def _identity(sub: str, key: str) -> dict[str, str]:
    return {
        IDENTITY_HEADER: sign_identity(Identity(sub=sub), key=key.encode(), audience="shipping")
    }


@pytest.mark.e2e
@pytest.mark.pg
@pytest.mark.slow
def test_generated_shipping_service_serves_the_monolith_tables_in_shared(
    django_shop: None,
    tmp_path: Path,
    pg_database: Callable[[str], str],
    processes: Callable[..., ManagedProcess],
) -> None:
    result = _generate(tmp_path, "shipping", "shipping")
    monolith_url, service_url = pg_database("init_monolith"), pg_database("init_service")
    _monolith(monolith_url)
    sys.path.insert(0, str(result.package_dir.parent))
    try:
        config = Config(str(result.package_dir / "alembic.ini"))
        config.set_main_option("sqlalchemy.url", sqlalchemy_url(service_url))
        command.upgrade(config, "head")
    finally:
        sys.path.remove(str(result.package_dir.parent))
    engine = sa.create_engine(sqlalchemy_url(service_url))
    try:
        tables = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"shipments", "strangler_outbox", "alembic_version"} <= tables
    monolith = sa.create_engine(sqlalchemy_url(monolith_url))
    try:
        with monolith.connect() as conn:
            shipments = conn.execute(
                sa.text("SELECT id, carrier FROM shipping_shipment ORDER BY id")
            ).all()
            staff = conn.execute(sa.text(
                "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name,"
                " email, is_staff, is_active, date_joined) VALUES ('!', false, 'init-staff', '',"
                " '', '', true, true, now()) RETURNING id")).scalar_one()  # fmt: skip
            conn.commit()
    finally:
        monolith.dispose()
    assert shipments, "the seed shipped no order"
    key = "init-test-identity-key"
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(result.package_dir.parent), str(REPO)]),
        "STRANGLER_PLANS_DIR": str(result.plan_path.parent),
        "SHIPPING_PHASE": "shared",
        "SHIPPING_MONOLITH_DATABASE_URL": monolith_url,
        "SHIPPING_DATABASE_URL": service_url,
        "SHIPPING_IDENTITY_KEY": key,
    }
    base = f"http://127.0.0.1:{port}"
    processes(
        uvicorn_argv("shipping_service.main:create_app", port, factory=True),
        name="shipping", env=env, health_url=f"{base}/healthz", timeout=60,
    )  # fmt: skip
    with httpx.Client(base_url=base, timeout=30) as client:
        assert client.get("/healthz").json()["phase"] == "shared"
        assert client.get("/api/v1/shipments/").status_code == 401
        everything = client.get(
            "/api/v1/shipments/?page_size=100", headers=_identity(str(staff), key)
        )
        assert everything.status_code == 200, everything.text
        page = everything.json()
        assert page["count"] == len(shipments)
        assert [row["id"] for row in page["results"]] == [row.id for row in shipments]
        first = page["results"][0]
        assert set(first) == {
            "id",
            "order",
            "carrier",
            "tracking_number",
            "status",
            "shipped_at",
            "delivered_at",
        }
        assert first["shipped_at"].endswith("Z")
        one = client.get(f"/api/v1/shipments/{first['id']}/", headers=_identity(str(staff), key))
        assert one.json() == first
        carrier = shipments[0].carrier
        filtered = client.get(
            f"/api/v1/shipments/?carrier={carrier}&page_size=100",
            headers=_identity(str(staff), key),
        ).json()
        assert filtered["count"] == sum(1 for row in shipments if row.carrier == carrier)
        bad = client.get("/api/v1/shipments/?status=lost", headers=_identity(str(staff), key))
        assert bad.status_code == 400 and "status" in bad.json()["fields"]
        # a user who owns no order sees nothing, as the monolith's get_queryset says
        stranger = client.get("/api/v1/shipments/", headers=_identity("424242", key)).json()
        assert stranger["count"] == 0 and stranger["results"] == []
        hidden = client.get(f"/api/v1/shipments/{first['id']}/", headers=_identity("424242", key))
        assert hidden.status_code == 404


@pytest.mark.e2e
@pytest.mark.pg
@pytest.mark.slow
@pytest.mark.parametrize(
    ("context", "app_label", "models", "phase", "staff", "operations"),
    [
        ("shipping", "shipping", (), Phase.SHARED, False, 2),
        # a staff caller sees every shipment: the rows themselves are compared
        ("shipping", "shipping", (), Phase.SHARED, True, 2),
        ("shipping", "shipping", (), Phase.DUAL_WRITE, True, 2),
        # every generic write of catalog's CategoryViewSet, database effects compared
        ("catalog", "catalog", (), Phase.DUAL_WRITE, False, 6),
        # amounts kept as cents in the service, rendered as the monolith's decimal strings
        ("payments", "payments", (), Phase.DUAL_WRITE, True, 2),
    ],
)
def test_generated_service_passes_its_generated_contract_check(
    django_shop: None,
    tmp_path: Path,
    pg_admin_url: str,
    monkeypatch: pytest.MonkeyPatch,
    context: str,
    app_label: str,
    models: tuple[str, ...],
    phase: Phase,
    staff: bool,
    operations: int,
) -> None:
    """`strangler contract check CONTEXT` against the monolith on PostgreSQL, with the
    allowances init wrote; the service runs from the generated package (PYTHONPATH)."""
    result = _generate(tmp_path, context, app_label, *models)
    assert result.package_dir is not None
    path = os.pathsep.join(
        [str(result.package_dir.parent), str(REPO), os.environ.get("PYTHONPATH", "")]
    )
    monkeypatch.setenv("PYTHONPATH", path.rstrip(os.pathsep))
    monkeypatch.setenv("STRANGLER_PLANS_DIR", str(result.plan_path.parent))
    allowances = load_allowances(result.package_dir / "contract" / "allowances.yaml")
    report = check_context(
        result.plan, result.plan_path.parent, allowances, examples=8, seed=2,
        pg_server=pg_admin_url, phase=phase, staff=staff,
    )  # fmt: skip
    assert report.operations == operations and report.cases > 20
    assert (report.server_errors, report.differences) == (0, 0), report.as_json()
    assert report.ok


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "pg"])
@pytest.mark.parametrize(
    ("context", "app_label", "models"),
    [("shipping", "shipping", ()), ("catalog", "catalog", ())],
)
def test_generated_migration_matches_the_models_and_round_trips(
    django_shop: None,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    backend: str,
    context: str,
    app_label: str,
    models: tuple[str, ...],
) -> None:
    """0001 + 0002 create exactly what models.py declares (columns, types, nullability,
    uniques, foreign keys, indexes), and downgrade to base removes it all."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from dualwrite.schema import service_side_metadata

    result = _generate(tmp_path, context, app_label, *models)
    assert result.package_dir is not None
    if backend == "pg":
        url = request.getfixturevalue("pg_database")(f"init_{context}")
    else:
        url = f"sqlite:///{tmp_path / 'service.sqlite3'}"
    monkeypatch.syspath_prepend(str(result.package_dir.parent))
    config = Config(str(result.package_dir / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(url))
    command.upgrade(config, "head")
    package = __import__(f"{result.package_dir.name}.models", fromlist=["Base"])
    engine = sa.create_engine(sqlalchemy_url(url))
    try:
        with engine.connect() as conn:
            diffs = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}),
                [package.Base.metadata, service_side_metadata()],
            )
        mine = set(package.Base.metadata.tables)
        assert mine, "no table generated"
        assert [d for d in diffs if _table_of(d) in mine] == []
        command.downgrade(config, "base")
        assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()


def _table_of(diff: object) -> str | None:
    """The table an autogenerate difference is about (a tuple, or a list of tuples for
    column changes: ``('modify_type', schema, table, column, ...)``)."""
    first = diff[0] if isinstance(diff, list) else diff
    assert isinstance(first, tuple)
    for item in first[1:]:
        if isinstance(item, sa.Table):
            return str(item.name)
        table = getattr(item, "table", None)
        if isinstance(table, sa.Table):
            return str(table.name)
    return first[2] if len(first) > 2 and isinstance(first[2], str) else None
