"""`strangler up` hands each child only the secrets it needs (issue #18): the admin token
and the canary key to proxies, the identity key to whoever signs or verifies it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from migration_plans.control import stack as stack_module
from migration_plans.control.plan_file import read_plans
from migration_plans.control.stack import Stack, StackConfig
from migration_plans.core.settings import TEMPLATES_DIR

ADMIN, IDENTITY, CANARY = "STRANGLER_ADMIN_TOKEN", "STRANGLER_IDENTITY_KEY", "STRANGLER_CANARY_KEY"


class Started:
    """Stands in for a started process: healthy at once."""

    health_url: str | None = None

    def wait_healthy(self, timeout: float) -> None:
        return None


def test_each_child_gets_only_its_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    envs: dict[str, dict[str, str]] = {}

    def start(argv: list[str], *, name: str, env: dict[str, str], **_: Any) -> Started:
        envs[name] = env
        return Started()

    monkeypatch.setattr(stack_module.ManagedProcess, "start", start)
    config = StackConfig.embedded(tmp_path, plans_dir=TEMPLATES_DIR)
    stack = Stack(config)
    stack.start_monolith()
    stack.start_workers()
    stack.start_relay(read_plans(TEMPLATES_DIR)["catalog"])
    stack.start_service(read_plans(TEMPLATES_DIR)["catalog"])
    stack.start_proxy()
    assert {name: sorted(set(env) & {ADMIN, IDENTITY, CANARY}) for name, env in envs.items()} == {
        "monolith": [IDENTITY],
        "relay-worker": [],
        "reconcile-worker": [],
        "beat": [],
        "saga-worker": [IDENTITY],
        "relay-catalog": [],
        "catalog": [IDENTITY],
        "proxy": [ADMIN, CANARY, IDENTITY],
    }
    assert envs["proxy"][CANARY] == config.canary_key == StackConfig.embedded(tmp_path).canary_key
    assert envs["proxy"][ADMIN] == config.admin_token
    with stack.environ():  # the operator's own process (in-process control-plane calls)
        assert os.environ[ADMIN] == config.admin_token
