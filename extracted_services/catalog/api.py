"""The catalog's HTTP API: the monolith's ``/api/v1/categories/`` and ``/api/v1/products/``.

Reads come from the phase's view (the monolith's tables in shared, the service's
own otherwise) and are rendered in the monolith's JSON through the mapping. Writes
need the proxy's identity header, are refused in the shared phase, and go through
``crud`` with the phase's ChangeRecorder.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from extracted_services.catalog import crud
from extracted_services.catalog.deps import (
    BodyDep,
    ChangesDep,
    ReferencesDep,
    SessionDep,
    ViewsDep,
    WriteSessionDep,
)
from extracted_services.catalog.models import Category, Product
from extracted_services.catalog.schemas import CategoryIn, CategoryOut, ProductIn, ProductOut
from extracted_services.common.changes import ChangeRecorder, row_image
from extracted_services.common.deps import RawBody
from extracted_services.common.errors import InUse, NotFound
from extracted_services.common.legacy import legacy_json, service_column, service_values
from extracted_services.common.listing import (
    NO_MATCH,
    FilterErrors,
    boolean_filter,
    empty_page,
    number_filter,
    ordering,
    page_of,
    parse_key,
    raise_for,
    text_filter,
)
from extracted_services.common.store import Query, get
from extracted_services.common.validation import parse_fields, require_object
from migration_plans.core.mapping import Row

router = APIRouter(prefix="/api/v1")

CATEGORY_ORDERING = ("id", "name", "slug")
PRODUCT_ORDERING = ("id", "sku", "name", "price", "created_at", "updated_at")
RELATIONS = {"category_id": "category"}


def category_json(row: Row) -> dict[str, Any]:
    return legacy_json(crud.categories_pair(), row)


def product_json(row: Row) -> dict[str, Any]:
    return legacy_json(crud.products_pair(), row, renames=RELATIONS)


def _ordering(request: Request, pair_name: str, names: tuple[str, ...]) -> tuple[str, ...]:
    pair = crud.catalog_mapping().table(pair_name)
    return ordering(request, {name: service_column(pair, name) for name in names}, ("id",))


def _detail(session: Session, views: dict[str, Any], pair_name: str, raw_key: str) -> Row:
    row = get(session, views[pair_name], parse_key(raw_key))
    if row is None:
        raise NotFound()
    return row


# Categories ---------------------------------------------------------------------------


@router.get("/categories/", response_model=None)
def list_categories(request: Request, session: SessionDep, views: ViewsDep) -> dict[str, Any]:
    query = Query(ordering=_ordering(request, "categories", CATEGORY_ORDERING))
    return page_of(request, session, views["categories"], query, category_json)


@router.get("/categories/{key}/", response_model=CategoryOut)
def get_category(key: str, session: SessionDep, views: ViewsDep) -> dict[str, Any]:
    return category_json(_detail(session, views, "categories", key))


def _category_values(
    session: Session, body: RawBody, *, current: Category | None, partial: bool
) -> dict[str, Any]:
    values, errors = parse_fields(CategoryIn, require_object(body.json()), partial=partial)
    for column in ("name", "slug"):
        if column in values:
            clash = select(Category.id).where(getattr(Category, column) == values[column])
            if current is not None:
                clash = clash.where(Category.id != current.id)
            if session.scalar(clash) is not None:
                errors[column] = [f"category with this {column} already exists."]
    raise_for(errors)
    return service_values(crud.categories_pair(), values)


def _category_row(category: Category) -> Row:
    return row_image(category, crud.categories_pair().service_columns)


@router.post("/categories/", status_code=201, response_model=CategoryOut)
def create_category(session: WriteSessionDep, changes: ChangesDep, body: BodyDep) -> dict[str, Any]:
    with session.begin():
        values = _category_values(session, body, current=None, partial=False)
        category = crud.create_category(session, values, changes=changes)
    return category_json(_category_row(category))


def _load_category(session: Session, key: str) -> Category:
    category = session.get(Category, parse_key(key))
    if category is None:
        raise NotFound()
    return category


def _update_category(
    key: str, session: Session, changes: ChangeRecorder, body: RawBody, *, partial: bool
) -> dict[str, Any]:
    with session.begin():
        category = _load_category(session, key)
        values = _category_values(session, body, current=category, partial=partial)
        crud.update_category(session, category, values, changes=changes)
    return category_json(_category_row(category))


@router.put("/categories/{key}/", response_model=CategoryOut)
def replace_category(
    key: str, session: WriteSessionDep, changes: ChangesDep, body: BodyDep
) -> dict[str, Any]:
    return _update_category(key, session, changes, body, partial=False)


@router.patch("/categories/{key}/", response_model=CategoryOut)
def patch_category(
    key: str, session: WriteSessionDep, changes: ChangesDep, body: BodyDep
) -> dict[str, Any]:
    return _update_category(key, session, changes, body, partial=True)


@router.delete("/categories/{key}/", status_code=204, response_class=Response)
def delete_category(
    key: str, session: WriteSessionDep, changes: ChangesDep, references: ReferencesDep
) -> Response:
    try:
        with session.begin():
            category = _load_category(session, key)
            references.refuse_if_referenced("categories", category.id)
            crud.delete_category(session, category, changes=changes)
    except IntegrityError as exc:
        raise InUse() from exc
    return Response(status_code=204)


# Products -----------------------------------------------------------------------------


@router.get("/products/", response_model=None)
def list_products(request: Request, session: SessionDep, views: ViewsDep) -> dict[str, Any]:
    errors = FilterErrors()
    legacy_filters = {
        "category_id": number_filter(request, "category", errors),
        "is_active": boolean_filter(request, "is_active"),
        "sku": text_filter(request, "sku", errors),
    }
    raise_for(errors)
    if NO_MATCH in legacy_filters.values():
        return empty_page(request)
    pair = crud.products_pair()
    wanted = {column: value for column, value in legacy_filters.items() if value is not None}
    filters = tuple(service_values(pair, wanted).items())
    query = Query(filters=filters, ordering=_ordering(request, "products", PRODUCT_ORDERING))
    return page_of(request, session, views["products"], query, product_json)


@router.get("/products/{key}/", response_model=ProductOut)
def get_product(key: str, session: SessionDep, views: ViewsDep) -> dict[str, Any]:
    return product_json(_detail(session, views, "products", key))


def _product_values(
    session: Session, body: RawBody, *, current: Product | None, partial: bool
) -> dict[str, Any]:
    values, errors = parse_fields(ProductIn, require_object(body.json()), partial=partial)
    if "sku" in values:
        clash = select(Product.id).where(Product.sku == values["sku"])
        if current is not None:
            clash = clash.where(Product.id != current.id)
        if session.scalar(clash) is not None:
            errors["sku"] = ["product with this sku already exists."]
    if "category" in values and session.get(Category, values["category"]) is None:
        errors["category"] = [f'Invalid pk "{values["category"]}" - object does not exist.']
    raise_for(errors)
    if "category" in values:
        values["category_id"] = values.pop("category")
    return service_values(crud.products_pair(), values)


def _product_row(product: Product) -> Row:
    return row_image(product, crud.products_pair().service_columns)


@router.post("/products/", status_code=201, response_model=ProductOut)
def create_product(session: WriteSessionDep, changes: ChangesDep, body: BodyDep) -> dict[str, Any]:
    with session.begin():
        values = _product_values(session, body, current=None, partial=False)
        product = crud.create_product(session, values, changes=changes)
    return product_json(_product_row(product))


def _load_product(session: Session, key: str) -> Product:
    product = session.get(Product, parse_key(key))
    if product is None:
        raise NotFound()
    return product


def _update_product(
    key: str, session: Session, changes: ChangeRecorder, body: RawBody, *, partial: bool
) -> dict[str, Any]:
    with session.begin():
        product = _load_product(session, key)
        values = _product_values(session, body, current=product, partial=partial)
        crud.update_product(session, product, values, changes=changes)
    return product_json(_product_row(product))


@router.put("/products/{key}/", response_model=ProductOut)
def replace_product(
    key: str, session: WriteSessionDep, changes: ChangesDep, body: BodyDep
) -> dict[str, Any]:
    return _update_product(key, session, changes, body, partial=False)


@router.patch("/products/{key}/", response_model=ProductOut)
def patch_product(
    key: str, session: WriteSessionDep, changes: ChangesDep, body: BodyDep
) -> dict[str, Any]:
    return _update_product(key, session, changes, body, partial=True)


@router.delete("/products/{key}/", status_code=204, response_class=Response)
def delete_product(
    key: str, session: WriteSessionDep, changes: ChangesDep, references: ReferencesDep
) -> Response:
    with session.begin():
        product = _load_product(session, key)
        references.refuse_if_referenced("products", product.id)
        crud.delete_product(session, product, changes=changes)
    return Response(status_code=204)
