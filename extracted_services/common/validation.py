"""Request-body validation with Django REST framework's field types and messages.

Pydantic does the parsing; :func:`drf_fields` turns its errors into the monolith's
``{"field": ["message"]}`` shape with DRF's wording, so clients see the same
errors from a service as from the monolith.

    class ProductIn(BaseModel):
        sku: Annotated[str, as_text, Field(min_length=1, max_length=32)]
    try:
        ProductIn.model_validate(body)
    except ValidationError as exc:
        raise ValidationFailed(drf_fields(exc.errors()))
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError

from extracted_services.common.errors import ValidationFailed

_MESSAGES: dict[str, str] = {
    "missing": "This field is required.",
    "string_type": "Not a valid string.",
    "string_too_short": "This field may not be blank.",
    "string_too_long": "Ensure this field has no more than {max_length} characters.",
    "decimal_parsing": "A valid number is required.",
    "decimal_type": "A valid number is required.",
    "finite_number": "A valid number is required.",
    "decimal_max_digits": "Ensure that there are no more than {max_digits} digits in total.",
    "decimal_max_places": "Ensure that there are no more than {decimal_places} decimal places.",
    "decimal_whole_digits": (
        "Ensure that there are no more than {whole_digits} digits before the decimal point."
    ),
    "greater_than_equal": "Ensure this value is greater than or equal to {ge}.",
    "greater_than": "Ensure this value is greater than {gt}.",
    "less_than_equal": "Ensure this value is less than or equal to {le}.",
    "bool_parsing": "Must be a valid boolean.",
    "bool_type": "Must be a valid boolean.",
    "int_parsing": "A valid integer is required.",
    "int_type": "A valid integer is required.",
    "int_from_float": "A valid integer is required.",
    "list_type": 'Expected a list of items but got type "{type}".',
    "too_short": "This list may not be empty.",
    "model_type": "Invalid data. Expected a dictionary, but got {type}.",
    "model_attributes_type": "Invalid data. Expected a dictionary, but got {type}.",
    "dict_type": "Invalid data. Expected a dictionary, but got {type}.",
}


def _message(error: Mapping[str, Any]) -> str:
    kind, value = str(error["type"]), error.get("input", ...)
    if isinstance(value, str) and kind in {"too_short", "too_long"}:
        kind = f"string_{kind}"
    if kind not in _MESSAGES:
        return str(error["msg"])
    if value is None and kind != "missing":
        return "This field may not be null."
    context = {key: str(item) for key, item in (error.get("ctx") or {}).items()}
    context["type"] = type(value).__name__
    return _MESSAGES[kind].format(**context)


def drf_fields(
    errors: Iterable[Mapping[str, Any]], *, skip_prefix: int = 0, prefix: str = ""
) -> dict[str, list[str]]:
    """Pydantic errors as ``{"dotted.field": [message, ...]}``, flattened like the monolith's.

    A nested list's or object's own errors sit under its name (``lines``, ``lines.1``);
    errors about the whole body under ``non_field_errors``.
    """
    fields: dict[str, list[str]] = {}
    for error in errors:
        location = [prefix] if prefix else []
        location += [str(part) for part in tuple(error.get("loc") or ())[skip_prefix:]]
        name = ".".join(location) or "non_field_errors"
        for message in _message(error).split(_SEPARATOR):
            if message not in fields.setdefault(name, []):
                fields[name].append(message)
    return fields


def _drf_string(value: Any) -> Any:
    """DRF's CharField: numbers become text, other types are refused, whitespace trimmed;
    NUL and lone surrogates are refused (its ProhibitNull/SurrogateCharactersValidator)."""
    if value is None:
        raise PydanticCustomError("null", "This field may not be null.")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise PydanticCustomError("string_type", "Not a valid string.")
    text = str(value).strip()
    refuse_unstorable(text)
    return text


_SURROGATE = re.compile("[\ud800-\udfff]")


def unstorable(text: str) -> str | None:
    """DRF's message for text no database column can hold (NUL, a lone surrogate), or None."""
    if "\x00" in text:
        return "Null characters are not allowed."
    found = _SURROGATE.search(text)
    if found:
        return f"Surrogate characters are not allowed: U+{ord(found.group()):X}."
    return None


def refuse_unstorable(text: str) -> None:
    """Raise a field error when ``text`` holds NUL or a lone surrogate."""
    message = unstorable(text)
    if message is not None:
        raise PydanticCustomError("unstorable", message)


INT64 = (-(2**63), 2**63 - 1)
"""The range of the widest integer column (SQLite INTEGER, PostgreSQL bigint)."""

INT32_MAX = 2**31 - 1
"""The largest value of an ``integer`` column (the monolith's quantities)."""

_DIGITS = re.compile(r"^\s*[-+]?[0-9]+\s*\Z")
_INTEGRAL_FLOAT = re.compile(r"\.0*\s*$")


def _drf_integer(value: Any) -> Any:
    """DRF's IntegerField: ints, ASCII-digit strings, and floats with no fraction; never
    ``true``/``false``, never a fraction, never parsed through ``Decimal``."""
    if value is None:
        raise PydanticCustomError("null", "This field may not be null.")
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float | str)
        or (isinstance(value, str) and len(value) > 1000)
    ):
        raise PydanticCustomError("int_parsing", "A valid integer is required.")
    if isinstance(value, int):
        return value
    text = _INTEGRAL_FLOAT.sub("", str(value)) if isinstance(value, float) else value
    if not _DIGITS.match(text):
        raise PydanticCustomError("int_parsing", "A valid integer is required.")
    return int(text)


def _drf_pk(value: Any) -> Any:
    """DRF's PrimaryKeyRelatedField input (the monolith's strict one): an integer or digits;
    past the key column's range it does not exist; anything else, a float too, has the
    wrong type."""
    if value is None:
        raise PydanticCustomError("null", "This field may not be null.")
    if isinstance(value, bool) or not isinstance(value, int | str) or not _DIGITS.match(str(value)):
        raise PydanticCustomError(
            "incorrect_type",
            "Incorrect type. Expected pk value, received {data_type}.",
            {"data_type": type(value).__name__},
        )
    number = int(value)
    if not INT64[0] <= number <= INT64[1]:
        raise PydanticCustomError(
            "does_not_exist",
            'Invalid pk "{pk_value}" - object does not exist.',
            {"pk_value": str(value)},
        )
    return number


_SLUG = re.compile(r"^[-a-zA-Z0-9_]+\Z")


_SLUG_MESSAGE = 'Enter a valid "slug" consisting of letters, numbers, underscores or hyphens.'
_SEPARATOR = "\x1e"
"""Joins the messages of one field's validators that all failed (DRF reports each)."""


def _slug(value: str) -> str:
    if value and not _SLUG.match(value):
        raise PydanticCustomError("invalid_slug", _SLUG_MESSAGE)
    return value


def _drf_slug(value: Any) -> Any:
    """DRF's SlugField: its 'invalid' message also for a wrong type; a NUL or lone surrogate
    fails both the character check and the slug pattern, and DRF reports both."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | type(None)):
        raise PydanticCustomError("invalid_slug", _SLUG_MESSAGE)
    try:
        return _drf_string(value)
    except PydanticCustomError as exc:
        if exc.type != "unstorable":
            raise
        joined = _SEPARATOR.join([exc.message(), _SLUG_MESSAGE])
        raise PydanticCustomError("unstorable", joined) from None


as_text = BeforeValidator(_drf_string)
"""Annotate a ``str`` field with this to parse it as DRF's ``CharField`` does."""

as_slug = BeforeValidator(_drf_slug)
"""Annotate a ``str`` field with this (instead of ``as_text``) to parse it as ``SlugField``."""

slug_format = AfterValidator(_slug)
"""Annotate a ``str`` field with this to validate it as DRF's ``SlugField`` does."""

PrimaryKey = Annotated[int, BeforeValidator(_drf_pk)]
"""A DRF ``PrimaryKeyRelatedField`` value (existence is checked by the write path)."""

LongText = Annotated[str, BeforeValidator(_drf_string)]
"""A DRF ``CharField(allow_blank=True)`` without a length limit (a ``TextField``)."""


Integer = Annotated[int, BeforeValidator(_drf_integer)]
"""A DRF ``IntegerField`` value: strict about booleans and fractions, no ``Decimal``."""


@cache
def _adapter(model: type[BaseModel], name: str) -> TypeAdapter[Any]:
    info = model.model_fields[name]
    annotation: Any = info.annotation
    if info.metadata:
        annotation = Annotated[(annotation, *info.metadata)]
    return TypeAdapter(annotation)


def parse_fields(
    model: type[BaseModel], data: Mapping[str, Any], *, partial: bool = False
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Validate the fields of ``model`` present in ``data`` (all required ones unless ``partial``).

    Returns the valid values and DRF-style errors; fields absent from ``data`` get no
    value (the write path applies defaults), like DRF's ``validated_data``.
    """
    values: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name, info in model.model_fields.items():
        if name not in data:
            if not partial and info.is_required():
                errors[name] = [_MESSAGES["missing"]]
            continue
        try:
            values[name] = _adapter(model, name).validate_python(data[name])
        except ValidationError as exc:
            errors.update(drf_fields(exc.errors(), prefix=name))
    return values, errors


def require_object(data: Any) -> Mapping[str, Any]:
    """DRF's refusal of a body that is not a JSON object (as ``non_field_errors``)."""
    if isinstance(data, Mapping):
        return data
    kind = type(data).__name__
    raise ValidationFailed(
        {"non_field_errors": [f"Invalid data. Expected a dictionary, but got {kind}."]}
    )
