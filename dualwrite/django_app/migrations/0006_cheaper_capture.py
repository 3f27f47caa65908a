"""PostgreSQL: the capture functions' new body (no trigger or table touched).

A row image is built with ``row_to_json`` as text instead of ``to_jsonb``, and an
update's no-op test compares the old and new rows as text instead of building both
rows' JSON: about a third less capture time for a bulk ``UPDATE``. Monoliths whose
other contexts were captured with ``strangler dualwrite install-capture`` get it when
they run that again. SQLite's row triggers are unchanged.
"""

from typing import Any

from django.apps import apps
from django.db import migrations

from dualwrite.capture import capture_function_statements
from migration_plans.core.settings import mapping_for

SHOP_CONTEXTS = ("catalog", "inventory")
CAPTURED_CONTEXTS = tuple(
    label for label in SHOP_CONTEXTS if any(c.label == label for c in apps.get_app_configs())
)
"""The contexts migration 0004 captured (the demo shop's, when the monolith has them)."""


def replace_functions(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    mappings = [mapping_for(context) for context in CAPTURED_CONTEXTS]
    with schema_editor.connection.cursor() as cursor:
        for statement in capture_function_statements(mappings):
            cursor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("strangler_dualwrite", "0005_wider_key_text")]

    operations = [migrations.RunPython(replace_functions, migrations.RunPython.noop)]
