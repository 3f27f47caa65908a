"""What a threaded workload keeps of a refused write: the exception an HTML error page
names (a 500 from Django's debug page), not its first lines of markup."""

from __future__ import annotations

import httpx

from migration_plans.testing.workload import answer_sample

DEBUG_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta http-equiv="content-type" content="text/html; charset=utf-8">
  <meta name="robots" content="NONE,NOARCHIVE">
  <title>OperationalError
          at /api/v1/products/</title>
  <style>
    html * { padding:0; margin:0; }
  </style>
</head>
<body>deadlock detected</body>
</html>
"""


def test_an_html_error_page_is_sampled_by_its_title() -> None:
    answer = httpx.Response(
        500, text=DEBUG_PAGE, headers={"content-type": "text/html; charset=utf-8"}
    )
    assert answer_sample(answer) == "HTML page: OperationalError at /api/v1/products/"


def test_a_json_error_is_sampled_as_it_is_and_cut() -> None:
    body = '{"code":"invalid","fields":{"sku":["product with this sku already exists."]}}'
    answer = httpx.Response(400, text=body, headers={"content-type": "application/json"})
    assert answer_sample(answer) == body
    assert answer_sample(answer, limit=10) == body[:10]


def test_html_without_a_title_is_kept_as_text() -> None:
    answer = httpx.Response(502, text="<p>bad gateway</p>", headers={"content-type": "text/html"})
    assert answer_sample(answer) == "<p>bad gateway</p>"
