"""Errors the reconciler raises. All are raised before any scan starts unless noted.

ReconcileError
├── UnknownContext         no plan / mapping for the context
├── UnknownTable           --table names no pair of the context
├── SchemaMismatch         the mapping and a live table disagree
│   ├── MissingTable
│   ├── MissingColumn      the mapping references a column the table lacks
│   ├── MissingPrimaryKey  the table has no primary key (or the key is not it)
│   └── KeyTypeMismatch    the two key columns have incompatible types
├── DatabaseError          a database could not be reached or queried (wraps SQLAlchemy)
└── RepairRefused          --repair in a phase that has no source of truth to copy
"""

from __future__ import annotations


class ReconcileError(Exception):
    """Base of every reconciler error; the message is meant for the user."""


class UnknownContext(ReconcileError):
    """No plan or mapping exists for the context."""


class UnknownTable(ReconcileError):
    """The context has no table pair of that name."""


class SchemaMismatch(ReconcileError):
    """The mapping and a live table disagree."""


class MissingTable(SchemaMismatch):
    """A mapped table does not exist."""


class MissingColumn(SchemaMismatch):
    """The mapping references a column the table does not have."""


class MissingPrimaryKey(SchemaMismatch):
    """A table has no primary key, or the mapped key is not it."""


class KeyTypeMismatch(SchemaMismatch):
    """The two key columns have incompatible types."""


class DatabaseError(ReconcileError):
    """A database could not be reached or queried."""


class RepairRefused(ReconcileError):
    """Repair was asked for in a phase without a source of truth to copy from."""
