"""Noise calibration the Diffy way: what differs between two primaries is not a regression.

The same request goes to the primary and to a second primary instance. Fields
that differ between the two (timestamps, request ids, random tokens) are noise:
they are learned per endpoint, with list indices generalised to ``[*]``, and
excluded when the primary is compared with the candidate. The learned lists print
as YAML to paste into the route table's ``shadow.compare.ignore_paths``.

    learner = NoiseLearner(min_observations=1)
    learner.observe("products-list", primary, second_primary, rules)
    rules = learner.rules_for("products-list", rules)
    print(learner.to_yaml())
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping

import yaml

from strangler_proxy.shadow._compare import CompareRules, compare_responses, generalize_path
from strangler_proxy.shadow.exchange import CapturedResponse

__all__ = ["NoiseLearner", "noise_yaml"]


class NoiseLearner:
    """Per-endpoint counts of fields seen differing between two primaries.

    A field counts as noise once it has differed ``min_observations`` times. Thread
    safe: the mirror engine compares in worker threads.
    """

    def __init__(self, *, min_observations: int = 1) -> None:
        self.min_observations = min_observations
        self._counts: dict[str, Counter[str]] = defaultdict(Counter)
        self._calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def observe(
        self,
        endpoint: str,
        primary: CapturedResponse,
        second_primary: CapturedResponse,
        rules: CompareRules | None = None,
    ) -> tuple[str, ...]:
        """Compare the two primaries; returns the generalised paths that differed."""
        result = compare_responses(primary, second_primary, rules)
        paths = tuple(sorted({generalize_path(path) for path in result.paths}))
        self.add(endpoint, paths)
        return paths

    def add(self, endpoint: str, paths: Iterable[str]) -> None:
        """Record one calibration call whose differing (generalised) fields were ``paths``."""
        with self._lock:
            self._calls[endpoint] += 1
            self._counts[endpoint].update(paths)

    def noisy_paths(self, endpoint: str) -> tuple[str, ...]:
        """Fields of ``endpoint`` learned as noise, sorted."""
        with self._lock:
            counts = self._counts.get(endpoint, Counter())
            return tuple(sorted(p for p, n in counts.items() if n >= self.min_observations))

    def rules_for(self, endpoint: str, rules: CompareRules | None = None) -> CompareRules:
        """``rules`` with the endpoint's learned noise added to the ignore paths."""
        return (rules or CompareRules()).with_ignored(self.noisy_paths(endpoint))

    def learned(self) -> dict[str, tuple[str, ...]]:
        """Every endpoint with at least one noisy field."""
        with self._lock:
            endpoints = sorted(self._counts)
        learned = {endpoint: self.noisy_paths(endpoint) for endpoint in endpoints}
        return {endpoint: paths for endpoint, paths in learned.items() if paths}

    def calls(self, endpoint: str) -> int:
        with self._lock:
            return self._calls[endpoint]

    def to_yaml(self) -> str:
        return noise_yaml(self.learned())


def noise_yaml(
    learned: Mapping[str, Iterable[str]], *, contexts: Mapping[str, str] | None = None
) -> str:
    """The learned ignore lists in the route table's shape (``contexts.<ctx>.routes``)."""
    contexts = contexts or {}
    grouped: dict[str, list[dict[str, object]]] = defaultdict(list)
    for route, paths in sorted(learned.items()):
        block: dict[str, object] = {
            "name": route,
            "shadow": {"compare": {"ignore_paths": sorted(paths)}},
        }
        grouped[contexts.get(route) or "unknown"].append(block)
    document = {"contexts": {name: {"routes": routes} for name, routes in sorted(grouped.items())}}
    header = "# Learned noise: fields that differ between two identical primary calls.\n"
    header += "# Merge each ignore_paths list into that route's shadow.compare block.\n"
    return header + yaml.safe_dump(document, sort_keys=False, width=200)
