"""The monolith-side tables; the same names and columns as :mod:`dualwrite.outbox` and
:mod:`dualwrite.schema` (the relay reads and writes them with SQLAlchemy)."""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Now

from migration_plans.core.outbox import KEY_TEXT_LENGTH


class OutboxEvent(models.Model):
    """A captured change waiting for (or done by) the relay."""

    event_id = models.CharField(max_length=36)  # unique by construction: no index
    context = models.CharField(max_length=64)
    aggregate_type = models.CharField(max_length=64)
    aggregate_key = models.CharField(max_length=KEY_TEXT_LENGTH)
    operation = models.CharField(max_length=8)
    payload = models.TextField(null=True)
    origin = models.CharField(max_length=16)
    request_id = models.CharField(max_length=128, null=True)
    status = models.CharField(max_length=16, db_default="pending")
    attempts = models.IntegerField(db_default=0)
    last_error = models.TextField(null=True)
    created_at = models.DateTimeField(db_default=Now())
    applied_at = models.DateTimeField(null=True)

    class Meta:
        db_table = "strangler_outbox"
        indexes = [
            models.Index(fields=["status", "id"], name="ix_strangler_outbox_status_id"),
            models.Index(
                fields=["aggregate_type", "aggregate_key", "id"],
                name="ix_strangler_outbox_aggregate",
            ),
        ]


class AppliedEvent(models.Model):
    """Per row key, the last service event applied here (the relay's version guard)."""

    pk = models.CompositePrimaryKey("context", "aggregate_type", "aggregate_key")
    context = models.CharField(max_length=64)
    aggregate_type = models.CharField(max_length=64)
    aggregate_key = models.CharField(max_length=KEY_TEXT_LENGTH)
    last_event_id = models.BigIntegerField()
    applied_at = models.DateTimeField()

    class Meta:
        db_table = "strangler_applied_event"


class DeadLetter(models.Model):
    """An event that failed ``max_attempts`` times."""

    outbox_id = models.BigIntegerField(unique=True)
    event_id = models.CharField(max_length=36)
    context = models.CharField(max_length=64)
    aggregate_type = models.CharField(max_length=64)
    aggregate_key = models.CharField(max_length=KEY_TEXT_LENGTH)
    operation = models.CharField(max_length=8)
    payload = models.TextField(null=True)
    origin = models.CharField(max_length=16)
    request_id = models.CharField(max_length=128, null=True)
    attempts = models.IntegerField()
    last_error = models.TextField(null=True)
    created_at = models.DateTimeField()
    dead_at = models.DateTimeField()

    class Meta:
        db_table = "strangler_dead_letter"


class CaptureSwitch(models.Model):
    """Capture on or off for one context (read by the triggers)."""

    context = models.CharField(max_length=64, primary_key=True)
    enabled = models.BooleanField()
    updated_at = models.DateTimeField()

    class Meta:
        db_table = "strangler_capture"


class CaptureOrigin(models.Model):
    """SQLite only: the relay marks its own writes here inside its transaction."""

    id = models.IntegerField(primary_key=True)
    origin = models.CharField(max_length=16, null=True)
    request_id = models.CharField(max_length=128, null=True)

    class Meta:
        db_table = "strangler_capture_origin"


class Saga(models.Model):
    """One orchestrated saga: its definition, where it is, and who runs it now.

    ``step`` is the next step to run (``running``) or to compensate (``compensating``).
    ``lease_owner``/``lease_until`` say which process runs it; an expired lease (a crash)
    lets the sweeper resume it. ``dead_from`` keeps the direction a dead-lettered saga
    was going, so ``strangler saga retry`` can resume it.
    """

    kind = models.CharField(max_length=64)
    key = models.CharField(max_length=128, unique=True)
    subject = models.CharField(max_length=128, db_index=True)
    state = models.CharField(max_length=16)
    step = models.IntegerField(default=0)
    step_name = models.CharField(max_length=64, default="")
    attempts = models.IntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True)
    lease_owner = models.CharField(max_length=64, null=True)
    lease_until = models.DateTimeField(null=True)
    payload = models.TextField(default="{}")
    outcome = models.CharField(max_length=64, default="")
    last_error = models.TextField(default="")
    dead_from = models.CharField(max_length=16, default="")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True)

    class Meta:
        db_table = "strangler_saga"
        indexes = [
            models.Index(fields=["state", "next_attempt_at"], name="ix_strangler_saga_due"),
        ]
