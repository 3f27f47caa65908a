"""Stock operations: the one place that changes ``reserved`` and ``quantity``.

Both the stock API (``/api/v1/stock/reserve/``) and order placement call these
functions. Each runs in a transaction (a savepoint when the caller already has
one) and takes row locks on the stock items it touches, always in ascending id
order, so concurrent callers cannot oversell or deadlock. The order id is the
idempotency key of ``reserve``: a retried reservation returns the one already made.

    with transaction.atomic():
        reservations, created = reserve(42, [StockRequest(product_id=7, quantity=2)])
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone
from rest_framework.exceptions import NotFound, ValidationError

from legacy_monolith.core.exceptions import InsufficientStock, ReservationExists
from legacy_monolith.inventory.models import Reservation, StockItem


@dataclass(frozen=True)
class StockRequest:
    """``quantity`` units of ``product_id`` wanted for an order."""

    product_id: int
    quantity: int


def _locked_stock(product_ids: Iterable[int]) -> dict[int, list[StockItem]]:
    """Stock items of the products, row-locked in id order, grouped by product."""
    items = StockItem.objects.select_for_update().filter(product_id__in=set(product_ids))
    grouped: dict[int, list[StockItem]] = defaultdict(list)
    for item in items.order_by("id"):
        grouped[item.product_id].append(item)
    return grouped


def _allocate(order_id: int, request: StockRequest, items: list[StockItem]) -> list[Reservation]:
    """Take ``request.quantity`` from ``items`` (lowest id first); raise if not enough."""
    available = sum(item.available for item in items)
    if available < request.quantity:
        raise InsufficientStock(
            f"Not enough stock for product {request.product_id}: "
            f"requested {request.quantity}, available {available}."
        )
    remaining, reservations = request.quantity, []
    for item in items:
        take = min(item.available, remaining)
        if take <= 0:
            continue
        item.reserved += take
        remaining -= take
        reservations.append(Reservation(order_id=order_id, stock_item=item, quantity=take))
        if remaining == 0:
            break
    return reservations


def _save_levels(items: Iterable[StockItem]) -> None:
    now = timezone.now()
    for item in items:
        item.updated_at = now
        item.save(update_fields=["quantity", "reserved", "updated_at"])


def _per_product(pairs: Iterable[tuple[int, int]]) -> dict[int, int]:
    """Sum ``(product_id, quantity)`` pairs per product."""
    totals: dict[int, int] = defaultdict(int)
    for product_id, quantity in pairs:
        totals[product_id] += quantity
    return dict(totals)


def _existing(order_id: int, lines: Sequence[StockRequest]) -> list[Reservation]:
    """The order's reservations if it has some; :class:`ReservationExists` if they differ
    (per product, held or released) from ``lines``."""
    reservations = list(
        Reservation.objects.filter(order_id=order_id).select_related("stock_item").order_by("id")
    )
    held = _per_product((r.stock_item.product_id, r.quantity) for r in reservations)
    wanted = _per_product((line.product_id, line.quantity) for line in lines)
    if reservations and held != wanted:
        raise ReservationExists(
            f"Order {order_id} already has reservations that differ from this request."
        )
    return reservations


def reserve(order_id: int, lines: Sequence[StockRequest]) -> tuple[list[Reservation], bool]:
    """Hold stock for ``order_id``: all lines or none (:class:`InsufficientStock`, 409).

    Returns the order's reservations and whether this call made them: a retry with the
    same lines returns the existing ones, other lines raise :class:`ReservationExists`.
    """
    with transaction.atomic():
        stock = _locked_stock(line.product_id for line in lines)
        existing = _existing(order_id, lines)
        if existing:
            return existing, False
        reservations: list[Reservation] = []
        for line in lines:
            reservations += _allocate(order_id, line, stock.get(line.product_id, []))
        _save_levels({r.stock_item_id: r.stock_item for r in reservations}.values())
        for reservation in reservations:
            reservation.save()
        return reservations, True


def _locked_reservations(order_id: int) -> list[Reservation]:
    reservations = list(
        Reservation.objects.select_for_update().filter(order_id=order_id).order_by("id")
    )
    if not reservations:
        raise NotFound(f"No reservations for order {order_id}.")
    return reservations


def _settle(order_id: int, *, consume: bool) -> list[Reservation]:
    """Mark the order's held reservations released; ``consume`` also ships the units."""
    with transaction.atomic():
        reservations = _locked_reservations(order_id)
        held = [r for r in reservations if not r.released]
        items = StockItem.objects.select_for_update().filter(id__in={r.stock_item_id for r in held})
        by_id = {item.id: item for item in items.order_by("id")}
        for reservation in held:
            item = by_id[reservation.stock_item_id]
            item.reserved -= reservation.quantity
            if consume:
                item.quantity -= reservation.quantity
            reservation.stock_item = item
            reservation.released = True
            reservation.save(update_fields=["released"])
        _save_levels(by_id.values())
        return reservations


def release(order_id: int) -> list[Reservation]:
    """Give back the order's held units; returns all its reservations (released)."""
    return _settle(order_id, consume=False)


def fulfil(order_id: int) -> list[Reservation]:
    """Ship the order's held units: they leave ``quantity`` and ``reserved`` together."""
    return _settle(order_id, consume=True)


def set_quantity(stock_item_id: int, quantity: int) -> StockItem:
    """Set the on-hand quantity (stock count, delivery); never below what is reserved."""
    with transaction.atomic():
        item = StockItem.objects.select_for_update().filter(pk=stock_item_id).first()
        if item is None:
            raise NotFound()
        if quantity < item.reserved:
            raise ValidationError(
                {
                    "quantity": [
                        f"Ensure this value is greater than or equal to {item.reserved} "
                        "(units reserved)."
                    ]
                }
            )
        item.quantity = quantity
        _save_levels([item])
        return item
