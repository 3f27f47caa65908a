"""Read an app's models through Django's app registry into :class:`~.spec.ModelSpec`.

    setup_django("legacy_monolith.settings")
    models = inspect_models("shipping", only=("Shipment",))

What has no generated counterpart (many-to-many fields, generic relations, multi-table
inheritance, proxy or unmanaged models, composite or exotic keys, field types outside
:data:`KINDS`) raises :class:`~.errors.Unmappable` naming ``app.Model.field`` and what to
write by hand; with ``skip_unmappable`` it is left out and noted instead.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from migration_plans.control.init.errors import InitError, Unmappable, UnmappableSet
from migration_plans.control.init.spec import FieldSpec, Kind, ModelSpec, Target

DEFAULT_SETTINGS = "legacy_monolith.settings"

KINDS: dict[str, Kind] = {
    "AutoField": Kind.INTEGER,
    "SmallAutoField": Kind.INTEGER,
    "BigAutoField": Kind.BIG_INTEGER,
    "IntegerField": Kind.INTEGER,
    "SmallIntegerField": Kind.INTEGER,
    "PositiveIntegerField": Kind.INTEGER,
    "PositiveSmallIntegerField": Kind.INTEGER,
    "BigIntegerField": Kind.BIG_INTEGER,
    "PositiveBigIntegerField": Kind.BIG_INTEGER,
    "CharField": Kind.STRING,
    "SlugField": Kind.STRING,
    "EmailField": Kind.STRING,
    "URLField": Kind.STRING,
    "TextField": Kind.TEXT,
    "BooleanField": Kind.BOOLEAN,
    "DecimalField": Kind.DECIMAL,
    "DateTimeField": Kind.DATETIME,
    "DateField": Kind.DATE,
    "TimeField": Kind.TIME,
    "FloatField": Kind.FLOAT,
    "UUIDField": Kind.UUID,
    "JSONField": Kind.JSON,
}
"""Django internal type -> the column kind generated for it."""

KEY_KINDS = (Kind.INTEGER, Kind.BIG_INTEGER, Kind.STRING, Kind.UUID)


def setup_django(settings_module: str | None = None) -> None:
    """``django.setup()`` with ``settings_module`` (else ``DJANGO_SETTINGS_MODULE``, else the
    shop's); a settings module that does not load is an :class:`InitError` saying why."""
    import django
    from django.core.exceptions import ImproperlyConfigured

    module = settings_module or os.environ.get("DJANGO_SETTINGS_MODULE") or DEFAULT_SETTINGS
    current = os.environ.get("DJANGO_SETTINGS_MODULE")
    if current and current != module:
        from django.conf import settings

        if settings.configured and getattr(settings, "SETTINGS_MODULE", module) != module:
            raise InitError(
                f"Django is already set up with {current}; cannot inspect {module} as well"
            )
    os.environ["DJANGO_SETTINGS_MODULE"] = module
    try:
        django.setup()
    except ImproperlyConfigured as exc:
        raise InitError(
            f"Django settings {module} did not load: {exc} (init opens no database, but the "
            "settings module must import)"
        ) from exc
    except ImportError as exc:
        raise InitError(f"Django settings {module} cannot be imported: {exc}") from exc


def _kind(model_label: str, field: Any) -> Kind:
    internal = field.get_internal_type()
    kind = KINDS.get(internal)
    if kind is None:
        raise Unmappable(
            f"{model_label}.{field.name}",
            f"a {internal} has no generated column type",
            "declare the service column in models.py and its plan field (identity, or a "
            "transform) by hand",
        )
    return kind


def _literal_default(field: Any) -> tuple[bool, Any]:
    """The field's default when it is a plain literal (callables are left to the code)."""
    from django.db.models import NOT_PROVIDED

    default = field.default
    if default is NOT_PROVIDED or callable(default):
        return False, None
    for kind in (bool, int, float, str):  # plain values of enum members (TextChoices)
        if isinstance(default, kind):
            return True, kind(default)
    if default is None:
        return True, None
    return False, None


def _target(model_label: str, field: Any) -> Target:
    related = field.related_model
    key = related._meta.pk
    target_field = field.target_field
    if target_field is not key:
        raise Unmappable(
            f"{model_label}.{field.name}",
            f"the foreign key points at {related._meta.label}.{target_field.name}, not its key",
            "map the column as a plain identity field and check it by hand",
        )
    return Target(
        app_label=related._meta.app_label,
        model=related.__name__,
        db_table=related._meta.db_table,
        key_column=key.column,
        kind=_key_kind(related._meta.label, key),
    )


def _key_kind(model_label: str, key: Any) -> Kind:
    if key.get_internal_type() in {"ForeignKey", "OneToOneField"}:
        raise Unmappable(
            f"{model_label}.{key.name}",
            "the primary key is a relation (multi-table inheritance or a shared key)",
            "write the table pair with its key column by hand",
        )
    kind = _kind(model_label, key)
    if kind not in KEY_KINDS:
        raise Unmappable(
            f"{model_label}.{key.name}",
            f"a {key.get_internal_type()} primary key is not an integer, text or UUID key",
            "give the table an integer, text or UUID key, or write the pair by hand",
        )
    return kind


def field_spec(model_label: str, field: Any) -> FieldSpec:
    """One concrete field as a :class:`FieldSpec` (:class:`Unmappable` when it has none)."""
    internal = field.get_internal_type()
    target = None
    if internal in {"ForeignKey", "OneToOneField"}:
        target = _target(model_label, field)
        kind = target.kind
    else:
        kind = _kind(model_label, field)
    has_default, default = _literal_default(field)
    choices = tuple(str(value) for value, _label in (field.flatchoices or ()))
    return FieldSpec(
        name=field.name,
        column=field.column,
        kind=kind,
        null=bool(field.null),
        blank=bool(field.blank),
        max_length=getattr(field, "max_length", None) if kind is Kind.STRING else None,
        choices=choices,
        max_digits=getattr(field, "max_digits", None),
        decimal_places=getattr(field, "decimal_places", None),
        default=default,
        has_default=has_default,
        unique=bool(field.unique),
        auto_now=bool(getattr(field, "auto_now", False)),
        auto_now_add=bool(getattr(field, "auto_now_add", False)),
        target=target,
        auto_increment=internal in {"AutoField", "SmallAutoField", "BigAutoField"},
        unsigned=internal.startswith("Positive"),
        slug=internal == "SlugField",
    )


def _model_problems(model: Any) -> list[Unmappable]:
    """Why ``model`` as a whole cannot be mapped (empty when it can)."""
    meta = model._meta
    label = meta.label
    found: list[Unmappable] = []
    if meta.proxy:
        found.append(
            Unmappable(
                label,
                f"a proxy model of {meta.concrete_model._meta.label} (no table of its own)",
                f"map {meta.concrete_model._meta.label}'s table instead",
            )
        )
    elif not meta.managed:
        found.append(
            Unmappable(
                label,
                f"an unmanaged model (table {meta.db_table} is not Django's to migrate)",
                "write its table pair and the service's model by hand",
            )
        )
    elif meta.parents:
        parents = ", ".join(parent._meta.label for parent in meta.parents)
        found.append(
            Unmappable(
                label,
                f"multi-table inheritance from {parents} (one row spans two tables)",
                "write one table pair per table by hand, or a view joining them",
            )
        )
    elif meta.pk.get_internal_type() == "CompositePrimaryKey":
        found.append(
            Unmappable(
                label,
                "a composite primary key",
                "write the pair's key as a list of columns by hand (key: {monolith: [..]})",
            )
        )
    return found


def _field_problems(model: Any) -> list[Unmappable]:
    label = model._meta.label
    found = [
        Unmappable(
            f"{label}.{field.name}",
            f"a many-to-many field (through table {field.remote_field.through._meta.db_table})",
            "map the through table as a pair of its own by hand",
        )
        for field in model._meta.many_to_many
    ]
    for private in model._meta.private_fields:
        if type(private).__name__ == "GenericForeignKey":
            found.append(
                Unmappable(
                    f"{label}.{private.name}",
                    "a generic foreign key (a content type and an object id)",
                    "map its two columns as identity fields and check the reference by hand",
                )
            )
    return found


def _unique_together(model: Any) -> tuple[tuple[str, ...], ...]:
    """Multi-column uniqueness (``unique_together`` and plain ``UniqueConstraint``s) in columns."""
    from django.db.models import UniqueConstraint

    groups: list[tuple[str, ...]] = [tuple(names) for names in model._meta.unique_together]
    groups += [
        tuple(constraint.fields)
        for constraint in model._meta.constraints
        if isinstance(constraint, UniqueConstraint)
        and constraint.fields
        and constraint.condition is None
        and len(constraint.fields) > 1
    ]
    return tuple(tuple(model._meta.get_field(name).column for name in group) for group in groups)


def _protected_by(model: Any) -> tuple[tuple[str, str], ...]:
    """Foreign keys into ``model`` that forbid deleting a row they reference."""
    from django.db.models import PROTECT, RESTRICT

    return tuple(
        sorted(
            {
                (relation.related_model._meta.db_table, relation.field.column)
                for relation in model._meta.related_objects
                if not relation.many_to_many and relation.on_delete in (PROTECT, RESTRICT)
            }
        )
    )


def model_spec(
    model: Any, *, skip_unmappable: bool = False
) -> tuple[ModelSpec | None, list[Unmappable]]:
    """``model`` as a :class:`ModelSpec` and what could not be mapped.

    Without ``skip_unmappable`` the caller refuses on any problem; with it, unmappable
    fields are left out (noted) and an unmappable model gives ``None``.
    """
    problems = _model_problems(model)
    if problems:
        return None, problems
    label = model._meta.label
    problems = _field_problems(model)
    skipped = [f"{problem.where}: {problem.what}" for problem in problems]
    try:
        key = field_spec(label, model._meta.pk)
        _key_kind(label, model._meta.pk)
    except Unmappable as exc:
        return None, [*problems, exc]
    fields: list[FieldSpec] = []
    for field in model._meta.concrete_fields:
        if field.primary_key:
            continue
        try:
            fields.append(field_spec(label, field))
        except Unmappable as exc:
            problems.append(exc)
            skipped.append(f"{exc.where}: {exc.what}")
    spec = ModelSpec(
        app_label=model._meta.app_label,
        name=model.__name__,
        db_table=model._meta.db_table,
        key=key,
        fields=tuple(fields),
        unique_together=_unique_together(model),
        protected_by=_protected_by(model),
        skipped=tuple(skipped) if skip_unmappable else (),
    )
    return spec, problems


def app_models(app_label: str, only: Sequence[str] = ()) -> list[Any]:
    """The app's models (those named in ``only``, in that order); :class:`InitError` for an
    unknown app label or model name, listing the known ones."""
    from django.apps import apps

    try:
        config = apps.get_app_config(app_label)
    except LookupError:
        known = ", ".join(sorted(config.label for config in apps.get_app_configs()))
        raise InitError(f"no Django app with label {app_label!r} (installed: {known})") from None
    models = {model.__name__: model for model in config.get_models()}
    if not only:
        return list(models.values())
    unknown = [name for name in only if name not in models]
    if unknown:
        raise InitError(
            f"--models: {', '.join(unknown)} not in app {app_label!r} "
            f"(its models: {', '.join(models) or 'none'})"
        )
    return [models[name] for name in only]


def inspect_models(
    app_label: str, only: Sequence[str] = (), *, skip_unmappable: bool = False
) -> tuple[tuple[ModelSpec, ...], tuple[str, ...]]:
    """Every (or each named) model of ``app_label`` and the notes of what was skipped;
    refuses with every problem at once unless ``skip_unmappable``."""
    specs: list[ModelSpec] = []
    problems: list[Unmappable] = []
    notes: list[str] = []
    for model in app_models(app_label, only):
        spec, found = model_spec(model, skip_unmappable=skip_unmappable)
        problems += found
        if spec is None:
            notes += [f"skipped {problem}" for problem in found]
        else:
            specs.append(spec)
    if problems and not skip_unmappable:
        raise UnmappableSet(problems)
    if not specs:
        raise InitError(f"app {app_label!r}: no model left to map")
    return tuple(specs), tuple(notes)
