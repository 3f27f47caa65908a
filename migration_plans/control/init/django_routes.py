"""Read the app's API from Django's URLconf: DRF viewsets, their serializers and rules.

    resources = inspect_resources(models, urlconf=None)
    resources[0].list_path, resources[0].actions     # '/api/v1/shipments/', ('list', ...)

Only DRF router routes of viewsets whose serializer's model is one of ``models`` count.
An action the viewset implements itself (an overridden ``create``, an ``@action``) is not
generated: it stays on the monolith, noted in ``left_to_monolith``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from types import SimpleNamespace
from typing import Any

from migration_plans.control.init.errors import Unmappable
from migration_plans.control.init.spec import (
    GENERIC_ACTIONS,
    FilterKind,
    FilterSpec,
    Kind,
    ModelSpec,
    ResourceSpec,
    Scope,
    SerializerField,
)

SENTINEL_USER = 987_654_321
"""The user id a viewset's ``get_queryset`` is compiled for (found again in its SQL)."""

_METHODS = {"get", "post", "put", "patch", "delete"}
_PERFORM = {"create": "perform_create", "update": "perform_update", "destroy": "perform_destroy"}


def _routes(patterns: Sequence[Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for pattern in patterns:
        text = prefix + str(pattern.pattern)
        if hasattr(pattern, "url_patterns"):
            yield from _routes(pattern.url_patterns, text)
        else:
            yield text, pattern


_GROUP = re.compile(r"\(\?P<(?P<name>\w+)>[^)]*\)")
_CONVERTER = re.compile(r"<(?:\w+:)?(?P<name>\w+)>")


def template_path(route: str) -> str:
    """A URLconf route (regex or ``path()`` syntax) as a plan path template."""

    def name(match: re.Match[str]) -> str:
        found = match.group("name")
        return "{id}" if found == "pk" else "{" + found + "}"

    text = _CONVERTER.sub(name, _GROUP.sub(name, route))
    text = text.replace("^", "").replace("$", "").replace("\\.", ".")
    return "/" + text.lstrip("/")


def _mixin_action(action: str) -> Any:
    from rest_framework import mixins

    owners = {
        "list": mixins.ListModelMixin,
        "create": mixins.CreateModelMixin,
        "retrieve": mixins.RetrieveModelMixin,
        "update": mixins.UpdateModelMixin,
        "partial_update": mixins.UpdateModelMixin,
        "destroy": mixins.DestroyModelMixin,
    }
    return owners[action].__dict__[action]


def _is_generic(viewset: Any, action: str) -> bool:
    """Whether ``action`` is DRF's own mixin code (no override of it or its perform hook)."""
    from rest_framework import mixins

    if action not in GENERIC_ACTIONS or getattr(viewset, action, None) is not _mixin_action(action):
        return False
    hook = _PERFORM.get("update" if action == "partial_update" else action)
    if hook is None:
        return True
    owner = {
        "perform_create": mixins.CreateModelMixin,
        "perform_update": mixins.UpdateModelMixin,
        "perform_destroy": mixins.DestroyModelMixin,
    }[hook]
    return getattr(viewset, hook) is owner.__dict__[hook]


def _user(*, staff: bool, authenticated: bool = True) -> Any:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import AnonymousUser

    if not authenticated:
        return AnonymousUser()
    user = get_user_model()(pk=SENTINEL_USER, is_staff=staff, is_superuser=False)
    user._state.adding = False
    return user


def _view(viewset: Any, action: str, method: str, user: Any) -> Any:
    view = viewset()
    view.action = action
    view.request = SimpleNamespace(method=method, user=user, query_params={}, GET={})
    view.kwargs = {}
    view.args = ()
    view.format_kwarg = None
    return view


def _allowed(viewset: Any, action: str, method: str, user: Any) -> bool:
    view = _view(viewset, action, method, user)
    return all(
        permission.has_permission(view.request, view) for permission in view.get_permissions()
    )


def _scope(viewset: Any, model: Any) -> Scope | None:
    """The rows a non-staff caller sees, when ``get_queryset`` narrows them."""
    from rest_framework.generics import GenericAPIView

    if getattr(viewset, "get_queryset", None) is GenericAPIView.get_queryset:
        return None
    label = f"{viewset.__module__}.{viewset.__name__}.get_queryset"

    def compiled(staff: bool) -> tuple[str, tuple[Any, ...]]:
        view = _view(viewset, "list", "GET", _user(staff=staff))
        queryset = view.get_queryset().order_by().values_list("pk", flat=True)
        sql, params = queryset.query.sql_with_params()
        return str(sql), tuple(params)

    everything = model._default_manager.all().order_by().values_list("pk", flat=True)
    all_sql = str(everything.query.sql_with_params()[0])
    try:
        sql, params = compiled(staff=False)
        staff_sql, _ = compiled(staff=True)
    except Exception as exc:
        raise Unmappable(
            label,
            f"could not be compiled for a sample user ({type(exc).__name__}: {exc})",
            "write the row visibility in the generated api.py's visible_keys by hand",
        ) from exc
    if any(param != SENTINEL_USER for param in params) or params.count(SENTINEL_USER) != 1:
        raise Unmappable(
            label,
            f"narrows rows by more than the caller's id (parameters {params!r})",
            "write the row visibility in the generated api.py's visible_keys by hand",
        )
    if staff_sql != all_sql:
        raise Unmappable(
            label,
            "narrows staff's rows too (only 'staff see everything, others what the query "
            "selects' is generated)",
            "write the row visibility in the generated api.py's visible_keys by hand",
        )
    return Scope(sql=sql.replace("%s", ":user_id"), staff_sees_all=True)


def _serializer_fields(serializer_class: Any, spec: ModelSpec) -> tuple[SerializerField, ...]:
    from rest_framework import serializers

    fields: list[SerializerField] = []
    label = f"{serializer_class.__module__}.{serializer_class.__name__}"
    for name, field in serializer_class().fields.items():
        source = field.source
        plain = isinstance(
            field, serializers.ModelField | serializers.PrimaryKeyRelatedField
        ) or type(field).__module__.startswith("rest_framework.fields")
        try:
            column = spec.field(source).column if plain and source != "*" else None
        except KeyError:
            column = None
        if column is None or isinstance(field, serializers.SerializerMethodField):
            raise Unmappable(
                f"{label}.{name}",
                f"a {type(field).__name__} (source {source!r}) is not one of "
                f"{spec.label}'s columns",
                "render it in the generated api.py by hand, or leave the viewset on the monolith",
            )
        fields.append(
            SerializerField(
                name=name,
                source=column,
                read_only=bool(field.read_only),
                required=bool(field.required),
                allow_null=bool(getattr(field, "allow_null", False)),
            )
        )
    return tuple(fields)


def _filters(viewset: Any, spec: ModelSpec) -> tuple[FilterSpec, ...]:
    label = f"{viewset.__module__}.{viewset.__name__}"
    if getattr(viewset, "filterset_class", None) is not None:
        raise Unmappable(
            label,
            "a filterset_class (filters written in code)",
            "write its filters in the generated api.py's list endpoint by hand",
        )
    declared = getattr(viewset, "filterset_fields", None) or ()
    if isinstance(declared, dict):
        if any(list(lookups) != ["exact"] for lookups in declared.values()):
            raise Unmappable(label, "filterset_fields with lookups other than exact",
                             "write those filters in the generated api.py by hand")  # fmt: skip
        declared = tuple(declared)
    filters: list[FilterSpec] = []
    for name in declared:
        field = spec.field(name)
        if field.target is not None:
            kind = FilterKind.MODEL_CHOICE
        elif field.choices:
            kind = FilterKind.CHOICE
        elif field.kind is Kind.BOOLEAN:
            kind = FilterKind.BOOLEAN
        elif field.kind in (Kind.STRING, Kind.TEXT):
            kind = FilterKind.TEXT
        else:
            raise Unmappable(
                f"{label}.filterset_fields.{name}",
                f"a filter on a {field.kind} column",
                "write it in the generated api.py's list endpoint by hand",
            )
        filters.append(FilterSpec(name=name, column=field.column, kind=kind))
    return tuple(filters)


def _ordering(viewset: Any, model: Any, spec: ModelSpec) -> tuple[tuple[str, ...], tuple[str, ...]]:
    fields = getattr(viewset, "ordering_fields", None) or ()
    if fields == "__all__":
        fields = tuple(field.name for field in (spec.key, *spec.fields))
    default = getattr(viewset, "ordering", None) or model._meta.ordering or ("pk",)
    if isinstance(default, str):
        default = (default,)
    named = tuple(
        ("-" if term.startswith("-") else "")
        + spec.field(term.lstrip("-").replace("pk", spec.key.name)).column
        for term in default
    )
    return tuple(spec.field(name).name for name in fields), named


def _resource(
    viewset: Any, routes: dict[str, dict[str, str]], spec: ModelSpec, model: Any
) -> ResourceSpec:
    serializer = viewset.serializer_class
    allowed_methods = {name.lower() for name in viewset.http_method_names}
    actions: list[str] = []
    left: list[str] = []
    list_path = detail_path = ""
    for path, mapping in routes.items():
        for method, action in mapping.items():
            if method not in _METHODS or method not in allowed_methods:
                continue
            if action in GENERIC_ACTIONS and _is_generic(viewset, action):
                actions.append(action)
                if action in ("list", "create"):
                    list_path = path
                else:
                    detail_path = path
                continue
            left.append(f"{method.upper()} {path} ({viewset.__name__}.{action})")
    list_path = list_path or next((p for p, m in routes.items() if "list" in m.values()), "")
    detail_path = detail_path or next(
        (p for p, m in routes.items() if "retrieve" in m.values()), ""
    )
    ordering_fields, ordering = _ordering(viewset, model, spec)
    writes = [action for action in actions if action not in ("list", "retrieve")]
    staff_only = bool(writes) and not _allowed(viewset, writes[0], "POST", _user(staff=False))
    return ResourceSpec(
        viewset=f"{viewset.__module__}.{viewset.__name__}",
        serializer=f"{serializer.__module__}.{serializer.__name__}",
        model=spec.name,
        list_path=list_path,
        detail_path=detail_path,
        actions=tuple(action for action in GENERIC_ACTIONS if action in actions),
        fields=_serializer_fields(serializer, spec),
        filters=_filters(viewset, spec) if "list" in actions else (),
        ordering_fields=ordering_fields,
        ordering=ordering,
        anonymous_reads=_allowed(viewset, "list", "GET", _user(staff=False, authenticated=False)),
        staff_writes_only=staff_only,
        scope=_scope(viewset, model),
        left_to_monolith=tuple(left),
    )


def viewset_routes(
    models: Sequence[ModelSpec], urlconf: str | None = None
) -> dict[Any, dict[str, dict[str, str]]]:
    """Each router viewset on one of ``models``: its path templates and method -> action."""
    from django.urls import get_resolver

    tables = {(model.app_label, model.name) for model in models}
    found: dict[Any, dict[str, dict[str, str]]] = {}
    for route, pattern in _routes(get_resolver(urlconf).url_patterns):
        callback = pattern.callback
        viewset = getattr(callback, "cls", None)
        actions = getattr(callback, "actions", None)
        serializer = getattr(viewset, "serializer_class", None)
        model = getattr(getattr(serializer, "Meta", None), "model", None)
        if actions is None or model is None:
            continue
        if (model._meta.app_label, model.__name__) not in tables:
            continue
        found.setdefault(viewset, {})[template_path(route)] = dict(actions)
    return found


def inspect_resources(
    models: Sequence[ModelSpec], urlconf: str | None = None, *, skip_unmappable: bool = False
) -> tuple[tuple[ResourceSpec, ...], tuple[str, ...]]:
    """The app's viewsets on ``models`` and notes of what stays on the monolith."""
    from django.apps import apps

    from migration_plans.control.init.errors import UnmappableSet

    resources: list[ResourceSpec] = []
    notes: list[str] = []
    problems: list[Unmappable] = []
    by_name = {(model.app_label, model.name): model for model in models}
    for viewset, routes in viewset_routes(models, urlconf).items():
        model = viewset.serializer_class.Meta.model
        spec = by_name[(model._meta.app_label, model.__name__)]
        try:
            resource = _resource(viewset, routes, spec, apps.get_model(spec.label))
        except Unmappable as exc:
            problems.append(exc)
            notes.append(f"{viewset.__name__} stays on the monolith: {exc}")
            continue
        resources.append(resource)
    if problems and not skip_unmappable:
        raise UnmappableSet(problems)
    return tuple(resources), tuple(notes)
