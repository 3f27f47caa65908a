"""The generated references (docs/hooks/reference.py) cover what the code offers.

Every `strangler` command and option is in the CLI reference, every environment
variable the packages read is in the environment reference with a description, every
route table and plan field is in its page, every metric in the metrics page. The
generators are called directly: no mkdocs build here (`make docs` does that).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import typer.main

from migration_plans.control.cli import app
from migration_plans.core import replicas
from strangler_proxy.shadow._shedding import ShedSettings
from strangler_proxy.shadow.settings import ShadowSettings

ANY = object()  # a default is found, whatever its value

HOOK = Path(__file__).resolve().parents[2] / "docs" / "hooks" / "reference.py"


def _load_hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_reference_hook", HOOK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ref() -> ModuleType:
    return _load_hook()


@pytest.fixture(scope="module")
def env(ref: ModuleType) -> tuple[dict[str, Any], list[Any]]:
    found: tuple[dict[str, Any], list[Any]] = ref.env_vars()
    return found


def _walk(command: Any, path: str, ctx: Any) -> list[tuple[str, Any]]:
    """The command tree, walked here independently of the generator."""
    found = [(path, command)]
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        if not getattr(sub, "hidden", False):
            found += _walk(
                sub, f"{path} {name}", sub.context_class(sub, parent=ctx, info_name=name)
            )
    return found


def test_every_command_and_option_is_in_the_cli_reference(ref: ModuleType) -> None:
    root = typer.main.get_command(app)
    commands = _walk(root, "strangler", root.context_class(root, info_name="strangler"))
    page = ref.cli_markdown()
    assert len(commands) > 40
    for path, command in commands:
        assert f"{{#{path.replace(' ', '-')}}}" in page, (
            f"{path} has no section in reference/cli.md"
        )
        section = page.split(f"{{#{path.replace(' ', '-')}}}", 1)[1].split("\n#", 1)[0]
        for param in command.params:
            if param.name in {"install_completion", "show_completion"} or param.hidden:
                continue
            shown = param.opts[0] if param.param_type_name == "option" else param.name.upper()
            assert f"`{shown}`" in section, f"{path}: {shown} missing from reference/cli.md"


def test_every_environment_variable_read_has_a_description(
    ref: ModuleType, env: tuple[dict[str, Any], list[Any]]
) -> None:
    found, dynamic = env
    missing = sorted(name for name in found if not ref.describe(name))
    assert not missing, (
        f"environment variables read without a description: {missing}; add each to "
        "DESCRIPTIONS in docs/hooks/reference.py (or give its pydantic Field a description)"
    )
    unnamed = ref.undocumented_reads(dynamic)
    assert not unnamed, (
        f"reads whose variable name the scan cannot know: {unnamed}; map each expression "
        "to its variable in DYNAMIC_READS in docs/hooks/reference.py"
    )
    page = ref.environment_markdown(found)
    for name in found:
        assert f"| `{name}` |" in page


def test_the_scan_finds_each_way_the_code_reads_the_environment(
    env: tuple[dict[str, Any], list[Any]],
) -> None:
    found, _ = env
    expected_defaults: dict[str, object] = {
        "STRANGLER_PLANS_DIR": None,  # a constant's name, and CLI options' envvar=
        # `environ.get(NAME) or DEFAULT`
        "STRANGLER_REPLICA_SILENT_AFTER": str(replicas.DEFAULT_SILENT_AFTER_S),
        # f"STRANGLER_SAGA_{name}" in a nested helper; a dataclass field default
        "STRANGLER_SAGA_MAX_ATTEMPTS": ANY,
        "STRANGLER_SHADOW_QUEUE": str(ShadowSettings.queue_size),
        # that helper passed to another function and called there in a loop
        "STRANGLER_SHADOW_LOAD_HIGH": str(ShedSettings().load_high),
        "STRANGLER_RELAY_MAX_ATTEMPTS": ANY,  # context_env(context, NAME, default)
        "<CONTEXT>_RELAY_MAX_ATTEMPTS": ANY,
        "<CONTEXT>_DATABASE_URL": None,  # the services' pydantic settings
        "<CONTEXT>_IDENTITY_KEY": None,
        "STRANGLER_<CONTEXT>_PORT": None,  # an f-string of a parameter
        "STRANGLER_PORT_USER": None,  # a loop over a tuple of pairs
        "MONOLITH_PAYMENTS_FAIL": "False",  # the monolith's env_bool, default from its signature
        "STRANGLER_PORT_HOLD_SECONDS": ANY,  # env_number
        "STRANGLER_IDENTITY_KEY": None,  # route table's auth.identity_key_env (DYNAMIC_READS)
        "DJANGO_SETTINGS_MODULE": "'legacy_monolith.settings'",  # os.environ.setdefault
    }
    for name, default in expected_defaults.items():
        assert name in found, f"{name} not found by the scan"
        if default is ANY:
            assert any(found[name].defaults), (name, "no default found")
        elif default is not None:
            assert default in found[name].defaults, (name, found[name].defaults)
    assert "COLUMNS" not in found  # a child process's environment being filled is no read


def test_a_new_variable_without_a_description_is_caught(ref: ModuleType, tmp_path: Path) -> None:
    package = tmp_path / "newpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "feature.py").write_text(
        "import os\n\nNAME = 'STRANGLER_BRAND_NEW'\n\n\n"
        "def enabled() -> bool:\n    return os.environ.get(NAME, 'off') == 'on'\n\n\n"
        "def other(environ: dict[str, str]) -> str:\n"
        "    return environ[f\"STRANGLER_{'X'}_Y\"] + environ[attribute.name]\n"
    )
    found, dynamic = ref.env_vars(tmp_path, ["newpkg"], cli=False)
    assert found["STRANGLER_BRAND_NEW"].defaults == {"'off'"}
    assert "STRANGLER_X_Y" in found
    assert not ref.describe("STRANGLER_BRAND_NEW")
    assert [read.expression for read in ref.undocumented_reads(dynamic)] == ["attribute.name"]


def test_route_table_and_plan_pages_list_every_field(ref: ModuleType) -> None:
    for schema, page in (
        (ref.route_table_schema(), ref.route_table_markdown()),
        (ref.plan_schema(), ref.plan_markdown()),
    ):
        objects = [schema, *schema.get("$defs", {}).values()]
        for obj in objects:
            for field in obj.get("properties", {}):
                assert f"| `{field}` |" in page, f"{field} missing"
    assert "| `upstreams` |" in ref.route_table_markdown()
    assert "| `gates` |" in ref.plan_markdown()


def test_metrics_page_lists_every_process_metric(ref: ModuleType) -> None:
    found = ref.metrics()
    names = {metric.name for metric in found}
    for expected in (
        "strangler_proxy_requests_total",
        "strangler_proxy_request_duration_seconds",
        "strangler_shadow_outcomes_total",
        "strangler_dualwrite_events_total",
        "strangler_reconcile_divergent_rows",
        "monolith_http_requests_total",
        "strangler_service_phase",
    ):
        assert expected in names
    page = ref.metrics_markdown(found)
    assert all(f"`{name}`" in page for name in names)
