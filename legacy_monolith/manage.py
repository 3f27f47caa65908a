"""Django's command line for the monolith: ``python -m legacy_monolith.manage <command>``."""

import os
import sys


def main(argv: list[str] | None = None) -> None:
    """Run a Django management command (``migrate``, ``seed``, ``createsuperuser``, ...)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "legacy_monolith.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(argv if argv is not None else sys.argv)


if __name__ == "__main__":
    main()
