"""`strangler shadow export-tests`: stored mismatches become pytest regression cases."""

from __future__ import annotations

import ast
import asyncio
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from strangler_proxy.shadow._captures import CapturedExchange
from strangler_proxy.shadow._export_tests import export_tests
from strangler_proxy.shadow._replay import replay
from strangler_proxy.shadow.cli import shadow_app
from strangler_proxy.shadow.exchange import CapturedRequest
from strangler_proxy.shadow.store import RedisShadowStore

from .conftest import REPO_ROOT, Shops

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

REQUESTS = [
    CapturedRequest(
        "GET", path, (("Authorization", "Token s3cret"), ("Accept", "application/json"))
    )
    for path in (
        "/api/v1/products/",
        "/api/v1/products/1/",
        "/api/v1/products/2/",
        "/api/v1/categories/",
        "/robots.txt",
    )
]


def load_module(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("exported_shadow_cases", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_generated(test_file: Path, target: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHADOW_TARGET_URL": target}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(test_file.parent),
            "-c",
            os.devnull,
            str(test_file),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_exported_file_fails_against_the_differing_service_and_passes_against_the_primary(
    shops: Shops, store: RedisShadowStore, tmp_path: Path
) -> None:
    asyncio.run(
        replay(
            [CapturedExchange(r) for r in REQUESTS],
            primary=shops.primary,
            candidate=shops.candidate,
            store=store,
            second_primary=shops.primary,
        )
    )
    text, count = export_tests(store, target=shops.candidate)
    assert count == 3  # two product details, the category list; the noisy listing matched
    ast.parse(text)
    assert "s3cret" not in text

    test_file = tmp_path / "test_shadow_regressions.py"
    test_file.write_text(text)
    against_candidate = run_generated(test_file, shops.candidate)
    assert against_candidate.returncode == 1, against_candidate.stdout
    assert "3 failed" in against_candidate.stdout
    assert "root['title']" in against_candidate.stdout

    # against the primary, in process (a second pytest start costs seconds): every case passes
    module = load_module(test_file)
    module.TARGET = shops.primary
    for case in module.CASES:
        module.test_candidate_answers_like_primary(*case.values)


def test_cli_writes_the_file_and_noise_yaml(
    shops: Shops, store: RedisShadowStore, redis_url: str, tmp_path: Path
) -> None:
    asyncio.run(
        replay(
            [CapturedExchange(r) for r in REQUESTS[:2]],
            primary=shops.primary,
            candidate=shops.candidate,
            store=store,
            second_primary=shops.primary,
        )
    )
    url = redis_url
    out = tmp_path / "regressions" / "test_cases.py"
    runner = CliRunner()
    result = runner.invoke(
        shadow_app,
        ["export-tests", "--out", str(out), "--redis-url", url, "--prefix", store.prefix],
    )
    assert result.exit_code == 0, result.output
    assert "wrote 1 case(s)" in result.stderr
    ast.parse(out.read_text())

    noise = runner.invoke(shadow_app, ["noise", "--redis-url", url, "--prefix", store.prefix])
    assert noise.exit_code == 0, noise.output
    assert "root['served_at']" in noise.stdout and "replay" in noise.stdout

    report = runner.invoke(
        shadow_app,
        ["report", "--redis-url", url, "--prefix", store.prefix, "--since", "1h", "-f", "json"],
    )
    assert report.exit_code == 0, report.output
    assert '"compared": 2' in report.stdout
