"""The inventory's HTTP API: the monolith's warehouses, stock levels, reserve, release, consume.

Reads come from the phase's view and are rendered in the monolith's JSON through
the mapping (``on_hand`` -> ``quantity``, ``state`` -> ``released``). Writes need the
proxy's identity header, are refused in the shared phase, and go through ``crud``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from extracted_services.common.changes import row_image
from extracted_services.common.errors import NotFound
from extracted_services.common.legacy import legacy_json, service_column
from extracted_services.common.listing import (
    FilterErrors,
    ordering,
    page_of,
    parse_key,
    raise_for,
)
from extracted_services.common.store import Query, TableView, get
from extracted_services.common.validation import INT64, parse_fields, require_object
from extracted_services.inventory import crud
from extracted_services.inventory.db import catalog_product
from extracted_services.inventory.deps import (
    BodyDep,
    ChangesDep,
    ServingDep,
    SessionDep,
    ViewsDep,
    WriteSessionDep,
)
from extracted_services.inventory.models import Reservation, StockLevel
from extracted_services.inventory.schemas import (
    ConsumeIn,
    ReleaseIn,
    ReservationsOut,
    ReserveIn,
    StockAdjustIn,
    StockLevelOut,
)
from migration_plans.core.mapping import Row
from migration_plans.core.phase import Phase

router = APIRouter(prefix="/api/v1")

WAREHOUSE_ORDERING = ("id", "code", "name")
STOCK_ORDERING = ("id", "quantity", "reserved", "updated_at")
INVALID_CHOICE = "Select a valid choice. That choice is not one of the available choices."


def warehouse_json(row: Row) -> dict[str, Any]:
    return legacy_json(crud.warehouses_pair(), row)


def stock_json(row: Row) -> dict[str, Any]:
    body = legacy_json(
        crud.stock_levels_pair(),
        row,
        renames={"product_id": "product", "warehouse_id": "warehouse"},
    )
    body["available"] = body["quantity"] - body["reserved"]
    return body


def reservation_json(reservation: Reservation, level: StockLevel) -> dict[str, Any]:
    body = legacy_json(
        crud.reservations_pair(),
        row_image(reservation, crud.reservations_pair().service_columns),
        renames={"stock_item_id": "stock_item"},
    )
    return {
        "id": body["id"],
        "stock_item": body["stock_item"],
        "product": level.product_id,
        "warehouse": level.warehouse_id,
        "quantity": body["quantity"],
        "released": body["released"],
    }


def _ordering(request: Request, pair_name: str, names: tuple[str, ...]) -> tuple[str, ...]:
    pair = crud.inventory_mapping().table(pair_name)
    return ordering(request, {name: service_column(pair, name) for name in names}, ("id",))


def _detail(session: Session, view: TableView, raw_key: str) -> Row:
    row = get(session, view, parse_key(raw_key))
    if row is None:
        raise NotFound()
    return row


# Warehouses ---------------------------------------------------------------------------


@router.get("/warehouses/", response_model=None)
def list_warehouses(request: Request, session: SessionDep, views: ViewsDep) -> dict[str, Any]:
    query = Query(ordering=_ordering(request, "warehouses", WAREHOUSE_ORDERING))
    return page_of(request, session, views["warehouses"], query, warehouse_json)


@router.get("/warehouses/{key}/", response_model=None)
def get_warehouse(key: str, session: SessionDep, views: ViewsDep) -> dict[str, Any]:
    return warehouse_json(_detail(session, views["warehouses"], key))


# Stock levels -------------------------------------------------------------------------


def _choice(
    request: Request,
    name: str,
    errors: FilterErrors,
    exists: Callable[[int], object],
) -> int | None:
    """django-filter's ``ModelChoiceFilter``: an existing id, or 400 ``invalid choice``."""
    raw = request.query_params.get(name, "")
    if not raw:
        return None
    try:
        key: int | None = int(raw)
    except ValueError:
        key = None
    if key is None or not INT64[0] <= key <= INT64[1] or not exists(key):
        errors[name] = [INVALID_CHOICE]
        return None
    return key


def _product_exists(phase: Phase, session: Session) -> Callable[[int], object]:
    """Products belong to the catalog: checked in the shared phase only (see the contract)."""
    if phase is not Phase.SHARED:
        return lambda key: True
    statement = select(catalog_product.c.id)
    return lambda key: session.scalar(statement.where(catalog_product.c.id == key)) is not None


@router.get("/stock/", response_model=None)
def list_stock(
    request: Request, serving: ServingDep, session: SessionDep, views: ViewsDep
) -> dict[str, Any]:
    errors = FilterErrors()
    product = _choice(request, "product", errors, _product_exists(serving.phase, session))
    warehouse = _choice(
        request, "warehouse", errors, lambda key: get(session, views["warehouses"], key)
    )
    raise_for(errors)
    filters = [("product_id", product), ("warehouse_id", warehouse)]
    query = Query(
        filters=tuple((column, value) for column, value in filters if value is not None),
        ordering=_ordering(request, "stock_levels", STOCK_ORDERING),
    )
    return page_of(request, session, views["stock_levels"], query, stock_json)


@router.get("/stock/{key}/", response_model=StockLevelOut)
def get_stock(key: str, session: SessionDep, views: ViewsDep) -> dict[str, Any]:
    return stock_json(_detail(session, views["stock_levels"], key))


@router.patch("/stock/{key}/", response_model=StockLevelOut)
def adjust_stock(
    key: str, session: WriteSessionDep, changes: ChangesDep, body: BodyDep
) -> dict[str, Any]:
    """Set the on-hand quantity (``{"quantity": n}``); never below what is reserved."""
    with session.begin():
        level = session.get(StockLevel, parse_key(key))
        if level is None:
            raise NotFound()
        values, errors = parse_fields(StockAdjustIn, require_object(body.json()))
        raise_for(errors)
        level = crud.set_on_hand(session, level.id, values["quantity"], changes=changes)
    return stock_json(row_image(level, crud.stock_levels_pair().service_columns))


def _reservations_body(
    session: Session, order_id: int, reservations: list[Reservation]
) -> dict[str, Any]:
    levels = {
        level.id: level
        for level in session.scalars(
            select(StockLevel).where(StockLevel.id.in_({r.stock_level_id for r in reservations}))
        )
    }
    return {
        "order_id": order_id,
        "reservations": [reservation_json(r, levels[r.stock_level_id]) for r in reservations],
    }


@router.post("/stock/reserve/", status_code=201, response_model=ReservationsOut)
def reserve(
    response: Response, session: WriteSessionDep, changes: ChangesDep, body: BodyDep
) -> dict[str, Any]:
    """Hold stock for an order: all lines or none (409 ``insufficient_stock``).

    The order id is the idempotency key: a retry with the same lines answers 200 with the
    existing reservations, other lines 409 ``reservation_exists``.
    """
    values, errors = parse_fields(ReserveIn, require_object(body.json()))
    raise_for(errors)
    lines = [crud.StockRequest(line.product, line.quantity) for line in values["lines"]]
    with session.begin():
        reservations, created = crud.reserve(session, values["order_id"], lines, changes=changes)
        if not created:
            response.status_code = 200
        return _reservations_body(session, values["order_id"], reservations)


@router.post("/stock/release/", response_model=ReservationsOut)
def release(session: WriteSessionDep, changes: ChangesDep, body: BodyDep) -> dict[str, Any]:
    """Give back an order's held units (404 ``not_found`` if it has no reservations)."""
    values, errors = parse_fields(ReleaseIn, require_object(body.json()))
    raise_for(errors)
    with session.begin():
        reservations = crud.release(session, values["order_id"], changes=changes)
        return _reservations_body(session, values["order_id"], reservations)


@router.post("/stock/consume/", response_model=ReservationsOut)
def consume(session: WriteSessionDep, changes: ChangesDep, body: BodyDep) -> dict[str, Any]:
    """Ship an order's held units (404 ``not_found`` if it has no reservations)."""
    values, errors = parse_fields(ConsumeIn, require_object(body.json()))
    raise_for(errors)
    with session.begin():
        reservations = crud.consume(session, values["order_id"], changes=changes)
        return _reservations_body(session, values["order_id"], reservations)
