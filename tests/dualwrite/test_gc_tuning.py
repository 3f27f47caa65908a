"""A relay process's collector: startup objects frozen, the youngest generation collected
every 50,000 allocations (in a child interpreter: the settings are process-wide)."""

from __future__ import annotations

import json
import subprocess
import sys

from dualwrite.gc_tuning import YOUNG_GENERATION_THRESHOLD
from tests.dualwrite.conftest import REPO_ROOT

PROBE = """
import gc, json
before = gc.get_threshold()
from dualwrite.gc_tuning import tune_for_batches
tune_for_batches()
print(json.dumps({"before": before, "after": gc.get_threshold(), "frozen": gc.get_freeze_count()}))
"""


def test_tuning_freezes_startup_objects_and_keeps_the_older_generations_thresholds() -> None:
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    figures = json.loads(probe.stdout)
    assert figures["before"][0] < YOUNG_GENERATION_THRESHOLD
    assert figures["after"] == [YOUNG_GENERATION_THRESHOLD, *figures["before"][1:]]
    assert figures["frozen"] > 1000
