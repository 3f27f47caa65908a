"""Serializer fields that refuse what the database cannot hold or a client did not mean.

- :class:`StrictPrimaryKeyRelatedField`: a float is not a key (DRF would look ``1.5`` up
  as ``1``); ids past the key column's range do not exist.
- :data:`INT32_MAX`, :data:`INT64_MAX`: the columns' ranges, for ``max_value``: beyond
  them the database refuses the value (a 500 before).
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

INT32_MAX = 2**31 - 1
"""The largest value of an ``integer`` column (quantities)."""
INT64_MAX = 2**63 - 1
"""The largest value of a ``bigint`` column (ids)."""


class StrictPrimaryKeyRelatedField(serializers.PrimaryKeyRelatedField):
    """A related object's key: an integer or digits, never a float or a boolean."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, float):
            self.fail("incorrect_type", data_type=type(data).__name__)
        return super().to_internal_value(data)
