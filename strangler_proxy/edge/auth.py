"""Client authentication at the edge: ``Authorization: Token <t>`` -> signed identity.

The token is checked against the monolith's ``GET /api/v1/auth/whoami/`` (answers
``{"id", "username"}``; an upstream with several endpoints is asked in turn, the next
one when one cannot be connected to); results are cached briefly in a bounded LRU (refusals for a
shorter time) and concurrent checks of one token share a single call. The proxy then
forwards ``X-Strangler-Identity`` signed with the configured key for the one upstream it
sends the request to (its audience: the upstream's ``audience``, default its name), valid
for ``identity_ttl`` seconds. Requests without a token pass anonymously; a refused token
is a 401 from the proxy.

    auth = TokenAuth(settings, key=b"...")
    caller = await auth.caller(headers, forwarder)  # None when anonymous
    header = auth.header_for(caller, audience="catalog")
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import aiohttp

from migration_plans.core.identity import Identity, sign_identity
from strangler_proxy.edge.errors import AuthUnavailable, InvalidToken
from strangler_proxy.routetable.model import AuthSettings
from strangler_proxy.upstream.forwarder import Forwarder, UpstreamPool

_SCHEME = b"token "
_CONNECT_ERRORS = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


class TokenAuth:
    """Token -> identity, cached; one instance per loaded table."""

    def __init__(
        self, settings: AuthSettings, *, key: bytes, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self.key = key
        self.clock = clock
        self.cache: OrderedDict[str, tuple[float, Identity | None]] = OrderedDict()
        self.pending: dict[str, asyncio.Future[Identity | None]] = {}

    async def caller(self, headers: dict[bytes, bytes], forwarder: Forwarder) -> Identity | None:
        """Who the caller is, None for anonymous; :class:`InvalidToken`."""
        value = headers.get(b"authorization", b"")
        if value[: len(_SCHEME)].lower() != _SCHEME:
            return None
        token = value[len(_SCHEME) :].strip().decode("latin-1")
        identity = await self.identify(token, forwarder)
        if identity is None:
            raise InvalidToken()
        return identity

    def header_for(self, identity: Identity, audience: str) -> str:
        """The signed identity header for one upstream (``audience``)."""
        return sign_identity(
            identity, key=self.key, audience=audience, ttl=self.settings.identity_ttl
        )

    async def identify(self, token: str, forwarder: Forwarder) -> Identity | None:
        """The identity behind ``token`` (None when refused), from cache or the monolith."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        cached = self.cache.get(digest)
        if cached is not None and cached[0] > self.clock():
            self.cache.move_to_end(digest)
            return cached[1]
        if digest in self.pending:
            return await asyncio.shield(self.pending[digest])
        future: asyncio.Future[Identity | None] = asyncio.get_running_loop().create_future()
        self.pending[digest] = future
        try:
            identity = await self._whoami(token, forwarder)
            future.set_result(identity)
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it
            raise
        finally:
            del self.pending[digest]
        self._remember(digest, identity)
        return identity

    def _remember(self, digest: str, identity: Identity | None) -> None:
        ttl = self.settings.cache_ttl if identity is not None else self.settings.negative_ttl
        self.cache[digest] = (self.clock() + ttl, identity)
        self.cache.move_to_end(digest)
        while len(self.cache) > self.settings.cache_size:
            self.cache.popitem(last=False)

    async def _whoami(self, token: str, forwarder: Forwarder) -> Identity | None:
        # The auth upstream's endpoints in turn; one that cannot be connected to is
        # skipped for this call and, for a moment, by the forwarder too.
        pool = forwarder.pools[self.settings.upstream]
        rotation = pool.rotation
        first = rotation.pick()
        for index in (first, *rotation.after(first)):
            try:
                identity = await self._ask(pool, index, token)
            except _CONNECT_ERRORS as exc:
                rotation.failed(index)
                failure: Exception = exc
                continue
            rotation.answered(index)
            return identity
        raise AuthUnavailable(f"whoami failed: {type(failure).__name__}") from failure

    async def _ask(self, pool: UpstreamPool, index: int, token: str) -> Identity | None:
        """whoami on endpoint ``index``; connect errors propagate (nothing was asked)."""
        try:
            async with pool.session.get(
                pool.url(self.settings.whoami_path, index),
                headers={"Authorization": f"Token {token}", "Accept": "application/json"},
                allow_redirects=False,
            ) as response:
                if response.status in (401, 403):
                    return None
                if response.status != 200:
                    raise AuthUnavailable(f"whoami answered {response.status}")
                claims: Any = await response.json(content_type=None)
        except _CONNECT_ERRORS:
            raise
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise AuthUnavailable(f"whoami failed: {type(exc).__name__}") from exc
        try:
            return Identity(sub=str(claims["id"]), name=str(claims.get("username", "")))
        except (KeyError, TypeError, AttributeError) as exc:
            raise AuthUnavailable("whoami answered without an id") from exc
