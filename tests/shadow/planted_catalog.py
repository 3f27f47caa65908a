"""The real catalog service with planted differences, for the monolith end-to-end test.

Wraps ``extracted_services.catalog.main:create_app`` in an ASGI middleware that
renames ``name`` to ``title`` in the product detail and reverses the category list.
The service itself is untouched. Serve with
``uvicorn --factory tests.shadow.planted_catalog:create_app``.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from extracted_services.catalog.main import create_app as create_catalog

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Message, Receive, Send], Awaitable[None]]

PRODUCT_DETAIL = re.compile(r"^/api/v1/products/\d+/$")


def plant(path: str, document: Any) -> Any:
    if PRODUCT_DETAIL.match(path) and isinstance(document, dict):
        return {("title" if key == "name" else key): value for key, value in document.items()}
    if path == "/api/v1/categories/" and isinstance(document, dict):
        return {**document, "results": document.get("results", [])[::-1]}
    return document


class Planted:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    await self._finish(scope["path"], start, b"".join(chunks), send)

        await self.app(scope, receive, capture)

    async def _finish(self, path: str, start: Message, body: bytes, send: Send) -> None:
        with contextlib.suppress(ValueError):  # not JSON: pass it through unchanged
            body = json.dumps(plant(path, json.loads(body))).encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def create_app() -> ASGIApp:
    return Planted(create_catalog())
