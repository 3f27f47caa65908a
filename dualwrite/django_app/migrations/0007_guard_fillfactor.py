"""PostgreSQL: the version guards' table leaves half of each page free.

The relay moves a key's guard up in every batch that applies the key; with room on the
page that update is HOT (no new index entry), about half the cost of the batch's guard
statement when its keys were applied before. Pages written earlier keep their fill until
rewritten. SQLite: nothing to do. The services' Alembic revision 0004 does the same.
"""

from typing import Any

from django.db import migrations

FILLFACTOR = 50  # dualwrite.schema.GUARD_FILLFACTOR when this was written


def _set(schema_editor: Any, clause: str) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE strangler_applied_event {clause}")


def half_free(apps: Any, schema_editor: Any) -> None:
    _set(schema_editor, f"SET (fillfactor = {FILLFACTOR})")


def default_fill(apps: Any, schema_editor: Any) -> None:
    _set(schema_editor, "RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("strangler_dualwrite", "0006_cheaper_capture")]

    operations = [migrations.RunPython(half_free, default_fill)]
