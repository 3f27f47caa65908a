"""The outbox's ``event_id`` loses its unique index on PostgreSQL.

Event ids are unique by construction ('m-<outbox id>' from the capture triggers, a
UUID from the services) and nothing looks an event up by them; the index made every
captured row and every mark of an event (an update of its status, which is indexed, so
never HOT) write one more index entry. The services' Alembic revision 0005 does the same.
SQLite keeps it: Django would rebuild the outbox to drop it, which the capture triggers
that insert into it forbid (as in 0005), and at SQLite's volumes it costs little.
"""

from typing import Any

from django.db import migrations, models


def _event_id(model: Any, *, unique: bool) -> models.CharField:
    field = models.CharField(max_length=36, unique=unique)
    field.set_attributes_from_name("event_id")
    field.model = model
    return field


def _alter(apps: Any, schema_editor: Any, *, unique: bool) -> None:
    if schema_editor.connection.vendor == "sqlite":
        return
    model = apps.get_model("strangler_dualwrite", "outboxevent")
    schema_editor.alter_field(
        model, _event_id(model, unique=not unique), _event_id(model, unique=unique)
    )


def drop_unique(apps: Any, schema_editor: Any) -> None:
    _alter(apps, schema_editor, unique=False)


def restore_unique(apps: Any, schema_editor: Any) -> None:
    _alter(apps, schema_editor, unique=True)


class Migration(migrations.Migration):
    dependencies = [("strangler_dualwrite", "0007_guard_fillfactor")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(drop_unique, restore_unique)],
            state_operations=[
                migrations.AlterField(
                    model_name="outboxevent",
                    name="event_id",
                    field=models.CharField(max_length=36),
                )
            ],
        )
    ]
