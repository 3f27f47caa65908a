"""User transforms: field conversions a plan names, found through the ``strangler.transforms`` entry points.

A field with ``transform: custom`` names a transform and its options::

    - {monolith: price, service: price_cents, transform: custom, name: cents_string,
       options: {scale: 2}}

The name is an entry point of the group ``strangler.transforms``: any installed
distribution can ship one (in its ``pyproject.toml``)::

    [project.entry-points."strangler.transforms"]
    isbn13 = "my_package.transforms:ISBN13"

The entry point's object (or a class, instantiated without arguments) provides the
four methods of :class:`Transform`: the two conversions, the SQL expression that
computes the service form from the monolith column (the reconciler hashes rows in the
database with it, on PostgreSQL and SQLite), and sample monolith values. When a plan
loads, the name is resolved and every sample must round-trip
(``to_monolith(to_service(v)) == v``); a transform that fails is a configuration
error at the field's line.

The toolkit ships :data:`CENTS_STRING` (``cents_string``) through the same entry point
group: an amount kept as decimal text in the monolith (``"12.34"``) and as an integer of
minor units in the service (``1234``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "CENTS_STRING",
    "ENTRY_POINT_GROUP",
    "CentsString",
    "Transform",
    "TransformLookupError",
    "known_transforms",
    "transform_named",
]

ENTRY_POINT_GROUP = "strangler.transforms"

Options = Mapping[str, Any]


class TransformLookupError(LookupError):
    """A transform name no installed entry point provides, or an object that is no transform."""


@runtime_checkable
class Transform(Protocol):
    """A user field transform: both conversions, its SQL, and samples to check it on."""

    def to_service(self, value: Any, options: Options) -> Any:
        """The service form of a (non-NULL) monolith value."""
        ...

    def to_monolith(self, value: Any, options: Options) -> Any:
        """The monolith form of a (non-NULL) service value."""
        ...

    def sql(self, dialect: str, column_sql: str, options: Options) -> str:
        """SQL expression giving the service form from the monolith column ``column_sql``.

        ``dialect`` is ``postgresql`` or ``sqlite``. The expression must not contain
        ``%`` (statements pass through drivers that interpolate); NULL may stay NULL.
        """
        ...

    def samples(self, options: Options) -> Sequence[Any]:
        """Monolith values the round trip is checked on when a plan loads."""
        ...


def _entry_points() -> dict[str, EntryPoint]:
    return {point.name: point for point in entry_points(group=ENTRY_POINT_GROUP)}


def known_transforms() -> list[str]:
    """The names every installed distribution provides, sorted."""
    return sorted(_entry_points())


def transform_named(name: str) -> Transform:
    """The transform of entry point ``name``; :class:`TransformLookupError` saying why not."""
    points = _entry_points()
    point = points.get(name)
    if point is None:
        known = ", ".join(sorted(points)) or "none installed"
        raise TransformLookupError(
            f"no transform {name!r} in entry point group {ENTRY_POINT_GROUP!r} (known: {known})"
        )
    try:
        loaded = point.load()
    except Exception as exc:  # an entry point runs arbitrary import code
        raise TransformLookupError(
            f"transform {name!r} ({point.value}) does not load: {type(exc).__name__}: {exc}"
        ) from exc
    transform = loaded() if isinstance(loaded, type) else loaded
    if not isinstance(transform, Transform):
        raise TransformLookupError(
            f"transform {name!r} ({point.value}) lacks to_service, to_monolith, sql or samples"
        )
    return transform


_DECIMAL_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?")


class CentsString:
    """Decimal text in the monolith (``"12.34"``), an integer of minor units in the service.

    Options: ``scale`` (decimal places, default 2). The monolith form is written with
    exactly ``scale`` places. SQLite computes in floating point: exact while the
    amount's minor units stay below 2**53.
    """

    @staticmethod
    def _scale(options: Options) -> int:
        scale = options.get("scale", 2)
        if not isinstance(scale, int) or isinstance(scale, bool) or not 0 <= scale <= 9:
            raise ValueError(f"cents_string: scale must be an integer 0..9, got {scale!r}")
        return scale

    def to_service(self, value: Any, options: Options) -> int:
        scale = self._scale(options)
        text = str(value)
        if not _DECIMAL_TEXT.fullmatch(text):
            raise ValueError(f"cents_string: {value!r} is not decimal text")
        try:
            scaled = Decimal(text).scaleb(scale)
        except InvalidOperation as exc:
            raise ValueError(f"cents_string: {value!r} is not decimal text") from exc
        if scaled != scaled.to_integral_value():
            raise ValueError(f"cents_string: {value!r} has more than {scale} decimal places")
        return int(scaled)

    def to_monolith(self, value: Any, options: Options) -> str:
        scale = self._scale(options)
        amount = Decimal(int(value)).scaleb(-scale)
        return f"{amount:.{scale}f}"

    def sql(self, dialect: str, column_sql: str, options: Options) -> str:
        factor = 10 ** self._scale(options)
        if dialect == "postgresql":
            return (
                f"CASE WHEN {column_sql} ~ '^-?[0-9]+([.][0-9]+)?$' "
                f"THEN CAST(CAST({column_sql} AS numeric) * {factor} AS bigint) END"
            )
        return f"CAST(round(CAST({column_sql} AS REAL) * {factor}) AS INTEGER)"

    def samples(self, options: Options) -> Sequence[Any]:
        return [self.to_monolith(cents, options) for cents in (0, 1, -1, 99, 1234, -5050)]


CENTS_STRING = CentsString()
"""The built-in ``cents_string`` transform (entry point in the toolkit's own metadata)."""
