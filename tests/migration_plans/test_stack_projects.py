"""The stack and the phase-replay topology take any project: services are the contexts of
the plans, the monolith is the Django project of a settings module (its Celery app and
health path, or none), and the project's root goes on the children's PYTHONPATH.
`strangler monolith migrate|serve|manage` run a Django project outside the toolkit."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from migration_plans.control import stack as stack_module
from migration_plans.control.processes import ManagedProcess, free_port
from migration_plans.control.stack import SAGA_WORKER, Stack, StackConfig
from migration_plans.core.settings import PLANS_DIR_ENV, TEMPLATES_DIR
from migration_plans.testing.topology import ReplayProject, Topology

PARCELS = """\
context: parcels
service: parcels
service_module: parcel_post_services.parcels
upstream: parcels
{port}
tables:
  - name: parcels
    monolith_table: post_parcel
    service_table: parcels
    key: {{monolith: id, service: id}}
    fields:
      - {{monolith: weight, service: weight}}
"""


def plans_folder(folder: Path, *, port: int | None = None, shop: bool = True) -> Path:
    """A plans folder with the ``parcels`` plan (and the shop's catalog plan)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "parcels.yaml").write_text(PARCELS.format(port=f"port: {port}" if port else ""))
    if shop:
        shutil.copyfile(TEMPLATES_DIR / "catalog.yaml", folder / "catalog.yaml")
    return folder


# -- the services are the contexts of the plans -------------------------------------------


def test_services_are_the_plans_contexts_on_their_ports(tmp_path: Path) -> None:
    plans = plans_folder(tmp_path / "plans", port=9120)
    config = StackConfig.embedded(tmp_path / "var", plans_dir=plans)
    assert config.service_ports == {"catalog": 8101, "parcels": 9120}
    assert set(config.service_dbs) == {"catalog", "parcels"}
    assert config.service_dbs["parcels"].endswith("/var/parcels.sqlite3")
    assert config.environment()["PARCELS_SERVICE_URL"] == "http://127.0.0.1:9120"


def test_a_plan_without_a_port_gets_the_derived_one(tmp_path: Path) -> None:
    from migration_plans.core.settings import derived_port

    plans = plans_folder(tmp_path / "plans", shop=False)
    config = StackConfig.embedded(tmp_path / "var", plans_dir=plans)
    assert config.service_ports == {"parcels": derived_port("parcels")}


def test_no_plans_no_services(tmp_path: Path) -> None:
    config = StackConfig.embedded(tmp_path / "var", plans_dir=tmp_path / "missing")
    assert config.service_ports == {} and config.service_dbs == {}


def test_overrides_are_merged_over_the_plans(tmp_path: Path) -> None:
    plans = plans_folder(tmp_path / "plans", port=9120)
    config = StackConfig.embedded(
        tmp_path / "var",
        plans_dir=plans,
        service_ports={"catalog": 9500},
        service_dbs={"parcels": "postgresql://db/parcels"},
    )
    assert config.service_ports == {"catalog": 9500, "parcels": 9120}
    assert config.service_dbs["parcels"] == "postgresql://db/parcels"
    assert config.service_dbs["catalog"].endswith("catalog.sqlite3")


def test_two_listeners_on_one_port_are_refused_naming_both(tmp_path: Path) -> None:
    plans = plans_folder(tmp_path / "plans", port=8111)  # catalog's second replica
    with pytest.raises(
        ValidationError, match="catalog-2 and parcels would both listen on port 8111"
    ):
        StackConfig.embedded(tmp_path / "var", plans_dir=plans, replicas=2)


# -- the monolith and the project path from the environment ----------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (
        "STRANGLER_MONOLITH_SETTINGS",
        "STRANGLER_MONOLITH_CELERY_APP",
        "STRANGLER_MONOLITH_HEALTH_PATH",
        "STRANGLER_PROJECT_PATH",
        "STRANGLER_PARCELS_PORT",
        "STRANGLER_CATALOG_PORT",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_shop_is_the_default_monolith(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv(PLANS_DIR_ENV, str(plans_folder(tmp_path / "plans")))
    config = StackConfig.from_env(tmp_path / "var")
    assert config.monolith_settings == "legacy_monolith.settings"
    assert config.saga_app == "legacy_monolith.celery_app"
    assert config.monolith_health_url == f"{config.monolith_url}/healthz"
    assert config.project_path == ()
    assert config.environment()["STRANGLER_MONOLITH_SETTINGS"] == "legacy_monolith.settings"


def test_a_monolith_of_your_own_from_the_environment(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv(PLANS_DIR_ENV, str(plans_folder(tmp_path / "plans")))
    clean_env.setenv("STRANGLER_MONOLITH_SETTINGS", "parcel_post.settings")
    clean_env.setenv("STRANGLER_MONOLITH_HEALTH_PATH", "/up")
    clean_env.setenv("STRANGLER_PROJECT_PATH", os.pathsep.join(["project", str(tmp_path)]))
    clean_env.setenv("STRANGLER_PARCELS_PORT", "9300")
    clean_env.setenv("PYTHONPATH", "/inherited")
    config = StackConfig.from_env(tmp_path / "var")
    assert config.monolith_settings == "parcel_post.settings"
    assert config.saga_app == ""  # the shop's Celery app is not another project's
    assert config.monolith_health_url.endswith("/up")
    assert config.service_ports == {"catalog": 8101, "parcels": 9300}
    env = config.environment()
    assert env["PYTHONPATH"].split(os.pathsep) == [
        str(Path("project").resolve()),
        str(tmp_path),
        "/inherited",
    ]
    clean_env.setenv("STRANGLER_MONOLITH_CELERY_APP", "parcel_post.celery_app")
    assert StackConfig.from_env(tmp_path / "var").saga_app == "parcel_post.celery_app"


def test_an_empty_celery_app_runs_no_saga_worker(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv(PLANS_DIR_ENV, str(plans_folder(tmp_path / "plans")))
    clean_env.setenv("STRANGLER_MONOLITH_CELERY_APP", "")
    assert StackConfig.from_env(tmp_path / "var").saga_app == ""


class Started:
    """Stands in for a started process: healthy at once."""

    health_url: str | None = None

    def wait_healthy(self, timeout: float) -> None:
        return None


def started_processes(
    monkeypatch: pytest.MonkeyPatch, config: StackConfig
) -> dict[str, dict[str, Any]]:
    """Start the monolith and the workers of ``config`` with processes that are not run."""
    seen: dict[str, dict[str, Any]] = {}

    def start(argv: list[str], *, name: str, env: dict[str, str], **_: Any) -> Started:
        seen[name] = {"argv": argv, "env": env}
        return Started()

    monkeypatch.setattr(stack_module.ManagedProcess, "start", start)
    stack = Stack(config)
    stack.start_monolith()
    stack.start_workers()
    assert stack.processes["monolith"].health_url == config.monolith_health_url
    return seen


def test_the_stack_starts_the_configured_monolith(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plans = plans_folder(tmp_path / "plans")
    own = StackConfig.embedded(
        tmp_path / "var",
        plans_dir=plans,
        monolith_settings="parcel_post.settings",
        monolith_health_path="/up",
        project_path=(tmp_path,),
    )
    seen = started_processes(monkeypatch, own)
    assert SAGA_WORKER not in seen
    assert seen["monolith"]["env"]["STRANGLER_MONOLITH_SETTINGS"] == "parcel_post.settings"
    assert seen["monolith"]["env"]["PYTHONPATH"].split(os.pathsep)[0] == str(tmp_path)

    shop = StackConfig.embedded(tmp_path / "shop", plans_dir=plans)
    seen = started_processes(monkeypatch, shop)
    assert "legacy_monolith.celery_app" in seen[SAGA_WORKER]["argv"]
    assert seen[SAGA_WORKER]["env"]["DJANGO_SETTINGS_MODULE"] == "legacy_monolith.settings"


# -- the phase-replay topology of a project ---------------------------------------------------


def test_a_replay_project_brings_its_plans_and_monolith(tmp_path: Path) -> None:
    source = plans_folder(tmp_path / "project-plans", shop=False)
    project = ReplayProject(
        plans=source,
        monolith_settings="parcel_post.settings",
        monolith_health_path="/up",
        project_path=(tmp_path,),
        env={"PARCEL_POST_FLAG": "1"},
    )
    topology = Topology.embedded(tmp_path / "replay", replicas=2, project=project)
    config = topology.config
    assert sorted(p.name for p in config.plans_dir.glob("*.yaml")) == ["parcels.yaml"]
    assert set(config.service_ports) == set(config.service_dbs) == {"parcels"}
    assert config.monolith_settings == "parcel_post.settings" and config.saga_app == ""
    assert config.project_path == (tmp_path,)
    ports = list(config.ports().values())
    assert len(ports) == len(set(ports)) == 5  # monolith, 2 proxies, 2 parcels replicas
    assert topology.stack.env()["PARCEL_POST_FLAG"] == "1"


def test_the_default_replay_project_is_the_shop(tmp_path: Path) -> None:
    topology = Topology.embedded(tmp_path / "replay")
    assert set(topology.config.service_ports) == {"catalog", "inventory", "payments"}
    assert topology.config.saga_app == "legacy_monolith.celery_app"


def test_a_replay_project_without_plans_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no \*\.yaml plan in"):
        ReplayProject(plans=tmp_path).copy_plans(tmp_path / "copy")


# -- `strangler monolith` runs a Django project of your own -----------------------------------

DJANGO_PROJECT = {
    "parcel_post/__init__.py": "",
    "parcel_post/settings.py": """
        import os

        SECRET_KEY = "test-only"
        DEBUG = False
        ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
        INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth"]
        ROOT_URLCONF = "parcel_post.urls"
        WSGI_APPLICATION = "parcel_post.wsgi.application"
        DATABASES = {
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": os.environ["PARCEL_POST_DB"],
            }
        }
        USE_TZ = True
    """,
    "parcel_post/urls.py": """
        from django.contrib.auth.models import User
        from django.http import JsonResponse
        from django.urls import path


        def up(request):
            return JsonResponse({"monolith": "parcel_post", "users": User.objects.count()})


        urlpatterns = [path("up", up)]
    """,
    "parcel_post/wsgi.py": """
        from django.core.wsgi import get_wsgi_application

        application = get_wsgi_application()
    """,
}

STRANGLER = [sys.executable, "-m", "migration_plans.control.cli"]


@pytest.fixture
def django_project(tmp_path: Path) -> dict[str, str]:
    """A Django project outside the toolkit; the environment that names it."""
    root = tmp_path / "project"
    for name, text in DJANGO_PROJECT.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    inherited = os.environ.get("PYTHONPATH", "")
    return {
        "STRANGLER_MONOLITH_SETTINGS": "parcel_post.settings",
        "PARCEL_POST_DB": str(tmp_path / "parcel_post.sqlite3"),
        "PYTHONPATH": os.pathsep.join([str(root), *([inherited] if inherited else [])]),
        "SECRET_KEY": "",  # the shop's check must not apply to another project
    }


def run_strangler(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*STRANGLER, *args],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.mark.parametrize("server", ["gunicorn", "uvicorn"])
def test_migrate_manage_and_serve_a_django_project_of_your_own(
    django_project: dict[str, str],
    tmp_path: Path,
    processes: Callable[..., ManagedProcess],
    server: str,
) -> None:
    done = run_strangler(django_project, tmp_path, "monolith", "migrate")
    assert done.returncode == 0, done.stderr
    done = run_strangler(
        django_project,
        tmp_path,
        "monolith",
        "manage",
        "shell",
        "-c",
        "from django.contrib.auth.models import User; User.objects.create(username='ann')",
    )
    assert done.returncode == 0, done.stderr
    port = free_port()
    url = f"http://127.0.0.1:{port}/up"
    argv = [*STRANGLER, "monolith", "serve", "--port", str(port), "--server", server]
    processes(argv, name=f"parcel-post-{server}", env=django_project, health_url=url)
    assert httpx.get(url, trust_env=False).json() == {"monolith": "parcel_post", "users": 1}


def test_a_settings_module_that_does_not_import_fails_naming_it(
    django_project: dict[str, str], tmp_path: Path
) -> None:
    env = {**django_project, "STRANGLER_MONOLITH_SETTINGS": "parcel_post.nowhere"}
    done = run_strangler(env, tmp_path, "monolith", "migrate")
    assert done.returncode != 0
    assert "parcel_post.nowhere" in done.stderr


def test_the_shop_still_needs_its_secret_key(tmp_path: Path) -> None:
    env = {"STRANGLER_MONOLITH_SETTINGS": "", "DJANGO_SETTINGS_MODULE": "", "SECRET_KEY": ""}
    done = run_strangler({**env, "DEBUG": "false"}, tmp_path, "monolith", "migrate")
    assert done.returncode == 2 and "SECRET_KEY is not set" in done.stderr
