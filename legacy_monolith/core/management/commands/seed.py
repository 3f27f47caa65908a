"""``python -m legacy_monolith.manage seed --products N --customers M --orders K --seed S``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from legacy_monolith.core.seeding import SeedPlan, seed


class Command(BaseCommand):
    help = "Replace the shop's data with deterministic, realistic rows (bulk inserts)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--products", type=int, default=SeedPlan.products)
        parser.add_argument("--customers", type=int, default=SeedPlan.customers)
        parser.add_argument("--orders", type=int, default=SeedPlan.orders)
        parser.add_argument("--seed", type=int, default=SeedPlan.seed)
        parser.add_argument("--warehouses", type=int, default=SeedPlan.warehouses)

    def handle(self, *args: Any, **options: Any) -> None:
        plan = SeedPlan(
            products=options["products"],
            customers=options["customers"],
            orders=options["orders"],
            seed=options["seed"],
            warehouses=options["warehouses"],
        )
        report = seed(plan, progress=lambda step: self.stderr.write(f"seeding {step}..."))
        for table, count in report.counts.items():
            self.stdout.write(f"{table:24} {count:>9,}")
        self.stdout.write(self.style.SUCCESS(f"seeded in {report.seconds:.1f}s"))
