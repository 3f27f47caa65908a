"""A migration plan: one YAML file per bounded context, parsed once into a frozen model.

The plan names the context's service and upstream, the endpoints it owns, its
table pairs (the field mapping, see :mod:`migration_plans.core.mapping`), its current
phase, and the gates that must pass to enter each next phase.

    plan = load_plan(Path("migration_plans/templates/catalog.yaml"))
    plan.phase            # Phase.SHARED
    plan.next_phase       # Phase.DUAL_WRITE
    plan.gates_to_enter(Phase.DUAL_WRITE)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from migration_plans.core.http import HTTP_METHODS, SAFE_METHODS
from migration_plans.core.mapping import ContextMapping, TableMapping, split_table_problems
from migration_plans.core.phase import Phase
from migration_plans.core.references import reference_problems
from migration_plans.core.yamlfile import ConfigError, ConfigIssue, SourceDocument

_FROZEN = ConfigDict(frozen=True, extra="forbid")

GateMetric = Literal[
    "shadow_match_rate",
    "reconcile_clean_runs",
    "relay_lag_p99_ms",
    "dead_letters",
]


class Gate(BaseModel):
    """One condition, e.g. ``shadow_match_rate >= 0.999`` over at least 1000 samples."""

    model_config = _FROZEN

    metric: GateMetric
    op: Literal[">=", ">", "<=", "<", "=="]
    value: float
    min_samples: int = Field(default=0, ge=0, description="Fewer observations fail the gate.")

    def holds(self, observed: float | None, samples: int | None = None) -> bool:
        """Whether ``observed`` (with ``samples`` behind it) satisfies the gate."""
        if observed is None or (samples is not None and samples < self.min_samples):
            return False
        return {
            ">=": observed >= self.value,
            ">": observed > self.value,
            "<=": observed <= self.value,
            "<": observed < self.value,
            "==": observed == self.value,
        }[self.op]

    def __str__(self) -> str:
        text = f"{self.metric} {self.op} {self.value:g}"
        return f"{text} over >= {self.min_samples}" if self.min_samples else text


class Gates(BaseModel):
    """Gates that must hold to ENTER each phase."""

    model_config = _FROZEN

    dual_write: tuple[Gate, ...] = ()
    split: tuple[Gate, ...] = ()


class Endpoint(BaseModel):
    """Methods on a path template that belong to the context (``/api/v1/products/{id}/``)."""

    model_config = _FROZEN

    path: str
    methods: tuple[str, ...]

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, methods: tuple[str, ...]) -> tuple[str, ...]:
        upper = tuple(method.upper() for method in methods)
        unknown = sorted(set(upper) - HTTP_METHODS)
        if unknown:
            raise ValueError(f"unknown HTTP methods: {', '.join(unknown)}")
        return upper

    @field_validator("path")
    @classmethod
    def _absolute(cls, path: str) -> str:
        if not path.startswith("/"):
            raise ValueError(f"path {path!r} must start with '/'")
        return path

    @property
    def writes(self) -> tuple[str, ...]:
        return tuple(method for method in self.methods if method not in SAFE_METHODS)


_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def dotted_module(value: str) -> str:
    """``value`` if it is a dotted Python module path (``shop_services.shipping``)."""
    if not _DOTTED.match(value):
        raise ValueError(
            f"{value!r} is not a Python module path (dotted identifiers, e.g. 'my_services.shipping')"
        )
    return value


class Plan(BaseModel):
    """Everything the control plane knows about one bounded context.

    ``service_module`` names the service's Python package (default
    ``extracted_services.<service>``, the shipped examples). The package contract:

    - ``<module>.main:create_app``: the FastAPI app factory (no arguments);
    - ``<module>.config:Settings``: pydantic settings with ``database_url`` (a
      :class:`extracted_services.common.settings.ServiceSettings` subclass);
    - ``<module>/alembic.ini`` with its Alembic script folder beside it.

    The package must be importable by the processes that serve it: its project root on
    ``PYTHONPATH`` (the stack adds ``STRANGLER_PROJECT_PATH``). ``port`` is where its
    first replica listens (default: the shipped port, else one derived from the name).
    """

    model_config = _FROZEN

    context: str
    service: str
    service_module: str = Field(
        default="",
        description="Python package of the service (default extracted_services.<service>).",
    )
    port: int | None = Field(
        default=None, ge=1024, le=65535, description="Port of the service's first replica."
    )
    upstream: str = Field(description="Route-table upstream name of the service.")
    phase: Phase = Phase.SHARED
    reverse_sync: bool = Field(
        default=True, description="In split, keep the monolith current so rollback stays possible."
    )
    reconcile_interval_seconds: int = Field(default=300, gt=0)
    endpoints: tuple[Endpoint, ...] = ()
    tables: tuple[TableMapping, ...]
    gates: Gates = Gates()

    @model_validator(mode="before")
    @classmethod
    def _default_module(cls, data: Any) -> Any:
        """``service_module`` defaults to the shipped package of ``service``."""
        if isinstance(data, dict) and not data.get("service_module") and "service" in data:
            return {**data, "service_module": f"extracted_services.{data['service']}"}
        return data

    @field_validator("service_module")
    @classmethod
    def _module_path(cls, value: str) -> str:
        return dotted_module(value)

    @model_validator(mode="after")
    def _mapping_is_valid(self) -> Plan:
        self.mapping  # noqa: B018 - runs the mapping's own validation
        return self

    @property
    def mapping(self) -> ContextMapping:
        """The context's field mapping (the ``tables:`` section)."""
        return ContextMapping(context=self.context, tables=self.tables)

    @property
    def next_phase(self) -> Phase | None:
        return self.phase.next

    def gates_to_enter(self, phase: Phase) -> tuple[Gate, ...]:
        """The gates that must pass before ``phase`` may be entered."""
        if phase is Phase.DUAL_WRITE:
            return self.gates.dual_write
        if phase is Phase.SPLIT:
            return self.gates.split
        return ()


def load_plan(path: Path) -> Plan:
    """Parse one plan file; :class:`ConfigError` names file, line and field."""
    return SourceDocument.read(path).validate(Plan)


def load_plans(directory: Path) -> dict[str, Plan]:
    """Every ``*.yaml`` plan in ``directory`` by context; all errors reported together.

    References between plans are resolved here, across the whole set: one naming a
    context or table that no plan declares is an error at its line.
    """
    plans: dict[str, Plan] = {}
    documents: dict[str, SourceDocument] = {}
    issues: list[ConfigIssue] = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            document = SourceDocument.read(path)
            plan = document.validate(Plan)
        except ConfigError as exc:
            issues.extend(exc.issues)
            continue
        plans[plan.context] = plan
        documents[plan.context] = document
    if not issues:
        issues = [
            documents[problem.context].issue(problem.loc, problem.message)
            for problem in [
                *reference_problems(plans),
                *split_table_problems({context: plan.mapping for context, plan in plans.items()}),
            ]
        ]
    if issues:
        raise ConfigError(issues)
    return plans
