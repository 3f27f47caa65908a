"""Settings of the payments service: ``PAYMENTS_<NAME>``, falling back to ``STRANGLER_<NAME>``.

``PAYMENTS_DATABASE_URL``, ``PAYMENTS_MONOLITH_DATABASE_URL``, ``PAYMENTS_PHASE``
(shared | dual_write | split), ``PAYMENTS_IDENTITY_KEY``, ``PAYMENTS_REVERSE_SYNC``.
"""

from __future__ import annotations

from typing import ClassVar

from extracted_services.common.settings import ServiceSettings


class Settings(ServiceSettings):
    """The payments service's configuration."""

    context: ClassVar[str] = "payments"
