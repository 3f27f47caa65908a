"""A fake payment provider, deterministic enough for tests and demos.

It declines a charge when the card token is ``tok_declined`` or when the
``MONOLITH_PAYMENTS_FAIL`` environment variable is true (settings.PAYMENTS_FAIL);
every other token succeeds.

    result = FakeProvider().charge(Decimal("10.00"), "EUR", "tok_visa")
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings

DECLINED_TOKEN = "tok_declined"


@dataclass(frozen=True)
class ChargeResult:
    """Outcome of a charge: a provider reference when approved, a reason when declined."""

    approved: bool
    reference: str = ""
    reason: str = ""


class FakeProvider:
    """Approves every charge except the magic declined token or when told to fail."""

    def charge(self, amount: Decimal, currency: str, token: str) -> ChargeResult:
        """Charge ``amount`` to the card behind ``token``."""
        if settings.PAYMENTS_FAIL or token == DECLINED_TOKEN:
            return ChargeResult(approved=False, reason="The card was declined.")
        return ChargeResult(approved=True, reference=f"ch_{uuid.uuid4().hex}")

    def refund(self, reference: str, amount: Decimal) -> ChargeResult:
        """Refund a previous charge in full."""
        return ChargeResult(approved=True, reference=reference)
