"""Stored differences are redacted like the samples (issue #17, item 5).

A login-like exchange with secrets on both sides (Set-Cookie, X-Auth-Token, JSON
``token``/``session_id`` labelled as JSON and as text/plain; a form-encoded password,
``X-Auth`` and ``X-Access-Key`` in the request) is mirrored by the real engine from a
real primary to a real candidate (uvicorn processes). The Redis and SQL store rows,
the JSON, table and HTML reports and the dashboard's shadow data hold none of the
secrets, and the table shows the stored terminal escape sequences as text.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from migration_plans.control.dashboard.data import Sources
from strangler_proxy.shadow._compare import CompareRules
from strangler_proxy.shadow._report import build_report, render
from strangler_proxy.shadow._store_sql import SqlShadowStore
from strangler_proxy.shadow.engine import MirrorEngine, MirrorMetrics, ShadowRoute, Submitted
from strangler_proxy.shadow.exchange import CapturedRequest, CapturedResponse
from strangler_proxy.shadow.store import Outcome, RedisShadowStore, ShadowResults

from .conftest import Shops

REQUEST_SECRETS = ("hunter2", "xauth-9d1e", "xkey-4c7b", "s3cret-token")
RESPONSE_SECRETS = tuple(
    f"{kind}-{variant}-{tail}"
    for variant in ("primary", "candidate")
    for kind, tail in (("tok", "7f3a"), ("sid", "91c2"), ("cookie", "55e1"), ("hdr", "0b9d"))
)
SECRETS = REQUEST_SECRETS + RESPONSE_SECRETS
RULES = CompareRules(headers=("set-cookie", "x-auth-token"))


class Both:
    """Records every outcome into two stores (the engine writes to one)."""

    def __init__(self, *stores: Any) -> None:
        self.stores = stores

    def record(self, outcome: Outcome) -> None:
        self.record_many([outcome])

    def record_many(self, outcomes: Any) -> None:
        batch = list(outcomes)
        for store in self.stores:
            store.record_many(batch)

    def save_noise(self, route: str, paths: Any) -> None:
        for store in self.stores:
            store.save_noise(route, paths)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stores[0], name)


def login(path: str) -> CapturedRequest:
    return CapturedRequest(
        "POST",
        path,
        (
            ("content-type", "application/x-www-form-urlencoded"),
            ("Authorization", "Token s3cret-token"),
            ("X-Auth", "xauth-9d1e"),
            ("X-Access-Key", "xkey-4c7b"),
        ),
        b"username=alice&password=hunter2",
    )


def mirror(shops: Shops, store: Any) -> None:
    route = ShadowRoute(
        "session", shops.candidate, context="auth", side_effect_free=True, rules=RULES
    )

    async def run() -> None:
        engine = MirrorEngine(store=store, concurrency=2, metrics=MirrorMetrics(None))
        engine.start()
        async with httpx.AsyncClient(base_url=shops.primary) as client:
            for path in ("/api/v1/session/", "/api/v1/session/?format=json"):
                request = login(path)
                answer = await client.post(
                    path, headers=dict(request.headers), content=request.body
                )
                primary = CapturedResponse(
                    answer.status_code, tuple(answer.headers.multi_items()), answer.content
                )
                assert engine.submit(route, request, primary) is Submitted.QUEUED
        await engine.drain(30)
        await engine.close()

    asyncio.run(run())


def redis_dump(store: RedisShadowStore) -> str:
    """Every value under the store's prefix, whatever the key's type."""
    readers: dict[str, Any] = {
        "hash": store.client.hgetall,
        "list": lambda key: store.client.lrange(key, 0, -1),
        "set": lambda key: sorted(store.client.smembers(key)),  # type: ignore[arg-type]
        "zset": lambda key: store.client.zrange(key, 0, -1),
    }
    found = []
    for key in store.client.scan_iter(match=f"{store.prefix}:*"):
        kind = store.client.type(key)
        found.append(json.dumps(readers[str(kind)](key)))
    return "\n".join(found)


def sql_dump(store: SqlShadowStore) -> str:
    found = []
    with store.engine.connect() as conn:
        for table in _tables(conn):
            found += [repr(tuple(row)) for row in conn.execute(sa.text(f'SELECT * FROM "{table}"'))]
    return "\n".join(found)


def _tables(conn: sa.Connection) -> list[str]:
    return [name for name in sa.inspect(conn).get_table_names() if name.startswith("shadow_")]


_BODY = re.compile(r'body_b64\\*"\s*:\s*\\*"([A-Za-z0-9+/=]*)')


def with_bodies(text: str) -> str:
    """``text`` plus every base64 body it holds, decoded (samples store bodies so)."""
    bodies = [base64.b64decode(found).decode("utf-8", "replace") for found in _BODY.findall(text)]
    return "\n".join([text, *bodies])


class NoProxy:
    def request_totals(self) -> dict[tuple[str, str], float]:
        return {}


def dashboard(store: ShadowResults) -> str:
    sources = Sources(NoProxy(), shadow=lambda: store)  # type: ignore[arg-type]
    return json.dumps(sources._shadow_section(time.time(), {}))


def test_secrets_of_both_sides_stay_out_of_stores_reports_and_the_dashboard(
    shops: Shops, store: RedisShadowStore, tmp_path: Path
) -> None:
    sql = SqlShadowStore.from_url(f"sqlite:///{tmp_path / 'shadow.sqlite3'}")
    mirror(shops, Both(store, sql))

    assert store.counts(route="session").mismatched == 2
    differences = [d for s in store.samples("session") for d in s["differences"]]
    paths = {d["path"] for d in differences}
    assert {"header:set-cookie", "header:x-auth-token", "root['token']"} <= paths
    assert {"root['session_id']", "root['note']"} <= paths
    report = build_report(store, examples=5)
    outputs = {
        "redis store": redis_dump(store),
        "sql store": sql_dump(sql),
        "json report": render(report, "json"),
        "table report": render(report, "table"),
        "html report": render(report, "html"),
        "sql json report": render(build_report(sql, examples=5), "json"),
        "dashboard data": dashboard(store),
    }
    for name, text in outputs.items():
        text = with_bodies(text)
        leaked = [secret for secret in SECRETS if secret in text]
        assert leaked == [], f"{name} shows {leaked}"
    table = outputs["table report"]
    assert "\x1b" not in table and "\\x1b[31m" in table
    assert "[REDACTED]" in outputs["json report"]
    assert with_bodies(outputs["redis store"]).count("[REDACTED]") > len(SECRETS)  # bodies seen
