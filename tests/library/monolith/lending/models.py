"""The library's tables, shaped the way real monoliths are.

- ``Branch`` and ``Book`` have text primary keys (a branch code, an ISBN).
- ``Copy`` has a composite primary key (branch, book, copy number).
- ``Member`` is one wide table (name and contact details) the service keeps as two.
- ``Loan`` has an integer id here; the service generates UUIDs (the toolkit's id map
  pairs them), a one-letter status with four values, a JSON ``meta`` and ``notes``
  that are ``''`` when empty, and a ``fine`` kept as decimal text (``"1.50"``).
"""

from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

FINE_FORMAT = RegexValidator(r"^[0-9]{1,8}[.][0-9]{2}\Z")
"""A fine is decimal text with two places: what the service's ``cents_string`` reads."""


class Branch(models.Model):
    """A library branch, keyed by its short code (``"CEN"``)."""

    code = models.CharField(primary_key=True, max_length=16)
    name = models.CharField(max_length=100)
    city = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["code"]


class Book(models.Model):
    """A title in the catalogue, keyed by its ISBN-13."""

    isbn = models.CharField(primary_key=True, max_length=13)
    title = models.CharField(max_length=200)
    author = models.CharField(max_length=200)
    published_year = models.IntegerField(null=True, blank=True)

    class Meta:
        ordering = ["isbn"]


class Copy(models.Model):
    """One physical copy of a book at a branch: (branch, book, copy_no) is the key."""

    class Condition(models.TextChoices):
        NEW = "n", "new"
        GOOD = "g", "good"
        WORN = "w", "worn"
        DAMAGED = "d", "damaged"

    pk = models.CompositePrimaryKey("branch_id", "book_id", "copy_no")
    branch = models.ForeignKey(Branch, on_delete=models.PROTECT)
    book = models.ForeignKey(Book, on_delete=models.PROTECT)
    copy_no = models.IntegerField()
    condition = models.CharField(max_length=1, choices=Condition.choices, default="n")
    shelved_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["branch_id", "book_id", "copy_no"]


class Member(models.Model):
    """A library member: who they are and how to reach them, in one table.

    The contact columns have database defaults: a row written through one of the two
    pairs that share this table (members, member_contacts) is complete.
    """

    name = models.CharField(max_length=100)
    email = models.CharField(max_length=200, db_default="")
    phone = models.CharField(max_length=32, blank=True, default="", db_default="")
    address = models.TextField(blank=True, default="", db_default="")
    joined_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]


class Loan(models.Model):
    """A member borrowing a book from a branch."""

    class Status(models.TextChoices):
        OPEN = "o", "open"
        RETURNED = "r", "returned"
        OVERDUE = "d", "overdue"
        LOST = "l", "lost"

    member = models.ForeignKey(Member, on_delete=models.PROTECT)
    book = models.ForeignKey(Book, on_delete=models.PROTECT)
    branch = models.ForeignKey(Branch, on_delete=models.PROTECT)
    status = models.CharField(max_length=1, choices=Status.choices, default="o")
    meta = models.JSONField(default=dict, blank=True)
    notes = models.TextField(blank=True, default="")
    fine = models.CharField(max_length=12, default="0.00", validators=[FINE_FORMAT])
    borrowed_at = models.DateTimeField(default=timezone.now)
    due_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
