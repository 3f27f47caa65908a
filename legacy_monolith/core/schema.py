"""The OpenAPI document's error responses (drf-spectacular): every operation says which
errors it can answer, in the shapes ``core.exceptions`` renders.

``{"code", "detail"}`` for every error; ``{"code": "invalid", "detail", "fields"}`` for a
400. REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"] points here.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent
from rest_framework.permissions import AllowAny, IsAuthenticatedOrReadOnly

ERROR = {
    "type": "object",
    "description": "Every error: a snake_case code and a human message.",
    "properties": {
        "code": {"type": "string", "example": "not_found"},
        "detail": {"type": "string", "example": "Not found."},
    },
    "required": ["code", "detail"],
}
VALIDATION_ERROR = {
    "type": "object",
    "description": "400: the fields' messages, nested fields dotted (``lines.0.quantity``).",
    "properties": {
        "code": {"type": "string", "enum": ["invalid", "parse_error"]},
        "detail": {"type": "string", "example": "Invalid input."},
        "fields": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
    "required": ["code", "detail"],
}
SAFE = {"GET", "HEAD", "OPTIONS"}

ERRORS: dict[str, str] = {
    "400": "Invalid input (`invalid`, with `fields`) or unreadable JSON (`parse_error`).",
    "401": "No or invalid credentials (`not_authenticated`, `authentication_failed`).",
    "403": "Not allowed for this user (`permission_denied`).",
    "404": "No such resource or page (`not_found`).",
    "405": "Method not allowed on this path (`method_not_allowed`); `Allow` lists them.",
    "409": "Conflicts with the current state (`conflict`, `in_use`, `insufficient_stock`, ...).",
    "415": "The body is not `application/json` (`unsupported_media_type`).",
    "429": "Too many requests (`throttled`): a rate limit in front of the API.",
}


class ErrorsAutoSchema(AutoSchema):
    """drf-spectacular's schema plus the error responses of each operation."""

    def _component(self, name: str, schema: dict[str, Any]) -> dict[str, Any]:
        component = ResolvedComponent(
            name=name, type=ResolvedComponent.SCHEMA, object=name, schema=schema
        )
        self.registry.register_on_missing(component)
        return component.ref

    def _error_codes(self) -> list[str]:
        writes = self.method.upper() not in SAFE
        codes = ["404", "405", "429"]
        if writes or self.get_filter_backends() or self._get_pagination_parameters():
            codes.append("400")
        if writes or not self._reads_are_open():
            codes += ["401", "403"]
        if writes:
            codes.append("409")
            if self.method.upper() != "DELETE":
                codes.append("415")
        return sorted(codes)

    def _reads_are_open(self) -> bool:
        """Whether anyone may read here (else a read can answer 401/403 too)."""
        open_to_reads = (AllowAny, IsAuthenticatedOrReadOnly)
        return all(isinstance(p, open_to_reads) for p in self.view.get_permissions())

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses = dict(super()._get_response_bodies(direction))
        if direction != "response":
            return responses
        for code in self._error_codes():
            if code in responses:
                continue
            name, schema = (
                ("ValidationError", VALIDATION_ERROR) if code == "400" else ("Error", ERROR)
            )
            responses[code] = {
                "description": ERRORS[code],
                "content": {"application/json": {"schema": self._component(name, schema)}},
            }
        return responses
