"""Django's command line: ``python -m tests.library.monolith.manage <command>``."""

import os
import sys


def main(argv: list[str] | None = None) -> None:
    """Run a management command (``migrate``, ``seed_library``, ...)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.library.monolith.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(argv if argv is not None else sys.argv)


if __name__ == "__main__":
    main()
