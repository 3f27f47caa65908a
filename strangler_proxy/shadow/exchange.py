"""One HTTP exchange as shadowing sees it: a buffered request copy and a whole response.

Both are frozen values with JSON-friendly ``to_dict``/``from_dict`` (bodies as
base64), so the mirror engine, the replayer, the store and the flow-file bridge to
mitmproxy all pass the same shapes around.

    request = CapturedRequest("GET", "/api/v1/products/?page=2", (("accept", "*/*"),))
    response = CapturedResponse(200, (("content-type", "application/json"),), b"{}")
"""

from __future__ import annotations

import base64
import json
import zlib
from dataclasses import dataclass
from typing import Any

from migration_plans.core.http import SAFE_METHODS

__all__ = ["CapturedRequest", "CapturedResponse", "Headers"]

Headers = tuple[tuple[str, str], ...]
_JSON_TYPES = ("application/json", "+json")


def _find(headers: Headers, name: str) -> str | None:
    wanted = name.lower()
    return next((value for key, value in headers if key.lower() == wanted), None)


def _headers(data: Any) -> Headers:
    return tuple((str(key), str(value)) for key, value in data or ())


def _b64(body: bytes) -> str:
    return base64.b64encode(body).decode("ascii")


@dataclass(frozen=True)
class CapturedRequest:
    """A request copy: method, path with query string, headers, whole body."""

    method: str
    path: str
    headers: Headers = ()
    body: bytes = b""

    @property
    def is_safe(self) -> bool:
        """GET/HEAD/OPTIONS/TRACE: may be mirrored without a side-effect-free shadow."""
        return self.method.upper() in SAFE_METHODS

    def header(self, name: str) -> str | None:
        return _find(self.headers, name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "headers": [list(pair) for pair in self.headers],
            "body_b64": _b64(self.body),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CapturedRequest:
        return cls(
            method=str(data["method"]).upper(),
            path=str(data["path"]),
            headers=_headers(data.get("headers")),
            body=base64.b64decode(data.get("body_b64", "")),
        )


@dataclass(frozen=True)
class CapturedResponse:
    """A response as received: status, headers (in order) and the whole body."""

    status: int
    headers: Headers = ()
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return _find(self.headers, name)

    @property
    def is_json(self) -> bool:
        content_type = (self.header("content-type") or "").split(";")[0].strip().lower()
        return any(content_type.endswith(kind) for kind in _JSON_TYPES)

    def decoded_body(self) -> bytes:
        """The body without its gzip/deflate content-encoding (as is when unknown or broken)."""
        encoding = (self.header("content-encoding") or "").strip().lower()
        if encoding in ("gzip", "x-gzip", "deflate") and self.body:
            try:
                return zlib.decompress(self.body, wbits=47 if "gzip" in encoding else 15)
            except zlib.error:
                return self.body
        return self.body

    def json_body(self) -> Any:
        """The decoded JSON body; :class:`ValueError` when it is not JSON."""
        return json.loads(self.decoded_body())

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "headers": [list(pair) for pair in self.headers],
            "body_b64": _b64(self.body),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CapturedResponse:
        return cls(
            status=int(data["status"]),
            headers=_headers(data.get("headers")),
            body=base64.b64decode(data.get("body_b64", "")),
        )
