"""Canary assignment: sticky, deterministic, close to the weights."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from strangler_proxy.routetable.loader import LoadedTable
from strangler_proxy.routetable.model import Canary, Sticky
from strangler_proxy.routing._canary import choose, sticky_key

TableFactory = Callable[..., LoadedTable]

EXTRA = """\
      - name: stock-extra
        path: /api/v1/stock-extra/
        upstream: monolith
"""


@settings(max_examples=100, deadline=None)
@given(key=st.text(min_size=1, max_size=40).filter(lambda k: k.isprintable()))
def test_same_key_same_upstream_across_reloads(
    key: str, base_text: str, make_table: TableFactory
) -> None:
    before = make_table(base_text)
    after = make_table(base_text.replace("version: 7", "version: 8") + EXTRA)
    assert before.sha256 != after.sha256
    headers = {b"x-user-id": key.encode("utf-8")}
    first = before.router.resolve("GET", "/api/v1/categories/1/", headers, "9.9.9.9")
    again = before.router.resolve("GET", "/api/v1/categories/", headers, "8.8.8.8")
    reloaded = after.router.resolve("GET", "/api/v1/categories/1/", headers, "7.7.7.7")
    assert first.canary and first.upstream == again.upstream == reloaded.upstream


@settings(max_examples=10, deadline=None)
@given(weight=st.integers(min_value=0, max_value=100))
def test_distribution_within_tolerance(weight: int) -> None:
    canary = Canary(split={"catalog": weight, "monolith": 100 - weight})
    keys = 4000
    hits = sum(choose(canary, "route", f"user-{n}") == "catalog" for n in range(keys))
    assert abs(hits / keys * 100 - weight) <= 3.0


def test_raising_the_weight_only_moves_clients_to_the_new_side() -> None:
    low = Canary(split={"catalog": 10, "monolith": 90})
    high = Canary(split={"catalog": 30, "monolith": 70})
    for n in range(2000):
        if choose(low, "r", str(n)) == "catalog":
            assert choose(high, "r", str(n)) == "catalog"


def test_sticky_keys() -> None:
    headers = {b"x-user-id": b"u1", b"cookie": b"a=1; sessionid=s-9"}
    assert sticky_key(Sticky(header="X-User-ID"), headers, "1.2.3.4") == "u1"
    assert sticky_key(Sticky(cookie="sessionid"), headers, "1.2.3.4") == "s-9"
    assert sticky_key(Sticky(client="address"), headers, "1.2.3.4") == "1.2.3.4"
    assert sticky_key(Sticky(header="X-Other"), headers, "1.2.3.4") == "1.2.3.4"
    assert sticky_key(Sticky(cookie="missing"), {b"cookie": b"\x00bad"}, "5.6.7.8") == "5.6.7.8"
