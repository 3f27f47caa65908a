"""The `strangler` command line: one Typer app that mounts every package's commands.

The proxy's commands get the control plane's parts through their seam
(:class:`strangler_proxy.cli.Extensions`): the migration plans' phase rules for
``--plans`` and the migration dashboard, mounted as ``{admin prefix}dashboard``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dualwrite.cli import app as dualwrite_app
from extracted_services.cli import app as service_app
from legacy_monolith.cli import app as monolith_app
from migration_plans.control.contract.cli import app as contract_app
from migration_plans.control.init.cli import init as init_command
from migration_plans.control.plan_cli import app as plan_app
from migration_plans.control.saga_cli import app as saga_app
from reconciler.cli import app as reconcile_app
from strangler_proxy.cli import Extensions, build_cli
from strangler_proxy.shadow.cli import shadow_app

if TYPE_CHECKING:
    from strangler_proxy.introspection import ASGIApp, ProxyView
    from strangler_proxy.routetable import PhaseRules


def plan_phase_rules(plans: Path) -> PhaseRules:
    """The route table's phase rules from a plans folder, re-read at every (re)load."""
    # lazy: plan models load only when a command reads --plans (CLI start-up time)
    from migration_plans.control.phase_rules import PlansOnDisk

    return PlansOnDisk(plans)


def dashboard(view: ProxyView) -> ASGIApp:
    """The migration dashboard of the proxy behind ``view``."""
    # lazy: the dashboard imports every store's client; only `proxy serve` builds it
    from migration_plans.control.dashboard.app import mount

    return mount(view)


CONTROL_PLANE = Extensions(phase_rules=plan_phase_rules, admin_mounts={"dashboard": dashboard})
proxy_app, routes_app = build_cli(CONTROL_PLANE)

app = typer.Typer(
    no_args_is_help=True,
    help="strangler: migrate a Django monolith to services one bounded context at a time.",
)
app.add_typer(monolith_app, name="monolith")
app.add_typer(proxy_app, name="proxy")
app.add_typer(routes_app, name="routes")
app.add_typer(shadow_app, name="shadow")
app.add_typer(service_app, name="service")
app.add_typer(dualwrite_app, name="dualwrite")
app.add_typer(reconcile_app, name="reconcile")
app.add_typer(plan_app, name="plan")
app.add_typer(saga_app, name="saga")
app.add_typer(contract_app, name="contract")
app.command("init")(init_command)


@app.command()
def demo() -> None:
    """Run the migration story end to end on the embedded default (SQLite, no servers)."""
    # lazy: the demo imports every package (CLI start-up time)
    from migration_plans.control.demo import run_demo

    raise typer.Exit(run_demo())


@app.command()
def up(
    var_dir: Annotated[Path, typer.Option(help="Folder for databases, logs, route table.")] = Path(
        "var/stack"
    ),
    replicas: Annotated[
        int,
        typer.Option(
            min=1,
            max=8,
            help="Proxies and processes per service to run (replica i listens on the base "
            "port + 10 x i); the route table spreads each service over its replicas.",
        ),
    ] = 1,
) -> None:
    """Start the whole stack locally (embedded default, or the URLs in the environment).

    The services are the contexts of the plans folder (STRANGLER_PLANS_DIR); the monolith
    is the Django project of STRANGLER_MONOLITH_SETTINGS (default: the example shop), and
    STRANGLER_PROJECT_PATH goes on every process's PYTHONPATH. Every process follows the
    published phase: `strangler plan advance` cuts a context over while the stack runs,
    without restarting anything.
    """
    # lazy: the stack imports every package (CLI start-up time)
    from pydantic import ValidationError

    from migration_plans.control.stack import StackConfig, run_up
    from migration_plans.core.settings import BadSetting
    from migration_plans.core.yamlfile import ConfigError

    try:
        config = StackConfig.from_env(var_dir)
        config = StackConfig.model_validate({**config.model_dump(), "replicas": replicas})
    except (ConfigError, BadSetting, ValidationError, ValueError) as exc:
        typer.echo(f"strangler up: {exc}", err=True)
        raise typer.Exit(2) from exc
    raise typer.Exit(run_up(config, out=sys.stdout))


def main() -> None:
    """Console-script entry point: ``STRANGLER_PROJECT_PATH`` goes on the import path first,
    so every command (and the servers it starts) imports the project's own packages."""
    from migration_plans.core.settings import use_project_path

    use_project_path()
    app()


if __name__ == "__main__":
    main()
