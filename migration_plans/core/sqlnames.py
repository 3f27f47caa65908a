"""Names and values that plans put into SQL: identifiers validated at load, always quoted.

A plan's table and column names end up in trigger DDL, backfill ``COPY`` queries and
the reconciler's checksums. They are checked when the plan loads (:data:`SqlName`:
letters, digits and ``_``, not starting with a digit, at most 63 characters, the
PostgreSQL limit), and every statement quotes them anyway (:func:`quote_ident`), so a
name that needs quoting (``order``, ``Group``) works and none can change a statement.
Values (enum labels, context names) are bound where a statement takes parameters, and
where it cannot (DDL, ``COPY``) they are written with :func:`quote_literal`.

    quote_ident("order")                      # '"order"'
    quote_literal("it's", "postgresql")       # "'it''s'"
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
MAX_IDENTIFIER = 63


def check_identifier(name: str) -> str:
    """``name`` if it is a plain SQL identifier; :class:`ValueError` saying why otherwise."""
    if not IDENTIFIER.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a valid SQL name: use letters, digits and '_', not starting "
            f"with a digit, at most {MAX_IDENTIFIER} characters"
        )
    return name


def check_value(value: str) -> str:
    """``value`` if a database text column can hold it (no NUL character)."""
    if "\x00" in value:
        raise ValueError(f"{value!r} contains a NUL character, which no text column can hold")
    return value


SqlName = Annotated[str, AfterValidator(check_identifier)]
"""A table or column name from a plan (validated when the plan loads)."""

SqlText = Annotated[str, AfterValidator(check_value)]
"""A text value from a plan that is written to a database (e.g. an enum label)."""


def quote_ident(name: str) -> str:
    """``name`` as a quoted SQL identifier (PostgreSQL and SQLite): ``"a""b"``."""
    return '"' + check_value(name).replace('"', '""') + '"'


def quote_literal(value: str, dialect: str = "postgresql") -> str:
    """``value`` as a SQL string literal, for statements that take no parameters.

    PostgreSQL gets the escape-string form when the value holds a backslash, so the
    literal means the same whatever ``standard_conforming_strings`` says.
    """
    quoted = "'" + check_value(value).replace("'", "''") + "'"
    if dialect == "postgresql" and "\\" in value:
        return "E" + quoted.replace("\\", "\\\\")
    return quoted
