"""The phase-replay pytest plugin (entry point ``pytest11``): fixtures only.

Installing strangler loads this module in every pytest run of the project, so it
imports the topology and the database helpers only when a fixture runs; nothing
starts unless a test asks for one of these fixtures.

- ``replay_topology`` (session): one started :class:`~migration_plans.testing.Topology`
  on PostgreSQL + a private Redis, or on SQLite with ``STRANGLER_REPLAY_BACKEND=embedded``,
  with ``replay_replicas`` (default 2) proxies and processes per service.
- ``phase_replay``: that topology with every context in ``shared`` and no fault active,
  before and after the test.
- ``replay_workload``: the project's workload on it, stopped after the test.

The project plugs in through fixtures it overrides in its ``conftest.py``:

- ``replay_project``: its plans folder and monolith (a
  :class:`~migration_plans.testing.topology.ReplayProject`; default: the example shop);
- ``replay_workload_factory`` (required for ``replay_workload``): ``Topology -> Workload``;
- ``replay_seed``: fills the migrated monolith before the processes start;
- ``replay_login``: logs a client in, returning the headers every client sends;
- ``replay_replicas``: proxies and processes per service (default 2);
- ``replay_database``: ``label -> URL`` of a new database (default: ``STRANGLER_PG_URL``).

A project of its own, in its ``conftest.py``::

    @pytest.fixture(scope="session")
    def replay_project() -> ReplayProject:
        return ReplayProject(
            plans=HERE / "plans",                              # its contexts
            monolith_settings="library.monolith.settings",     # its Django project
            project_path=(HERE.parent,),                       # where those import from
        )

    @pytest.fixture(scope="session")
    def replay_seed() -> Seed:
        return lambda stack: stack.run_cli("monolith", "manage", "loaddata", "library.json")
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

if TYPE_CHECKING:
    from migration_plans.testing.broker import PrivateRedis
    from migration_plans.testing.topology import (
        DatabaseFactory,
        Login,
        ReplayProject,
        Seed,
        Topology,
    )
    from migration_plans.testing.workload import Workload

WorkloadFactory = Callable[["Topology"], "Workload"]


def _unavailable(reason: str) -> NoReturn:
    """Skip locally; under ``CI=true`` a missing server fails the run."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: a missing service fails the run)", pytrace=False)
    pytest.skip(reason)


def _embedded() -> bool:
    return os.environ.get("STRANGLER_REPLAY_BACKEND", "postgres").lower() == "embedded"


@pytest.fixture(scope="session")
def replay_database() -> Iterator[DatabaseFactory]:
    """Factory ``label -> URL`` of a new PostgreSQL database (``STRANGLER_PG_URL``), dropped
    at the end of the session. Override it to create databases elsewhere."""
    # lazy: this plugin is imported by every pytest run (pytest11); load psycopg on use
    from migration_plans.testing import databases

    admin = databases.pg_admin_url()
    try:
        databases.check_server(admin)
    except databases.DatabaseUnavailable as exc:
        _unavailable(str(exc))
    created: list[str] = []

    def make(label: str) -> str:
        name = databases.unique_name(f"strangler_replay_{label}")
        created.append(name)
        return databases.create_database(admin, name)

    yield make
    for name in created:
        databases.drop_database(admin, name)


@pytest.fixture(scope="session")
def replay_project() -> ReplayProject:
    """The plans and the monolith the topology runs; override it. Default: the example shop
    (the shipped plan templates, ``legacy_monolith``)."""
    # lazy: this plugin is imported by every pytest run (pytest11); load the stack on use
    from migration_plans.testing.topology import ReplayProject

    return ReplayProject()


@pytest.fixture(scope="session")
def replay_seed() -> Seed | None:
    """How the monolith is seeded (``Stack -> None``); override it. Default: not at all."""
    return None


@pytest.fixture(scope="session")
def replay_login() -> Login | None:
    """How a client logs in (``httpx.Client -> headers``); override it. Default: anonymous."""
    return None


@pytest.fixture(scope="session")
def replay_replicas() -> int:
    """Proxies and processes per service the topology runs (override in a conftest)."""
    return 2


@pytest.fixture(scope="session")
def replay_workload_factory() -> WorkloadFactory:
    """``Topology -> Workload``: the project's traffic. Override it in the project's conftest."""
    pytest.fail(
        "replay_workload needs a workload: override the replay_workload_factory fixture "
        "(Topology -> Workload, see migration_plans.testing.workload) in your conftest.py",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def replay_topology(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    replay_project: ReplayProject,
    replay_seed: Seed | None,
    replay_login: Login | None,
    replay_replicas: int,
) -> Iterator[Topology]:
    """One started topology for the session (PostgreSQL + private Redis by default)."""
    yield from started_topology(
        request,
        tmp_path_factory.mktemp("phase-replay"),
        replay_project,
        seed=replay_seed,
        login=replay_login,
        replicas=replay_replicas,
    )


def started_topology(
    request: pytest.FixtureRequest,
    var_dir: Path,
    project: ReplayProject,
    *,
    seed: Seed | None,
    login: Login | None,
    replicas: int,
) -> Iterator[Topology]:
    """The body of ``replay_topology``: yields a started topology, stops it after.

    For a project that needs a topology of another scope (say, one per package when two
    projects share a test session: ``replay_topology`` is built once per session)::

        @pytest.fixture(scope="package")
        def replay_topology(request, tmp_path_factory, replay_project, replay_seed,
                            replay_login, replay_replicas):
            yield from started_topology(request, tmp_path_factory.mktemp("mine"),
                                        replay_project, seed=replay_seed,
                                        login=replay_login, replicas=replay_replicas)
    """
    # lazy: this plugin is imported by every pytest run (pytest11); load the stack on use
    from migration_plans.testing.topology import Topology

    broker: PrivateRedis | None = None
    if _embedded():
        topology = Topology.embedded(var_dir, replicas=replicas, project=project)
    else:
        database: DatabaseFactory = request.getfixturevalue("replay_database")
        broker = _private_redis(var_dir)
        broker.start()
        topology = Topology.postgres(var_dir, database, broker, replicas=replicas, project=project)
    try:
        yield topology.start(seed=seed, login=login)
    finally:
        topology.stop()
        if broker is not None:
            broker.stop()


def _private_redis(var_dir: Path) -> PrivateRedis:
    # lazy: this plugin is imported by every pytest run (pytest11); load redis on use
    from migration_plans.testing.broker import PrivateRedis

    try:
        return PrivateRedis(var_dir / "log")
    except FileNotFoundError as exc:
        _unavailable(str(exc))


@pytest.fixture
def phase_replay(replay_topology: Topology) -> Iterator[Topology]:
    """The session's topology with every context in ``shared`` and no fault active."""
    replay_topology.reset()
    yield replay_topology
    replay_topology.reset()


@pytest.fixture
def replay_workload(
    phase_replay: Topology, replay_workload_factory: WorkloadFactory
) -> Iterator[Workload]:
    """The project's workload on the topology, stopped when the test ends."""
    workload = replay_workload_factory(phase_replay)
    yield workload
    workload.stop()
