"""The inventory's write path: every change to a mapped table is reported to a ChangeSink.

Stock operations lock the stock levels they touch (``SELECT ... FOR UPDATE`` on
PostgreSQL, in ascending id order, so concurrent callers neither oversell nor
deadlock; SQLite serialises writers with ``BEGIN IMMEDIATE``). Functions take a
Session whose transaction the caller owns. The order id is the idempotency key of
``reserve``: a retried reservation returns the one already made.

    with session.begin():
        reservations, created = reserve(session, 42, [StockRequest(7, 2)], changes=changes)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from extracted_services.common.changes import ChangeRecorder
from extracted_services.common.crud import save
from extracted_services.common.errors import (
    InsufficientStock,
    NotFound,
    ReservationExists,
    ValidationFailed,
)
from extracted_services.common.models import utcnow
from extracted_services.inventory.models import (
    Reservation,
    ReservationState,
    StockLevel,
    Warehouse,
)
from migration_plans.core.mapping import ContextMapping, TableMapping
from migration_plans.core.outbox import Operation
from migration_plans.core.settings import mapping_for

CONTEXT = "inventory"


@cache
def inventory_mapping() -> ContextMapping:
    """The inventory's field mapping (``migration_plans/templates/inventory.yaml``)."""
    return mapping_for(CONTEXT)


def warehouses_pair() -> TableMapping:
    return inventory_mapping().table("warehouses")


def stock_levels_pair() -> TableMapping:
    return inventory_mapping().table("stock_levels")


def reservations_pair() -> TableMapping:
    return inventory_mapping().table("reservations")


@dataclass(frozen=True)
class StockRequest:
    """``quantity`` units of ``product_id`` wanted for an order."""

    product_id: int
    quantity: int


def create_warehouse(
    session: Session, values: Mapping[str, Any], *, changes: ChangeRecorder
) -> Warehouse:
    warehouse = Warehouse(**values)
    save(session, warehouse, table=warehouses_pair(), operation=Operation.INSERT, changes=changes)
    return warehouse


def create_stock_level(
    session: Session, values: Mapping[str, Any], *, changes: ChangeRecorder
) -> StockLevel:
    level = StockLevel(**{"reserved": 0, "updated_at": utcnow(), **values})
    save(session, level, table=stock_levels_pair(), operation=Operation.INSERT, changes=changes)
    return level


def _save_levels(session: Session, levels: Iterable[StockLevel], changes: ChangeRecorder) -> None:
    now = utcnow()
    for level in levels:
        level.updated_at = now
        save(session, level, table=stock_levels_pair(), operation=Operation.UPDATE, changes=changes)


def _locked_levels(session: Session, product_ids: Iterable[int]) -> dict[int, list[StockLevel]]:
    statement = (
        select(StockLevel)
        .where(StockLevel.product_id.in_(set(product_ids)))
        .order_by(StockLevel.id)
        .with_for_update()
    )
    grouped: dict[int, list[StockLevel]] = defaultdict(list)
    for level in session.scalars(statement):
        grouped[level.product_id].append(level)
    return grouped


def _allocate(
    order_id: int, request: StockRequest, levels: list[StockLevel]
) -> list[tuple[StockLevel, int]]:
    available = sum(level.available for level in levels)
    if available < request.quantity:
        raise InsufficientStock(
            f"Not enough stock for product {request.product_id}: "
            f"requested {request.quantity}, available {available}."
        )
    remaining, taken = request.quantity, []
    for level in levels:
        take = min(level.available, remaining)
        if take <= 0:
            continue
        level.reserved += take
        remaining -= take
        taken.append((level, take))
        if remaining == 0:
            break
    return taken


def _per_product(pairs: Iterable[tuple[int, int]]) -> dict[int, int]:
    """Sum ``(product_id, quantity)`` pairs per product."""
    totals: dict[int, int] = defaultdict(int)
    for product_id, quantity in pairs:
        totals[product_id] += quantity
    return dict(totals)


def _existing(session: Session, order_id: int, lines: Sequence[StockRequest]) -> list[Reservation]:
    """The order's reservations if it has some; :class:`ReservationExists` if they differ
    (per product, held or released) from ``lines``."""
    rows = session.execute(
        select(Reservation, StockLevel.product_id)
        .join(StockLevel, StockLevel.id == Reservation.stock_level_id)
        .where(Reservation.order_id == order_id)
        .order_by(Reservation.id)
    ).all()
    held = _per_product((product_id, reservation.quantity) for reservation, product_id in rows)
    wanted = _per_product((line.product_id, line.quantity) for line in lines)
    if rows and held != wanted:
        raise ReservationExists(
            f"Order {order_id} already has reservations that differ from this request."
        )
    return [reservation for reservation, _ in rows]


def reserve(
    session: Session, order_id: int, lines: Sequence[StockRequest], *, changes: ChangeRecorder
) -> tuple[list[Reservation], bool]:
    """Hold stock for ``order_id``: all lines or none (:class:`InsufficientStock`).

    Returns the order's reservations and whether this call made them: a retry with the
    same lines returns the existing ones, other lines raise :class:`ReservationExists`.
    """
    stock = _locked_levels(session, (line.product_id for line in lines))
    existing = _existing(session, order_id, lines)
    if existing:
        return existing, False
    taken: list[tuple[StockLevel, int]] = []
    for line in lines:
        taken += _allocate(order_id, line, stock.get(line.product_id, []))
    _save_levels(session, {level.id: level for level, _ in taken}.values(), changes)
    reservations = []
    for level, quantity in taken:
        reservation = Reservation(
            order_id=order_id,
            stock_level_id=level.id,
            quantity=quantity,
            state=ReservationState.HELD.value,
            created_at=utcnow(),
        )
        save(
            session,
            reservation,
            table=reservations_pair(),
            operation=Operation.INSERT,
            changes=changes,
        )
        reservations.append(reservation)
    return reservations, True


def _locked_reservations(session: Session, order_id: int) -> list[Reservation]:
    reservations = list(
        session.scalars(
            select(Reservation)
            .where(Reservation.order_id == order_id)
            .order_by(Reservation.id)
            .with_for_update()
        )
    )
    if not reservations:
        raise NotFound(f"No reservations for order {order_id}.")
    return reservations


def _settle(
    session: Session, order_id: int, *, consume: bool, changes: ChangeRecorder
) -> list[Reservation]:
    """Mark the order's held reservations released; ``consume`` also ships the units."""
    reservations = _locked_reservations(session, order_id)
    held = [r for r in reservations if r.state == ReservationState.HELD.value]
    levels = {
        level.id: level
        for level in session.scalars(
            select(StockLevel)
            .where(StockLevel.id.in_({r.stock_level_id for r in held}))
            .order_by(StockLevel.id)
            .with_for_update()
        )
    }
    for reservation in held:
        level = levels[reservation.stock_level_id]
        level.reserved -= reservation.quantity
        if consume:
            level.on_hand -= reservation.quantity
        reservation.state = ReservationState.RELEASED.value
        save(
            session,
            reservation,
            table=reservations_pair(),
            operation=Operation.UPDATE,
            changes=changes,
        )
    _save_levels(session, levels.values(), changes)
    return reservations


def release(session: Session, order_id: int, *, changes: ChangeRecorder) -> list[Reservation]:
    """Give back the order's held units; returns all its reservations (now released)."""
    return _settle(session, order_id, consume=False, changes=changes)


def consume(session: Session, order_id: int, *, changes: ChangeRecorder) -> list[Reservation]:
    """Ship the order's held units: they leave ``on_hand`` and ``reserved`` together."""
    return _settle(session, order_id, consume=True, changes=changes)


def set_on_hand(
    session: Session, level_id: int, quantity: int, *, changes: ChangeRecorder
) -> StockLevel:
    """Set the on-hand units (a stock count, a delivery); never below what is reserved."""
    level = session.scalars(
        select(StockLevel).where(StockLevel.id == level_id).with_for_update()
    ).first()
    if level is None:
        raise NotFound()
    if quantity < level.reserved:
        raise ValidationFailed(
            {
                "quantity": [
                    f"Ensure this value is greater than or equal to {level.reserved} "
                    "(units reserved)."
                ]
            }
        )
    level.on_hand = quantity
    _save_levels(session, [level], changes)
    return level
