"""The control plane, the roof: it may import every package and none imports it.

cli          the `strangler` command line; mounts every package's commands
plan_cli     `strangler plan init|status|advance|rollback|history|schema`
transitions  the steps of each phase move (STEPS keyed by (from, to)), advance, rollback
gates        evaluate a plan's gates; evidence: read them from the stores
history      recorded transitions; plan_file: edit and create plan files
routing      rewrite the route table for a phase; phase_rules: PlanPhaseRules for the proxy
stack        `strangler up`: every process of a local stack; processes, logstream
demo         `strangler demo`: the whole story on SQLite; traffic: its load generator
dashboard/   the migration dashboard, an ASGI app the proxy mounts under its admin prefix
"""
