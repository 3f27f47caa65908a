"""Request bodies of the catalog API, parsed like the monolith's DRF serializers.

Field names are the monolith's (``name``, ``price``, ``is_active``, ``category``):
the contract is the monolith's; the mapping turns them into service columns.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from extracted_services.common.validation import PrimaryKey, as_slug, as_text, slug_format


class CategoryIn(BaseModel):
    """``CategorySerializer``: name and slug unique, description optional."""

    model_config = ConfigDict(extra="ignore")

    name: Annotated[str, as_text, Field(min_length=1, max_length=100)]
    slug: Annotated[str, as_slug, Field(min_length=1, max_length=100), slug_format]
    description: Annotated[str, as_text] = ""


class ProductIn(BaseModel):
    """``ProductSerializer``: sku unique, price a non-negative decimal(10, 2)."""

    model_config = ConfigDict(extra="ignore")

    sku: Annotated[str, as_text, Field(min_length=1, max_length=32)]
    name: Annotated[str, as_text, Field(min_length=1, max_length=200)]
    description: Annotated[str, as_text] = ""
    price: Annotated[Decimal, Field(max_digits=10, decimal_places=2, ge=Decimal("0.00"))]
    is_active: bool = True
    category: PrimaryKey


class CategoryOut(BaseModel):
    """What ``/api/v1/categories/`` returns."""

    id: int
    name: str
    slug: str
    description: str


class ProductOut(BaseModel):
    """What ``/api/v1/products/`` returns (price as a string, datetimes with ``Z``)."""

    id: int
    sku: str
    name: str
    description: str
    price: str
    is_active: bool
    category: int
    created_at: str
    updated_at: str
