"""Settings of the inventory service: ``INVENTORY_<NAME>``, falling back to ``STRANGLER_<NAME>``.

``INVENTORY_DATABASE_URL``, ``INVENTORY_MONOLITH_DATABASE_URL``, ``INVENTORY_PHASE``
(shared | dual_write | split), ``INVENTORY_IDENTITY_KEY``, ``INVENTORY_REVERSE_SYNC``.
"""

from __future__ import annotations

from typing import ClassVar

from extracted_services.common.settings import ServiceSettings


class Settings(ServiceSettings):
    """The inventory service's configuration."""

    context: ClassVar[str] = "inventory"
