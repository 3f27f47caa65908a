"""Settings of the lending service: ``LENDING_<NAME>``, falling back to ``STRANGLER_<NAME>``."""

from __future__ import annotations

from typing import ClassVar

from extracted_services.common.settings import ServiceSettings


class Settings(ServiceSettings):
    """The lending service's configuration."""

    context: ClassVar[str] = "lending"
