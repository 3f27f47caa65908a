"""Settings of the catalog service: ``CATALOG_<NAME>``, falling back to ``STRANGLER_<NAME>``.

``CATALOG_DATABASE_URL``, ``CATALOG_MONOLITH_DATABASE_URL``, ``CATALOG_PHASE``
(shared | dual_write | split), ``CATALOG_IDENTITY_KEY``, ``CATALOG_REVERSE_SYNC``.
"""

from __future__ import annotations

from typing import ClassVar

from extracted_services.common.settings import ServiceSettings


class Settings(ServiceSettings):
    """The catalog service's configuration."""

    context: ClassVar[str] = "catalog"
