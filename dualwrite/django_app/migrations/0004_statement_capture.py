"""Replace the row-level capture triggers of PostgreSQL monoliths with statement-level ones.

``capture_statements`` drops the earlier row triggers and creates the triggers with
transition tables; on SQLite it re-creates the same row triggers (idempotent).

PostgreSQL also loses the ``varchar_pattern_ops`` index Django adds beside the unique
index of ``event_id``: nothing searches event ids by prefix, and every captured event
and every mark paid for it.
"""

from django.apps import apps
from django.db import migrations

from dualwrite.capture import capture_statements
from migration_plans.core.settings import mapping_for

SHOP_CONTEXTS = ("catalog", "inventory")
"""The demo shop's contexts captured from the start, when the monolith has their apps (by
label); any other monolith installs capture when a context enters dual_write."""

CAPTURED_CONTEXTS = tuple(
    label for label in SHOP_CONTEXTS if any(c.label == label for c in apps.get_app_configs())
)


DROP_LIKE_INDEX = """
DO $$
DECLARE
    found record;
BEGIN
    FOR found IN SELECT indexname FROM pg_indexes
                 WHERE tablename = 'strangler_outbox'
                   AND indexdef LIKE '%varchar_pattern_ops%' LOOP
        EXECUTE 'DROP INDEX ' || quote_ident(found.indexname);
    END LOOP;
END
$$
"""


def install(apps, schema_editor):
    mappings = [mapping_for(context) for context in CAPTURED_CONTEXTS]
    vendor = schema_editor.connection.vendor
    with schema_editor.connection.cursor() as cursor:
        for statement in capture_statements(vendor, mappings):
            cursor.execute(statement)
        if vendor == "postgresql":
            cursor.execute(DROP_LIKE_INDEX)


class Migration(migrations.Migration):
    dependencies = [("strangler_dualwrite", "0003_saga")]

    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
