"""What ``strangler init`` learned from the Django project, as plain frozen data.

The introspection (:mod:`.django_models`, :mod:`.django_routes`) fills these; the plan,
routes and skeleton writers read only these, so they are tested without Django.

    spec.models[0].db_table            # 'shipping_shipment'
    spec.resources[0].list_path        # '/api/v1/shipments/'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    """The column types the generator maps (Django's internal types, folded)."""

    INTEGER = "integer"
    BIG_INTEGER = "big_integer"
    STRING = "string"
    TEXT = "text"
    BOOLEAN = "boolean"
    DECIMAL = "decimal"
    DATETIME = "datetime"
    DATE = "date"
    TIME = "time"
    FLOAT = "float"
    UUID = "uuid"
    JSON = "json"


@dataclass(frozen=True)
class Target:
    """Where a foreign key points: the model, its table and its key column."""

    app_label: str
    model: str
    db_table: str
    key_column: str
    kind: Kind

    @property
    def label(self) -> str:
        return f"{self.app_label}.{self.model}"


@dataclass(frozen=True)
class FieldSpec:
    """One concrete column of a model."""

    name: str
    column: str
    kind: Kind
    null: bool = False
    blank: bool = False
    max_length: int | None = None
    choices: tuple[str, ...] = ()
    max_digits: int | None = None
    decimal_places: int | None = None
    default: Any = None
    has_default: bool = False
    unique: bool = False
    auto_now: bool = False
    auto_now_add: bool = False
    target: Target | None = None
    auto_increment: bool = False
    unsigned: bool = False
    slug: bool = False

    @property
    def is_relation(self) -> bool:
        return self.target is not None


@dataclass(frozen=True)
class ModelSpec:
    """One concrete, managed model: its table, key and mapped columns."""

    app_label: str
    name: str
    db_table: str
    key: FieldSpec
    fields: tuple[FieldSpec, ...]
    unique_together: tuple[tuple[str, ...], ...] = ()
    skipped: tuple[str, ...] = ()
    protected_by: tuple[tuple[str, str], ...] = ()
    """(table, column) of foreign keys into this model whose ``on_delete`` is PROTECT or
    RESTRICT: a row they reference cannot be deleted."""

    @property
    def label(self) -> str:
        return f"{self.app_label}.{self.name}"

    def field(self, name: str) -> FieldSpec:
        """The field called ``name`` (the key too); :class:`KeyError` naming the model."""
        for candidate in (self.key, *self.fields):
            if name in (candidate.name, candidate.column):
                return candidate
        raise KeyError(f"{self.label} has no field {name!r}")


@dataclass(frozen=True)
class SerializerField:
    """One field of the viewset's serializer as DRF declares it."""

    name: str
    source: str
    read_only: bool
    required: bool
    allow_null: bool = False


class FilterKind(StrEnum):
    """How django-filter parses a ``filterset_fields`` entry."""

    CHOICE = "choice"
    MODEL_CHOICE = "model_choice"
    TEXT = "text"
    NUMBER = "number"
    BOOLEAN = "boolean"


@dataclass(frozen=True)
class FilterSpec:
    """One ``?name=`` filter of the list endpoint, on a model column."""

    name: str
    column: str
    kind: FilterKind


@dataclass(frozen=True)
class Scope:
    """Row visibility a viewset's ``get_queryset`` applies for a non-staff caller.

    ``sql`` selects the visible keys from the monolith's tables with a ``:user_id``
    parameter (compiled by Django from the queryset); staff see every row when
    ``staff_sees_all``.
    """

    sql: str
    staff_sees_all: bool


GENERIC_ACTIONS = ("list", "create", "retrieve", "update", "partial_update", "destroy")


@dataclass(frozen=True)
class ResourceSpec:
    """One DRF viewset of the app, on one model, as the router exposes it."""

    viewset: str
    serializer: str
    model: str
    list_path: str
    detail_path: str
    actions: tuple[str, ...]
    fields: tuple[SerializerField, ...]
    filters: tuple[FilterSpec, ...] = ()
    ordering_fields: tuple[str, ...] = ()
    ordering: tuple[str, ...] = ("id",)
    anonymous_reads: bool = True
    staff_writes_only: bool = False
    scope: Scope | None = None
    left_to_monolith: tuple[str, ...] = ()

    @property
    def writes(self) -> bool:
        """Whether the generated service serves any write of this viewset."""
        return any(action not in ("list", "retrieve") for action in self.actions)

    def methods(self, detail: bool) -> tuple[str, ...]:
        """The HTTP methods the generated service serves on the list or detail path."""
        wanted = (
            (("update", "PUT"), ("partial_update", "PATCH"), ("destroy", "DELETE"))
            if detail
            else (("create", "POST"),)
        )
        read = "retrieve" if detail else "list"
        methods = ["GET"] if read in self.actions else []
        return (*methods, *(method for action, method in wanted if action in self.actions))


@dataclass(frozen=True)
class ContextSpec:
    """Everything one ``strangler init`` run generates from."""

    context: str
    app_label: str
    models: tuple[ModelSpec, ...]
    resources: tuple[ResourceSpec, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def model(self, name: str) -> ModelSpec:
        for model in self.models:
            if model.name == name:
                return model
        raise KeyError(f"{self.context}: no model {name!r}")
