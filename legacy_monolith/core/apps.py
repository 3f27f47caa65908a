from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Plumbing shared by every app (no models)."""

    name = "legacy_monolith.core"
    label = "core"
