"""Replace the row-level capture triggers of PostgreSQL monoliths with statement-level ones.

``capture_statements`` drops the earlier row triggers and creates the triggers with
transition tables; on SQLite it re-creates the same row triggers (idempotent).
"""

from django.db import migrations

from dualwrite.capture import capture_statements
from migration_plans.core.settings import mapping_for

CAPTURED_CONTEXTS = ("catalog", "inventory")


def install(apps, schema_editor):
    mappings = [mapping_for(context) for context in CAPTURED_CONTEXTS]
    with schema_editor.connection.cursor() as cursor:
        for statement in capture_statements(schema_editor.connection.vendor, mappings):
            cursor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("strangler_dualwrite", "0003_saga")]

    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
