"""The dashboard in a real browser (Debian's Chromium through Playwright) over real processes.

An echo upstream and the proxy run as processes; the plans, route table, SQLite
databases and the shadow results store (SQL, in the control-plane database) live in
a temp folder. The test signs in, then changes the world with the real CLI
(`strangler plan advance`, `strangler reconcile`) and a planted shadow mismatch, and
waits for the page to show each change without reloading. A screenshot is written
to ``var/artifacts/dashboard.png``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from migration_plans.control.processes import ManagedProcess, free_port, uvicorn_argv
from tests.conftest import REPO_ROOT, service_missing
from tests.dashboard.conftest import IDENTITY_KEY, TOKEN, routes_text
from tests.dashboard.seed import (
    add_monolith_only_product,
    copy_plans,
    make_databases,
    outcome,
    relayed_events,
    shadow_history,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACT = REPO_ROOT / "var" / "artifacts" / "dashboard.png"
WAIT_MS = 30_000
ROUTE = "catalog-products-item-reads"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """A headless Chromium with a fresh profile (skips locally when missing; fails under CI)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        service_missing("playwright is not installed (pip install playwright)")
    if not CHROMIUM.exists():
        service_missing(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1440, "height": 1000},
            device_scale_factor=1,
        )
        try:
            yield context
        finally:
            context.close()


def strangler(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "migration_plans.control.cli", *args],
        env={**os.environ, **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_dashboard_follows_the_migration(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    processes: Callable[..., ManagedProcess],
    browser: Any,
) -> None:
    from playwright.sync_api import expect

    # -- the world: plans (catalog in dual_write), databases, stores, processes ----------
    plans_dir = copy_plans(tmp_path / "plans", phases={"catalog": "dual_write"})
    databases = make_databases(tmp_path / "db", products_count=5)
    echo_port, proxy_port = free_port(), free_port()
    routes = tmp_path / "routes.yaml"
    routes.write_text(routes_text(plans_dir, f"http://127.0.0.1:{echo_port}"))
    env = {
        **databases.environment(),
        "STRANGLER_PLANS_DIR": str(plans_dir),
        "STRANGLER_ROUTES": str(routes),
        "STRANGLER_ADMIN_TOKEN": TOKEN,
        "STRANGLER_IDENTITY_KEY": IDENTITY_KEY,
        "STRANGLER_SHADOW_STORE": "sql",
        "STRANGLER_SHADOW_PREFIX": "dashboard-e2e",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("STRANGLER_SHADOW_STORE_URL", raising=False)
    from strangler_proxy.shadow.backend import open_store

    store = open_store()
    shadow_history(store, ROUTE)
    relayed_events(databases.catalog, "catalog", [8.0, 14.0, 22.0, 35.0, 61.0])
    relayed_events(databases.monolith, "catalog", [5.0, 9.0, 12.0])
    processes(
        uvicorn_argv("tests.proxy.echo_app:app", echo_port),
        name="echo",
        health_url=f"http://127.0.0.1:{echo_port}/healthz",
        env={"ECHO_NAME": "monolith"},
    )
    proxy = f"http://127.0.0.1:{proxy_port}"
    argv = [sys.executable, "-m", "migration_plans.control.cli", "proxy", "serve"]
    argv += ["--routes", str(routes)]
    argv += ["--port", str(proxy_port), "--reload-interval", "0.2", "--no-access-log"]
    processes(argv, name="proxy", health_url=f"{proxy}/_strangler/health", env=env, timeout=60)
    dashboard = f"{proxy}/_strangler/dashboard"

    # -- strangers get the login form, never data -----------------------------------------
    page = browser.new_page()
    page.goto(dashboard)
    expect(page.locator("input[name=token]")).to_be_visible()
    expect(page.locator("[data-context]")).to_have_count(0)
    assert page.request.get(f"{dashboard}/data").status == 401

    # -- sign in ------------------------------------------------------------------------
    page.fill("input[name=token]", "not-the-token-at-all")
    page.click("button[type=submit]")
    expect(page.locator(".alert.error")).to_contain_text("not the admin token")
    page.fill("input[name=token]", TOKEN)
    page.click("button[type=submit]")
    catalog = page.locator('[data-context="catalog"]')
    expect(catalog).to_have_attribute("data-phase", "dual_write", timeout=WAIT_MS)
    cookie = next(c for c in browser.cookies() if c["name"] == "strangler_admin")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads

    with httpx.Client(base_url=proxy) as client:  # some live traffic for the rates
        for _ in range(30):
            assert client.get("/api/v1/categories/").status_code == 200

    # -- a phase change made with the CLI shows up on the card -----------------------------
    advanced = strangler(
        env,
        "plan",
        "advance",
        "catalog",
        "--force",
        "--reason",
        "dashboard e2e",
        "--actor",
        "e2e-bot",
    )
    assert advanced.returncode == 0, advanced.stderr
    expect(catalog).to_have_attribute("data-phase", "split", timeout=WAIT_MS)
    expect(catalog.locator(".actor")).to_have_text("e2e-bot")
    products = page.locator('[data-table="catalog.products"]')
    expect(products).to_have_attribute("data-runs", "1", timeout=WAIT_MS)  # the final reconcile

    # -- a planted shadow mismatch appears with its diff ------------------------------------
    store.record(outcome(ROUTE, "Espresso cup (planted)", "Espresso Cup"))
    sample = page.locator(f'.shadow-route[data-route="{ROUTE}"] .sample')
    expect(sample).to_contain_text("Espresso cup (planted)", timeout=WAIT_MS)
    expect(sample.locator("tr.chg td.l")).to_contain_text("Espresso cup (planted)")
    expect(sample.locator("tr.chg td.r")).to_contain_text("Espresso Cup")
    expect(sample.locator(".differences")).to_contain_text("root['name']")

    # -- a reconcile run adds a point to the table's plot ------------------------------------
    add_monolith_only_product(databases.monolith, 42)
    reconciled = strangler(env, "reconcile", "run", "catalog", "--no-progress", "--grace", "0")
    assert reconciled.returncode == 1, reconciled.stderr  # divergent: one row missing
    expect(products).to_have_attribute("data-runs", "2", timeout=WAIT_MS)
    expect(products.locator("svg.plot")).to_have_attribute("data-points", "2")
    expect(products.locator(".tag.fail")).to_have_text("1 divergent")
    expect(page.locator(".last-run .report-link")).to_have_count(1)

    assert page.evaluate("window.__sameDocument") is True  # all of it without a reload
    expect(page.locator('tr[data-route="catalog-categories-reads"]')).not_to_contain_text(
        "measuring", timeout=WAIT_MS
    )
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACT), full_page=True)

    # -- signing out: the page is the login form again and the data is closed --------------
    page.click(".logout button")
    expect(page.locator("input[name=token]")).to_be_visible()
    assert page.request.get(f"{dashboard}/data").status == 401
