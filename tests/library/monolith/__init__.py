"""A small Django library (branches, books, copies, members, loans): the second monolith.

It is not a shop and shares no code with ``legacy_monolith``: it proves the toolkit
takes any Django project through every phase with the same commands (issue #19).
Settings module: ``tests.library.monolith.settings``.
"""
