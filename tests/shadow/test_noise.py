from __future__ import annotations

import json
from typing import Any

import yaml

from strangler_proxy.shadow._compare import CompareRules, compare_responses
from strangler_proxy.shadow._noise import NoiseLearner, noise_yaml
from strangler_proxy.shadow.exchange import CapturedResponse


def listing(stamp: str, name: str = "Lamp") -> CapturedResponse:
    body: dict[str, Any] = {
        "served_at": stamp,
        "results": [
            {"id": 1, "name": name, "seen": stamp},
            {"id": 2, "name": "Desk", "seen": stamp},
        ],
    }
    return CapturedResponse(200, (("content-type", "application/json"),), json.dumps(body).encode())


def test_fields_differing_between_primaries_become_generalised_ignore_rules() -> None:
    learner = NoiseLearner()
    paths = learner.observe("products", listing("t1"), listing("t2"))
    assert paths == ("root['results'][*]['seen']", "root['served_at']")
    assert learner.noisy_paths("products") == paths
    assert learner.noisy_paths("other") == ()


def test_learned_noise_is_excluded_but_real_differences_remain() -> None:
    learner = NoiseLearner()
    learner.observe("products", listing("t1"), listing("t2"))
    rules = learner.rules_for("products", CompareRules(headers=("etag",)))
    assert rules.headers == ("etag",)
    result = compare_responses(listing("t1"), listing("t3", name="Lampe"), rules)
    assert result.paths == ("root['results'][0]['name']",)


def test_identical_primaries_teach_nothing() -> None:
    learner = NoiseLearner()
    assert learner.observe("products", listing("t1"), listing("t1")) == ()
    assert learner.learned() == {}
    assert learner.calls("products") == 1


def test_min_observations_threshold() -> None:
    learner = NoiseLearner(min_observations=2)
    learner.observe("products", listing("t1"), listing("t2"))
    assert learner.noisy_paths("products") == ()
    learner.observe("products", listing("t3"), listing("t4"))
    assert "root['served_at']" in learner.noisy_paths("products")


def test_yaml_output_pastes_into_the_route_table_shape() -> None:
    learner = NoiseLearner()
    learner.observe("product-list", listing("t1"), listing("t2"))
    text = noise_yaml(learner.learned(), contexts={"product-list": "catalog"})
    document = yaml.safe_load(text)
    route = document["contexts"]["catalog"]["routes"][0]
    assert route["name"] == "product-list"
    assert route["shadow"]["compare"]["ignore_paths"] == [
        "root['results'][*]['seen']",
        "root['served_at']",
    ]
    assert text.startswith("# Learned noise")
