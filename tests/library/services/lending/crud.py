"""The lending service's write path: every change to a mapped table goes to a ChangeSink.

Functions take a Session (the caller owns the transaction) and service-form values.
A member is two rows (``members`` and ``member_contacts``: two pairs of one monolith
table), written and reported together. A loan's ``book_title`` copies its book's title
(the plan's ``copy_of``): set when the loan is written, and on every loan of a book
whose title changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from extracted_services.common.changes import ChangeRecorder
from extracted_services.common.crud import remove, save
from extracted_services.common.models import utcnow
from migration_plans.core.mapping import ContextMapping, TableMapping
from migration_plans.core.outbox import Operation
from migration_plans.core.settings import mapping_for
from tests.library.services.lending.models import Base, Book, Loan, Member, MemberContact

CONTEXT = "lending"

MEMBER_COLUMNS = ("id", "name", "joined_at")
CONTACT_COLUMNS = ("email", "phone", "address")


@cache
def lending_mapping() -> ContextMapping:
    """The field mapping of ``lending.yaml`` (from the deployment's plans folder)."""
    return mapping_for(CONTEXT)


def pair(name: str) -> TableMapping:
    return lending_mapping().table(name)


def create(
    session: Session, model: type[Base], pair_name: str, values: Mapping[str, Any], *,
    changes: ChangeRecorder,
) -> Any:  # fmt: skip
    """Insert one row of a single-table pair (``values`` in service form)."""
    row = model(**values)
    save(session, row, table=pair(pair_name), operation=Operation.INSERT, changes=changes)
    return row


def update(
    session: Session, row: Any, pair_name: str, values: Mapping[str, Any], *,
    changes: ChangeRecorder,
) -> Any:  # fmt: skip
    """Change some columns of one row of a single-table pair."""
    for column, value in values.items():
        setattr(row, column, value)
    save(session, row, table=pair(pair_name), operation=Operation.UPDATE, changes=changes)
    return row


def delete(session: Session, row: Any, pair_name: str, *, changes: ChangeRecorder) -> None:
    remove(session, row, table=pair(pair_name), changes=changes)


# Books: a title change reaches the loans' copies ----------------------------------------


def update_book(
    session: Session, book: Book, values: Mapping[str, Any], *, changes: ChangeRecorder
) -> Book:
    """Change a book; its loans' ``book_title`` follow a new title."""
    update(session, book, "books", values, changes=changes)
    if "title" in values:
        loans = session.scalars(select(Loan).where(Loan.isbn == book.isbn))
        for loan in loans:
            if loan.book_title != book.title:
                update(session, loan, "loans", {"book_title": book.title}, changes=changes)
    return book


# Loans: the title copied from the book ---------------------------------------------------


def _with_title(session: Session, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with the book's title copied; the book row stays locked to the commit, so
    a concurrent title change (:func:`update_book`, the relay) waits, then sees this loan."""
    copied = dict(values)
    if "isbn" in copied:
        title = select(Book.title).where(Book.isbn == copied["isbn"]).with_for_update()
        copied["book_title"] = session.scalar(title)
    return copied


def create_loan(session: Session, values: Mapping[str, Any], *, changes: ChangeRecorder) -> Loan:
    """Insert a loan: the service generates its UUID; borrowed now unless given."""
    loan = Loan(**{"borrowed_at": utcnow(), "meta": {}, **_with_title(session, values)})
    save(session, loan, table=pair("loans"), operation=Operation.INSERT, changes=changes)
    return loan


def update_loan(
    session: Session, loan: Loan, values: Mapping[str, Any], *, changes: ChangeRecorder
) -> Loan:
    return update(session, loan, "loans", _with_title(session, values), changes=changes)


# Members: two rows, two pairs ------------------------------------------------------------


def _split(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    member = {k: v for k, v in values.items() if k in MEMBER_COLUMNS}
    contact = {k: v for k, v in values.items() if k in CONTACT_COLUMNS}
    return member, contact


def create_member(
    session: Session, values: Mapping[str, Any], *, changes: ChangeRecorder
) -> tuple[Member, MemberContact]:
    """Insert a member and their contact row (same key)."""
    member_values, contact_values = _split(values)
    member = create(
        session, Member, "members", {"joined_at": utcnow(), **member_values}, changes=changes
    )
    contact = create(
        session, MemberContact, "member_contacts", {"member_id": member.id, **contact_values},
        changes=changes,
    )  # fmt: skip
    return member, contact


def update_member(
    session: Session,
    member: Member,
    contact: MemberContact,
    values: Mapping[str, Any],
    *,
    changes: ChangeRecorder,
) -> None:
    """Change a member; only the rows whose columns change are written and reported."""
    member_values, contact_values = _split(values)
    if member_values:
        update(session, member, "members", member_values, changes=changes)
    if contact_values:
        update(session, contact, "member_contacts", contact_values, changes=changes)


def delete_member(
    session: Session, member: Member, contact: MemberContact | None, *, changes: ChangeRecorder
) -> None:
    if contact is not None:
        delete(session, contact, "member_contacts", changes=changes)
    delete(session, member, "members", changes=changes)
