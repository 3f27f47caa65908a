from django.apps import AppConfig


class DualwriteConfig(AppConfig):
    """Monolith-side outbox and change capture (tables ``strangler_*``)."""

    name = "dualwrite.django_app"
    label = "strangler_dualwrite"
    verbose_name = "Dual-write capture"
    default_auto_field = "django.db.models.BigAutoField"
