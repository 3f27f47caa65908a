"""`strangler contract check` end to end: real monolith and service processes on two copies
of the same data, generated requests, 0 server errors and 0 undeclared differences for
catalog, inventory and payments (whose charge and refund only the service serves); a renamed field in the service fails the check with a curl command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]

RENAME_A_FIELD = """
import os
if os.environ.get("CATALOG_DATABASE_URL"):  # the catalog service process only
    import extracted_services.catalog.api as api

    original = api.category_json

    def renamed(row):
        body = original(row)
        body["title"] = body.pop("name")
        return body

    api.category_json = renamed
"""


def contract_check(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "migration_plans.control.cli", "contract", "check", *args]
    return subprocess.Popen(
        argv,
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    return process.returncode, out, err


def test_every_context_keeps_the_monolith_contract():
    started = {
        context: contract_check(context, "--examples", "3", "--seed", "7", "--json")
        for context in ("catalog", "inventory", "payments")
    }
    for context, process in started.items():
        code, out, err = finish(process)
        assert out, f"{context}: no report (exit {code}):\n{err[-3000:]}"
        report = json.loads(out)
        summary = {key: report[key] for key in ("server_errors", "differences", "undocumented")}
        examples = [
            *report["server_error_examples"],
            *report["difference_examples"],
            *report["undocumented_examples"],  # the monolith's OpenAPI lists its errors
        ]
        assert summary == {"server_errors": 0, "differences": 0, "undocumented": 0}, json.dumps(
            examples, indent=1
        )
        assert code == 0
        assert report["operations"] == {"catalog": 12, "inventory": 8, "payments": 2}[context]
        assert report["cases"] > 10 * report["operations"]


def test_a_renamed_field_fails_the_check_with_a_curl_able_example(tmp_path):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(RENAME_A_FIELD)
    path = os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")]))
    code, out, err = finish(
        contract_check(
            "catalog",
            "--examples",
            "2",
            "--operation",
            "GET /api/v1/categories/",
            env={"PYTHONPATH": path, "COLUMNS": "200"},
        )
    )
    assert code == 1, f"exit {code}:\n{out}\n{err[-3000:]}"
    assert "undeclared differences" in out
    assert "['title']" in out  # the renamed field, named
    assert "curl -sS -i -X GET" in out
    assert "/api/v1/categories/" in out
