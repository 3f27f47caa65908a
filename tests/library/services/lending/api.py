"""The lending HTTP API: the monolith's ``/api/v1/{branches,books,copies,members,loans}/``.

Reads come from the phase's view (the monolith's tables in shared, the service's own
otherwise) and are rendered in the monolith's JSON through the mapping. Writes need
the proxy's identity header, are refused in the shared phase, and go through ``crud``.

Two differences from the monolith follow from the mapping, on purpose:

- a loan's ``id`` is the service's UUID in dual_write and split (the service makes
  its own keys); a monolith id still finds its loan there, through the id map.
- a member is two service rows, joined back into the monolith's one object.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from extracted_services.common.changes import ChangeRecorder, row_image
from extracted_services.common.deps import RawBody
from extracted_services.common.errors import InUse, NotFound
from extracted_services.common.legacy import legacy_json, service_column, service_values
from extracted_services.common.listing import (
    NO_MATCH,
    FilterErrors,
    empty_page,
    number_filter,
    ordering,
    page_of,
    parse_key,
    parse_key_of,
    raise_for,
    text_filter,
)
from extracted_services.common.pagination import Page
from extracted_services.common.store import Query, Side, TableView, count, fetch, get
from extracted_services.common.validation import parse_fields, require_object
from migration_plans.core.idmap import service_keys
from migration_plans.core.mapping import Row
from tests.library.services.lending import crud, schemas
from tests.library.services.lending.deps import (
    BodyDep,
    ChangesDep,
    SessionDep,
    ViewsDep,
    WriteSessionDep,
)
from tests.library.services.lending.models import (
    Book,
    Branch,
    Copy,
    Loan,
    Member,
    MemberContact,
)

router = APIRouter(prefix="/api/v1")

MISSING_PK = 'Invalid pk "{}" - object does not exist.'
STATUS_LETTERS = ("o", "r", "d", "l")


@dataclass(frozen=True)
class Resource:
    """One single-table pair served at ``/api/v1/<path>/`` in the monolith's JSON."""

    pair: str
    model: type[Any]
    schema: type[BaseModel]
    relations: Mapping[str, str]
    """monolith column -> JSON name (``book_id`` -> ``book``)."""
    ordering: tuple[str, ...]
    """JSON names ``?ordering=`` accepts."""
    exists: str = ""
    """The message of a key that exists already."""

    def json(self, row: Row) -> dict[str, Any]:
        return legacy_json(crud.pair(self.pair), row, renames=self.relations)

    def columns(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """JSON fields (parsed) -> service columns and values."""
        names = {json_name: column for column, json_name in self.relations.items()}
        monolith = {names.get(name, name): value for name, value in values.items()}
        return service_values(crud.pair(self.pair), monolith)

    def filters(self, values: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
        """Equality filters from JSON names to values (``None``: no filter)."""
        return tuple(self.columns({k: v for k, v in values.items() if v is not None}).items())


BRANCHES = Resource(
    "branches", Branch, schemas.BranchIn, {}, ("code", "name", "city"),
    "branch with this code already exists.",
)  # fmt: skip
BOOKS = Resource(
    "books", Book, schemas.BookIn, {}, ("isbn", "title", "published_year"),
    "book with this isbn already exists.",
)  # fmt: skip
COPIES = Resource(
    "copies", Copy, schemas.CopyIn, {"branch_id": "branch", "book_id": "book"}, (),
    "This copy already exists.",
)  # fmt: skip
LOANS = Resource(
    "loans", Loan, schemas.LoanIn,
    {"member_id": "member", "book_id": "book", "branch_id": "branch"}, ("due_at",),
)  # fmt: skip
KEY_FIELDS = {"branches": ("code",), "books": ("isbn",), "copies": ("branch", "book", "copy_no")}
"""The JSON fields that form a pair's key (set on create, ignored on update)."""

REFERRERS: dict[str, tuple[Any, ...]] = {
    "branches": (Copy.branch_code, Loan.branch_code),
    "books": (Copy.isbn, Loan.isbn),
}
"""Columns holding a row's key: the monolith's ``PROTECT`` foreign keys, kept here."""


def _refuse_if_referenced(session: Session, resource: Resource, key: tuple[Any, ...]) -> None:
    """409 ``in_use`` like the monolith's, while another row holds the key."""
    for column in REFERRERS.get(resource.pair, ()):
        if session.scalar(select(column).where(column == key[0]).limit(1)) is not None:
            raise InUse()


def _ordering(request: Request, resource: Resource) -> tuple[str, ...]:
    """``?ordering=`` over the resource's JSON names, in service columns (default: the key)."""
    pair = crud.pair(resource.pair)
    columns = {json_name: column for column, json_name in resource.relations.items()}
    allowed = {name: service_column(pair, columns.get(name, name)) for name in resource.ordering}
    return ordering(request, allowed, tuple(pair.key.service_columns))


def _parse(
    resource: Resource, body: RawBody, *, partial: bool
) -> tuple[dict[str, Any], FilterErrors]:
    values, errors = parse_fields(resource.schema, require_object(body.json()), partial=partial)
    found = FilterErrors(errors)
    if "meta" in values and values["meta"] is None:
        found["meta"] = ["This field may not be null."]
    return values, found


def _check_references(session: Session, values: Mapping[str, Any], errors: FilterErrors) -> None:
    """DRF's ``PrimaryKeyRelatedField``: the referenced row must exist."""
    for name, model in (("branch", Branch), ("book", Book), ("member", Member)):
        if name in values and name not in errors and session.get(model, values[name]) is None:
            errors[name] = [MISSING_PK.format(values[name])]


KeyParser = Callable[[Session, Side, tuple[str, ...]], tuple[Any, ...]]
"""Path parts -> the row's key on the side the session reads (404 when there is none)."""


def typed_key(pair_name: str) -> KeyParser:
    """A pair whose key is the same on both sides: the parts typed as its columns."""

    def parse(session: Session, side: Side, parts: tuple[str, ...]) -> tuple[Any, ...]:
        return parse_key_of(crud.pair(pair_name), parts)

    return parse


def loan_key(session: Session, side: Side, parts: tuple[str, ...]) -> tuple[Any, ...]:
    """The monolith's integer id in shared; otherwise a UUID, or a monolith id the id map
    pairs with one."""
    pair = crud.pair("loans")
    if side is Side.MONOLITH:
        return parse_key_of(pair, parts, "monolith")
    try:
        return (uuid.UUID(parts[0]),)
    except ValueError:
        text = pair.key.text_of(parse_key_of(pair, parts, "monolith"), "monolith")
    mapped = service_keys(session.connection(), pair.name, [text]).get(text)
    if mapped is None:
        raise NotFound()
    return pair.key.values_of(mapped, "service")


def _load(session: Session, resource: Resource, key: tuple[Any, ...]) -> Any:
    row = session.get(resource.model, key if len(key) > 1 else key[0])
    if row is None:
        raise NotFound()
    return row


def _create(session: Session, changes: ChangeRecorder, body: RawBody, resource: Resource) -> Any:
    values, errors = _parse(resource, body, partial=False)
    _check_references(session, values, errors)
    key_fields = KEY_FIELDS.get(resource.pair, ())
    if not errors and key_fields:
        key = tuple(values[name] for name in key_fields)
        if session.get(resource.model, key if len(key) > 1 else key[0]) is not None:
            errors[key_fields[0] if len(key) == 1 else "non_field_errors"] = [resource.exists]
    raise_for(errors)
    columns = resource.columns(values)
    if resource is LOANS:
        return crud.create_loan(session, columns, changes=changes)
    return crud.create(session, resource.model, resource.pair, columns, changes=changes)


def _change(
    session: Session,
    changes: ChangeRecorder,
    body: RawBody,
    resource: Resource,
    row: Any,
    *,
    partial: bool,
) -> None:
    values, errors = _parse(resource, body, partial=partial)
    for name in KEY_FIELDS.get(resource.pair, ()):
        values.pop(name, None)  # the key never changes (the monolith ignores it too)
    _check_references(session, values, errors)
    raise_for(errors)
    columns = resource.columns(values)
    if resource is BOOKS:
        crud.update_book(session, row, columns, changes=changes)
    elif resource is LOANS:
        crud.update_loan(session, row, columns, changes=changes)
    else:
        crud.update(session, row, resource.pair, columns, changes=changes)


def _image(resource: Resource, row: Any) -> Row:
    return row_image(row, crud.pair(resource.pair).service_columns)


def _parts(request: Request) -> tuple[str, ...]:
    return tuple(str(value) for value in request.path_params.values())


def serve(resource: Resource, path: str, detail: str, parse: KeyParser) -> None:
    """Create, retrieve, replace, patch and delete of one single-table resource."""

    def create(session: WriteSessionDep, changes: ChangesDep, body: BodyDep) -> dict[str, Any]:
        with session.begin():
            image = _image(resource, _create(session, changes, body, resource))
        return resource.json(image)

    def retrieve(request: Request, session: SessionDep, views: ViewsDep) -> dict[str, Any]:
        view = views[resource.pair]
        row = get(session, view, parse(session, view.side, _parts(request)))
        if row is None:
            raise NotFound()
        return resource.json(row)

    def change(
        request: Request, session: Session, changes: ChangeRecorder, body: RawBody, partial: bool
    ) -> dict[str, Any]:
        with session.begin():
            row = _load(session, resource, parse(session, Side.SERVICE, _parts(request)))
            _change(session, changes, body, resource, row, partial=partial)
            image = _image(resource, row)
        return resource.json(image)

    def replace(
        request: Request, session: WriteSessionDep, changes: ChangesDep, body: BodyDep
    ) -> dict[str, Any]:
        return change(request, session, changes, body, False)

    def patch(
        request: Request, session: WriteSessionDep, changes: ChangesDep, body: BodyDep
    ) -> dict[str, Any]:
        return change(request, session, changes, body, True)

    def delete(request: Request, session: WriteSessionDep, changes: ChangesDep) -> Response:
        with session.begin():
            key = parse(session, Side.SERVICE, _parts(request))
            row = _load(session, resource, key)
            _refuse_if_referenced(session, resource, key)
            crud.delete(session, row, resource.pair, changes=changes)
        return Response(status_code=204)

    template = f"/{path}/{detail}/"
    router.add_api_route(f"/{path}/", create, methods=["POST"], status_code=201)
    router.add_api_route(template, retrieve, methods=["GET"])
    router.add_api_route(template, replace, methods=["PUT"])
    router.add_api_route(template, patch, methods=["PATCH"])
    router.add_api_route(
        template, delete, methods=["DELETE"], status_code=204, response_class=Response
    )


# Lists ---------------------------------------------------------------------------------


def _page(request: Request, session: Session, views: dict[str, TableView], resource: Resource,
          filters: tuple[tuple[str, Any], ...] = ()) -> dict[str, Any]:  # fmt: skip
    query = Query(filters=filters, ordering=_ordering(request, resource))
    return page_of(request, session, views[resource.pair], query, resource.json)


@router.get("/branches/", response_model=None)
def list_branches(request: Request, session: SessionDep, views: ViewsDep) -> dict[str, Any]:
    return _page(request, session, views, BRANCHES)


@router.get("/books/", response_model=None)
def list_books(request: Request, session: SessionDep, views: ViewsDep) -> dict[str, Any]:
    return _page(request, session, views, BOOKS)


@router.get("/copies/", response_model=None)
def list_copies(request: Request, session: SessionDep, views: ViewsDep) -> dict[str, Any]:
    """``?book=`` filters by ISBN."""
    errors = FilterErrors()
    book = text_filter(request, "book", errors)
    raise_for(errors)
    return _page(request, session, views, COPIES, COPIES.filters({"book": book}))


@router.get("/loans/", response_model=None)
def list_loans(request: Request, session: SessionDep, views: ViewsDep) -> dict[str, Any]:
    """``?member=`` (a member id) and ``?status=`` (one of the monolith's letters) filter."""
    errors = FilterErrors()
    member = number_filter(request, "member", errors)
    status = text_filter(request, "status", errors)
    raise_for(errors)
    if member == NO_MATCH or (status is not None and status not in STATUS_LETTERS):
        return empty_page(request)
    return _page(
        request, session, views, LOANS, LOANS.filters({"member": member, "status": status})
    )


serve(BRANCHES, "branches", "{code}", typed_key("branches"))
serve(BOOKS, "books", "{isbn}", typed_key("books"))
serve(COPIES, "copies", "{branch}/{book}/{copy_no}", typed_key("copies"))
serve(LOANS, "loans", "{id}", loan_key)


# Members: one object, two service rows --------------------------------------------------

MEMBER_FIELDS = ("id", "name", "email", "phone", "address", "joined_at")


def member_json(member: Row, contact: Row | None) -> dict[str, Any]:
    """The monolith's member object from its two service-form rows."""
    merged = legacy_json(crud.pair("members"), member)
    if contact is not None:
        merged.update(legacy_json(crud.pair("member_contacts"), contact))
    return {name: merged.get(name) for name in MEMBER_FIELDS}


def _members_page(
    request: Request, session: Session, views: dict[str, TableView]
) -> dict[str, Any]:
    members = views["members"]
    query = Query(ordering=ordering(request, {"id": "id", "name": "name"}, ("id",)))
    page = Page.from_request(request, count(session, members, query))
    rows = fetch(session, members, query, offset=page.offset, limit=page.size)
    ids = tuple(row["id"] for row in rows)
    contacts = fetch(session, views["member_contacts"], Query(within=(("member_id", ids),)))
    by_member = {contact["member_id"]: contact for contact in contacts}
    return page.envelope([member_json(row, by_member.get(row["id"])) for row in rows])


@router.get("/members/", response_model=None)
def list_members(request: Request, session: SessionDep, views: ViewsDep) -> dict[str, Any]:
    return _members_page(request, session, views)


@router.get("/members/{key}/", response_model=None)
def get_member(key: str, session: SessionDep, views: ViewsDep) -> dict[str, Any]:
    member_id = parse_key(key)
    member = get(session, views["members"], member_id)
    if member is None:
        raise NotFound()
    return member_json(member, get(session, views["member_contacts"], member_id))


def _member_values(body: RawBody, *, partial: bool) -> dict[str, Any]:
    values, errors = parse_fields(schemas.MemberIn, require_object(body.json()), partial=partial)
    raise_for(errors)
    converted = service_values(crud.pair("members"), values)
    converted.update(service_values(crud.pair("member_contacts"), values))
    converted.pop("member_id", None)
    return converted


def _member_rows(session: Session, key: str) -> tuple[Member, MemberContact | None]:
    member = session.get(Member, parse_key(key))
    if member is None:
        raise NotFound()
    return member, session.get(MemberContact, member.id)


def _member_images(member: Member, contact: MemberContact | None) -> dict[str, Any]:
    image = row_image(member, crud.pair("members").service_columns)
    contact_image = (
        None
        if contact is None
        else row_image(contact, crud.pair("member_contacts").service_columns)
    )
    return member_json(image, contact_image)


@router.post("/members/", status_code=201, response_model=None)
def create_member(session: WriteSessionDep, changes: ChangesDep, body: BodyDep) -> dict[str, Any]:
    with session.begin():
        member, contact = crud.create_member(
            session, _member_values(body, partial=False), changes=changes
        )
        answer = _member_images(member, contact)
    return answer


def _change_member(
    key: str, session: Session, changes: ChangeRecorder, body: RawBody, *, partial: bool
) -> dict[str, Any]:
    with session.begin():
        member, contact = _member_rows(session, key)
        values = _member_values(body, partial=partial)
        if contact is None:
            contact = crud.create(
                session, MemberContact, "member_contacts", {"member_id": member.id, "email": ""},
                changes=changes,
            )  # fmt: skip
        crud.update_member(session, member, contact, values, changes=changes)
        answer = _member_images(member, contact)
    return answer


@router.put("/members/{key}/", response_model=None)
def replace_member(
    key: str, session: WriteSessionDep, changes: ChangesDep, body: BodyDep
) -> dict[str, Any]:
    return _change_member(key, session, changes, body, partial=False)


@router.patch("/members/{key}/", response_model=None)
def patch_member(
    key: str, session: WriteSessionDep, changes: ChangesDep, body: BodyDep
) -> dict[str, Any]:
    return _change_member(key, session, changes, body, partial=True)


@router.delete("/members/{key}/", status_code=204, response_class=Response)
def delete_member(key: str, session: WriteSessionDep, changes: ChangesDep) -> Response:
    with session.begin():
        member, contact = _member_rows(session, key)
        if session.scalar(select(Loan.id).where(Loan.member_id == member.id).limit(1)):
            raise InUse()
        crud.delete_member(session, member, contact, changes=changes)
    return Response(status_code=204)
