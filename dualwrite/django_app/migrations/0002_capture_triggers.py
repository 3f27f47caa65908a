"""Install the capture triggers on every mapped monolith table (PostgreSQL and SQLite).

The trigger DDL is generated from the plans' field mapping by
``dualwrite.capture.capture_statements``; ``strangler dualwrite install-capture``
re-runs it (idempotently) when a later plan maps more tables.
"""

from django.apps import apps
from django.db import migrations

from dualwrite.capture import capture_statements, uninstall_statements
from migration_plans.core.settings import mapping_for

SHOP_CONTEXTS = ("catalog", "inventory")
"""The demo shop's contexts captured from the start, when the monolith has their apps (by
label); any other monolith installs capture when a context enters dual_write."""

CAPTURED_CONTEXTS = tuple(
    label for label in SHOP_CONTEXTS if any(c.label == label for c in apps.get_app_configs())
)


def _mappings():
    return [mapping_for(context) for context in CAPTURED_CONTEXTS]


def install(apps, schema_editor):
    apps.get_model("strangler_dualwrite", "CaptureOrigin").objects.get_or_create(id=1)
    with schema_editor.connection.cursor() as cursor:
        for statement in capture_statements(schema_editor.connection.vendor, _mappings()):
            cursor.execute(statement)


def uninstall(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        for statement in uninstall_statements(schema_editor.connection.vendor, _mappings()):
            cursor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("strangler_dualwrite", "0001_initial"),
        *((label, "0001_initial") for label in CAPTURED_CONTEXTS),
    ]

    operations = [migrations.RunPython(install, uninstall)]
