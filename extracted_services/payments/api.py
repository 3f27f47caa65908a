"""The payments' HTTP API: the monolith's read endpoints, and the order saga's two writes.

Reads (``GET /api/v1/payments/``, ``/api/v1/payments/{id}/``) answer exactly as the
monolith's ``PaymentViewSet`` in every phase: a valid identity is required (401), staff
see every payment and a customer those of their own orders (:mod:`.db`), filters
``order`` and ``status``, ``?ordering=`` on ``id``, ``created_at``, ``amount``; amounts
are rendered from cents as the monolith's decimal strings (``"79.19"``).

Writes, for the order saga (the monolith has no such endpoints; orders charge in-process
there). Both need the proxy's identity header of a staff user (401, 403), are refused
with 409 ``phase_read_only`` in the shared phase, and go through :mod:`.crud`, so their
changes reach the monolith's ``payments_payment`` while the phase syncs:

- ``POST /api/v1/payments/charge/`` ``{"order_id", "amount_cents", "currency", "token"}``
  -> 201 with the payment. Idempotent by ``order_id``: a retried charge of the same
  order returns the existing payment with 200 and never writes a second row (the
  same order charged a different amount or currency: 409 ``invalid_state``). The
  token ``tok_declined`` -> 402 ``payment_failed``, nothing written.
- ``POST /api/v1/payments/{id}/refund/`` -> 200 with the payment, now ``refunded``;
  refunding a refunded payment returns it unchanged.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
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
from extracted_services.common.store import Query, get
from extracted_services.common.validation import INT64, parse_fields, require_object
from extracted_services.payments import crud
from extracted_services.payments.db import Viewer, order_exists
from extracted_services.payments.deps import (
    BodyDep,
    MonolithDep,
    SessionDep,
    StaffChangesDep,
    ViewerDep,
    ViewsDep,
    WriteSessionDep,
)
from extracted_services.payments.models import Payment, PaymentStatus
from extracted_services.payments.schemas import ChargeIn, PaymentOut
from migration_plans.core.mapping import Row

router = APIRouter(prefix="/api/v1")

PAYMENT_ORDERING = ("id", "created_at", "amount")
INVALID_MODEL_CHOICE = "Select a valid choice. That choice is not one of the available choices."
INVALID_CHOICE = "Select a valid choice. {value} is not one of the available choices."


def payment_json(row: Row) -> dict[str, Any]:
    return legacy_json(crud.payments_pair(), row, renames={"order_id": "order"})


def _payment_body(payment: Payment) -> dict[str, Any]:
    return payment_json(row_image(payment, crud.payments_pair().service_columns))


def _visible(viewer: Viewer) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    return () if viewer.staff else (("order_id", viewer.order_ids),)


def _order_filter(request: Request, monolith: Session, errors: FilterErrors) -> int | None:
    """django-filter's ``ModelChoiceFilter`` on ``order``: any existing order, else 400."""
    raw = request.query_params.get("order", "")
    if not raw:
        return None
    key = int(raw) if raw.isascii() and raw.isdigit() else None
    if key is None or key > INT64[1] or not order_exists(monolith, key):
        errors["order"] = [INVALID_MODEL_CHOICE]
        return None
    return key


def _status_filter(request: Request, errors: FilterErrors) -> str | None:
    """django-filter's ``ChoiceFilter`` on ``status``."""
    raw = request.query_params.get("status", "")
    if not raw:
        return None
    if raw not in {status.value for status in PaymentStatus}:
        errors["status"] = [INVALID_CHOICE.format(value=raw)]
        return None
    return raw


@router.get("/payments/", response_model=None)
def list_payments(
    request: Request,
    viewer: ViewerDep,
    monolith: MonolithDep,
    session: SessionDep,
    views: ViewsDep,
) -> dict[str, Any]:
    errors = FilterErrors()
    order = _order_filter(request, monolith, errors)
    status = _status_filter(request, errors)
    raise_for(errors)
    filters = [("order_id", order), ("status", status)]
    pair = crud.payments_pair()
    query = Query(
        filters=tuple((column, value) for column, value in filters if value is not None),
        within=_visible(viewer),
        ordering=ordering(
            request, {name: service_column(pair, name) for name in PAYMENT_ORDERING}, ("id",)
        ),
    )
    return page_of(request, session, views["payments"], query, payment_json)


@router.post("/payments/charge/", status_code=201, response_model=PaymentOut)
def charge(
    response: Response,
    changes: StaffChangesDep,
    monolith: MonolithDep,
    session: WriteSessionDep,
    body: BodyDep,
) -> dict[str, Any]:
    """Charge an order once: 201 with a new payment, 200 with the order's existing one."""
    values, errors = parse_fields(ChargeIn, require_object(body.json()))
    if "order_id" in values and not order_exists(monolith, values["order_id"]):
        # The monolith's payments_payment.order_id is a foreign key: checked here, not
        # discovered by the relay as a dead letter.
        errors["order_id"] = [f'Invalid pk "{values["order_id"]}" - object does not exist.']
    raise_for(errors)
    with session.begin():
        payment, created = crud.charge(session, crud.ChargeRequest(**values), changes=changes)
    if not created:
        response.status_code = 200
    return _payment_body(payment)


@router.get("/payments/{key}/", response_model=PaymentOut)
def get_payment(
    key: str, viewer: ViewerDep, session: SessionDep, views: ViewsDep
) -> dict[str, Any]:
    row = get(session, views["payments"], parse_key(key))
    if row is None or not (viewer.staff or row["order_id"] in viewer.order_ids):
        raise NotFound()
    return payment_json(row)


@router.post("/payments/{key}/refund/", response_model=PaymentOut)
def refund(key: str, changes: StaffChangesDep, session: WriteSessionDep) -> dict[str, Any]:
    """Refund a payment in full; a refunded payment is returned unchanged."""
    payment_id = parse_key(key)
    with session.begin():
        payment = crud.refund(session, payment_id, changes=changes)
    return _payment_body(payment)
