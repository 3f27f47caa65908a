"""Fixtures of the `strangler init` tests: Django set up on the example shop's settings."""

from __future__ import annotations

import os

import pytest

from migration_plans.control.init.django_models import setup_django


@pytest.fixture(scope="session")
def django_shop() -> None:
    """The shop's Django app registry (introspection opens no database)."""
    os.environ.setdefault("DEBUG", "true")  # the settings refuse a missing SECRET_KEY otherwise
    setup_django("legacy_monolith.settings")
