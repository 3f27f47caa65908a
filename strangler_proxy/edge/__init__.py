"""The edge: what the proxy checks and rewrites between the client and an upstream.

Modules, in the order a request meets them:

    errors      the errors the proxy answers itself (status, code, JSON body)
    headers     hop-by-hop and untrusted headers, X-Forwarded-*, framing checks
    body        request bodies, read whole or streamed, capped
    auth        ``Authorization: Token`` -> signed ``X-Strangler-Identity``

    headers = upstream_headers(raw, client_host=..., scheme="http", host=..., ...)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from strangler_proxy.edge.auth import TokenAuth
    from strangler_proxy.edge.body import ClientGone, RequestBody
    from strangler_proxy.edge.errors import (
        AuthUnavailable,
        BadPath,
        BadRequest,
        BodyTooLarge,
        BreakerOpen,
        DisallowedHost,
        FenceOverflow,
        HeadersTooLarge,
        InvalidToken,
        NotFound,
        PathTooLong,
        ProxyError,
        TooManyAttempts,
        Unauthorized,
        UploadStalled,
        UpstreamBusy,
        UpstreamConnectFailed,
        UpstreamFailed,
        UpstreamTimeout,
    )
    from strangler_proxy.edge.headers import (
        HOP_BY_HOP,
        check_singletons,
        client_headers,
        connection_tokens,
        content_length,
        request_id_from,
        upstream_headers,
    )
else:
    from migration_plans.core.exports import lazy_exports

    __getattr__ = lazy_exports(
        __name__,
        {
            "errors": [
                "AuthUnavailable",
                "BadPath",
                "BadRequest",
                "BodyTooLarge",
                "BreakerOpen",
                "DisallowedHost",
                "FenceOverflow",
                "HeadersTooLarge",
                "InvalidToken",
                "NotFound",
                "PathTooLong",
                "ProxyError",
                "TooManyAttempts",
                "Unauthorized",
                "UploadStalled",
                "UpstreamBusy",
                "UpstreamConnectFailed",
                "UpstreamFailed",
                "UpstreamTimeout",
            ],
            "headers": [
                "HOP_BY_HOP",
                "check_singletons",
                "client_headers",
                "connection_tokens",
                "content_length",
                "request_id_from",
                "upstream_headers",
            ],
            "body": ["ClientGone", "RequestBody"],
            "auth": ["TokenAuth"],
        },
    )

__all__ = [
    "HOP_BY_HOP",
    "AuthUnavailable",
    "BadPath",
    "BadRequest",
    "BodyTooLarge",
    "BreakerOpen",
    "ClientGone",
    "DisallowedHost",
    "FenceOverflow",
    "HeadersTooLarge",
    "InvalidToken",
    "NotFound",
    "PathTooLong",
    "ProxyError",
    "RequestBody",
    "TokenAuth",
    "TooManyAttempts",
    "Unauthorized",
    "UploadStalled",
    "UpstreamBusy",
    "UpstreamConnectFailed",
    "UpstreamFailed",
    "UpstreamTimeout",
    "check_singletons",
    "client_headers",
    "connection_tokens",
    "content_length",
    "request_id_from",
    "upstream_headers",
]
