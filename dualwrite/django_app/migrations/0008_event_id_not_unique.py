"""The outbox's ``event_id`` loses its unique index.

Event ids are unique by construction ('m-<outbox id>' from the capture triggers, a
UUID from the services) and nothing looks an event up by them; the index made every
captured row and every mark of an event (an update of its status, which is indexed, so
never HOT) write one more index entry. The services' Alembic revision 0005 does the same.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("strangler_dualwrite", "0007_guard_fillfactor")]

    operations = [
        migrations.AlterField(
            model_name="outboxevent",
            name="event_id",
            field=models.CharField(max_length=36),
        ),
    ]
