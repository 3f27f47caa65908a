"""`strangler routes validate|diff|schema` and `strangler proxy serve` through Typer's CliRunner.

The bare commands (``python -m strangler_proxy``) and the `strangler` CLI's (with the
control plane's plan rules and dashboard) are both checked.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from migration_plans.control import cli as strangler_cli
from migration_plans.control.phase_rules import PlansOnDisk
from strangler_proxy import server
from strangler_proxy.app import StranglerProxy
from strangler_proxy.cli import app as bare_proxy_app
from strangler_proxy.cli import routes_app
from strangler_proxy.config import ProxyConfig

runner = CliRunner()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_validate_ok(tmp_path: Path, base_text: str) -> None:
    path = write(tmp_path, "routes.yaml", base_text)
    result = runner.invoke(routes_app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "ok: 4 routes in 2 contexts, version 7" in result.output


def test_validate_reports_every_problem_and_fails(tmp_path: Path, base_text: str) -> None:
    bad = base_text.replace("upstream: inventory\n", "upstream: inventry\n").replace(
        "{monolith: 90, catalog: 10}", "{monolith: 90, catalog: 20}"
    )
    path = write(tmp_path, "routes.yaml", bad)
    result = runner.invoke(routes_app, ["validate", str(path)])
    assert result.exit_code == 1
    assert (
        f"{path}:22: contexts.catalog.routes[2].canary.split: canary weights sum to 110"
        in result.output
    )
    assert (
        f"{path}:28: contexts.inventory.routes[0].upstream: unknown upstream 'inventry'"
        in result.output
    )
    assert "2 problems" in result.output


def test_validate_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(routes_app, ["validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1 and "cannot read" in result.output


def test_diff_shows_moves_and_weight_changes(tmp_path: Path, base_text: str) -> None:
    old = write(tmp_path, "old.yaml", base_text)
    cut = base_text.replace(
        "methods: [GET, POST]\n        upstream: monolith",
        "methods: [GET, POST]\n        upstream: catalog",
    ).replace("{monolith: 90, catalog: 10}", "{monolith: 50, catalog: 50}")
    new = write(tmp_path, "new.yaml", cut)
    result = runner.invoke(routes_app, ["diff", str(old), str(new)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "POST    /api/v1/products/ (prefix)  monolith -> catalog  (route products)" in lines
    assert any(
        "/api/v1/categories/ (prefix)  canary monolith 90 / catalog 10 -> canary monolith 50 / catalog 50"
        in line
        for line in lines
    )
    assert not any("product-detail" in line for line in lines)
    as_json = runner.invoke(routes_app, ["diff", str(old), str(new), "--json"])
    moves = json.loads(as_json.output)
    assert {
        "method": "GET",
        "path": "/api/v1/products/ (prefix)",
        "before": "monolith",
        "after": "catalog",
        "route_before": "products",
        "route_after": "products",
    } in moves


def test_diff_of_identical_tables(tmp_path: Path, base_text: str) -> None:
    path = write(tmp_path, "a.yaml", base_text)
    result = runner.invoke(routes_app, ["diff", str(path), str(path)])
    assert result.exit_code == 0 and "no traffic moves" in result.output


def test_diff_reports_default_upstream_change(tmp_path: Path, base_text: str) -> None:
    old = write(tmp_path, "old.yaml", base_text)
    new = write(tmp_path, "new.yaml", "default_upstream: inventory\n" + base_text)
    result = runner.invoke(routes_app, ["diff", str(old), str(new)])
    assert "DELETE  (anything else)  monolith -> inventory" in result.output


def test_schema_is_json_schema(tmp_path: Path) -> None:
    result = runner.invoke(routes_app, ["schema"])
    schema = json.loads(result.output)
    assert schema["title"] == "RouteTable"
    assert {"upstreams", "contexts", "auth"} <= set(schema["properties"])
    assert "Route" in schema["$defs"] and "Shadow" in schema["$defs"]


def test_validate_against_the_plans_phases(tmp_path: Path) -> None:
    plans = tmp_path / "plans"
    plans.mkdir()
    (plans / "catalog.yaml").write_text(Path("migration_plans/templates/catalog.yaml").read_text())
    table = """\
upstreams:
  monolith: {url: "http://127.0.0.1:1"}
  catalog: {url: "http://127.0.0.1:2"}
contexts:
  catalog:
    routes:
      - name: products
        prefix: /api/v1/products/
        methods: [GET, POST]
        upstream: catalog
"""
    path = write(tmp_path, "routes.yaml", table)
    assert runner.invoke(strangler_cli.routes_app, ["validate", str(path)]).exit_code == 0
    result = runner.invoke(strangler_cli.routes_app, ["validate", str(path), "--plans", str(plans)])
    assert result.exit_code == 1
    assert f"{path}:10: contexts.catalog.routes[0].upstream:" in result.output
    assert "phase 'shared'" in result.output


def test_bare_commands_refuse_plans(tmp_path: Path, base_text: str) -> None:
    path = write(tmp_path, "routes.yaml", base_text)
    result = runner.invoke(routes_app, ["validate", str(path), "--plans", str(tmp_path)])
    assert result.exit_code == 2 and "--plans needs the migration plans" in result.output
    assert "--plans" not in runner.invoke(routes_app, ["validate", "--help"]).output
    assert "--plans" in runner.invoke(strangler_cli.routes_app, ["validate", "--help"]).output


def test_serve_refuses_bad_settings_before_listening(tmp_path: Path, base_text: str) -> None:
    app = bare_proxy_app
    path = write(tmp_path, "routes.yaml", base_text)
    result = runner.invoke(app, ["serve", "--routes", str(path), "--slashes", "maybe"])
    assert (
        result.exit_code == 2
        and "slashes: Input should be 'reject' or 'normalise'" in result.output
    )
    broken = write(
        tmp_path, "broken.yaml", base_text.replace("upstream: inventory\n", "upstream: x\n")
    )
    result = runner.invoke(app, ["serve", "--routes", str(broken)])
    assert result.exit_code == 1 and "unknown upstream 'x'" in result.output


def served(
    app: Any, argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[StranglerProxy, Any]:
    """The proxy `serve` would run (server.run replaced), and the phase rules it got."""
    seen: dict[str, Any] = {}

    def run(config: ProxyConfig, phase_rules: Any = None, admin_mounts: Any = None) -> None:
        seen["proxy"] = StranglerProxy(config, phase_rules=phase_rules, admin_mounts=admin_mounts)
        seen["rules"] = phase_rules

    monkeypatch.setattr(server, "run", run)
    result = runner.invoke(app, ["serve", *argv])
    assert result.exit_code == 0, result.output
    return seen["proxy"], seen["rules"]


async def admin_get(proxy: StranglerProxy, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=proxy)
    async with httpx.AsyncClient(transport=transport, base_url="http://proxy.test") as http:
        return await http.get(path)


def test_strangler_proxy_serve_mounts_the_dashboard(
    tmp_path: Path, base_text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRANGLER_ADMIN_TOKEN", "cli-admin-token-0123456789")
    path = write(tmp_path, "routes.yaml", base_text)
    argv = ["--routes", str(path), "--no-access-log"]
    plans = tmp_path / "plans"
    plans.mkdir()
    (plans / "catalog.yaml").write_text(Path("migration_plans/templates/catalog.yaml").read_text())
    proxy, rules = served(strangler_cli.proxy_app, [*argv, "--plans", str(plans)], monkeypatch)
    assert isinstance(rules, PlansOnDisk)
    css = asyncio.run(admin_get(proxy, "/_strangler/dashboard/static/dashboard.css"))
    page = asyncio.run(admin_get(proxy, "/_strangler/dashboard"))
    assert css.status_code == 200 and css.headers["content-type"] == "text/css"
    assert page.status_code == 401 and 'name="token"' in page.text
    assert (
        page.headers["x-request-id"]
        and "frame-ancestors" in page.headers["content-security-policy"]
    )

    bare, rules = served(bare_proxy_app, argv, monkeypatch)
    assert rules is None
    css = asyncio.run(admin_get(bare, "/_strangler/dashboard/static/dashboard.css"))
    assert css.status_code == 401 and css.json()["code"] == "unauthorized"


def test_serve_follows_the_live_phase_by_default(
    tmp_path: Path, base_text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "routes.yaml", base_text)
    argv = ["--routes", str(path), "--port", "8123"]
    proxy, _ = served(bare_proxy_app, argv, monkeypatch)
    config = proxy.config
    assert config.live_phase and config.fence_queue == 1000
    assert config.advertise_url == "http://127.0.0.1:8123"
    more = ["--advertise-url", "http://proxy-1.internal:8000", "--fence-queue", "5"]
    proxy, _ = served(bare_proxy_app, [*argv, *more, "--no-live-phase"], monkeypatch)
    config = proxy.config
    assert not config.live_phase and config.fence_queue == 5
    assert config.advertise_url == "http://proxy-1.internal:8000"
    result = runner.invoke(bare_proxy_app, ["serve", *argv, "--fence-queue", "-1"])
    assert result.exit_code == 2 and "fence_queue" in result.output
