from django.apps import AppConfig


class LendingConfig(AppConfig):
    name = "tests.library.monolith.lending"
    label = "lending"
    default_auto_field = "django.db.models.BigAutoField"
