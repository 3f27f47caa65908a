"""Route-table validation: every problem names file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from migration_plans.core.yamlfile import ConfigError, ConfigIssue, SourceDocument
from strangler_proxy.routetable.loader import load_table, parse_table
from strangler_proxy.routetable.model import RouteTable

HEAD = """\
upstreams:
  monolith: {url: "http://127.0.0.1:1"}
  catalog: {url: "http://127.0.0.1:2"}
contexts:
  catalog:
    routes:
"""


def issues(routes: str, head: str = HEAD) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_table(head + routes, Path("routes.yaml"))
    return [str(issue) for issue in caught.value.issues]


def test_example_table_is_valid() -> None:
    loaded = load_table(Path("strangler_proxy/examples/routes.yaml"))
    assert loaded.version == "1" and len(loaded.hash) == 12


def test_unknown_upstream_names_line_and_field() -> None:
    found = issues("""\
      - name: a
        path: /a/
        upstream: catlog
""")
    assert found == [
        "routes.yaml:9: contexts.catalog.routes[0].upstream: unknown upstream 'catlog'"
    ]


def test_weights_must_sum_to_100() -> None:
    found = issues("""\
      - name: a
        prefix: /a/
        canary:
          split: {monolith: 80, catalog: 10}
""")
    assert found == [
        "routes.yaml:10: contexts.catalog.routes[0].canary.split: canary weights sum to 90, not 100"
    ]


def test_canary_unknown_upstream() -> None:
    found = issues("""\
      - name: a
        prefix: /a/
        canary:
          split: {monolith: 90, cat: 10}
""")
    assert found[0].startswith("routes.yaml:10: contexts.catalog.routes[0].canary.split.cat:")


def test_duplicate_route_names() -> None:
    found = issues("""\
      - name: a
        path: /a/
        upstream: monolith
      - name: a
        path: /b/
        upstream: monolith
""")
    assert found == [
        "routes.yaml:10: contexts.catalog.routes[1].name: duplicate route name (first at line 7)"
    ]


def test_unreachable_route_names_the_covering_one() -> None:
    found = issues("""\
      - name: everything
        prefix: /api/
        upstream: monolith
      - name: detail
        path: /api/v1/products/{id}/
        methods: [GET]
        upstream: catalog
""")
    assert found == [
        "routes.yaml:11: contexts.catalog.routes[1].path: can never match: "
        "route 'everything' (line 7) covers it"
    ]


def test_more_specific_route_first_is_fine() -> None:
    parse_table(
        HEAD
        + """\
      - name: detail
        path: /api/v1/products/{id}/
        methods: [GET]
        upstream: catalog
      - name: posts-elsewhere
        path: /api/v1/products/{id}/
        methods: [POST]
        upstream: monolith
      - name: everything
        prefix: /api/
        upstream: monolith
""",
        Path("routes.yaml"),
    )


def test_partial_method_overlap_is_not_unreachable() -> None:
    parse_table(
        HEAD
        + """\
      - name: reads
        prefix: /api/
        methods: [GET]
        upstream: catalog
      - name: all
        prefix: /api/
        upstream: monolith
""",
        Path("routes.yaml"),
    )


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        (
            "      - name: a\n        path: /a/{x\n        upstream: monolith\n",
            "8: contexts.catalog.routes[0].path: Value error, malformed parameter",
        ),
        (
            "      - name: a\n        path: /a/../b\n        upstream: monolith\n",
            "8: contexts.catalog.routes[0].path: Value error, template '/a/../b' is not in normalised form",
        ),
        (
            "      - name: a\n        path: /a\n        prefix: /b\n        upstream: monolith\n",
            "7: contexts.catalog.routes[0]: Value error, a route needs exactly one of path or prefix",
        ),
        (
            "      - name: a\n        path: /a\n        methods: [GET, FETCH]\n        upstream: monolith\n",
            "9: contexts.catalog.routes[0].methods: Value error, unknown method(s) FETCH",
        ),
        (
            "      - name: a\n        path: /a\n        upstream: monolith\n        colour: blue\n",
            "10: contexts.catalog.routes[0].colour: Extra inputs are not permitted",
        ),
        (
            "      - name: a\n        path: /a\n        upstream: monolith\n        fallback: true\n",
            "10: contexts.catalog.routes[0].fallback: route already goes to 'monolith'",
        ),
        (
            "      - name: a\n        path: /a\n        methods: [POST]\n        upstream: catalog\n        fallback: true\n",
            "11: contexts.catalog.routes[0].fallback: fallback only applies to reads",
        ),
    ],
)
def test_route_level_errors(route: str, expected: str) -> None:
    found = issues(route)
    assert any(issue.startswith("routes.yaml:" + expected) for issue in found), found


def test_shadow_unsafe_methods_need_side_effect_free() -> None:
    found = issues("""\
      - name: a
        prefix: /a/
        methods: [GET, POST, DELETE]
        upstream: monolith
        shadow:
          upstream: catalog
          sample_rate: 0.5
""")
    assert len(found) == 1
    assert found[0].startswith(
        "routes.yaml:11: contexts.catalog.routes[0].shadow.side_effect_free: "
        "would mirror unsafe methods DELETE, POST"
    )


def test_shadow_validation() -> None:
    found = issues("""\
      - name: a
        prefix: /a/
        methods: [GET]
        upstream: catalog
        shadow:
          upstream: catalog
      - name: b
        prefix: /b/
        methods: [GET]
        upstream: catalog
        shadow: {upstream: nowhere, compare: {numeric_tolerance: 0.01, ignore_order: true}}
""")
    assert found == [
        "routes.yaml:12: contexts.catalog.routes[0].shadow.upstream: shadow upstream is the primary itself",
        "routes.yaml:17: contexts.catalog.routes[1].shadow.upstream: unknown upstream 'nowhere'",
    ]
    found = issues(
        "      - {name: a, prefix: /a/, upstream: catalog, shadow: {upstream: monolith, sample_rate: 2}}\n"
    )
    assert found[0].startswith("routes.yaml:7: contexts.catalog.routes[0].shadow.sample_rate:")


def test_shadow_side_effect_free_allows_writes() -> None:
    loaded = parse_table(
        HEAD
        + """\
      - name: a
        prefix: /a/
        upstream: monolith
        shadow:
          upstream: catalog
          side_effect_free: true
          compare: {ignore_paths: ["root['updated_at']"], headers: [content-type]}
""",
        Path("routes.yaml"),
    )
    shadow = loaded.table.contexts["catalog"].routes[0].shadow
    assert shadow is not None and shadow.compare.headers == ("content-type",)


def test_global_errors() -> None:
    head = HEAD.replace("upstreams:", "default_upstream: legacy\nauth: {upstream: idp}\nupstreams:")
    found = issues("      - {name: a, path: /a, upstream: catalog}\n", head)
    assert "routes.yaml:1: default_upstream: unknown upstream 'legacy'" in found
    assert "routes.yaml:2: auth.upstream: unknown upstream 'idp'" in found


def test_yaml_syntax_error_has_a_line() -> None:
    found = issues("      - name: [unclosed\n")
    assert found[0].startswith("routes.yaml:")
    assert "YAML syntax" in found[0]


def test_all_problems_reported_at_once() -> None:
    found = issues("""\
      - name: a
        path: /a/
        upstream: nowhere
      - name: a
        prefix: /b/
        canary: {split: {monolith: 1}}
""")
    assert len(found) == 3


class NoWritesToServices:
    """A phase rule as migration plans will provide: context catalog is in `shared`."""

    def check(self, table: RouteTable, source: SourceDocument) -> list[ConfigIssue]:
        out = []
        for loc, context, route in table.located_routes():
            writes = route.methods - {"GET", "HEAD", "OPTIONS"}
            if context == "catalog" and writes and "catalog" in route.targets:
                out.append(
                    source.issue(
                        (*loc, "methods"), "catalog is in phase shared: writes go to the monolith"
                    )
                )
        return out


def test_phase_rules_hook() -> None:
    text = (
        HEAD
        + "      - name: a\n        path: /a/\n        methods: [GET, POST]\n        upstream: catalog\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_table(text, Path("routes.yaml"), NoWritesToServices())
    assert [str(i) for i in caught.value.issues] == [
        "routes.yaml:9: contexts.catalog.routes[0].methods: catalog is in phase shared: writes go to the monolith"
    ]


def upstream_issues(catalog: str) -> list[str]:
    head = HEAD.replace('  catalog: {url: "http://127.0.0.1:2"}\n', catalog)
    return issues("      - {name: a, path: /a, upstream: catalog}\n", head)


def test_an_upstream_may_list_its_replicas() -> None:
    catalog = '  catalog: {urls: ["http://127.0.0.1:2", "http://127.0.0.1:3/"]}\n'
    head = HEAD.replace('  catalog: {url: "http://127.0.0.1:2"}\n', catalog)
    table = parse_table(head + "      - {name: a, path: /a, upstream: catalog}\n", Path("r.yaml"))
    upstreams = table.table.upstreams
    assert upstreams["catalog"].endpoints == ("http://127.0.0.1:2", "http://127.0.0.1:3")
    assert upstreams["catalog"].base_url == "http://127.0.0.1:2"
    assert upstreams["monolith"].endpoints == ("http://127.0.0.1:1",)


@pytest.mark.parametrize(
    ("catalog", "expected"),
    [
        (
            '  catalog: {url: "http://127.0.0.1:2", urls: ["http://127.0.0.1:3"]}\n',
            "routes.yaml:3: upstreams.catalog: Value error, an upstream needs exactly one of url or urls",
        ),
        (
            "  catalog:\n    pool_size: 10\n",
            "routes.yaml:3: upstreams.catalog: Value error, an upstream needs exactly one of url or urls",
        ),
        (
            '  catalog:\n    pool_size: 10\n    urls: ["http://127.0.0.1:2", "http://127.0.0.1:2/"]\n',
            "routes.yaml:5: upstreams.catalog.urls: Value error, duplicate URL 'http://127.0.0.1:2/'",
        ),
        (
            '  catalog:\n    urls:\n      - "http://127.0.0.1:2"\n      - "127.0.0.1:3"\n',
            "routes.yaml:6: upstreams.catalog.urls[1]: String should match pattern",
        ),
        (
            "  catalog: {urls: []}\n",
            "routes.yaml:3: upstreams.catalog.urls: List should have at least 1 item",
        ),
    ],
)
def test_upstream_url_errors(catalog: str, expected: str) -> None:
    found = upstream_issues(catalog)
    assert any(issue.startswith(expected) for issue in found), found
