"""The payment provider the service charges through: the monolith's fake one, same rules.

It declines the card token ``tok_declined`` and approves every other one with a fresh
``ch_<hex>`` reference. A real provider would receive ``idempotency_key`` (the order)
so that a charge retried after a lost answer is not taken twice at the provider either.

    result = FakeProvider().charge(7919, "EUR", "tok_visa", idempotency_key="order-42")
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

DECLINED_TOKEN = "tok_declined"


@dataclass(frozen=True)
class ChargeResult:
    """Outcome of a charge: a provider reference when approved, a reason when declined."""

    approved: bool
    reference: str = ""
    reason: str = ""


class FakeProvider:
    """Approves every charge except the declined token (as ``legacy_monolith.payments``)."""

    def charge(
        self, amount_cents: int, currency: str, token: str, *, idempotency_key: str
    ) -> ChargeResult:
        if token == DECLINED_TOKEN:
            return ChargeResult(approved=False, reason="The card was declined.")
        return ChargeResult(approved=True, reference=f"ch_{uuid.uuid4().hex}")

    def refund(self, reference: str, amount_cents: int) -> ChargeResult:
        """Refund a previous charge in full."""
        return ChargeResult(approved=True, reference=reference)
