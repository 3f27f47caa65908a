"""migration_plans: the floor, the roof and the test plugin of strangler (see README, "Layout").

core/       the floor, imports nothing of ours: phases, plans, the field mapping,
            settings, databases, shared contracts (identity header, outbox, HTTP sets), logs
control/    the roof, imported by nothing: the `strangler` CLI, transitions, gates,
            evidence, history, route rewriting, phase rules, stack, demo, dashboard
testing/    the phase-replay pytest plugin (entry point ``migration_plans.testing.plugin``)
templates/  the shipped plans; `strangler plan init` copies them into a plans folder
"""
