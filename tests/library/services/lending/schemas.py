"""Request bodies of the lending API, parsed like the monolith's DRF serializers.

Field names and values are the monolith's (``branch``, ``book``, ``status: "o"``): the
contract is the monolith's; the mapping turns them into service columns and values.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from extracted_services.common.validation import Integer, LongText, PrimaryKey, as_text


def _choice(*values: str) -> AfterValidator:
    def check(value: str) -> str:
        if value not in values:
            raise PydanticCustomError("invalid_choice", f'"{value}" is not a valid choice.')
        return value

    return AfterValidator(check)


def _fine(value: str) -> str:
    """The monolith's ``FINE_FORMAT``: decimal text with two places."""
    if not _FINE.match(value):
        raise PydanticCustomError("invalid", "Enter a valid value.")
    return value


_FINE = re.compile(r"^[0-9]{1,8}[.][0-9]{2}\Z")


def _json_value(value: Any) -> Any:
    return value  # DRF's JSONField takes any JSON value


Text = Annotated[str, as_text]


class BranchIn(BaseModel):
    """``BranchSerializer``: the code is the key (ignored on update)."""

    model_config = ConfigDict(extra="ignore")

    code: Annotated[Text, Field(min_length=1, max_length=16)]
    name: Annotated[Text, Field(min_length=1, max_length=100)]
    city: Annotated[Text, Field(max_length=100)]


class BookIn(BaseModel):
    """``BookSerializer``: the ISBN is the key (ignored on update)."""

    model_config = ConfigDict(extra="ignore")

    isbn: Annotated[Text, Field(min_length=1, max_length=13)]
    title: Annotated[Text, Field(min_length=1, max_length=200)]
    author: Annotated[Text, Field(min_length=1, max_length=200)]
    published_year: Integer | None = None


class CopyIn(BaseModel):
    """``CopySerializer``: (branch, book, copy_no) is the key (ignored on update)."""

    model_config = ConfigDict(extra="ignore")

    branch: Annotated[Text, Field(min_length=1)]
    book: Annotated[Text, Field(min_length=1)]
    copy_no: Integer
    condition: Annotated[Text, _choice("n", "g", "w", "d")] = "n"
    shelved_at: datetime | None = None


class MemberIn(BaseModel):
    """``MemberSerializer``: phone and address may be blank."""

    model_config = ConfigDict(extra="ignore")

    name: Annotated[Text, Field(min_length=1, max_length=100)]
    email: Annotated[Text, Field(min_length=1, max_length=200)]
    phone: Annotated[Text, Field(max_length=32)] = ""
    address: LongText = ""
    joined_at: datetime | None = None


class LoanIn(BaseModel):
    """``LoanSerializer``: member, book and branch by key; status one letter."""

    model_config = ConfigDict(extra="ignore")

    member: PrimaryKey
    book: Annotated[Text, Field(min_length=1)]
    branch: Annotated[Text, Field(min_length=1)]
    status: Annotated[Text, _choice("o", "r", "d", "l")] = "o"
    meta: Annotated[Any, BeforeValidator(_json_value)] = None
    notes: LongText = ""
    fine: Annotated[Text, Field(max_length=12), AfterValidator(_fine)] = "0.00"
    borrowed_at: datetime | None = None
    due_at: datetime
