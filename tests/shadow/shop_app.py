"""A tiny shop upstream for the shadow tests, in two variants with planted differences.

``SHOP_VARIANT=primary`` answers like the monolith; ``SHOP_VARIANT=candidate`` has
the planted differences: ``name`` renamed to ``title`` in the product detail, the
category list in reverse order. Both put a fresh ``served_at`` timestamp in the
product list (noise: it differs between two identical primary calls).
``SHOP_DELAY`` (seconds) slows every answer. ``POST /api/v1/products/`` counts
writes, ``GET /_writes`` tells how many arrived. ``POST /api/v1/session/`` answers
secrets that differ by variant (a Set-Cookie, an X-Auth-Token, JSON sent as text/plain,
or as JSON with ``?format=json``, holding a token, a session id and a terminal escape
sequence), for the redaction tests. Serve with
``uvicorn tests.shadow.shop_app:app``.
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

VARIANT = os.environ.get("SHOP_VARIANT", "primary")
DELAY = float(os.environ.get("SHOP_DELAY", "0"))
PRODUCTS = [
    {"id": 1, "name": "Lamp", "price": "79.19", "tags": ["home", "light"]},
    {"id": 2, "name": "Desk", "price": "250.00", "tags": ["office"]},
    {"id": 3, "name": "Chair", "price": "120.50", "tags": ["office", "home"]},
]
CATEGORIES = [{"id": 1, "slug": "home"}, {"id": 2, "slug": "office"}, {"id": 3, "slug": "garden"}]
WRITES = {"count": 0}


async def _pause() -> None:
    if DELAY:
        await asyncio.sleep(DELAY)


async def healthz(request: Request) -> Response:
    return JSONResponse({"ok": True})


async def product_list(request: Request) -> Response:
    await _pause()
    if request.method == "POST":
        WRITES["count"] += 1
        return JSONResponse({"id": 99, **(await request.json())}, status_code=201)
    now = datetime.now(UTC).isoformat(timespec="microseconds")
    return JSONResponse({"count": len(PRODUCTS), "served_at": now, "results": PRODUCTS})


async def product_detail(request: Request) -> Response:
    await _pause()
    product = next((p for p in PRODUCTS if p["id"] == request.path_params["id"]), None)
    if product is None:
        return JSONResponse({"detail": "Not found."}, status_code=404)
    if VARIANT == "candidate":
        product = {("title" if key == "name" else key): value for key, value in product.items()}
    return JSONResponse(product)


async def category_list(request: Request) -> Response:
    await _pause()
    results = CATEGORIES[::-1] if VARIANT == "candidate" else CATEGORIES
    return JSONResponse({"count": len(results), "results": results})


async def robots(request: Request) -> Response:
    await _pause()
    return PlainTextResponse("User-agent: *\nDisallow: /admin/\n")


async def session(request: Request) -> Response:
    """Secrets of this variant, as a login endpoint would answer them."""
    body = {
        "user": "alice",
        "token": f"tok-{VARIANT}-7f3a",
        "session_id": f"sid-{VARIANT}-91c2",
        "note": f"\x1b[2J\x1b[31m{VARIANT}",
    }
    response: Response = (
        JSONResponse(body)
        if request.query_params.get("format") == "json"
        else PlainTextResponse(json.dumps(body))  # JSON, but not labelled as such
    )
    response.set_cookie("sessionid", f"cookie-{VARIANT}-55e1", httponly=True)
    response.headers["X-Auth-Token"] = f"hdr-{VARIANT}-0b9d"
    return response


async def writes(request: Request) -> Response:
    return JSONResponse(WRITES)


app = Starlette(
    routes=[
        Route("/healthz", healthz),
        Route("/_writes", writes),
        Route("/api/v1/session/", session, methods=["POST"]),
        Route("/robots.txt", robots),
        Route("/api/v1/products/", product_list, methods=["GET", "POST"]),
        Route("/api/v1/products/{id:int}/", product_detail),
        Route("/api/v1/categories/", category_list),
    ]
)
