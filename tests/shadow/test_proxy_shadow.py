"""Live shadowing through the real proxy process: mirrored, compared, recorded; never in the way."""

from __future__ import annotations

import sys
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from migration_plans.control.processes import ManagedProcess, free_port, wait_until
from strangler_proxy.shadow.engine import outcome_totals
from strangler_proxy.shadow.store import RedisShadowStore

from .conftest import REPO_ROOT, Shops

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

ADMIN_TOKEN = "shadow-tests-admin-token-0123456789"

TABLE = """
upstreams:
  monolith: {{url: "{primary}"}}
  candidate: {{url: "{candidate}"}}
contexts:
  catalog:
    routes:
      - name: product-detail
        path: /api/v1/products/{{id:int}}/
        methods: [GET]
        upstream: monolith
        shadow: {{upstream: candidate}}
      - name: category-list
        path: /api/v1/categories/
        methods: [GET]
        upstream: monolith
        shadow: {{upstream: candidate, compare: {{ignore_order: true}}}}
      - name: product-list
        path: /api/v1/products/
        methods: [GET]
        upstream: monolith
        shadow: {{upstream: candidate, compare: {{ignore_paths: ["root['served_at']"]}}}}
      - name: product-create
        path: /api/v1/products/
        methods: [POST]
        upstream: monolith
"""


def start_proxy(
    tmp_path: Path, primary: str, candidate: str, env: dict[str, str]
) -> tuple[ManagedProcess, str]:
    routes = tmp_path / f"routes-{uuid.uuid4().hex[:8]}.yaml"
    routes.write_text(TABLE.format(primary=primary, candidate=candidate))
    port = free_port()
    argv = [sys.executable, "-m", "strangler_proxy", "serve", "--routes", str(routes)]
    argv += ["--port", str(port), "--no-access-log"]
    url = f"http://127.0.0.1:{port}"
    process = ManagedProcess.start(
        argv,
        name="proxy",
        health_url=url + "/_strangler/health",
        env={"STRANGLER_ADMIN_TOKEN": ADMIN_TOKEN, **env},
        cwd=REPO_ROOT,
        log_dir=tmp_path / "logs",
    )
    return process, url


def mirror_counters(proxy: str) -> dict[str, float]:
    request = urllib.request.Request(
        proxy + "/_strangler/metrics",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return outcome_totals(response.read().decode())


@pytest.fixture
def proxies(tmp_path: Path) -> Iterator[Callable[..., str]]:
    started: list[ManagedProcess] = []

    def start(primary: str, candidate: str, **env: str) -> str:
        process, url = start_proxy(tmp_path, primary, candidate, env)
        started.append(process)
        return url

    yield start
    for process in started:
        process.stop()


def test_client_loop_through_the_proxy_finds_the_planted_differences(
    shops: Shops, store: RedisShadowStore, redis_url: str, proxies: Callable[..., str]
) -> None:
    proxy = proxies(
        shops.primary,
        shops.candidate,
        STRANGLER_SHADOW_REDIS_URL=redis_url,
        STRANGLER_SHADOW_PREFIX=store.prefix,
    )
    paths = [
        "/api/v1/products/1/",
        "/api/v1/products/2/",
        "/api/v1/categories/",
        "/api/v1/products/",
    ]
    with httpx.Client(base_url=proxy) as client:
        for _ in range(5):
            for path in paths:
                response = client.get(path, headers={"Authorization": "Token s3cret"})
                assert response.status_code == 200
                if path.endswith("/1/"):
                    assert response.json()["name"] == "Lamp"  # always the primary's answer
            created = client.post("/api/v1/products/", json={"name": "x"})
            assert created.status_code == 201

    wait_until(
        lambda: store.counts(context="catalog").compared == 20,
        timeout=30,
        what="20 comparisons",
    )
    detail = store.counts(route="product-detail")
    assert (detail.compared, detail.mismatched) == (10, 10)
    assert dict(store.top_fields("product-detail")) == {
        "root['name']": 10,
        "root['title']": 10,
    }
    assert store.counts(route="category-list").matched == 5  # reordered, order ignored
    assert store.counts(route="product-list").matched == 5  # timestamp ignored by the rules
    assert store.match_rate(context="catalog") == (0.5, 20)
    assert "s3cret" not in str(store.samples("product-detail"))
    # writes are not mirrored: the route has no shadow, and a shadow on it would need side_effect_free
    assert httpx.get(shops.candidate + "/_writes").json()["count"] == 0
    # the sidecar's counts reach the proxy's own metrics
    wait_until(
        lambda: mirror_counters(proxy).get("mismatched") == 10,
        timeout=30,
        what="10 mismatches in the proxy's metrics",
    )


def test_a_slow_shadow_never_holds_up_the_primary_it_sheds_copies(
    shops: Shops, shop: Callable[..., str], proxies: Callable[..., str]
) -> None:
    slow = shop("candidate", delay=5.0)
    proxy = proxies(
        shops.primary,
        slow,
        STRANGLER_SHADOW_QUEUE="2",
        STRANGLER_SHADOW_CONCURRENCY="1",
    )
    with httpx.Client(base_url=proxy, timeout=10) as client:
        for _ in range(20):
            response = client.get("/api/v1/products/1/")
            assert (response.status_code, response.json()["name"]) == (200, "Lamp")
    # one copy in flight, two queued: the rest were dropped, none waited for
    wait_until(
        lambda: sum(mirror_counters(proxy).get(k, 0) for k in ("queued", "dropped")) == 20,
        timeout=30,
        what="20 copies queued or dropped",
    )
    counters = mirror_counters(proxy)
    assert counters["queued"] <= 5 and counters["dropped"] >= 15


def test_a_dead_shadow_is_counted_and_the_primary_answers(
    shops: Shops, proxies: Callable[..., str]
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    proxy = proxies(shops.primary, dead)
    with httpx.Client(base_url=proxy) as client:
        for _ in range(5):
            assert client.get("/api/v1/categories/").status_code == 200
    wait_until(
        lambda: mirror_counters(proxy).get("shadow_error", 0) == 5,
        timeout=30,
        what="5 errors",
    )


CALIBRATED = """
upstreams:
  monolith: {{url: "{primary}"}}
  monolith-b: {{url: "{second}"}}
  candidate: {{url: "{candidate}"}}
contexts:
  catalog:
    routes:
      - name: product-list
        path: /api/v1/products/
        methods: [GET]
        upstream: monolith
        shadow: {{upstream: candidate, calibrate: monolith-b}}
      - name: category-list
        path: /api/v1/categories/
        methods: [GET]
        upstream: monolith
        record: {{sample_rate: 1.0}}
"""


def test_noise_is_learned_through_a_second_primary_and_traffic_is_recorded(
    shops: Shops,
    shop: Callable[..., str],
    store: RedisShadowStore,
    redis_url: str,
    tmp_path: Path,
    mitm_python: Path,
) -> None:
    from strangler_proxy.shadow._captures import read_capture
    from strangler_proxy.shadow._noise import noise_yaml

    second = shop("primary")
    routes = tmp_path / "calibrated.yaml"
    routes.write_text(
        CALIBRATED.format(primary=shops.primary, second=second, candidate=shops.candidate)
    )
    flows = tmp_path / "live.flows"
    port = free_port()
    argv = [sys.executable, "-m", "strangler_proxy", "serve", "--routes", str(routes)]
    argv += ["--port", str(port), "--no-access-log"]
    url = f"http://127.0.0.1:{port}"
    env = {
        "STRANGLER_SHADOW_REDIS_URL": redis_url,
        "STRANGLER_SHADOW_PREFIX": store.prefix,
        "STRANGLER_RECORD_FILE": str(flows),
    }
    with (
        ManagedProcess.start(
            argv,
            name="proxy",
            health_url=url + "/_strangler/health",
            env=env,
            cwd=REPO_ROOT,
            log_dir=tmp_path / "logs",
        ) as proxy,
        httpx.Client(base_url=url) as client,
    ):
        for _ in range(4):
            assert client.get("/api/v1/products/").status_code == 200
            headers = {"Authorization": "Token s3cret"}
            assert client.get("/api/v1/categories/", headers=headers).status_code == 200
        wait_until(
            lambda: store.counts(route="product-list").compared == 4,
            timeout=30,
            what="compared",
        )
        proxy.stop()  # a clean shutdown closes the flow file

    assert store.counts(route="product-list").matched == 4
    assert store.noise() == {"product-list": ("root['served_at']",)}
    assert "root['served_at']" in noise_yaml(store.noise(), contexts=store.routes())
    recorded = list(read_capture(flows))
    assert [e.request.path for e in recorded] == ["/api/v1/categories/"] * 4
    assert {e.request.header("authorization") for e in recorded} == {"[REDACTED]"}
    assert all(e.response is not None and e.response.status == 200 for e in recorded)
