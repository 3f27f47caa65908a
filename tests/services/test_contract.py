"""Contract: the same requests to a real monolith process and real service processes over
HTTP, compared field by field (see ``contract.py`` for the sequence's accepted differences)."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from migration_plans.control.processes import ManagedProcess, free_port, uvicorn_argv
from migration_plans.core.database import libpq_url
from tests.services.conftest import IDENTITY_KEY, Databases, identity_headers
from tests.services.contract import Comparison, Exchange, Step
from tests.services.seed import seed_inventory_service, seed_monolith

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

STRANGLER = str(Path(sys.executable).with_name("strangler"))

CATALOG_READS = [
    Step("categories", "GET", "/api/v1/categories/"),
    Step("categories by slug desc", "GET", "/api/v1/categories/?ordering=-slug"),
    Step("category detail", "GET", "/api/v1/categories/2/"),
    Step("products page 2", "GET", "/api/v1/products/?page=2&page_size=4&ordering=-price"),
    Step("products last page", "GET", "/api/v1/products/?page=last&page_size=10"),
    Step("products filtered", "GET", "/api/v1/products/?category=1&is_active=true&ordering=name"),
    Step("products by sku", "GET", "/api/v1/products/?sku=SKU-004"),
    Step("products ignores bad ordering", "GET", "/api/v1/products/?ordering=nope,-id"),
    Step("products huge page size", "GET", "/api/v1/products/?page_size=500"),
    Step("products invalid page", "GET", "/api/v1/products/?page=0"),
    Step("products bad filter", "GET", "/api/v1/products/?category=x"),
    Step("product detail", "GET", "/api/v1/products/7/"),
    Step("product missing", "GET", "/api/v1/products/9999/"),
    Step("product not a number", "GET", "/api/v1/products/abc/"),
]

INVENTORY_READS = [
    Step("warehouses", "GET", "/api/v1/warehouses/?ordering=-name"),
    Step("warehouse detail", "GET", "/api/v1/warehouses/2/"),
    Step("stock", "GET", "/api/v1/stock/?ordering=-reserved,quantity"),
    Step("stock by product", "GET", "/api/v1/stock/?product=1"),
    Step("stock by warehouse", "GET", "/api/v1/stock/?warehouse=2&page_size=1"),
    Step("stock filtered by an unknown warehouse", "GET", "/api/v1/stock/?warehouse=99"),
    Step(
        "stock filtered by a product the monolith does not know",
        "GET",
        "/api/v1/stock/?product=999",
    ),
    Step("stock detail", "GET", "/api/v1/stock/3/"),
    Step("stock missing", "GET", "/api/v1/stock/99/"),
]

CATALOG_WRITES = [
    Step(
        "create category", "POST", "/api/v1/categories/", {"name": "Tools", "slug": "tools"}, True
    ),
    Step(
        "create category 2",
        "POST",
        "/api/v1/categories/",
        {"name": "Garden", "slug": "garden", "description": "Outside"},
        True,
    ),
    Step(
        "duplicate category",
        "POST",
        "/api/v1/categories/",
        {"name": "Tools", "slug": "tools"},
        True,
    ),
    Step("bad slug", "POST", "/api/v1/categories/", {"name": "Other", "slug": "no spaces"}, True),
    Step("anonymous write", "POST", "/api/v1/categories/", {"name": "Anon", "slug": "anon"}),
    Step(
        "create product",
        "POST",
        "/api/v1/products/",
        {"sku": "A-1", "name": "Hammer", "price": "79.19", "category": 1},
        True,
    ),
    Step(
        "create product 2",
        "POST",
        "/api/v1/products/",
        {"sku": "B-2", "name": "Rake", "price": 12.5, "category": 2, "is_active": False},
        True,
    ),
    Step(
        "create product 3",
        "POST",
        "/api/v1/products/",
        {"sku": "C-3", "name": "Saw", "price": "5", "category": 1, "description": "Sharp"},
        True,
    ),
    Step(
        "invalid product",
        "POST",
        "/api/v1/products/",
        {"sku": "A-1", "name": "", "price": "1.234", "category": 99},
        True,
    ),
    Step("missing fields", "POST", "/api/v1/products/", {}, True),
    Step(
        "wrong types",
        "POST",
        "/api/v1/products/",
        {"sku": ["x"], "name": 5, "price": None, "category": "abc", "is_active": None},
        True,
    ),
    Step(
        "too big",
        "POST",
        "/api/v1/products/",
        {"sku": "S" * 33, "name": "n", "price": "123456789.5", "category": True},
        True,
    ),
    Step(
        "negative price",
        "POST",
        "/api/v1/products/",
        {"sku": "N-1", "name": "n", "price": "-1", "category": 1, "description": None},
        True,
    ),
    Step("body is a list", "POST", "/api/v1/products/", [1, 2], True),
    Step("slug taken", "PATCH", "/api/v1/categories/2/", {"slug": "tools", "name": " "}, True),
    Step(
        "patch product",
        "PATCH",
        "/api/v1/products/1/",
        {"price": "80.00", "is_active": False},
        True,
    ),
    Step(
        "put product",
        "PUT",
        "/api/v1/products/3/",
        {"sku": "C-3", "name": "Big saw", "price": "15.50", "category": 2},
        True,
    ),
    Step("put product incomplete", "PUT", "/api/v1/products/3/", {"name": "x"}, True),
    Step("patch missing product", "PATCH", "/api/v1/products/77/", {"name": "x"}, True),
    Step("list after writes", "GET", "/api/v1/products/?ordering=-price&page_size=2"),
    Step("inactive products", "GET", "/api/v1/products/?is_active=false"),
    Step("delete product", "DELETE", "/api/v1/products/2/", None, True),
    Step("deleted product", "GET", "/api/v1/products/2/"),
    Step("delete category in use", "DELETE", "/api/v1/categories/1/", None, True),
    Step("delete unknown category", "DELETE", "/api/v1/categories/50/", None, True),
    Step("method not allowed", "DELETE", "/api/v1/products/", None, True),
    Step("no slash", "GET", "/api/v1/products"),
    Step("patch category", "PATCH", "/api/v1/categories/2/", {"description": "Out there"}, True),
    Step("categories after writes", "GET", "/api/v1/categories/"),
]

CATALOG_IN_USE = [
    # stock rows in the monolith reference product 1 (inventory lives there): the monolith's
    # on_delete=PROTECT answers 409 in_use, and so must the catalog service
    Step("delete product in stock", "DELETE", "/api/v1/products/1/", None, True),
]

INVENTORY_WRITES = [
    Step(
        "reserve",
        "POST",
        "/api/v1/stock/reserve/",
        {"order_id": 42, "lines": [{"product": 1, "quantity": 6}, {"product": 2, "quantity": 2}]},
        True,
    ),
    Step(
        "reserve retried",
        "POST",
        "/api/v1/stock/reserve/",
        {"order_id": 42, "lines": [{"product": 1, "quantity": 6}, {"product": 2, "quantity": 2}]},
        True,
    ),
    Step(
        "reserve retried in other lines",
        "POST",
        "/api/v1/stock/reserve/",
        {
            "order_id": 42,
            "lines": [
                {"product": 2, "quantity": 2},
                {"product": 1, "quantity": 5},
                {"product": 1, "quantity": 1},
            ],
        },
        True,
    ),
    Step(
        "reserve other lines for a reserved order",
        "POST",
        "/api/v1/stock/reserve/",
        {"order_id": 42, "lines": [{"product": 1, "quantity": 6}]},
        True,
    ),
    Step(
        "reserve too much",
        "POST",
        "/api/v1/stock/reserve/",
        {"order_id": 43, "lines": [{"product": 2, "quantity": 1}, {"product": 3, "quantity": 1}]},
        True,
    ),
    Step("reserve invalid", "POST", "/api/v1/stock/reserve/", {"order_id": 0, "lines": []}, True),
    Step(
        "reserve bad line",
        "POST",
        "/api/v1/stock/reserve/",
        {"order_id": 5, "lines": [{"product": 1, "quantity": 0}, "x"]},
        True,
    ),
    Step(
        "reserve lines not a list",
        "POST",
        "/api/v1/stock/reserve/",
        {"order_id": 5, "lines": {"product": 1}},
        True,
    ),
    Step(
        "reserve an unknown product",
        "POST",
        "/api/v1/stock/reserve/",
        {"order_id": 6, "lines": [{"product": 999, "quantity": 1}]},
        True,
    ),
    Step(
        "reserve anonymous",
        "POST",
        "/api/v1/stock/reserve/",
        {"order_id": 5, "lines": [{"product": 1, "quantity": 1}]},
    ),
    Step("stock after reserve", "GET", "/api/v1/stock/"),
    Step("adjust stock", "PATCH", "/api/v1/stock/3/", {"quantity": 20}, True),
    Step("adjust below reserved", "PATCH", "/api/v1/stock/2/", {"quantity": 0}, True),
    Step("adjust negative", "PATCH", "/api/v1/stock/2/", {"quantity": -3}, True),
    Step("adjust missing", "PATCH", "/api/v1/stock/99/", {"quantity": 1}, True),
    Step("adjust with text", "PATCH", "/api/v1/stock/1/", {"quantity": "7"}, True),
    Step("adjust with a fraction", "PATCH", "/api/v1/stock/1/", {"quantity": 1.5}, True),
    Step("adjust with nothing", "PATCH", "/api/v1/stock/1/", {}, True),
    Step("release bad id", "POST", "/api/v1/stock/release/", {"order_id": "abc"}, True),
    Step("release", "POST", "/api/v1/stock/release/", {"order_id": 42}, True),
    Step("release again", "POST", "/api/v1/stock/release/", {"order_id": 42}, True),
    Step("release unknown", "POST", "/api/v1/stock/release/", {"order_id": 404}, True),
    Step("stock after release", "GET", "/api/v1/stock/?ordering=id"),
    Step(
        "reserve retried after release",
        "POST",
        "/api/v1/stock/reserve/",
        {"order_id": 42, "lines": [{"product": 1, "quantity": 6}, {"product": 2, "quantity": 2}]},
        True,
    ),
    Step(
        "reserve to ship",
        "POST",
        "/api/v1/stock/reserve/",
        {"order_id": 44, "lines": [{"product": 1, "quantity": 4}, {"product": 2, "quantity": 3}]},
        True,
    ),
    Step("consume", "POST", "/api/v1/stock/consume/", {"order_id": 44}, True),
    Step("consume again", "POST", "/api/v1/stock/consume/", {"order_id": 44}, True),
    Step("consume a released order", "POST", "/api/v1/stock/consume/", {"order_id": 42}, True),
    Step("consume unknown", "POST", "/api/v1/stock/consume/", {"order_id": 404}, True),
    Step("consume bad id", "POST", "/api/v1/stock/consume/", {"order_id": "abc"}, True),
    Step("stock after consume", "GET", "/api/v1/stock/?ordering=id"),
    Step("reserve is POST only", "GET", "/api/v1/stock/reserve/"),
    Step("consume is POST only", "GET", "/api/v1/stock/consume/"),
    Step("stock put not allowed", "PUT", "/api/v1/stock/1/", {"quantity": 1}, True),
]


def add_token_user(monolith_url: str) -> str:
    """A monolith user with an API token (what the proxy would hold for a client)."""
    key = secrets.token_hex(20)
    with psycopg.connect(libpq_url(monolith_url), autocommit=True) as conn:
        user_id = conn.execute(
            "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name,"
            " email, is_staff, is_active, date_joined)"
            " VALUES ('!', false, 'contract', '', '', '', false, true, now()) RETURNING id"
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO authtoken_token (key, created, user_id) VALUES (%s, now(), %s)",
            (key, user_id),
        )
    return key


@dataclass
class Server:
    """A process started without waiting, so several can boot at once."""

    process: ManagedProcess
    base: str

    def ready(self, timeout: float = 90) -> str:
        self.process.health_url = f"{self.base}/healthz"
        self.process.wait_healthy(timeout)
        return self.base


def up(*servers: Server) -> list[str]:
    """Wait until every server answers its health check; their base URLs."""
    return [server.ready() for server in servers]


def start_monolith(processes: Callable[..., ManagedProcess], url: str) -> Server:
    port = free_port()
    env = {
        "DATABASE_URL": url,
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_hex(16),
        "MONOLITH_ACCESS_LOG": "false",
    }
    argv = uvicorn_argv("legacy_monolith.asgi:application", port)
    return Server(processes(argv, name="monolith", env=env), f"http://127.0.0.1:{port}")


def start_service(
    processes: Callable[..., ManagedProcess],
    context: str,
    phase: str,
    monolith_url: str,
    service_url: str,
) -> Server:
    port = free_port()
    prefix = context.upper()
    env = {
        f"{prefix}_PHASE": phase,
        f"{prefix}_DATABASE_URL": service_url,
        f"{prefix}_MONOLITH_DATABASE_URL": monolith_url,
        f"{prefix}_IDENTITY_KEY": IDENTITY_KEY,
    }
    if context == "catalog":  # the documented way: `strangler service serve catalog --port P`
        argv = [STRANGLER, "service", "serve", context, "--port", str(port)]
    else:
        argv = uvicorn_argv(f"extracted_services.{context}.main:create_app", port, factory=True)
    return Server(processes(argv, name=context, env=env), f"http://127.0.0.1:{port}")


def exchange(client: httpx.Client, step: Step, headers: dict[str, str]) -> Exchange:
    response = client.request(
        step.method, step.path, json=step.body, headers=headers if step.auth else {}
    )
    body: Any = response.json() if response.content else None
    return Exchange(step, response.status_code, body, str(client.base_url).rstrip("/"))


def run_contract(phase: str, pairs: list[tuple[str, str, list[Step]]], token: str) -> list[str]:
    """Send every step to both sides (kept-alive connections); the mismatches, in words."""
    comparison = Comparison(phase)
    for monolith_base, service_base, steps in pairs:
        with (
            httpx.Client(base_url=monolith_base, timeout=30) as monolith_client,
            httpx.Client(base_url=service_base, timeout=30) as service_client,
        ):
            for step in steps:
                monolith = exchange(monolith_client, step, {"Authorization": f"Token {token}"})
                service = exchange(service_client, step, identity_headers())
                comparison.compare(monolith, service)
    return comparison.mismatches


@pytest.mark.parametrize("backend", ["pg", "sqlite"], indirect=True)
def test_shared_phase_serves_exactly_what_the_monolith_serves(databases: Databases, processes):
    monolith_db = databases.monolith()
    seed_monolith(monolith_db)
    token = "reads-only"
    monolith, catalog, inventory = up(
        start_monolith(processes, monolith_db),
        start_service(processes, "catalog", "shared", monolith_db, ""),
        start_service(processes, "inventory", "shared", monolith_db, ""),
    )
    mismatches = run_contract(
        "shared",
        [(monolith, catalog, CATALOG_READS), (monolith, inventory, INVENTORY_READS)],
        token,
    )
    assert mismatches == [], "\n".join(mismatches)


@pytest.mark.parametrize("backend", ["pg"], indirect=True)
@pytest.mark.parametrize("phase", ["dual_write", "split"])
def test_write_phases_answer_like_the_monolith(databases: Databases, processes, phase: str):
    monolith_db = databases.monolith()
    token = add_token_user(monolith_db)
    catalog_db, inventory_db = databases.service("catalog"), databases.service("inventory")
    monolith, catalog, inventory = up(
        start_monolith(processes, monolith_db),
        start_service(processes, "catalog", phase, monolith_db, catalog_db),
        start_service(processes, "inventory", phase, monolith_db, inventory_db),
    )
    mismatches = run_contract(phase, [(monolith, catalog, CATALOG_WRITES)], token)
    assert mismatches == [], "\n".join(mismatches)

    _reset_catalog_and_seed_inventory(monolith_db, inventory_db)
    steps = INVENTORY_WRITES + INVENTORY_READS
    mismatches = run_contract(phase, [(monolith, inventory, steps)], token)
    assert mismatches == [], "\n".join(mismatches)

    mismatches = run_contract(phase, [(monolith, catalog, CATALOG_IN_USE)], token)
    assert mismatches == [], "\n".join(mismatches)


def _reset_catalog_and_seed_inventory(monolith_db: str, inventory_db: str) -> None:
    with psycopg.connect(libpq_url(monolith_db), autocommit=True) as conn:
        conn.execute("TRUNCATE catalog_product, catalog_category RESTART IDENTITY CASCADE")
    seed_monolith(monolith_db)
    seed_inventory_service(inventory_db)
