"""`strangler init` from the shop's Django project to a plan: introspection, proposals,
refusals, routes; every generated plan passes the plan validator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from migration_plans.control.cli import app
from migration_plans.control.init.django_models import inspect_models
from migration_plans.control.init.django_routes import inspect_resources, template_path
from migration_plans.control.init.errors import InitError, UnmappableSet
from migration_plans.control.init.plan_writer import column_of, pair_name, plan_text
from migration_plans.control.init.spec import ContextSpec, FieldSpec, Kind, ModelSpec
from migration_plans.core.mapping import TransformKind
from migration_plans.core.plan import load_plan, load_plans
from migration_plans.core.settings import TEMPLATES_DIR, copy_templates


def _spec(django_shop: None, context: str, app_label: str, *models: str) -> ContextSpec:
    found, notes = inspect_models(app_label, models)
    resources, more = inspect_resources(found, skip_unmappable=True)
    return ContextSpec(context, app_label, found, resources, (*notes, *more))


def test_shipping_models_keys_fields_and_foreign_keys(django_shop: None) -> None:
    (shipment,), notes = inspect_models("shipping")
    assert notes == ()
    assert (shipment.db_table, shipment.key.column, shipment.key.kind) == (
        "shipping_shipment",
        "id",
        Kind.BIG_INTEGER,
    )
    order = shipment.field("order")
    assert order.column == "order_id" and order.unique and order.target is not None
    assert (order.target.db_table, order.target.key_column) == ("orders_order", "id")
    status = shipment.field("status")
    assert status.choices == ("shipped", "delivered")
    assert status.default == "shipped" and type(status.default) is str
    assert shipment.field("tracking_number").max_length == 64
    assert shipment.field("delivered_at").null and shipment.field("shipped_at").auto_now_add


def test_decimal_and_boolean_proposals_name_the_choice(django_shop: None) -> None:
    (product,), _ = inspect_models("catalog", ("Product",))
    price = column_of(product.field("price"))
    assert (price.service, price.transform, dict(price.options)) == (
        "price_cents",
        TransformKind.DECIMAL_CENTS.value,
        {"scale": 2},
    )
    assert price.comment.startswith("CHOOSE: money?")
    flag = column_of(product.field("is_active"))
    assert flag.transform == TransformKind.IDENTITY.value and "bool_enum" in flag.comment
    stamp = column_of(product.field("created_at"))
    assert (stamp.transform, dict(stamp.options)) == ("timestamp", {"precision": "us"})


def test_shipping_routes_are_the_generic_actions_the_rest_stays_on_the_monolith(
    django_shop: None,
) -> None:
    spec = _spec(django_shop, "shipping", "shipping")
    (resource,) = spec.resources
    assert (resource.list_path, resource.detail_path) == (
        "/api/v1/shipments/",
        "/api/v1/shipments/{id}/",
    )
    assert resource.actions == ("list", "retrieve")  # create is ShipmentViewSet's own
    assert resource.left_to_monolith == (
        "POST /api/v1/shipments/ (ShipmentViewSet.create)",
        "POST /api/v1/shipments/{id}/deliver/ (ShipmentViewSet.deliver)",
    )
    assert [f.name for f in resource.filters] == ["order", "status", "carrier"]
    assert not resource.anonymous_reads
    assert resource.scope is not None and ":user_id" in resource.scope.sql
    assert '"customers_customer"."user_id"' in resource.scope.sql
    read_only = {f.name for f in resource.fields if f.read_only}
    assert read_only == {"id", "tracking_number", "status", "shipped_at", "delivered_at"}


def test_generated_shipping_plan_validates_beside_the_shop_plans(
    django_shop: None, tmp_path: Path
) -> None:
    copy_templates(tmp_path)
    spec = _spec(django_shop, "shipping", "shipping")
    text = plan_text(spec, plans=load_plans(TEMPLATES_DIR), module="shipping_service")
    (tmp_path / "shipping.yaml").write_text(text)
    plan = load_plans(tmp_path)["shipping"]
    assert [(e.path, e.methods) for e in plan.endpoints] == [
        ("/api/v1/shipments/", ("GET",)),
        ("/api/v1/shipments/{id}/", ("GET",)),
    ]
    pair = plan.mapping.table("shipments")
    assert pair.monolith_table == "shipping_shipment" and pair.service_table == "shipments"
    assert pair.service_columns[1:] == [
        "order_id", "carrier", "tracking_number", "status", "shipped_at", "delivered_at",
    ]  # fmt: skip
    assert "crosses into the monolith" in text  # orders_order is in no plan
    assert "# Left on the monolith" in text and "ShipmentViewSet.deliver" in text


def test_a_foreign_key_into_a_planned_context_becomes_a_reference(
    django_shop: None, tmp_path: Path
) -> None:
    """inventory's StockItem.product points at catalog_product, which catalog's plan owns."""
    found, _ = inspect_models("inventory", ("Warehouse", "StockItem"))
    spec = ContextSpec("stock", "inventory", found)
    text = plan_text(spec, plans=load_plans(TEMPLATES_DIR))
    assert "{column: product_id, context: catalog, table: products}" in text
    assert "{column: warehouse_id, context: stock, table: warehouses}" in text
    (tmp_path / "stock.yaml").write_text(text)
    copy_templates(tmp_path)
    (tmp_path / "inventory.yaml").unlink()  # stock takes its tables (one context per table)
    plan = load_plans(tmp_path)["stock"]  # references resolve across the set
    assert [r.table for r in plan.mapping.table("stock_items").references] == [
        "products",
        "warehouses",
    ]


def test_many_to_many_refused_naming_the_field_and_skippable(django_shop: None) -> None:
    with pytest.raises(UnmappableSet) as refused:
        inspect_models("auth", ("User",))
    message = str(refused.value)
    assert "auth.User.groups: a many-to-many field" in message
    assert "auth.User.user_permissions" in message and "by hand" in message
    (user,), _ = inspect_models("auth", ("User",), skip_unmappable=True)
    assert any(note.startswith("auth.User.groups") for note in user.skipped)
    text = plan_text(ContextSpec("accounts", "auth", (user,)))
    assert "# not mapped: auth.User.groups" in text


def test_unknown_app_and_model_are_refused_listing_the_known_ones(django_shop: None) -> None:
    with pytest.raises(InitError, match=r"no Django app with label 'nope'.*shipping"):
        inspect_models("nope")
    with pytest.raises(
        InitError, match=r"--models: Parcel not in app 'shipping' \(its models: Shipment\)"
    ):
        inspect_models("shipping", ("Parcel",))


def test_template_paths_from_regex_and_path_routes() -> None:
    assert template_path("api/v1/^shipments/(?P<pk>[^/.]+)/$") == "/api/v1/shipments/{id}/"
    assert (
        template_path("api/v1/orders/<int:order_id>/lines/") == "/api/v1/orders/{order_id}/lines/"
    )


def test_pair_names() -> None:
    assert [pair_name(n) for n in ("Shipment", "Category", "StockItem", "Box", "Day")] == [
        "shipments", "categories", "stock_items", "boxes", "days",
    ]  # fmt: skip


def test_text_key_is_declared_with_its_type(tmp_path: Path) -> None:
    key = FieldSpec(name="code", column="code", kind=Kind.STRING, max_length=8, unique=True)
    model = ModelSpec(
        "geo",
        "Country",
        "geo_country",
        key,
        (FieldSpec("name", "name", Kind.STRING, max_length=50),),
    )
    text = plan_text(ContextSpec("geo", "geo", (model,)))
    assert "key: {monolith: code, service: code, type: text}" in text
    (tmp_path / "geo.yaml").write_text(text)
    assert load_plan(tmp_path / "geo.yaml").mapping.table("countries").service_table == "countries"


def test_cli_writes_plan_package_and_routes_and_refuses_to_overwrite(tmp_path: Path) -> None:
    plans = tmp_path / "plans"
    copy_templates(plans)
    argv = ["init", "shipping", "--app", "shipping", "--out", str(tmp_path / "svc")]
    argv += ["--plans-dir", str(plans)]
    env = {"DEBUG": "true"}
    result = CliRunner().invoke(app, argv, env=env)
    assert result.exit_code == 0, result.output
    assert load_plan(plans / "shipping.yaml").context == "shipping"
    package = tmp_path / "svc" / "shipping_service"
    assert (package / "alembic" / "versions" / "0001_initial.py").exists()
    routes = (package / "routes.yaml").read_text()
    assert "shipping-shipments-reads" in routes and "shadow: {upstream: shipping" in routes
    again = CliRunner().invoke(app, argv, env=env)
    assert again.exit_code == 1 and "exists (--force overwrites it)" in again.output


def test_more_than_two_choices_propose_an_enum_map(django_shop: None, tmp_path: Path) -> None:
    found, _ = inspect_models("orders", ("Order",))
    text = plan_text(ContextSpec("ordering", "orders", found))
    line = next(line for line in text.splitlines() if "monolith: status" in line)
    assert "transform: enum_map" in line and "CHOOSE: the service's names" in line
    (tmp_path / "ordering.yaml").write_text(text)
    status = next(
        f for f in load_plan(tmp_path / "ordering.yaml").mapping.table("orders").fields
        if f.monolith == "status"
    )  # fmt: skip
    assert status.to_service("cancelled") == "cancelled"
    assert status.to_monolith("paid") == "paid"


def test_json_field_is_compared_by_value() -> None:
    column = column_of(FieldSpec("attributes", "attributes", Kind.JSON, null=True))
    assert column.transform == "json" and "monolith_storage" in column.comment


def test_plan_only_writes_no_package(tmp_path: Path) -> None:
    plans = tmp_path / "plans"
    copy_templates(plans)
    out = tmp_path / "svc"
    argv = ["init", "shipping", "--app", "shipping", "--out", str(out), "--plan-only"]
    result = CliRunner().invoke(app, [*argv, "--plans-dir", str(plans)], env={"DEBUG": "true"})
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in out.iterdir()) == ["shipping.routes.yaml"]
    assert set(load_plans(plans)) == {"catalog", "inventory", "payments", "shipping"}


def test_slugs_and_protecting_foreign_keys_are_read(django_shop: None) -> None:
    (category,), _ = inspect_models("catalog", ("Category",))
    assert category.field("slug").slug and not category.field("name").slug
    # catalog_product.category_id is on_delete=PROTECT: a used category is not deleted
    assert ("catalog_product", "category_id") in category.protected_by


@pytest.fixture
def odd_models(django_shop: None) -> Iterator[dict[str, type]]:
    """Models init cannot map, registered in the shipping app for one test, then removed."""
    from django.apps import apps
    from django.db import models

    from legacy_monolith.shipping.models import Shipment

    class ShipmentProxy(Shipment):
        class Meta:
            proxy = True
            app_label = "shipping"

    class Carrier(models.Model):
        name = models.CharField(max_length=20)

        class Meta:
            managed = False
            app_label = "shipping"

    class ExpressShipment(Shipment):  # multi-table inheritance
        class Meta:
            app_label = "shipping"

    class Route(models.Model):
        name = models.CharField(max_length=20)
        duration = models.DurationField()

        class Meta:
            app_label = "shipping"

    made = {
        "ShipmentProxy": ShipmentProxy,
        "Carrier": Carrier,
        "ExpressShipment": ExpressShipment,
        "Route": Route,
    }
    yield made
    for name in made:
        apps.all_models["shipping"].pop(name.lower(), None)
    apps.clear_cache()


def test_model_level_refusals_name_the_model_and_the_way_out(
    odd_models: dict[str, type],
) -> None:
    with pytest.raises(UnmappableSet) as refused:
        inspect_models("shipping", tuple(odd_models))
    message = str(refused.value)
    assert "shipping.ShipmentProxy: a proxy model of shipping.Shipment" in message
    assert "shipping.Carrier: an unmanaged model" in message
    assert "shipping.ExpressShipment: multi-table inheritance from shipping.Shipment" in message
    assert "shipping.Route.duration: a DurationField has no generated column type" in message
    assert "4 model(s) or field(s) cannot be mapped" in message
    found, notes = inspect_models("shipping", tuple(odd_models), skip_unmappable=True)
    assert [model.name for model in found] == ["Route"]
    assert [field.name for field in found[0].fields] == ["name"]
    assert len(notes) == 3 and all(note.startswith("skipped shipping.") for note in notes)


def test_a_viewset_with_code_filters_is_refused_unless_skipped(django_shop: None) -> None:
    found, _ = inspect_models("catalog")
    with pytest.raises(UnmappableSet, match="ProductViewSet: a filterset_class"):
        inspect_resources(found)
    resources, notes = inspect_resources(found, skip_unmappable=True)
    assert [r.viewset.rsplit(".", 1)[-1] for r in resources] == ["CategoryViewSet"]
    assert notes and "ProductViewSet stays on the monolith" in notes[0]
    text = plan_text(ContextSpec("shelf", "catalog", found, resources, notes))
    assert "ProductViewSet stays on the monolith" in text


def test_a_table_another_plan_maps_is_refused(tmp_path: Path) -> None:
    plans = tmp_path / "plans"
    copy_templates(plans)
    argv = ["init", "shelf", "--app", "catalog", "--models", "Category", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, [*argv, "--plans-dir", str(plans)], env={"DEBUG": "true"})
    assert result.exit_code == 1
    assert "catalog.Category: its table catalog_category is pair 'categories' of context " in (
        result.output
    )
    assert not (plans / "shelf.yaml").exists() and not (tmp_path / "shelf_service").exists()
