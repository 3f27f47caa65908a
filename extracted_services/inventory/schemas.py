"""Request bodies of the inventory API, parsed like the monolith's DRF serializers."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from extracted_services.common.validation import INT32_MAX, INT64, Integer, PrimaryKey


class StockAdjustIn(BaseModel):
    """``PATCH /stock/{id}/``: ``{"quantity": n}``, the new on-hand quantity."""

    model_config = ConfigDict(extra="ignore")

    quantity: Annotated[Integer, Field(ge=0, le=INT32_MAX)]


class ReserveLineIn(BaseModel):
    """One line of a reservation: ``{"product": id, "quantity": n}``."""

    model_config = ConfigDict(extra="ignore")

    product: PrimaryKey
    quantity: Annotated[Integer, Field(ge=1, le=INT32_MAX)]


class ReserveIn(BaseModel):
    """``POST /stock/reserve/``: ``{"order_id": int, "lines": [...]}`` (at least one line)."""

    model_config = ConfigDict(extra="ignore")

    order_id: Annotated[Integer, Field(ge=1, le=INT64[1])]
    lines: Annotated[list[ReserveLineIn], Field(min_length=1)]


class ReleaseIn(BaseModel):
    """``POST /stock/release/``: ``{"order_id": int}``."""

    model_config = ConfigDict(extra="ignore")

    order_id: Annotated[Integer, Field(ge=1, le=INT64[1])]


class ConsumeIn(ReleaseIn):
    """``POST /stock/consume/``: ``{"order_id": int}``."""


class StockLevelOut(BaseModel):
    """What ``/api/v1/stock/`` returns (the monolith's stock item)."""

    id: int
    product: int
    warehouse: int
    quantity: int
    reserved: int
    available: int
    updated_at: str


class ReservationOut(BaseModel):
    id: int
    stock_item: int
    product: int
    warehouse: int
    quantity: int
    released: bool


class ReservationsOut(BaseModel):
    order_id: int
    reservations: list[ReservationOut]
