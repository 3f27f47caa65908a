"""The context's plan file, written from a :class:`~.spec.ContextSpec` with its reasons.

Every table pair maps each column to a service column of the same name (a foreign key
keeps its ``_id`` column), with a proposed transform where the service has a cleaner
type; a ``# CHOOSE:`` comment marks each decision a human should confirm. The text is
validated by :func:`migration_plans.core.plan.load_plan` before it is written.

    text = plan_text(spec, plans={"catalog": catalog_plan}, module="shipping_service")
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from migration_plans.control.init.spec import ContextSpec, FieldSpec, Kind, ModelSpec
from migration_plans.core.mapping import TransformKind
from migration_plans.core.plan import Plan

GATES = """gates:
  dual_write:
    - {metric: shadow_match_rate, op: ">=", value: 0.999, min_samples: 1000}
  split:
    - {metric: reconcile_clean_runs, op: ">=", value: 3}
    - {metric: relay_lag_p99_ms, op: "<", value: 500}
    - {metric: dead_letters, op: "==", value: 0}
"""


def pair_name(model_name: str) -> str:
    """``Shipment`` -> ``shipments``, ``StockItem`` -> ``stock_items``, ``Category`` ->
    ``categories``: the pair's name and the service's table."""
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", model_name).lower()
    if re.search(r"[^aeiou]y$", snake):
        return snake[:-1] + "ies"
    if re.search(r"(s|x|z|ch|sh)$", snake):
        return snake + "es"
    return snake + "s"


@dataclass(frozen=True)
class Column:
    """One mapped column: the plan entry and the service column's name and comment."""

    field: FieldSpec
    service: str
    transform: str
    options: tuple[tuple[str, object], ...] = ()
    comment: str = ""

    def entry(self) -> str:
        parts = [f"monolith: {self.field.column}", f"service: {self.service}"]
        if self.transform != TransformKind.IDENTITY.value:
            parts.append(f"transform: {self.transform}")
        parts += [f"{name}: {json.dumps(value)}" for name, value in self.options]
        return "{" + ", ".join(parts) + "}"


def supports(transform: str) -> bool:
    """Whether this toolkit's mapping knows ``transform`` (richer ones land over time)."""
    return transform in {kind.value for kind in TransformKind}


def column_of(field: FieldSpec) -> Column:
    """The proposed service column and transform of one monolith column."""
    if field.kind is Kind.DECIMAL:
        places = field.decimal_places or 0
        suffix = "_cents" if places == 2 else f"_e{places}" if places else ""
        return Column(
            field,
            f"{field.column}{suffix}" if suffix else field.column,
            TransformKind.DECIMAL_CENTS.value,
            (("scale", places),),
            f"CHOOSE: money? keep decimal_cents (integer minor units, scale {places}); else "
            f"identity with the service column {field.column} as Numeric"
            f"({field.max_digits}, {places})",
        )
    if field.kind is Kind.DATETIME:
        return Column(field, field.column, TransformKind.TIMESTAMP.value, (("precision", "us"),))
    if field.kind is Kind.BOOLEAN:
        return Column(
            field,
            field.column,
            TransformKind.IDENTITY.value,
            comment="CHOOSE: a flag; or bool_enum with true_value/false_value for a named "
            "state in the service",
        )
    if field.choices:
        values = "|".join(field.choices)
        if len(field.choices) > 2 and field.kind is Kind.STRING and supports("enum_map"):
            pairs = {value: value for value in field.choices}
            return Column(
                field,
                field.column,
                "enum_map",
                (("values", pairs),),
                f"CHOOSE: the service's names for {values} (right-hand side)",
            )
        return Column(
            field,
            field.column,
            TransformKind.IDENTITY.value,
            comment=f"choices {values}: the same strings on both sides"
            + ("" if len(field.choices) <= 2 or supports("enum_map") else
               "; CHOOSE: enum_map once the mapping has it, to rename them"),
        )  # fmt: skip
    if field.kind is Kind.JSON and supports("json"):
        return Column(
            field,
            field.column,
            "json",
            comment="compared by value; CHOOSE: monolith_storage: text if the monolith keeps "
            "JSON in a text column (SQLite, MySQL before 5.7)",
        )
    return Column(field, field.column, TransformKind.IDENTITY.value)


def columns_of(model: ModelSpec) -> list[Column]:
    return [column_of(field) for field in model.fields]


def owner_of(db_table: str, plans: Mapping[str, Plan], spec: ContextSpec) -> tuple[str, str] | None:
    """The (context, pair) whose monolith table is ``db_table``: this context or a plan's."""
    for model in spec.models:
        if model.db_table == db_table:
            return spec.context, pair_name(model.name)
    for context, plan in sorted(plans.items()):
        if context == spec.context:
            continue
        for table in plan.tables:
            if table.monolith_table == db_table:
                return context, table.name
    return None


def _key_entry(model: ModelSpec) -> str:
    kind = model.key.kind
    extra = ""
    if kind is Kind.STRING:
        extra = ", type: text"
    elif kind is Kind.UUID:
        extra = ", type: uuid"
    return f"{{monolith: {model.key.column}, service: {model.key.column}{extra}}}"


def _table(model: ModelSpec, spec: ContextSpec, plans: Mapping[str, Plan]) -> list[str]:
    name = pair_name(model.name)
    lines = [
        f"  # {model.label} (Django model {model.name})",
        f"  - name: {name}",
        f"    monolith_table: {model.db_table}",
        f"    service_table: {name}",
        f"    key: {_key_entry(model)}",
        "    fields:",
    ]
    references: list[str] = []
    for column in columns_of(model):
        comment = column.comment
        target = column.field.target
        if target is not None:
            owner = owner_of(target.db_table, plans, spec)
            if owner is None:
                comment = (
                    f"{target.label}'s key: the reference crosses into the monolith "
                    f"({target.db_table} is in no plan; declare a reference once it is)"
                )
            else:
                references.append(
                    f"      - {{column: {column.service}, context: {owner[0]}, table: {owner[1]}}}"
                )
        suffix = f"  # {comment}" if comment else ""
        lines.append(f"      - {column.entry()}{suffix}")
    for skipped in model.skipped:
        lines.append(f"      # not mapped: {skipped}")
    if references:
        lines += ["    references:", *references]
    return lines


def _endpoints(spec: ContextSpec) -> list[str]:
    lines = ["endpoints:"]
    for resource in spec.resources:
        for path, detail in ((resource.list_path, False), (resource.detail_path, True)):
            methods = resource.methods(detail)
            if path and methods:
                shown = f'"{path}"' if "{" in path else path
                lines.append(f"  - {{path: {shown}, methods: [{', '.join(methods)}]}}")
    if len(lines) == 1:
        lines[0] = "endpoints: []"
    left = [item for resource in spec.resources for item in resource.left_to_monolith]
    left += [note for note in spec.notes if "stays on the monolith" in note]
    if left:
        lines.append(
            "  # Left on the monolith (the viewset implements them itself): port each to the "
            "service by hand, then list it here."
        )
        lines += [f"  #   {item}" for item in dict.fromkeys(left)]
    return lines


def plan_text(
    spec: ContextSpec,
    *,
    plans: Mapping[str, Plan] | None = None,
    module: str = "",
    source: str = "",
) -> str:
    """The plan of ``spec.context`` as YAML with comments (``plans``: the deployment's other
    plans, for references; ``module``: the service package, when plans can name it)."""
    plans = plans or {}
    header = [
        f"# Migration plan of the {spec.context} bounded context, written by `strangler init`"
        + (f" from {source}" if source else "")
        + ".",
        "# The `tables` section is THE field mapping: the service, the dual-write relay and",
        "# the reconciler all read it. Review every `# CHOOSE:` comment before dual_write.",
        f"context: {spec.context}",
        f"service: {spec.context}",
        f"upstream: {spec.context}",
    ]
    if module and "service_module" in Plan.model_fields:
        header.append(f"service_module: {module}")
    header += ["phase: shared", "reverse_sync: true", "reconcile_interval_seconds: 300", ""]
    body = [*_endpoints(spec), "", GATES, "tables:"]
    for model in spec.models:
        body += _table(model, spec, plans)
        body.append("")
    notes = [note for note in spec.notes if "stays on the monolith" not in note]
    if notes:
        body += ["# Not mapped (write these by hand):", *(f"#   {note}" for note in notes)]
    return "\n".join([*header, *body]).rstrip() + "\n"
