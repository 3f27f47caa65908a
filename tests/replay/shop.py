"""The demo shop's side of the phase replay: how it is seeded, how a customer logs in,
and the traffic (:class:`ShopWorkload`) the journeys run while contexts change phase."""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import httpx
from sqlalchemy import Connection, text

from migration_plans.control.stack import Stack
from migration_plans.core.phase import Side
from migration_plans.testing import AckedWrite, Step, ThreadedWorkload, Topology


@dataclass(frozen=True)
class SeedSize:
    """How much shop the monolith is seeded with (small: tests want seconds, not minutes)."""

    products: int = 40
    customers: int = 3
    seed: int = 7

    def __call__(self, stack: Stack) -> None:
        """Seed the migrated monolith (the ``replay_seed`` hook)."""
        stack.run_cli(
            "monolith", "seed", "--products", str(self.products),
            "--customers", str(self.customers), "--orders", "0", "--seed", str(self.seed),
        )  # fmt: skip


def log_customer_in(client: httpx.Client) -> dict[str, str]:
    """The first seeded customer's token, as the header the shop's API wants."""
    answer = client.post(
        "/api/v1/auth/token/", json={"username": "customer000001", "password": "password"}
    )
    answer.raise_for_status()
    return {"Authorization": f"Token {answer.json()['token']}"}


class ShopWorkload(ThreadedWorkload):
    """Concurrent traffic through the proxy; keeps every acknowledged write.

    Three kinds of writer run while :meth:`running`:

    - orders: ``POST /api/v1/orders/`` on ``order_products``, in every phase: the
      monolith reserves stock in the order's transaction while inventory lives in it,
      and through the inventory service (an order saga) once it is split.
    - catalog: creates a product, then changes its price and name, through the proxy.
    - stock: ``PATCH /api/v1/stock/{id}/`` on stock items of ``stock_products`` (kept
      apart from ``order_products``: a row written from both sides at once is settled
      by the phase's source of truth, which is no guarantee a test can assert).

    Only 2xx answers are recorded; refusals (a killed service, a phase in the middle
    of changing) are counted in :attr:`refused`.
    """

    def __init__(
        self,
        topology: Topology,
        *,
        order_products: Sequence[int] = (),
        stock_products: Sequence[int] = (),
        writers: Sequence[str] = ("orders", "orders", "catalog", "stock"),
        pace: float = 0.15,
        seed: int = 0,
    ) -> None:
        super().__init__(topology, writers=writers, pace=pace, seed=seed)
        self.order_products = list(order_products)
        self.stock_products = list(stock_products)
        self._stock_ids: list[int] = []
        # Workloads of one session share the monolith: the same seed must not make the
        # same skus twice (an earlier test's product would turn a create into a 400).
        self._sku_prefix = f"REPLAY-{uuid.uuid4().hex[:8]}"

    def steps(self) -> Mapping[str, Step]:
        return {"orders": self._order, "catalog": self._catalog, "stock": self._stock}

    def prepare(self) -> None:
        if not self.order_products or not self.stock_products:
            self._choose_products()

    def _choose_products(self) -> None:
        """Active products with the most stock: orders get most of them, stock writes the rest."""
        with self.topology.client() as client:
            answer = client.get(
                "/api/v1/stock/", params={"ordering": "-quantity", "page_size": 100}
            )
            answer.raise_for_status()
            active = client.get("/api/v1/products/", params={"is_active": "true", "page_size": 500})
            active.raise_for_status()
        usable = {int(product["id"]) for product in active.json()["results"]}
        ranked: list[int] = []
        for item in answer.json()["results"]:
            product = int(item["product"])
            if product in usable and product not in ranked:
                ranked.append(product)
        self.order_products = self.order_products or ranked[:10]
        self.stock_products = self.stock_products or ranked[10:16]
        if len(self.order_products) < 2 or not self.stock_products:
            raise RuntimeError(f"the seeded shop has too few stocked products: {ranked}")

    def _order(self, client: httpx.Client, rng: random.Random) -> None:
        products = rng.sample(self.order_products, k=min(2, len(self.order_products)))
        lines = [{"product": product, "quantity": 1} for product in products]
        inventory = self.topology.phase("inventory")
        answer = client.post("/api/v1/orders/", json={"lines": lines, "payment_token": "tok_visa"})
        if answer.status_code != 201:
            self.refuse("orders", answer)  # 202 too: a pending order is not acknowledged yet
            return
        expected = {product: 1 for product in products}
        order_id = int(answer.json()["id"])
        self.record(
            AckedWrite("inventory", "orders", order_id, expected, inventory, check=check_order)
        )

    def _catalog(self, client: httpx.Client, rng: random.Random) -> None:
        phase = self.topology.phase("catalog")
        number = rng.randrange(10**9)
        body = {
            "sku": f"{self._sku_prefix}-{number}",
            "name": f"Replay {number}",
            "description": "written by the phase replay",
            "price": f"{rng.randrange(100, 99999) / 100:.2f}",
            "is_active": True,
            "category": 1,
        }
        answer = client.post("/api/v1/products/", json=body)
        if answer.status_code != 201:
            self.refuse("catalog", answer)
            return
        key = int(answer.json()["id"])
        expected = {k: body[k] for k in ("sku", "name", "price", "is_active")}
        self.record(AckedWrite("catalog", "products", key, expected, phase, _rid(answer)))
        change = {"price": f"{rng.randrange(100, 99999) / 100:.2f}", "name": f"Renamed {number}"}
        # Answered with a 5xx or not at all (a service killed between its commit and its
        # answer), the change may have landed: only the columns it leaves are certain.
        uncertain = {k: v for k, v in expected.items() if k not in change}
        try:
            answer = client.patch(f"/api/v1/products/{key}/", json=change)
        except httpx.TransportError:
            self.record(AckedWrite("catalog", "products", key, uncertain, phase))
            raise
        if answer.status_code != 200:
            self.refuse("catalog", answer)
            if answer.status_code >= 500:
                self.record(AckedWrite("catalog", "products", key, uncertain, phase))
            return
        phase = self.topology.phase("catalog")
        self.record(
            AckedWrite("catalog", "products", key, {**expected, **change}, phase, _rid(answer))
        )

    def _stock(self, client: httpx.Client, rng: random.Random) -> None:
        if not self._stock_ids:
            answer = client.get("/api/v1/stock/", params={"page_size": 200})
            answer.raise_for_status()
            wanted = set(self.stock_products)
            self._stock_ids = [
                int(item["id"]) for item in answer.json()["results"] if item["product"] in wanted
            ]
        phase = self.topology.phase("inventory")
        if phase == "shared":
            return  # the stock item writes of the context go through the service only
        key = rng.choice(self._stock_ids)
        quantity = rng.randrange(50, 500)
        answer = client.patch(f"/api/v1/stock/{key}/", json={"quantity": quantity})
        if answer.status_code != 200:
            self.refuse("stock", answer)
            return
        expected = {"quantity": quantity}
        self.record(AckedWrite("inventory", "stock_levels", key, expected, phase, _rid(answer)))


def _rid(answer: httpx.Response) -> str:
    return answer.headers.get("x-request-id", "")


RESERVED_UNITS = {
    Side.MONOLITH: (
        "SELECT s.product_id, sum(r.quantity) FROM inventory_reservation r "
        "JOIN inventory_stockitem s ON s.id = r.stock_item_id "
        "WHERE r.order_id = :order GROUP BY s.product_id"
    ),
    Side.SERVICE: (
        "SELECT s.product_id, sum(r.quantity) FROM reservations r "
        "JOIN stock_levels s ON s.id = r.stock_level_id "
        "WHERE r.order_id = :order GROUP BY s.product_id"
    ),
}
"""Units reserved per product for one order, on either side."""


def check_order(conn: Connection, side: Side, write: AckedWrite) -> str | None:
    """An acknowledged order has exactly its lines' units reserved on ``side``."""
    rows = conn.execute(text(RESERVED_UNITS[side]), {"order": write.key})
    found = {int(product): int(units) for product, units in rows}
    if found != {int(k): v for k, v in write.expected.items()}:
        return (
            f"{side}: order {write.key} ({write.phase}) reserved {found}, "
            f"acknowledged {write.expected}"
        )
    return None
