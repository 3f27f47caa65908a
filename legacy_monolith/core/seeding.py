"""Fill the shop with realistic, deterministic data fast (one transaction, executemany).

Seeding replaces the shop's data: every shop table is emptied with plain DELETEs
(so row triggers still fire), then refilled from ``random.Random(seed)`` with
explicit ids (1..n per table) and the id sequences moved past them. The same
arguments give the same rows and ids on SQLite and PostgreSQL. The big tables are
written with ``executemany`` over prepared tuples: building 100k model instances
costs more than the inserts themselves.

    report = seed(SeedPlan(products=100_000, customers=1_000, orders=5_000, seed=42))
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.management.color import no_style
from django.db import connection, models, transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from legacy_monolith.catalog.models import Category, Product
from legacy_monolith.customers.models import Customer
from legacy_monolith.inventory.models import Reservation, StockItem, Warehouse
from legacy_monolith.orders.models import Order, OrderLine
from legacy_monolith.payments.models import Payment
from legacy_monolith.shipping.models import Shipment

SEED_PASSWORD = "password"

CATEGORIES = [
    "Shoes", "Outdoor", "Kitchen", "Garden", "Books", "Toys", "Audio", "Cameras",
    "Computers", "Phones", "Furniture", "Lighting", "Bikes", "Fitness", "Office",
    "Pets", "Beauty", "Tools", "Games", "Watches",
]  # fmt: skip
ADJECTIVES = [
    "Classic", "Compact", "Deluxe", "Ergonomic", "Foldable", "Heavy-duty", "Lightweight",
    "Modern", "Portable", "Premium", "Rugged", "Smart", "Sleek", "Vintage", "Wireless",
]  # fmt: skip
NOUNS = [
    "Backpack", "Blender", "Boots", "Chair", "Desk", "Drill", "Headphones", "Jacket",
    "Kettle", "Lamp", "Monitor", "Mug", "Speaker", "Tent", "Watch", "Keyboard",
]  # fmt: skip
FIRST_NAMES = ["Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas"]
LAST_NAMES = ["Garcia", "Jensen", "Khan", "Laurent", "Meyer", "Novak", "Okafor", "Rossi", "Smith"]
CITIES = [("Amsterdam", "NL"), ("Berlin", "DE"), ("Lyon", "FR"), ("Madrid", "ES"), ("Oslo", "NO")]
WAREHOUSES = [("AMS1", "Amsterdam"), ("FRA1", "Frankfurt"), ("MAD1", "Madrid"), ("WAW1", "Warsaw")]
CARRIERS = ["DHL", "UPS", "DPD", "PostNL"]

# Children before parents: the order rows are deleted in.
SHOP_MODELS: list[type[models.Model]] = [
    Shipment, Payment, Reservation, OrderLine, Order, StockItem, Product, Category,
    Warehouse, Customer,
]  # fmt: skip

Row = tuple[Any, ...]


@dataclass(frozen=True)
class SeedPlan:
    """How much to create; ``seed`` makes the run reproducible."""

    products: int = 1_000
    customers: int = 100
    orders: int = 200
    seed: int = 42
    warehouses: int = 3


@dataclass
class SeedReport:
    """Rows written per table and the wall-clock time it took."""

    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


class _Writer:
    """Inserts tuples into a model's table with executemany and counts them."""

    def __init__(self, report: SeedReport) -> None:
        self.report = report
        now = timezone.now().replace(microsecond=0)
        self.now = connection.ops.adapt_datetimefield_value(now)

    def insert(self, model: type[models.Model], columns: Sequence[str], rows: list[Row]) -> None:
        table = model._meta.db_table
        quote = connection.ops.quote_name
        names = ", ".join(quote(c) for c in columns)
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                # COPY is an order of magnitude faster than INSERTs and still fires row triggers.
                with cursor.cursor.copy(f"COPY {quote(table)} ({names}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                placeholders = ", ".join(["%s"] * len(columns))
                sql = f"INSERT INTO {quote(table)} ({names}) VALUES ({placeholders})"
                for start in range(0, len(rows), 10_000):
                    cursor.executemany(sql, rows[start : start + 10_000])
        self.report.counts[table] = len(rows)


def reset_shop() -> None:
    """Empty the shop tables and seeded (non-staff) users with DELETEs; triggers still fire."""
    user_model = get_user_model()
    seeded_users = user_model.objects.filter(is_staff=False, is_superuser=False)
    with connection.cursor() as cursor:
        for model in SHOP_MODELS:
            cursor.execute(f"DELETE FROM {connection.ops.quote_name(model._meta.db_table)}")
    Token.objects.filter(user__in=seeded_users).delete()
    seeded_users.delete()


def _advance_sequences() -> None:
    """Move id sequences past the explicit ids (PostgreSQL; SQLite tracks them itself)."""
    statements = connection.ops.sequence_reset_sql(no_style(), SHOP_MODELS)
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def _customers(rng: random.Random, plan: SeedPlan, out: _Writer) -> list[int]:
    user_model = get_user_model()
    password = make_password(SEED_PASSWORD, salt=f"strangerseed{plan.seed}")
    users = user_model.objects.bulk_create(
        user_model(username=f"customer{i:06d}", password=password, email=f"customer{i}@example.com")
        for i in range(1, plan.customers + 1)
    )
    out.report.counts[user_model._meta.db_table] = len(users)
    rows = []
    for customer_id, user in enumerate(users, start=1):
        city, country = rng.choice(CITIES)
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        street = f"{rng.randrange(1, 300)} {rng.choice(NOUNS)} Street"
        phone = f"+31 6 {rng.randrange(10**7, 10**8)}"
        postal = str(rng.randrange(1000, 9999))
        rows.append((customer_id, user.pk, user.email, first, last, phone, street, city,
                     postal, country, out.now, out.now))  # fmt: skip
    out.insert(Customer, ["id", "user_id", "email", "first_name", "last_name", "phone",
                          "address_line", "city", "postal_code", "country", "created_at",
                          "updated_at"], rows)  # fmt: skip
    return [row[0] for row in rows]


@dataclass
class _Catalog:
    prices: list[Decimal]  # index = product id - 1
    active: list[bool]


def _catalog(rng: random.Random, plan: SeedPlan, out: _Writer) -> _Catalog:
    categories = [
        (i, name, name.lower(), f"Everything in {name.lower()}.")
        for i, name in enumerate(CATEGORIES, start=1)
    ]
    out.insert(Category, ["id", "name", "slug", "description"], categories)
    rows, prices, active = [], [], []
    for product_id in range(1, plan.products + 1):
        adjective, noun = rng.choice(ADJECTIVES), rng.choice(NOUNS)
        price = Decimal(rng.randrange(99, 50_000)) / 100
        is_active = rng.random() < 0.95
        rows.append((product_id, f"SKU-{product_id:07d}",
                     f"{adjective} {noun} {rng.randrange(100, 999)}",
                     f"A {adjective.lower()} {noun.lower()} for every day.", price, is_active,
                     rng.randrange(1, len(categories) + 1), out.now, out.now))  # fmt: skip
        prices.append(price)
        active.append(is_active)
    out.insert(Product, ["id", "sku", "name", "description", "price", "is_active", "category_id",
                         "created_at", "updated_at"], rows)  # fmt: skip
    return _Catalog(prices=prices, active=active)


def _stock(rng: random.Random, plan: SeedPlan, out: _Writer) -> list[list[list[int]]]:
    """Stock per product (index = product id - 1): mutable ``[id, warehouse, qty, reserved]``."""
    warehouses = WAREHOUSES[: max(1, plan.warehouses)]
    out.insert(
        Warehouse,
        ["id", "code", "name"],
        [(i, code, name) for i, (code, name) in enumerate(warehouses, start=1)],
    )
    stock, next_id = [], 1
    for _ in range(plan.products):
        chosen = sorted(rng.sample(range(1, len(warehouses) + 1), rng.randint(1, len(warehouses))))
        items = []
        for warehouse_id in chosen:
            items.append([next_id, warehouse_id, rng.randrange(0, 200), 0])
            next_id += 1
        stock.append(items)
    return stock


@dataclass
class _Orders:
    orders: list[Row] = field(default_factory=list)
    lines: list[Row] = field(default_factory=list)
    payments: list[Row] = field(default_factory=list)
    shipments: list[Row] = field(default_factory=list)
    reservations: list[Row] = field(default_factory=list)


def _pick_status(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.7:
        return str(Order.Status.SHIPPED)
    return str(Order.Status.PAID) if roll < 0.9 else str(Order.Status.CANCELLED)


def _order(rng: random.Random, customer_id: int, catalog: _Catalog,
           stock: list[list[list[int]]], rows: _Orders, now: Any) -> None:  # fmt: skip
    order_id, status = len(rows.orders) + 1, _pick_status(rng)
    held, total, lines = status == Order.Status.PAID, Decimal("0.00"), []
    for index in rng.sample(range(len(stock)), min(len(stock), rng.randint(1, 3))):
        items = [item for item in stock[index] if item[2] - item[3] >= 1]
        if not catalog.active[index] or not items:
            continue
        item, price = items[0], catalog.prices[index]
        quantity = min(rng.randint(1, 3), item[2] - item[3])
        item[3] += quantity if held else 0
        lines.append((index + 1, quantity, price, item[0]))
        total += price * quantity
    if not lines:
        return
    rows.orders.append((order_id, customer_id, status, total, "EUR", now, now))
    for product_id, quantity, price, stock_item_id in lines:
        rows.lines.append((len(rows.lines) + 1, order_id, product_id, quantity, price))
        rows.reservations.append((len(rows.reservations) + 1, order_id, stock_item_id,
                                  quantity, not held, now))  # fmt: skip
    refunded = status == Order.Status.CANCELLED
    rows.payments.append((order_id, order_id, total, "EUR",
                          "refunded" if refunded else "succeeded", f"ch_seed_{order_id:09d}",
                          "4242", now, now))  # fmt: skip
    if status == Order.Status.SHIPPED:
        carrier = rng.choice(CARRIERS)
        rows.shipments.append((len(rows.shipments) + 1, order_id, carrier,
                               f"{carrier.upper()}{order_id:012d}", "shipped", now))  # fmt: skip


def _orders(rng: random.Random, plan: SeedPlan, customers: list[int], catalog: _Catalog,
            stock: list[list[list[int]]], out: _Writer) -> None:  # fmt: skip
    rows = _Orders()
    if customers and stock:
        for _ in range(plan.orders):
            _order(rng, rng.choice(customers), catalog, stock, rows, out.now)
    out.insert(StockItem, ["id", "product_id", "warehouse_id", "quantity", "reserved",
                           "updated_at"],
               [(item[0], index + 1, item[1], item[2], item[3], out.now)
                for index, items in enumerate(stock) for item in items])  # fmt: skip
    out.insert(Order, ["id", "customer_id", "status", "total", "currency", "created_at",
                       "updated_at"], rows.orders)  # fmt: skip
    out.insert(OrderLine, ["id", "order_id", "product_id", "quantity", "unit_price"], rows.lines)
    out.insert(Payment, ["id", "order_id", "amount", "currency", "status", "provider_reference",
                         "card_last4", "created_at", "updated_at"], rows.payments)  # fmt: skip
    out.insert(Shipment, ["id", "order_id", "carrier", "tracking_number", "status",
                          "shipped_at"], rows.shipments)  # fmt: skip
    out.insert(Reservation, ["id", "order_id", "stock_item_id", "quantity", "released",
                             "created_at"], rows.reservations)  # fmt: skip


def seed(plan: SeedPlan, progress: Callable[[str], Any] | None = None) -> SeedReport:
    """Replace the shop's data with ``plan``'s worth of deterministic rows."""
    started = time.perf_counter()
    rng = random.Random(plan.seed)
    report = SeedReport()
    say = progress or (lambda message: None)
    with transaction.atomic():
        reset_shop()
        out = _Writer(report)
        say("customers")
        customers = _customers(rng, plan, out)
        say("catalog")
        catalog = _catalog(rng, plan, out)
        say("stock")
        stock = _stock(rng, plan, out)
        say("orders")
        _orders(rng, plan, customers, catalog, stock, out)
        _advance_sequences()
    report.seconds = time.perf_counter() - started
    return report
