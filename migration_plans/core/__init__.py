"""The floor every package builds on; it imports nothing of ours (import-linter checks it).

    phase       Phase (shared, dual_write, split) and Side: the source of truth and the
                synced sides of each phase
    plan        a context's plan: endpoints, tables, gates; load_plan, load_plans
    mapping     the field mapping between a monolith table and a service table
    settings    the deployment's plans folder and one context's settings (ContextSettings)
    yamlfile    YAML into frozen models, every error as ``file:line: field: message``
    database    URL spelling and one engine() with one SQLite policy
    control_db  the control-plane database
    live_phase  the published (phase, epoch, fence) of each context and the follower
                every proxy, service and relay runs to switch without a restart
    replicas    the registry of running replicas: heartbeat, ACK of epoch and route table
    outbox      the outbox table and its statuses, shared by services, relay and reconciler
    identity    the signed identity header the proxy forwards and the services verify
    http        HTTP method sets and hop-by-hop header names
    logs        one JSON log formatter, with the request id
    exports     lazy public names for a package ``__init__`` (PEP 562)

Import the modules themselves (``from migration_plans.core.phase import Phase``): this
``__init__`` re-exports nothing, so a process loads only the parts it uses.
"""
