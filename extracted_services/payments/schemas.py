"""Request bodies and responses of the payments API, parsed like the monolith's DRF serializers."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from extracted_services.common.validation import as_text


class ChargeIn(BaseModel):
    """``POST /payments/charge/``: ``{"order_id", "amount_cents", "currency", "token"}``."""

    model_config = ConfigDict(extra="ignore")

    order_id: Annotated[int, Field(ge=1)]
    amount_cents: Annotated[int, Field(ge=0)]
    currency: Annotated[str, as_text, Field(min_length=3, max_length=3)]
    token: Annotated[str, as_text, Field(min_length=1, max_length=255)]


class PaymentOut(BaseModel):
    """What ``/api/v1/payments/`` returns (the monolith's ``PaymentSerializer``)."""

    id: int
    order: int
    amount: str
    currency: str
    status: str
    provider_reference: str
    card_last4: str
    created_at: str
    updated_at: str
