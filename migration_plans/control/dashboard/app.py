"""The migration dashboard: an ASGI app mounted under the proxy's admin prefix.

``strangler proxy serve`` mounts it as ``{prefix}dashboard`` (see
:mod:`strangler_proxy.introspection`); it reads the proxy only through a
:class:`~strangler_proxy.introspection.ProxyView`.

    proxy = StranglerProxy(config, admin_mounts={MOUNT: mount})

Same secret as the admin API (``STRANGLER_ADMIN_TOKEN``): a browser signs in once
through a form with it and gets a random session id (never the token) in an HttpOnly,
SameSite=Strict cookie scoped to the admin prefix, ``Secure`` when the proxy's
``dashboard_secure_cookie`` says TLS is terminated in front (or the request is https).
Sessions live in the control database (:mod:`migration_plans.control.dashboard.sessions`)
so every worker and replica honours them; they expire when idle or old and end at
sign-out. Scripts may send ``Authorization: Bearer <token>`` instead (a session id is no
bearer token). Without either, the page is the login form and the data endpoint answers
401. Wrong tokens (sign-in or bearer) count against the client address in the proxy's
throttle (:class:`strangler_proxy.introspection.AdminAuth`): past the allowance, 429
with ``Retry-After`` and the token is not even checked.

    GET  {prefix}dashboard                 the page (login form when not signed in)
    GET  {prefix}dashboard/data            JSON: {"data": {...}, "html": {...}, "hashes": {...}}
    GET  {prefix}dashboard/report/<run>    a stored reconciler run as its HTML report
    GET  {prefix}dashboard/static/<file>   dashboard.js, dashboard.css (no secrets, no auth)
    POST {prefix}dashboard/login           form field ``token``; a new session in the cookie,
                                           303 to the page
    POST {prefix}dashboard/logout          ends the session, clears the cookie, 303 to the page

The payload is collected in a worker thread (:mod:`migration_plans.control.dashboard.data`
reads databases and Redis) and shared by every poll for ``ttl`` seconds, so a
dashboard left open costs the proxy one collection per ``ttl`` at most and request
forwarding never waits on it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from migration_plans.control.dashboard import html as dashboard_html
from migration_plans.control.dashboard.data import Sources
from migration_plans.control.dashboard.sessions import SessionStore, SessionStoreUnavailable
from reconciler.history import load_report
from reconciler.render import to_html
from strangler_proxy.edge.errors import TooManyAttempts
from strangler_proxy.introspection import AdminAuth, ProxyView

__all__ = ["COOKIE", "MOUNT", "Dashboard", "mount"]

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MOUNT = "dashboard"
COOKIE = "strangler_admin"
MAX_FORM_BYTES = 8 * 1024
_RUN_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_STATIC = {"dashboard.js": b"text/javascript; charset=utf-8", "dashboard.css": b"text/css"}
_HTML = b"text/html; charset=utf-8"
_JSON = b"application/json"
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"


@dataclass(frozen=True)
class Snapshot:
    """One collection: the data, the page fragments, and the JSON body sent to pollers."""

    data: dict[str, Any]
    fragments: dict[str, str]
    body: bytes
    at: float


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()
    csp: str = PAGE_CSP


class Dashboard:
    """Answers ``{prefix}dashboard[/...]`` for one proxy (see the module docstring).

    ``Dashboard(view, token, "/_strangler/")`` is a plain ASGI app; ``scope["path"]``
    is the whole (normalised) path, ``{prefix}dashboard`` included.
    """

    def __init__(
        self,
        view: ProxyView,
        token: bytes | None,
        prefix: str,
        *,
        sources: Sources | None = None,
        sessions: SessionStore | None = None,
        ttl: float = 1.5,
        interval_ms: int = 2000,
    ) -> None:
        self.view = view
        self.token = token
        self.auth: AdminAuth = view.admin_auth
        self.sessions = sessions or SessionStore(
            idle=self.auth.session_idle_seconds, lifetime=self.auth.session_max_seconds
        )
        self.prefix = prefix
        self.root = f"{prefix}{MOUNT}"
        self.ttl = ttl
        self.interval_ms = interval_ms
        self.sources = sources if sources is not None else Sources(view)
        self._snapshot: Snapshot | None = None
        self._lock: asyncio.Lock | None = None

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        """Answer one HTTP request for ``{prefix}dashboard[/...]``."""
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if path == self.root or path.startswith(self.root + "/"):
            reply = await self.reply(scope, receive, path[len(self.root) :].strip("/"))
        else:
            reply = Reply(404, b"no such dashboard page", b"text/plain")
        headers = [
            (b"content-type", reply.content_type),
            (b"content-length", str(len(reply.body)).encode()),
            (b"cache-control", b"no-store"),
            (b"content-security-policy", reply.csp.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"same-origin"),  # "no-referrer" makes Origin: null
            *reply.headers,
        ]
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": reply.body})

    async def reply(self, scope: MutableMapping[str, Any], receive: Receive, sub: str) -> Reply:
        """The answer for ``{prefix}dashboard/{sub}``."""
        try:
            return await self._reply(scope, receive, sub)
        except TooManyAttempts as exc:
            return Reply(exc.status_code, exc.detail.encode(), b"text/plain", exc.headers)
        except SessionStoreUnavailable as exc:
            return Reply(503, f"{exc}".encode(), b"text/plain", ((b"retry-after", b"5"),))

    async def _reply(self, scope: MutableMapping[str, Any], receive: Receive, sub: str) -> Reply:
        method: str = scope["method"]
        headers = dict(scope["headers"])
        if sub.startswith("static/") and method in ("GET", "HEAD"):
            return _static(sub.removeprefix("static/"))
        if sub in ("login", "logout"):
            if method != "POST":
                return self._see_page()
            if not _same_origin(headers):
                return Reply(403, b"cross-origin form refused", b"text/plain")
            if sub == "logout":
                return await self._logout(scope, headers)
            return await self._login(scope, receive)
        if method not in ("GET", "HEAD"):
            return Reply(405, b"method not allowed", b"text/plain", ((b"allow", b"GET"),))
        if not await self.authorized(headers, _client(scope)):
            if sub == "data":
                return Reply(401, b'{"error":"unauthorized"}', _JSON)
            return self._login_page(401)
        if sub == "":
            snapshot = await self.snapshot()
            html = dashboard_html.page(
                snapshot.data,
                self.prefix,
                fragments=snapshot.fragments,
                interval_ms=self.interval_ms,
            )
            return Reply(200, html.encode(), _HTML)
        if sub == "data":
            return Reply(200, (await self.snapshot()).body, _JSON)
        if sub.startswith("report/"):
            return await self._report(sub.removeprefix("report/"))
        return Reply(404, b"no such dashboard page", b"text/plain")

    # -- authentication -----------------------------------------------------------------

    async def authorized(self, headers: dict[bytes, bytes], client: str = "") -> bool:
        """The admin token as a bearer token, or the cookie of a live session.

        A bearer token is throttled per ``client`` (:class:`TooManyAttempts`); a session
        id is only ever looked up (it is random: there is nothing to guess).
        """
        if self.token is None:
            return False
        given = headers.get(b"authorization")
        if given is not None:
            throttle = self.auth.throttle
            throttle.take(client)
            if not hmac.compare_digest(given, b"Bearer " + self.token):
                return False
            throttle.give_back(client)
            return True
        session = _cookie_value(headers.get(b"cookie", b""), COOKIE)
        if not session:
            return False
        return await asyncio.to_thread(self.sessions.valid, session.decode("latin-1"))

    async def _login(self, scope: MutableMapping[str, Any], receive: Receive) -> Reply:
        if self.token is None:
            return self._login_page(401)
        client = _client(scope)
        self.auth.throttle.take(client)  # before the form: parallel guesses count at once
        form = await _read_form(receive)
        token = (form or {}).get("token", [""])[0].encode()
        if not token or not hmac.compare_digest(token, self.token):
            await asyncio.sleep(0.25)  # slows guessing without holding anything
            return self._login_page(401, "That token is not the admin token.")
        self.auth.throttle.give_back(client)
        session = await asyncio.to_thread(self.sessions.create)
        return self._see_page(self._cookie(session, scope=scope))

    async def _logout(self, scope: MutableMapping[str, Any], headers: dict[bytes, bytes]) -> Reply:
        session = _cookie_value(headers.get(b"cookie", b""), COOKIE)
        if session:
            await asyncio.to_thread(self.sessions.revoke, session.decode("latin-1"))
        return self._see_page(self._cookie("", expire=True, scope=scope))

    def _cookie(
        self, value: str, *, scope: MutableMapping[str, Any], expire: bool = False
    ) -> tuple[bytes, bytes]:
        parts = [f"{COOKIE}={quote(value, safe='')}", f"Path={self.prefix}", "HttpOnly"]
        parts.append("SameSite=Strict")
        max_age = 0 if expire else int(self.auth.session_max_seconds)
        parts.append(f"Max-Age={max_age}")
        if self.auth.secure_cookie or scope.get("scheme") == "https":
            parts.append("Secure")
        return (b"set-cookie", "; ".join(parts).encode())

    def _see_page(self, *headers: tuple[bytes, bytes]) -> Reply:
        location = (b"location", f"{self.prefix}dashboard".encode())
        return Reply(303, b"", b"text/plain", (location, *headers))

    def _login_page(self, status: int, message: str = "") -> Reply:
        html = dashboard_html.login_page(self.prefix, message=message, disabled=self.token is None)
        return Reply(status, html.encode(), _HTML)

    # -- data -----------------------------------------------------------------------------

    async def snapshot(self) -> Snapshot:
        """The latest collection, refreshed in a worker thread when older than ``ttl``."""
        if self._fresh(self._snapshot):
            assert self._snapshot is not None
            return self._snapshot
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # one collection at a time; waiting pollers share it
            if not self._fresh(self._snapshot):
                self._snapshot = await asyncio.to_thread(self._collect)
        assert self._snapshot is not None
        return self._snapshot

    def _fresh(self, snapshot: Snapshot | None) -> bool:
        return snapshot is not None and time.monotonic() - snapshot.at < self.ttl

    def _collect(self) -> Snapshot:
        if self.sources is None:
            self.sources = Sources(self.view)
        data = self.sources.collect()
        fragments = dashboard_html.sections(data, self.prefix)
        hashes = {
            name: hashlib.sha1(html.encode(), usedforsecurity=False).hexdigest()[:16]
            for name, html in fragments.items()
        }
        payload = {"data": data, "html": fragments, "hashes": hashes}
        body = json.dumps(payload, separators=(",", ":"), default=str).encode()
        return Snapshot(data, fragments, body, time.monotonic())

    async def _report(self, run_id: str) -> Reply:
        if not _RUN_ID.match(run_id):
            return Reply(404, b"no such run", b"text/plain")
        html = await asyncio.to_thread(_report_html, run_id)
        if html is None:
            return Reply(404, b"no such run", b"text/plain")
        return Reply(200, html.encode(), _HTML, csp=REPORT_CSP)


def mount(view: ProxyView) -> Dashboard:
    """The admin mount: the dashboard of the proxy behind ``view``, with its admin token."""
    return Dashboard(view, view.admin_token, view.admin_prefix)


def _report_html(run_id: str) -> str | None:
    report = load_report(run_id)
    return None if report is None else to_html(report)


def _static(name: str) -> Reply:
    content_type = _STATIC.get(name)
    if content_type is None:
        return Reply(404, b"not found", b"text/plain")
    body = (resources.files("migration_plans.control.dashboard") / "static" / name).read_bytes()
    return Reply(200, body, content_type)


def _client(scope: MutableMapping[str, Any]) -> str:
    client = scope.get("client")
    return str(client[0]) if client else ""


def _cookie_value(header: bytes, name: str) -> bytes | None:
    for part in header.decode("latin-1").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return unquote(value).encode()
    return None


def _same_origin(headers: dict[bytes, bytes]) -> bool:
    """A form post from this host (browsers send Origin on POST; tools may not)."""
    origin = headers.get(b"origin")
    if origin is None:
        return True
    host = headers.get(b"host", b"").decode("latin-1")
    return urlsplit(origin.decode("latin-1")).netloc == host


async def _read_form(receive: Receive) -> dict[str, list[str]] | None:
    """An url-encoded form body (None when it is larger than :data:`MAX_FORM_BYTES`)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return parse_qs(b"".join(chunks).decode("utf-8", "replace"), keep_blank_values=True)
