"""decide(): which threshold applies to a prediction and why (fixed, target, never_route, fallback)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from daemon.config import Config, load_config
from daemon.errors import ConfigError
from daemon.ml.thresholds import Evidence, Policy, Thresholds, fit
from daemon.pipeline.routing import LabelRule, decide, label_rules

FITTED = Thresholds(0.9, {"billing": 0.55, "hardware": 0.95, "misc": None}, 0.8, {"billing": 80, "hardware": 30})
TARGET = LabelRule(map={"billing": "Billing", "hardware": "Hardware"}, target_precision=0.9, fallback="Raw")
ALWAYS = LabelRule(map={"misc": "Misc"}, target_precision=0.9, fallback="Raw", always=frozenset({"Misc"}))
WHY = fit(Evidence(["billing", "misc"], np.array([0] * 20 + [1] * 3), np.full(23, 0.9), np.ones(23, dtype=bool)), 0.9)


def _queue(label: str, confidence: float) -> dict[str, dict[str, Any]]:
    return {"queue": {"label": label, "confidence": confidence}}


@pytest.mark.parametrize(
    ("label", "confidence", "rule", "fitted", "queue", "basis", "reason"),
    [
        # The model's per-class threshold: a precise class routes below the fixed 0.6, an erring one does not.
        ("billing", 0.57, TARGET, FITTED, "Billing", "target", "confidence 0.57 at or above 0.55, 'billing'"),
        ("hardware", 0.9, TARGET, FITTED, "Raw", "target", "confidence 0.90 below 0.95: fallback 'Raw'"),
        ("misc", 0.99, TARGET, FITTED, "Raw", "target", "'misc' cannot reach precision 0.90: fallback 'Raw'"),
        # A model trained before per-class thresholds: the configured threshold still applies.
        ("billing", 0.57, TARGET, None, "Raw", "fallback", "confidence 0.57 below 0.60: fallback 'Raw'"),
        ("billing", 0.61, TARGET, None, "Billing", "fallback", "confidence 0.61"),
        ("billing", 0.57, LabelRule(threshold=0.5), FITTED, "billing", "fixed", "confidence 0.57"),
        # never_route matches the model's label or the helpdesk name it maps to, at any confidence.
        ("billing", 0.99, LabelRule(map={"billing": "Billing"}, never=frozenset({"Billing"})), FITTED, None,
         "never_route", "'Billing' is in never_route: left as is"),
        ("hardware", 0.99, LabelRule(never=frozenset({"hardware"})), None, None, "never_route",
         "'hardware' is in never_route: left as is"),
        # always_route: routed at any confidence (not without text), by model label or helpdesk name.
        ("misc", 0.05, ALWAYS, FITTED, "Misc", "always_route", "confidence 0.05, 'Misc' is in always_route"),
        ("misc", 0.0, ALWAYS, FITTED, "Raw", "always_route", "no text to classify: fallback 'Raw'"),
        ("billing", 0.3, LabelRule(threshold=0.9, always=frozenset({"billing"})), None, "billing", "always_route",
         "confidence 0.30"),
        # A class the pooled rule leaves out says why.
        ("misc", 0.99, TARGET, WHY, "Raw", "target",
         "'misc' is not routed at pooled precision 0.90 (not enough closed tickets: 3, needs 5): fallback 'Raw'"),
    ],
)  # fmt: skip
def test_the_threshold_that_applies_and_why(
    label: str,
    confidence: float,
    rule: LabelRule,
    fitted: Thresholds | None,
    queue: str | None,
    basis: str,
    reason: str,
) -> None:
    decision = decide(_queue(label, confidence), {"queue": rule}, {}, {"queue": fitted})
    assert decision.queue == queue
    assert decision.basis["queue"]["basis"] == basis
    assert decision.reasons["queue"].startswith(reason)


def test_the_decision_records_the_threshold_used() -> None:
    decision = decide(_queue("billing", 0.7), {"queue": TARGET}, {}, {"queue": FITTED})
    assert decision.basis == {"queue": {"threshold": 0.55, "basis": "target"}}


def test_a_rule_names_its_policy_in_the_models_classes() -> None:
    rule = LabelRule(
        map={"billing": "Billing", "hw": "Hardware"},
        target_precision=0.85,
        never=frozenset({"Legal"}),
        always=frozenset({"hw"}),
        floors={"Billing": 0.95, "unknown": 0.9},
    )
    policy = rule.policy(["billing", "hw", "Legal", "misc"])
    assert policy == Policy(0.85, (("billing", 0.95),), frozenset({"Legal"}), frozenset({"hw"}))
    assert LabelRule().policy(["a"]) == Policy(0.9)  # no target configured: the default, no opt-outs


def _config(tmp_path: Path, routing: dict[str, Any]) -> Config:
    entry = {"type": "imap", "name": "mail", "host": "127.0.0.1", "user": "u", "password": "p", "routing": routing}
    path = tmp_path / "ticketd.yaml"
    path.write_text(yaml.safe_dump({"connectors": [entry]}), encoding="utf-8")
    return load_config(path)


def test_config_target_precision_and_never_route_reach_the_rules(tmp_path: Path) -> None:
    config = _config(
        tmp_path, {"labels": {"queue": {"target_precision": 0.95}, "priority": {}}, "never_route": ["Legal"]}
    )
    rules = label_rules(config.connectors[0])
    assert rules["queue"].target_precision == 0.95
    assert rules["queue"].never == frozenset({"Legal"})
    assert rules["priority"].never == frozenset()


def test_a_threshold_and_a_target_together_are_refused_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"(?s)labels\.queue.*not both"):
        _config(tmp_path, {"labels": {"queue": {"target_precision": 0.9, "threshold": 0.7}}})
    with pytest.raises(ConfigError, match="target_precision"):
        _config(tmp_path, {"labels": {"queue": {"target_precision": 1.5}}})


def test_config_min_precision_and_always_route_reach_the_rules(tmp_path: Path) -> None:
    queue = {"target_precision": 0.9, "min_precision": {"Billing": 0.95}, "always_route": ["Legal"]}
    config = _config(tmp_path, {"labels": {"queue": queue, "priority": {}}, "never_route": ["Spam"]})
    rules = label_rules(config.connectors[0])
    assert rules["queue"].floors == {"Billing": 0.95}
    assert rules["queue"].always == frozenset({"Legal"})
    assert rules["queue"].never == frozenset({"Spam"})
    assert rules["priority"].floors == {} and rules["priority"].always == frozenset()


def test_a_floor_without_a_target_is_refused_naming_the_key_and_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        _config(tmp_path, {"labels": {"queue": {"min_precision": {"Billing": 0.95}}}})
    path = tmp_path / "ticketd.yaml"
    line = path.read_text(encoding="utf-8").splitlines().index("        min_precision:") + 1
    assert str(refused.value).startswith(f"{path}:{line}: connectors[0].routing.labels.queue.min_precision: ")
    assert "needs target_precision" in str(refused.value)
    with pytest.raises(ConfigError, match=r"min_precision\.Billing"):  # a floor is a precision: inside (0, 1)
        _config(tmp_path, {"labels": {"queue": {"target_precision": 0.9, "min_precision": {"Billing": 1.0}}}})


def test_a_class_both_floored_and_always_routed_is_refused(tmp_path: Path) -> None:
    queue = {"target_precision": 0.9, "min_precision": {"Billing": 0.95}, "always_route": ["Billing"]}
    with pytest.raises(ConfigError, match=r"labels\.queue\.min_precision\.Billing: 'Billing' is in always_route"):
        _config(tmp_path, {"labels": {"queue": queue}})


def test_a_queue_both_never_and_always_routed_is_refused(tmp_path: Path) -> None:
    routing = {"labels": {"queue": {"target_precision": 0.9, "always_route": ["Legal"]}}, "never_route": ["Legal"]}
    with pytest.raises(ConfigError, match=r"routing\.never_route: 'Legal' is also in labels\.queue\.always_route"):
        _config(tmp_path, routing)
    routing["labels"]["queue"]["always_route"] = ["Billing"]  # different queues: both kept
    assert label_rules(_config(tmp_path, routing).connectors[0])["queue"].always == frozenset({"Billing"})
