"""The service package contract: what ``strangler service`` imports for a context.

A context's service is any importable Python package (the plan's ``service_module``,
default ``extracted_services.<service>``) that has:

- ``<module>.main:create_app``: the FastAPI app factory, called with no arguments;
- ``<module>.config:Settings``: a :class:`~extracted_services.common.settings.ServiceSettings`
  subclass (pydantic settings with ``database_url``) whose ``context`` is the context;
- ``<module>/alembic.ini``, its Alembic scripts beside it (``script_location``).

    package = ServicePackage.resolve("shipping")          # from plans/shipping.yaml
    package = ServicePackage.resolve("shipping", module="acme_services.shipping")
    package.settings().database_url, package.app_factory, package.alembic_ini, package.port

The package's project root must be on ``sys.path`` (``PYTHONPATH``; ``strangler up``
adds ``STRANGLER_PROJECT_PATH`` for its children).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from migration_plans.core.plan import dotted_module
from migration_plans.core.settings import (
    PROJECT_PATH_ENV,
    plan_for,
    plan_path,
    plans_dir,
    service_module_for,
    service_port,
)

if TYPE_CHECKING:
    from extracted_services.common.settings import ServiceSettings

__all__ = ["ServicePackage", "ServicePackageError"]


class ServicePackageError(ImportError):
    """A service package that cannot be imported or breaks the contract (names what)."""


@dataclass(frozen=True)
class ServicePackage:
    """One context's service package, resolved from its plan (or given by name)."""

    context: str
    module: str
    plan_port: int | None = None

    @classmethod
    def resolve(
        cls, context: str, *, module: str | None = None, directory: Path | None = None
    ) -> ServicePackage:
        """``context``'s package: ``module`` if given, else its plan's ``service_module``.

        Raises :class:`~migration_plans.core.settings.UnknownContext` (no plan, not a
        shipped context) or :class:`~migration_plans.core.yamlfile.ConfigError` (a plan
        that does not parse); a ``module`` that is not a dotted path raises ``ValueError``.
        """
        folder = directory or plans_dir()
        has_plan = plan_path(context, folder).exists()
        plan_port = plan_for(context, folder).port if has_plan else None
        name = dotted_module(module) if module else service_module_for(context, folder)
        return cls(context=context, module=name, plan_port=plan_port)

    @property
    def port(self) -> int:
        """Where the first replica listens (:func:`~migration_plans.core.settings.service_port`:
        ``STRANGLER_<CONTEXT>_PORT``, the plan's port, the shipped default, else derived)."""
        return service_port(self.context, self.plan_port)

    def _import(self, part: str) -> ModuleType:
        name = f"{self.module}.{part}" if part else self.module
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as exc:
            raise ServicePackageError(
                f"service package of {self.context!r}: cannot import {name} ({exc}); its "
                f"project root must be on PYTHONPATH ({PROJECT_PATH_ENV} for `strangler up`)"
            ) from exc

    def settings_class(self) -> type[ServiceSettings]:
        """``<module>.config:Settings``, checked against the contract."""
        from extracted_services.common.settings import ServiceSettings

        found = getattr(self._import("config"), "Settings", None)
        if not (isinstance(found, type) and issubclass(found, ServiceSettings)):
            raise ServicePackageError(
                f"{self.module}.config.Settings must be a subclass of "
                f"extracted_services.common.settings.ServiceSettings (found {found!r})"
            )
        if found.context != self.context:
            raise ServicePackageError(
                f"{self.module}.config.Settings.context is {found.context!r}, "
                f"not {self.context!r}: it would read {found.context.upper()}_* variables"
            )
        return found

    def settings(self) -> ServiceSettings:
        """The service's settings, read from the environment."""
        return self.settings_class()()

    @property
    def app_factory(self) -> str:
        """``<module>.main:create_app`` (checked to exist and be callable)."""
        if not callable(getattr(self._import("main"), "create_app", None)):
            raise ServicePackageError(f"{self.module}.main has no callable create_app()")
        return f"{self.module}.main:create_app"

    @property
    def alembic_ini(self) -> Path:
        """``<module>/alembic.ini`` (checked to exist)."""
        package = self._import("")
        if package.__file__ is None:
            raise ServicePackageError(f"{self.module} is a namespace package (no __init__.py)")
        ini = Path(package.__file__).parent / "alembic.ini"
        if not ini.is_file():
            raise ServicePackageError(f"{self.module} has no alembic.ini ({ini} is missing)")
        return ini
