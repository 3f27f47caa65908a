"""Fixtures of the shadow tests: the shop upstreams as real uvicorn processes, a Redis store.

``shops`` starts a primary and a candidate (planted differences) once per session
(tests that write use a ``shop`` of their own, so the shared ones stay read-only);
``shop`` starts more on demand (slow ones); ``store`` is a Redis results store under
a unique key prefix, removed after the test, so concurrent runs never collide.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from migration_plans.control.processes import ManagedProcess, free_port, uvicorn_argv
from strangler_proxy.shadow.store import RedisShadowStore

REPO_ROOT = Path(__file__).resolve().parents[2]
MITM_PYTHON = REPO_ROOT / ".venv-mitm" / "bin" / "python"
MITMDUMP = REPO_ROOT / ".venv-mitm" / "bin" / "mitmdump"


@dataclass(frozen=True)
class Shops:
    primary: str
    candidate: str


def start_shop(
    log_dir: Path, variant: str, *, delay: float = 0.0, name: str = ""
) -> tuple[ManagedProcess, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = ManagedProcess.start(
        uvicorn_argv("tests.shadow.shop_app:app", port),
        name=name or f"shop-{variant}",
        health_url=f"{url}/healthz",
        env={"SHOP_VARIANT": variant, "SHOP_DELAY": str(delay)},
        cwd=REPO_ROOT,
        log_dir=log_dir,
    )
    return process, url


@pytest.fixture(scope="session")
def shops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shops]:
    log_dir = tmp_path_factory.mktemp("shop-logs")
    primary, primary_url = start_shop(log_dir, "primary")
    try:
        candidate, candidate_url = start_shop(log_dir, "candidate")
    except BaseException:
        primary.stop()
        raise
    try:
        yield Shops(primary_url, candidate_url)
    finally:
        candidate.stop()
        primary.stop()


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Factory: ``shop("candidate", delay=2.0)`` -> base URL of a fresh shop process."""
    started: list[ManagedProcess] = []

    def start(variant: str, *, delay: float = 0.0) -> str:
        process, url = start_shop(tmp_path / "logs", variant, delay=delay)
        started.append(process)
        return url

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def store(redis_url: str) -> Iterator[RedisShadowStore]:
    """A Redis results store under a prefix no other test (or run) uses."""
    prefix = f"strangler:test:shadow:{uuid.uuid4().hex}"
    shadow_store = RedisShadowStore.from_url(redis_url, prefix=prefix)
    yield shadow_store
    shadow_store.clear()
    shadow_store.client.close()


@pytest.fixture
def mitm_python() -> Path:
    if not MITM_PYTHON.exists():
        pytest.fail(f"{MITM_PYTHON} missing: run `make mitm`", pytrace=False)
    return MITM_PYTHON
