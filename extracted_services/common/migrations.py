"""Alembic for every service: one ``alembic.ini`` per service package, one shared ``env.py`` body.

    upgrade("catalog", "postgresql://.../catalog")              # to head
    upgrade("catalog", "postgresql://", sql=True)               # print the SQL instead
    downgrade("catalog", "postgresql://.../catalog", "base")
    upgrade("shipping", url, module="acme_services.shipping")   # a package of your own

The package is the context's plan's ``service_module`` unless ``module`` names one
(:class:`~extracted_services.common.package.ServicePackage`). The URL comes from the
caller (the CLI reads ``<CONTEXT>_DATABASE_URL``); a URL with no database is enough
for offline SQL generation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TextIO

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData
from sqlalchemy.engine import make_url

from extracted_services.common.database import service_engine
from extracted_services.common.package import ServicePackage
from migration_plans.core.database import sqlalchemy_url

OFFLINE_DEFAULT_URL = "postgresql+psycopg://"


def alembic_config(
    context: str, url: str, *, stdout: TextIO | None = None, module: str | None = None
) -> Config:
    """The Alembic config of ``context``'s service package pointed at ``url``."""
    package = ServicePackage(context, module) if module else ServicePackage.resolve(context)
    ini = package.alembic_ini
    config = Config(str(ini), stdout=stdout) if stdout else Config(str(ini))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return config


def upgrade(
    context: str,
    url: str,
    revision: str = "head",
    *,
    sql: bool = False,
    stdout: TextIO | None = None,
    module: str | None = None,
) -> None:
    """Migrate ``context``'s database up to ``revision`` (or print the SQL with ``sql``)."""
    config = alembic_config(context, url, stdout=stdout, module=module)
    command.upgrade(config, revision, sql=sql)


def downgrade(
    context: str,
    url: str,
    revision: str = "-1",
    *,
    sql: bool = False,
    stdout: TextIO | None = None,
    module: str | None = None,
) -> None:
    """Migrate down to ``revision``; offline ``sql`` needs a ``from:to`` range (``head:base``)."""
    config = alembic_config(context, url, stdout=stdout, module=module)
    command.downgrade(config, revision, sql=sql)


def current(context: str, url: str) -> str | None:
    """The revision the database is at (``None`` before the first migration)."""
    from alembic.runtime.migration import MigrationContext

    engine = service_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def run_migrations(alembic_context: Any, target_metadata: Sequence[MetaData]) -> None:
    """The body of every service's ``alembic/env.py``."""
    url = alembic_context.config.get_main_option("sqlalchemy.url") or OFFLINE_DEFAULT_URL
    batch = make_url(url).get_backend_name() == "sqlite"
    options: dict[str, Any] = {
        "target_metadata": list(target_metadata),
        "render_as_batch": batch,
        "compare_type": True,
    }
    if alembic_context.is_offline_mode():
        alembic_context.configure(url=url, literal_binds=True, **options)
        with alembic_context.begin_transaction():
            alembic_context.run_migrations()
        return
    engine = service_engine(url)
    try:
        with engine.connect() as connection:
            alembic_context.configure(connection=connection, **options)
            with alembic_context.begin_transaction():
                alembic_context.run_migrations()
    finally:
        engine.dispose()


def create_outbox_v1(op: Any) -> None:
    """Revision 0001 of every service: ``strangler_outbox`` as ``dualwrite.outbox.outbox_table``.

    Frozen: it is what revision 0001 created. Later changes are new revisions.
    """
    Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "strangler_outbox",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("context", sa.String(64), nullable=False),
        sa.Column("aggregate_type", sa.String(64), nullable=False),
        sa.Column("aggregate_key", sa.String(64), nullable=False),
        sa.Column("operation", sa.String(8), nullable=False),
        sa.Column("payload", sa.Text(), nullable=True),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_strangler_outbox"),
        sa.UniqueConstraint("event_id", name="uq_strangler_outbox_event_id"),
    )
    op.create_index("ix_strangler_outbox_status_id", "strangler_outbox", ["status", "id"])
    op.create_index(
        "ix_strangler_outbox_aggregate",
        "strangler_outbox",
        ["aggregate_type", "aggregate_key", "id"],
    )


KEY_TEXT_TABLES = ("strangler_outbox", "strangler_applied_event", "strangler_dead_letter")
"""The tables with an ``aggregate_key`` column (a key text)."""


def widen_key_text_v3(op: Any) -> None:
    """Revision 0003 of every service: key texts up to 512 characters (were 64).

    Frozen like :func:`create_outbox_v1`. On PostgreSQL a varchar widens in place; on
    SQLite Alembic's batch mode copies the table (a service's outbox has no triggers).
    """
    _alter_key_text(op, sa.String(64), sa.String(512))


def narrow_key_text_v3(op: Any) -> None:
    """Reverse of :func:`widen_key_text_v3` (fails, naming the row, if a longer key exists)."""
    _alter_key_text(op, sa.String(512), sa.String(64))


def _offline_sqlite(op: Any) -> bool:
    """Offline SQL for SQLite, where Alembic's batch mode (which needs the live table)
    cannot run: the revisions that need it print no statement there."""
    context = op.get_context()
    return bool(context.dialect.name == "sqlite" and context.as_sql)


def _alter_key_text(op: Any, old: sa.String, new: sa.String) -> None:
    if _offline_sqlite(op):
        return  # SQLite does not enforce a varchar's length
    for table in KEY_TEXT_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.alter_column("aggregate_key", existing_type=old, type_=new, nullable=False)


GUARD_FILLFACTOR = 50
"""Percent of each page of ``strangler_applied_event`` that inserts fill on PostgreSQL."""


def guard_fillfactor_v4(op: Any) -> None:
    """Revision 0004 of every service: the version guards' table leaves half of each page
    free on PostgreSQL, so the relay's move of a guard (an update of a row whose key does
    not change) stays on its page as a HOT update, with no new index entry: about half
    the cost of a batch's guard statement when its keys were applied before. Pages
    written earlier keep their fill until rewritten. SQLite: nothing to do.
    """
    if op.get_context().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE strangler_applied_event SET (fillfactor = {GUARD_FILLFACTOR})")


def default_guard_fillfactor_v4(op: Any) -> None:
    """Reverse of :func:`guard_fillfactor_v4`."""
    if op.get_context().dialect.name == "postgresql":
        op.execute("ALTER TABLE strangler_applied_event RESET (fillfactor)")


OUTBOX_EVENT_ID_UNIQUE = "uq_strangler_outbox_event_id"
"""The unique constraint on the outbox's ``event_id`` that revision 0001 created."""


def event_id_not_unique_v5(op: Any) -> None:
    """Revision 0005 of every service: the outbox's ``event_id`` loses its unique index.

    Event ids are unique by construction (a UUID from the service, 'm-<outbox id>' from
    the monolith's capture) and nothing looks an event up by them; the index made every
    outbox insert and every mark of an event write one more index entry. Frozen like
    :func:`create_outbox_v1`. SQLite: Alembic's batch mode copies the table.
    """
    _alter_event_id_unique(op, unique=False)


def event_id_unique_v5(op: Any) -> None:
    """Reverse of :func:`event_id_not_unique_v5`."""
    _alter_event_id_unique(op, unique=True)


def _alter_event_id_unique(op: Any, *, unique: bool) -> None:
    if _offline_sqlite(op):
        return  # the printed script keeps the constraint, which the event ids satisfy
    with op.batch_alter_table("strangler_outbox") as batch:
        if unique:
            batch.create_unique_constraint(OUTBOX_EVENT_ID_UNIQUE, ["event_id"])
        else:
            batch.drop_constraint(OUTBOX_EVENT_ID_UNIQUE, type_="unique")
