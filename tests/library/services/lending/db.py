"""Where the lending service reads from in each phase: its own tables or the monolith's.

The monolith's tables are declared here, read-only, as the anti-corruption layer sees
them; ``lending_member`` is read by two pairs (members, member_contacts).
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, DateTime, Integer, MetaData, String, Table, Text

from extracted_services.common.store import TableView
from migration_plans.core.phase import Phase
from tests.library.services.lending.crud import pair
from tests.library.services.lending.models import Book, Branch, Copy, Loan, Member, MemberContact

legacy_metadata = MetaData()
Moment = DateTime(timezone=True)

lending_branch = Table(
    "lending_branch", legacy_metadata,
    Column("code", String(16), primary_key=True),
    Column("name", String(100)),
    Column("city", String(100)),
)  # fmt: skip
lending_book = Table(
    "lending_book", legacy_metadata,
    Column("isbn", String(13), primary_key=True),
    Column("title", String(200)),
    Column("author", String(200)),
    Column("published_year", Integer),
)  # fmt: skip
lending_copy = Table(
    "lending_copy", legacy_metadata,
    Column("branch_id", String(16), primary_key=True),
    Column("book_id", String(13), primary_key=True),
    Column("copy_no", Integer, primary_key=True),
    Column("condition", String(1)),
    Column("shelved_at", Moment),
)  # fmt: skip
lending_member = Table(
    "lending_member", legacy_metadata,
    Column("id", BigInteger, primary_key=True),
    Column("name", String(100)),
    Column("email", String(200)),
    Column("phone", String(32)),
    Column("address", Text),
    Column("joined_at", Moment),
)  # fmt: skip
lending_loan = Table(
    "lending_loan", legacy_metadata,
    Column("id", BigInteger, primary_key=True),
    Column("member_id", BigInteger),
    Column("book_id", String(13)),
    Column("branch_id", String(16)),
    Column("status", String(1)),
    Column("meta", JSON),
    Column("notes", Text),
    Column("fine", String(12)),
    Column("borrowed_at", Moment),
    Column("due_at", Moment),
)  # fmt: skip

MONOLITH = {
    "branches": lending_branch,
    "books": lending_book,
    "copies": lending_copy,
    "members": lending_member,
    "member_contacts": lending_member,
    "loans": lending_loan,
}
SERVICE = {
    "branches": Branch,
    "books": Book,
    "copies": Copy,
    "members": Member,
    "member_contacts": MemberContact,
    "loans": Loan,
}


def views(phase: Phase) -> dict[str, TableView]:
    """Each table pair as the phase reads it."""
    if phase is Phase.SHARED:
        return {name: TableView.monolith(pair(name), table) for name, table in MONOLITH.items()}
    return {
        name: TableView.service(pair(name), model.__table__)  # type: ignore[arg-type]
        for name, model in SERVICE.items()
    }
