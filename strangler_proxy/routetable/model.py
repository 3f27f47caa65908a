"""The route table model: what users edit to cut a bounded context over.

Parsed once from YAML into frozen pydantic models (see :mod:`strangler_proxy.routetable.loader`);
nothing downstream touches raw dicts. ``strangler routes schema`` prints the JSON
Schema of :class:`RouteTable` for editors.

    upstreams:
      monolith: {url: "http://127.0.0.1:8001"}
      catalog:  {urls: ["http://127.0.0.1:8101", "http://127.0.0.1:8111"], timeouts: {read: 5}}
    contexts:
      catalog:
        routes:
          - name: product-detail
            path: /api/v1/products/{id:int}/
            methods: [GET, HEAD]
            upstream: catalog
            fallback: true
"""

from __future__ import annotations

from functools import cached_property
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from migration_plans.core.http import HTTP_METHODS, LOOPBACK_HOSTS
from migration_plans.core.identity import DEFAULT_IDENTITY_TTL
from strangler_proxy.routetable._template import PathTemplate

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)]


class Model(BaseModel):
    """Frozen, strict about unknown keys: a typo in the YAML is an error, not a no-op."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Timeouts(Model):
    """Seconds to connect and to wait for each read from the upstream."""

    connect: float = Field(1.0, gt=0, le=60)
    read: float = Field(30.0, gt=0, le=3600)


class BreakerSettings(Model):
    """Circuit breaker: open when the failure rate over the last ``window`` calls is too high."""

    window: int = Field(20, ge=1, le=10_000)
    min_calls: int = Field(5, ge=1)
    failure_rate: float = Field(0.5, gt=0, le=1)
    cooldown: float = Field(5.0, gt=0, le=3600, description="seconds open before one probe")
    failure_statuses: frozenset[int] = frozenset({502, 503, 504})


PrivatePath = Annotated[str, Field(pattern=r"^/[^?#]*$", description="an absolute path")]
HostName = Annotated[
    str, Field(pattern=r"^(\*|\.?[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])$", max_length=253)
]
Url = Annotated[str, Field(pattern=r"^https?://[^/?#]+/?$", description="scheme://host:port")]


class Upstream(Model):
    """A named backend: the monolith or an extracted service, at one URL or several.

    ``urls`` lists the replicas of one service: the proxy spreads requests over them
    round-robin and skips one it cannot connect to (:mod:`strangler_proxy.upstream`).
    Give exactly one of ``url`` and ``urls``; :attr:`endpoints` is always the list.
    """

    url: Url | None = None
    urls: list[Url] | None = Field(
        None, min_length=1, max_length=64, description="replicas of the same service"
    )
    timeouts: Timeouts = Timeouts()
    pool_size: int = Field(
        100, ge=1, le=10_000, description="keep-alive connections per endpoint (per URL)"
    )
    breaker: BreakerSettings = BreakerSettings()
    host_header: str = Field(
        "upstream",
        description="'upstream' sends the (first) URL's host; 'client' forwards the "
        "client's Host when it is one of the table's allowed_hosts (400 otherwise); "
        "anything else is sent literally",
    )
    identity: bool = Field(True, description="forward the signed identity header to it")
    audience: Name | None = Field(
        None,
        description="the identity header's audience for this upstream (default: its name); "
        "a service accepts only its own context",
    )

    model_config = ConfigDict(frozen=True, extra="forbid", ignored_types=(cached_property,))

    @field_validator("urls")
    @classmethod
    def _distinct(cls, value: list[str] | None) -> list[str] | None:
        seen: set[str] = set()
        for url in value or ():
            key = url.rstrip("/").lower()
            if key in seen:
                raise ValueError(f"duplicate URL {url!r}")
            seen.add(key)
        return value

    @model_validator(mode="after")
    def _url_or_urls(self) -> Upstream:
        if (self.url is None) == (self.urls is None):
            raise ValueError("an upstream needs exactly one of url or urls")
        return self

    @cached_property
    def endpoints(self) -> tuple[str, ...]:
        """Every base URL (no trailing slash), in the order given."""
        urls = self.urls if self.urls is not None else (self.url or "",)
        return tuple(url.rstrip("/") for url in urls)

    @property
    def base_url(self) -> str:
        """The first endpoint (the only one of a single-``url`` upstream)."""
        return self.endpoints[0]


class Sticky(Model):
    """What keeps a client on one side of a canary split. Exactly one key."""

    header: str | None = None
    cookie: str | None = None
    client: Literal["address"] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Sticky:
        if sum(value is not None for value in (self.header, self.cookie, self.client)) != 1:
            raise ValueError("sticky needs exactly one of header, cookie or client: address")
        return self


class Canary(Model):
    """Weighted split between upstreams (percent, summing to 100), sticky per key."""

    split: dict[str, Annotated[float, Field(ge=0, le=100)]] = Field(min_length=1)
    sticky: Sticky = Sticky(client="address")


class CompareRules(Model):
    """How a shadow response is compared with the primary's (used by shadow comparison)."""

    ignore_paths: tuple[str, ...] = ()
    ignore_order: bool | tuple[str, ...] = Field(
        False, description="true for every list, or the paths of lists whose order is free"
    )
    numeric_tolerance: float = Field(0.0, ge=0)
    headers: tuple[str, ...] = ()


class Shadow(Model):
    """Mirror a sample of the route's traffic to a candidate upstream and compare."""

    upstream: str
    sample_rate: float = Field(1.0, ge=0, le=1)
    side_effect_free: bool = Field(
        False, description="the candidate may receive unsafe methods (POST, PUT, ...)"
    )
    compare: CompareRules = CompareRules()
    calibrate: str | None = Field(
        None,
        description="a second primary upstream: fields that differ between the two "
        "primaries are learned as noise and not compared",
    )


class Record(Model):
    """Write a redacted sample of the route's traffic to a mitmproxy flow file."""

    sample_rate: float = Field(0.01, gt=0, le=1)


class Route(Model):
    """Methods + a path template (or prefix) -> one upstream or a canary split."""

    name: Name
    path: str | None = None
    prefix: str | None = None
    methods: frozenset[str] = HTTP_METHODS
    upstream: str | None = None
    canary: Canary | None = None
    shadow: Shadow | None = None
    record: Record | None = None
    fallback: bool = Field(
        False, description="reads fall back to the default upstream when this one is down"
    )

    model_config = ConfigDict(frozen=True, extra="forbid", ignored_types=(cached_property,))

    @field_validator("methods", mode="before")
    @classmethod
    def _methods(cls, value: object) -> object:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list | tuple | set | frozenset):
            names = {str(item).upper() for item in value}
            if "*" in names:
                return HTTP_METHODS
            unknown = sorted(names - HTTP_METHODS)
            if unknown:
                raise ValueError(f"unknown method(s) {', '.join(unknown)}")
            if not names:
                raise ValueError("at least one method")
            return frozenset(names)
        return value

    @field_validator("path", "prefix")
    @classmethod
    def _template(cls, value: str | None, info: object) -> str | None:
        if value is not None:
            PathTemplate.parse(value, prefix=getattr(info, "field_name", "") == "prefix")
        return value

    @model_validator(mode="after")
    def _one_of_each(self) -> Route:
        if (self.path is None) == (self.prefix is None):
            raise ValueError("a route needs exactly one of path or prefix")
        if (self.upstream is None) == (self.canary is None):
            raise ValueError("a route needs exactly one of upstream or canary")
        return self

    @cached_property
    def template(self) -> PathTemplate:
        if self.path is not None:
            return PathTemplate.parse(self.path)
        assert self.prefix is not None
        return PathTemplate.parse(self.prefix, prefix=True)

    @property
    def template_field(self) -> str:
        return "path" if self.path is not None else "prefix"

    @property
    def targets(self) -> tuple[str, ...]:
        """Every upstream this route can send primary traffic to."""
        if self.canary is not None:
            return tuple(self.canary.split)
        assert self.upstream is not None
        return (self.upstream,)


class Context(Model):
    """A bounded context's routes, tried in file order."""

    routes: list[Route] = []


class AuthSettings(Model):
    """Check ``Authorization: Token`` against the monolith and forward a signed identity."""

    upstream: str = "monolith"
    whoami_path: str = "/api/v1/auth/whoami/"
    cache_ttl: float = Field(30.0, ge=0, le=3600)
    negative_ttl: float = Field(5.0, ge=0, le=3600)
    cache_size: int = Field(10_000, ge=1)
    identity_key_env: str = "STRANGLER_IDENTITY_KEY"
    identity_ttl: float = Field(
        DEFAULT_IDENTITY_TTL, gt=0, le=3600, description="seconds a signed identity is valid"
    )


class RouteTable(Model):
    """The whole file: upstreams, optional auth, routes grouped by bounded context."""

    version: int | str | None = Field(None, description="your label; the hash is added")
    default_upstream: str = Field("monolith", description="where unmatched requests go")
    upstreams: dict[Name, Upstream] = Field(min_length=1)
    auth: AuthSettings | None = None
    contexts: dict[Name, Context] = {}
    private_paths: tuple[PrivatePath, ...] = Field(
        ("/metrics",),
        description="paths (and everything under them) the proxy answers 404 for unless a "
        "route whose own path or prefix starts with one matches: upstreams' metrics stay "
        "internal",
    )
    allowed_hosts: tuple[HostName, ...] = Field(
        LOOPBACK_HOSTS,
        description="Host values (port ignored) an upstream with host_header: client may "
        "receive, 400 for others; '.example.com' also allows its subdomains, '*' any host",
    )

    def located_routes(self) -> list[tuple[tuple[str | int, ...], str, Route]]:
        """``(loc, context, route)`` in file order; ``loc`` points at the route's YAML node."""
        return [
            (("contexts", context, "routes", index), context, route)
            for context, group in self.contexts.items()
            for index, route in enumerate(group.routes)
        ]
