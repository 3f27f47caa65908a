"""strangler_proxy: the YAML-driven strangler-fig routing proxy, and its shadow traffic.

A request's path through the subpackages (each ``__init__`` lists its modules):

    routetable/   the route table: model, path templates, validation, loader, diff
    routing/      path normalisation, matcher (Route.matches, Router.resolve), canary
    edge/         the proxy's own errors, header rewriting, request bodies, token auth
    upstream/     the forwarder: one keep-alive pool and one circuit breaker per upstream
    shadow/       mirror to a candidate and compare, record flows, replay, report

    app.py        the ASGI app that walks that path; admin.py, metrics.py, config.py
    live.py       follows the published phase per context, acknowledges each epoch
    fence.py      holds a context's writes while its source of truth moves
    server.py     runs it under uvicorn, one process or ``--workers N`` forked
    cli.py        ``strangler proxy`` and ``python -m strangler_proxy``

Nothing here imports the control plane (``migration_plans.control``); shared
vocabulary (HTTP method and hop-by-hop sets, JSON logs, the database engine, the
identity header) comes from ``migration_plans.core``. The subpackages use each
other's modules (the loader builds a router, every step raises the edge's errors),
so their ``__init__``s resolve public names on first use (:mod:`migration_plans.core.exports`), and
importing the package imports nothing heavy.
"""
