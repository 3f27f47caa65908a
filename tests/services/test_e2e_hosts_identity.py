"""A real catalog process: it refuses Hosts it does not serve (links are built only from
allowed ones) and identity headers signed for another upstream (issue #18)."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator

import httpx
import pytest

from extracted_services.common.migrations import upgrade
from migration_plans.control.processes import ManagedProcess, free_port
from migration_plans.core.identity import IDENTITY_HEADER, Identity, sign_identity
from tests.services.conftest import IDENTITY_KEY, REPO_ROOT

pytestmark = pytest.mark.e2e

STRANGLER = [sys.executable, "-m", "migration_plans.control.cli"]


def signed(audience: str) -> dict[str, str]:
    identity = Identity(sub="7", name="tester")
    return {IDENTITY_HEADER: sign_identity(identity, key=IDENTITY_KEY.encode(), audience=audience)}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``strangler service serve catalog`` pinned to split, on its own SQLite database."""
    tmp_path = tmp_path_factory.mktemp("catalog")
    database = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    upgrade("catalog", database)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "CATALOG_DATABASE_URL": database,
        "CATALOG_PHASE": "split",
        "CATALOG_REVERSE_SYNC": "false",
        "STRANGLER_LIVE_PHASE": "off",
        "CATALOG_IDENTITY_KEY": IDENTITY_KEY,
        "CATALOG_ALLOWED_HOSTS": "shop.example",
    }
    argv = [*STRANGLER, "service", "serve", "catalog", "--port", str(port)]
    process = ManagedProcess.start(
        argv, name="catalog", health_url=f"{base}/healthz", env=env, log_dir=tmp_path, cwd=REPO_ROOT
    )
    try:
        yield base
    finally:
        process.stop()


def raw_get(base: str, path: str, host: bytes) -> tuple[int, dict[str, object]]:
    port = int(base.rsplit(":", 1)[1])
    request = (
        b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        data = b"".join(iter(lambda: sock.recv(65536), b""))
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def test_identity_for_another_upstream_is_refused(catalog: str) -> None:
    body = {"name": "Tools", "slug": "tools"}
    with httpx.Client(base_url=catalog, timeout=10) as client:
        replayed = client.post("/api/v1/categories/", json=body, headers=signed("inventory"))
        accepted = client.post("/api/v1/categories/", json=body, headers=signed("catalog"))
    assert replayed.status_code == 401, replayed.text
    assert "is for inventory, not catalog" in replayed.json()["detail"]
    assert accepted.status_code == 201, accepted.text


def test_links_are_built_only_from_allowed_hosts(catalog: str) -> None:
    with httpx.Client(base_url=catalog, timeout=10) as client:
        for slug in ("a", "b"):
            client.post(
                "/api/v1/categories/", json={"name": slug, "slug": slug}, headers=signed("catalog")
            )
    page = "/api/v1/categories/?page_size=1"
    status, body = raw_get(catalog, page, b"evil.example/phish?x=")
    assert (status, body["code"]) == (400, "disallowed_host")
    status, body = raw_get(catalog, page, b"evil.example")
    assert status == 400
    status, body = raw_get(catalog, page, b"shop.example:8443")
    assert status == 200 and str(body["next"]).startswith("http://shop.example:8443/")
    status, body = raw_get(catalog, page, catalog.removeprefix("http://").encode())
    assert status == 200 and str(body["next"]).startswith(catalog)
