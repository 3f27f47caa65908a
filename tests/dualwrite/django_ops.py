"""Monolith writes through the Django ORM, run as a subprocess by the dual-write tests.

    python tests/dualwrite/django_ops.py seed bulk_update raw_sql ...

Prints one JSON line: what each step returned (ids created, rows changed).
"""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import django

django.setup()

from django.db import connection, transaction  # noqa: E402
from django.db.models import F  # noqa: E402

from legacy_monolith.catalog.models import Category, Product  # noqa: E402


def seed() -> object:
    tools = Category.objects.create(name="Tools", slug="tools", description="hand tools")
    garden = Category.objects.create(name="Garden", slug="garden")
    hammer = Product(sku="T-1", name="Hammer", price=Decimal("19.99"), category=tools)
    hammer.save()
    Product.objects.create(sku="G-1", name="Rake", price=Decimal("7.50"), category=garden)
    return {"categories": [tools.id, garden.id], "hammer": hammer.id}


def save_update() -> object:
    hammer = Product.objects.get(sku="T-1")
    hammer.name = "Claw hammer"
    hammer.save()
    return hammer.id


def bulk_create() -> object:
    tools = Category.objects.get(slug="tools")
    made = Product.objects.bulk_create(
        Product(sku=f"B-{n}", name=f"Bulk {n}", price=Decimal("1.25") * n, category=tools)
        for n in range(1, 21)
    )
    return len(made)


def bulk_update() -> object:
    return Product.objects.filter(sku__startswith="B-").update(
        price=F("price") + Decimal("0.01"), is_active=False
    )


def raw_sql() -> object:
    with connection.cursor() as cursor:
        cursor.execute("UPDATE catalog_product SET description = 'raw' WHERE sku LIKE %s", ["B-1%"])
        changed = cursor.rowcount
        cursor.execute(
            "INSERT INTO catalog_category (name, slug, description) VALUES ('Raw', 'raw', 'sql')"
        )
    return changed


def delete() -> object:
    deleted, _ = Product.objects.filter(sku__in=["B-2", "B-3"]).delete()
    return deleted


def atomic_mix() -> object:
    with transaction.atomic():
        Product.objects.filter(sku="G-1").update(price=Decimal("8.00"))
        Category.objects.filter(slug="garden").update(description="outdoor")
    return True


def request_id() -> object:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('strangler.request_id', 'req-django-42', true)")
        Product.objects.filter(sku="T-1").update(description="tagged")
    return True


if __name__ == "__main__":
    steps = {name: globals()[name] for name in sys.argv[1:]}
    print(json.dumps({name: step() for name, step in steps.items()}, default=str))
