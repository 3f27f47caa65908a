"""Key texts up to 512 characters in the outbox, the version guard and the dead letters.

A composite or text key's key text (its parts escaped and joined) outgrew the 64
characters an integer id needed. PostgreSQL widens a varchar without rewriting the
table. SQLite does not enforce a varchar's length, and Django would rebuild the outbox
to change it, which the capture triggers that insert into it forbid: there only the
model state changes.
"""

from typing import Any

from django.db import migrations, models

KEY_TEXT_LENGTH = 512  # migration_plans.core.outbox.KEY_TEXT_LENGTH when this was written
MODELS = ("appliedevent", "deadletter", "outboxevent")


def _key_field(model: Any, length: int) -> models.CharField:
    field = models.CharField(max_length=length)
    field.set_attributes_from_name("aggregate_key")
    field.model = model
    return field


def _alter(apps: Any, schema_editor: Any, old: int, new: int) -> None:
    if schema_editor.connection.vendor == "sqlite":
        return
    for name in MODELS:
        model = apps.get_model("strangler_dualwrite", name)
        schema_editor.alter_field(model, _key_field(model, old), _key_field(model, new))


def widen(apps: Any, schema_editor: Any) -> None:
    _alter(apps, schema_editor, 64, KEY_TEXT_LENGTH)


def narrow(apps: Any, schema_editor: Any) -> None:
    _alter(apps, schema_editor, KEY_TEXT_LENGTH, 64)


class Migration(migrations.Migration):
    dependencies = [
        ("strangler_dualwrite", "0004_statement_capture"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(widen, narrow)],
            state_operations=[
                migrations.AlterField(
                    model_name=name,
                    name="aggregate_key",
                    field=models.CharField(max_length=KEY_TEXT_LENGTH),
                )
                for name in MODELS
            ],
        )
    ]
