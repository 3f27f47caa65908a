"""A run split across two real Celery worker processes reports what an in-process run reports."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from migration_plans.control.processes import ManagedProcess, wait_until
from reconciler.celery_app import beat_schedule, make_celery
from reconciler.history import last_runs_clean, load_report, recent_runs
from reconciler.runner import ReconcileOptions, plan_segments, reconcile
from reconciler.schema import inspect_pair
from reconciler.segment import SegmentResult
from reconciler.tasks import CeleryExecutor
from tests.reconciler.reconcile_tables import Pair, catalog_product, products

MakePair = Callable[[str], Pair]
OPTIONS = ReconcileOptions(grace_seconds=0.05, max_rechecks=2, levels=(64, 8), segment_size=512)


def _comparable(report: Any) -> list[dict[str, Any]]:
    skip = {"seconds", "notes"}
    return [table.model_dump(exclude=skip) for table in report.tables]


@pytest.mark.redis
@pytest.mark.slow
def test_two_workers_share_a_table_and_agree_with_in_process(
    make_pair: MakePair,
    redis_url: str,
    processes: Callable[..., ManagedProcess],
    tmp_path: Path,
) -> None:
    pair = make_pair("pg")
    pair.seed(5000)
    pair.execute("service", products.delete().where(products.c.id.in_([10, 2600])))
    pair.execute("service", products.update().where(products.c.id == 4000).values(price_cents=3))
    pair.execute("monolith", catalog_product.delete().where(catalog_product.c.id == 4999))

    queue = f"reconcile-test-{uuid.uuid4().hex[:10]}"
    control = f"sqlite:///{tmp_path}/control.db"
    env = {
        "STRANGLER_BROKER_URL": redis_url,
        "STRANGLER_RESULT_BACKEND": redis_url,
        "STRANGLER_RECONCILE_QUEUE": queue,
        "STRANGLER_CONTROL_DB_URL": control,
        "CATALOG_MONOLITH_DATABASE_URL": pair.monolith_url,
        "CATALOG_DATABASE_URL": pair.service_url,
    }
    names = [f"w{n}-{queue}@localhost" for n in (1, 2)]
    for name in names:
        processes(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "reconciler.celery_app",
                "worker",
                "--pool",
                "solo",
                "-Q",
                queue,
                "-n",
                name,
                "--without-gossip",
                "--without-mingle",
                "-l",
                "warning",
            ],
            name=name.split("@")[0],
            env=env,
        )
    app = make_celery(redis_url, redis_url, queue)
    wait_until(
        lambda: len(app.control.ping(destination=names, timeout=0.5) or []) == 2,
        timeout=60,
        what="two Celery workers answering ping",
    )
    executor = CeleryExecutor(app, queue=queue, timeout=120)

    pairs = inspect_pair(pair.mapping.table("products"), pair.monolith, pair.service)
    specs = plan_segments(pairs, (pair.monolith_url, pair.service_url), (1, 5000), OPTIONS)
    done: list[SegmentResult] = []
    results = executor.run(specs, done.append)
    assert len(results) == len(done) == len(specs) == 10
    assert len({r.worker for r in results}) == 2, [r.worker for r in results]

    remote = reconcile(
        pair.mapping, pair.monolith_url, pair.service_url, options=OPTIONS, executor=executor
    )
    local = reconcile(pair.mapping, pair.monolith_url, pair.service_url, options=OPTIONS)
    assert remote.executor == "celery" and local.executor == "local"
    assert _comparable(remote) == _comparable(local)
    assert [d.key for d in local.table("products").divergences] == [10, 2600, 4000, 4999]

    # What beat schedules: the segments fan out as a chord, the callback stores the run.
    app.send_task("reconciler.reconcile_context", args=("catalog",), queue=queue)
    wait_until(lambda: recent_runs("catalog", url=control), timeout=90, what="a stored run")
    stored = load_report(recent_runs("catalog", url=control)[0].run_id, url=control)
    assert stored is not None and stored.executor == "celery"
    assert [d.key for d in stored.table("products").divergences] == [10, 2600, 4000, 4999]
    assert stored.verdict == "divergent" and not last_runs_clean("catalog", 1, url=control)
    assert stored.table("products").watermark_to == {"monolith": 0, "service": 0}  # no outboxes


def test_beat_schedules_each_context_at_its_plan_interval() -> None:
    schedule = beat_schedule()
    assert schedule["reconcile-catalog"]["task"] == "reconciler.reconcile_context"
    assert schedule["reconcile-catalog"]["schedule"] == 300.0
    assert schedule["reconcile-catalog"]["args"] == ("catalog",)
