"""strangler_proxy: the YAML-driven strangler-fig routing proxy (plus shadow traffic tools).

A request's path through the modules:

    routes.py      the route table model (upstreams, contexts, routes, canary, shadow, auth)
    template.py    path templates: matching regexes and coverage (unreachable routes)
    validation.py  whole-table rules, with a PhaseRules hook for migration plans
    loader.py      load + validate, the live table holder, hot reload
    normalize.py   path normalisation before matching
    matcher.py     Route.matches() -> (Match, params); Router.resolve() -> Target
    canary.py      sticky, deterministic canary assignment
    auth.py        Authorization: Token -> signed X-Strangler-Identity (identity.py)
    headers.py     hop-by-hop and untrusted headers, X-Forwarded-*, framing checks
    body.py        request bodies, read whole or streamed, capped
    forwarder.py   one pool per upstream (upstream_client.py); breaker.py per upstream
    upstream_client.py  keep-alive HTTP/1.1 client: asyncio protocol + httptools
    app.py         the ASGI app; admin.py, metrics.py; server.py runs it under uvicorn
    exceptions.py  the errors the proxy answers itself

Importing the package imports nothing heavy: services use ``migration_plans.core.identity``.
"""
