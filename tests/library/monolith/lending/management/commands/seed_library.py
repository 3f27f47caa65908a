"""``seed_library``: a small, deterministic library and a user to log in as."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from tests.library.monolith.lending.models import Book, Branch, Copy, Loan, Member

USERNAME = "librarian"
PASSWORD = "password"
BRANCHES = (("CEN", "Central", "Springfield"), ("NOR", "North", "Shelbyville"), ("EAS", "East", ""))
EPOCH = datetime(2026, 1, 5, 9, 30, 0, 123456, tzinfo=UTC)


class Command(BaseCommand):
    help = "Seed branches, books, copies, members and loans (deterministic with --seed)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--books", type=int, default=20)
        parser.add_argument("--members", type=int, default=8)
        parser.add_argument("--loans", type=int, default=16)
        parser.add_argument("--seed", type=int, default=7)

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        rng = random.Random(options["seed"])
        user = get_user_model().objects.filter(username=USERNAME).first()
        if user is None:
            get_user_model().objects.create_user(USERNAME, password=PASSWORD)
        branches = [Branch.objects.create(code=c, name=n, city=city) for c, n, city in BRANCHES]
        books = [
            Book.objects.create(
                isbn=f"978{index:010d}",
                title=f"Volume {index}: {rng.choice(['Rivers', 'Stars', 'Maps', 'Ice'])}",
                author=rng.choice(["A. Author", "B. Writer", "Ç. Ünicode"]),
                published_year=None if index % 5 == 0 else 1950 + index,
            )
            for index in range(1, options["books"] + 1)
        ]
        conditions = [choice for choice, _ in Copy.Condition.choices]
        for book in books:
            for branch in rng.sample(branches, k=2):
                for copy_no in (1, 2):
                    Copy.objects.create(
                        branch=branch, book=book, copy_no=copy_no,
                        condition=rng.choice(conditions), shelved_at=EPOCH,
                    )  # fmt: skip
        members = [
            Member.objects.create(
                name=f"Member {index}",
                email=f"member{index}@library.test",
                phone="" if index % 3 == 0 else f"+1555{index:04d}",
                address="" if index % 2 == 0 else f"{index} Elm Street",
                joined_at=EPOCH + timedelta(days=index),
            )
            for index in range(1, options["members"] + 1)
        ]
        statuses = [choice for choice, _ in Loan.Status.choices]
        for index in range(options["loans"]):
            borrowed = EPOCH + timedelta(days=index, microseconds=index)
            Loan.objects.create(
                member=rng.choice(members),
                book=rng.choice(books),
                branch=rng.choice(branches),
                status=statuses[index % len(statuses)],
                meta={"renewals": index % 3, "channel": rng.choice(["desk", "app"])},
                notes="" if index % 2 else f"note {index}",
                fine=f"{index % 4}.{index * 25 % 100:02d}",
                borrowed_at=borrowed,
                due_at=borrowed + timedelta(days=21),
            )
        self.stdout.write(f"seeded {len(books)} books, {len(members)} members")
