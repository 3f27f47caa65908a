"""Headers, hosts, paths, canary keys and route files: the units behind issue #18's
end-to-end tests (test_e2e_edge_semantics.py), including the settings that turn them off."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from migration_plans.core.http import LOOPBACK_HOSTS, host_allowed
from migration_plans.core.yamlfile import ConfigError, SourceDocument
from strangler_proxy.edge.errors import BadPath, BadRequest, NotFound
from strangler_proxy.edge.headers import check_singletons, upstream_headers
from strangler_proxy.routetable.loader import LoadedTable, TableHolder, load_table
from strangler_proxy.routetable.model import Canary
from strangler_proxy.routing import _canary
from strangler_proxy.routing.normalize import normalize_path

TableFactory = Callable[..., LoadedTable]


def test_one_host_and_one_authorization() -> None:
    check_singletons([(b"host", b"a"), (b"authorization", b"Token t")], "1.1")
    check_singletons([], "1.0")
    for raw, version in (
        ([(b"host", b"a"), (b"host", b"b")], "1.1"),
        ([], "1.1"),
        ([(b"host", b"a"), (b"authorization", b"x"), (b"authorization", b"y")], "1.1"),
    ):
        with pytest.raises(BadRequest):
            check_singletons(raw, version)


def test_underscore_spellings_never_reach_an_upstream() -> None:
    raw = [(b"x_forwarded_for", b"6.6.6.6"), (b"x_strangler_identity", b"f"), (b"x-a", b"1")]
    out = upstream_headers(
        raw, client_host="1.2.3.4", scheme="http", host="h", client_host_header="h", request_id="r"
    )
    assert [name for name, _ in out if "_" in name] == []
    assert ("x-a", "1") in out


def test_double_encoding_can_be_allowed() -> None:
    with pytest.raises(BadPath, match="double-encoded"):
        normalize_path(b"/a/%252e%252e/b")
    assert normalize_path(b"/a/%252e%252e/b", reject_double_encoded=False) == "/a/%252e%252e/b"
    assert normalize_path(b"/a/file%252ehtml") == "/a/file%252ehtml"  # no dot segment


def test_metrics_are_private_unless_a_route_names_them(
    base_text: str, make_table: TableFactory
) -> None:
    router = make_table(base_text).router
    with pytest.raises(NotFound):
        router.resolve("GET", "/metrics", {}, "1.1.1.1")
    assert router.resolve("GET", "/metricsx", {}, "1.1.1.1").upstream == "monolith"
    catch_all = "      - {name: all, prefix: /, upstream: inventory}\n"
    with pytest.raises(NotFound):
        make_table(base_text + catch_all).router.resolve("GET", "/metrics/", {}, "1.1.1.1")
    opted_in = "      - {name: metrics, path: /metrics, methods: [GET], upstream: inventory}\n"
    target = make_table(base_text + opted_in + catch_all).router.resolve(
        "GET", "/metrics", {}, "1.1.1.1"
    )
    assert target.upstream == "inventory"
    public = make_table(base_text + "private_paths: []\n").router
    assert public.resolve("GET", "/metrics", {}, "1.1.1.1").upstream == "monolith"


def test_the_canary_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    canary = Canary(split={"a": 50, "b": 50})
    keys = [f"user-{n}" for n in range(64)]
    sides = {
        secret: [_canary.choose(canary, "r", k, secret) for k in keys] for secret in (b"1", b"2")
    }
    assert sides[b"1"] != sides[b"2"]
    _canary.sticky_secret.cache_clear()
    monkeypatch.setenv(_canary.CANARY_KEY_ENV, "replica-secret")
    assert _canary.sticky_secret() == b"replica-secret"
    _canary.sticky_secret.cache_clear()
    monkeypatch.delenv(_canary.CANARY_KEY_ENV)
    warnings: list[str] = []
    monkeypatch.setattr(_canary.log, "warning", lambda text, *args: warnings.append(text % args))
    assert _canary.sticky_secret() == _canary.DEV_CANARY_KEY
    assert "STRANGLER_CANARY_KEY is not set" in warnings[0]
    _canary.sticky_secret.cache_clear()


def test_hosts_are_matched_like_django() -> None:
    assert host_allowed("127.0.0.1:8000", LOOPBACK_HOSTS)
    assert host_allowed("api.shop.example", [".shop.example"])
    assert not host_allowed("evil.example/phish?x=", ["*"])
    assert not host_allowed("evil.example", LOOPBACK_HOSTS)


def test_yaml_aliases_and_large_files_are_refused(tmp_path: Path, base_text: str) -> None:
    with pytest.raises(ConfigError, match=r"plan.yaml:2: YAML alias \*x is not allowed"):
        SourceDocument.parse("a: &x [1]\nb: *x\n", Path("plan.yaml"))
    path = tmp_path / "routes.yaml"
    path.write_text(base_text + "#" * 2048 + "\n")
    with pytest.raises(ConfigError, match="bytes, the limit is 1024"):
        load_table(path, max_bytes=1024)
    assert load_table(path).table.version == 7


def test_an_async_reload_keeps_the_last_good_table(tmp_path: Path, base_text: str) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(base_text)
    holder = TableHolder(load_table(path))
    path.write_text(base_text + "x: &x [1]\ny: *x\n")
    assert asyncio.run(holder.reload_async()) is False
    assert holder.last_error is not None and "alias" in holder.last_error.issues[0]
    stale = holder.load_file()
    path.write_text(base_text.replace("version: 7", "version: 8"))
    assert asyncio.run(holder.reload_async()) is True
    assert holder.commit(stale) is False and holder.current.version == "8"  # older load ignored
