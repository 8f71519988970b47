"""The quality gauges as the harvest job sets them: live precision of each label's routed tickets together and per
class against the target, and the served model's fit per connector (threshold, estimated precision with its
bounds, coverage, floor, why a class is not routed), on a SQLite state with closed tickets and the tiny model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import MethodType, SimpleNamespace
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from daemon.metrics import Metrics
from daemon.ml.thresholds import Evidence, Policy, Thresholds, fit
from daemon.pipeline.routing import LabelRule
from daemon.runtime.jobs import Jobs, publish_fits
from tests.support.world import World, make_world

FLOORED = LabelRule(
    target_precision=0.9, always=frozenset({"Technical Support"}), floors={"Customer Service": 0.95}, threshold=0.6
)


@pytest.fixture
def world(tmp_path: Path, tiny_model: Path) -> Iterator[World]:
    world = make_world(tmp_path, tiny_model)
    yield world
    world.state.close()


def harvest_job(world: World, rules: dict[str, LabelRule]) -> Any:
    """What the harvest job's gauge updates read of the daemon: its state, stacks' rules, metrics and model."""
    job = SimpleNamespace(
        state=world.state,
        stacks={"helpdesk": SimpleNamespace(pipeline=SimpleNamespace(rules=rules))},
        metrics=world.services.metrics,
        model=world.services.model,
        _below_target=set(),
    )
    job._note_below = MethodType(Jobs._note_below, job)
    return job


def after_harvest(job: Any) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Run the job's updates, then read the exposition back."""
    Jobs._update_agreement(job)
    Jobs._update_fits(job)
    return exposed(job.metrics)


def exposed(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The exposition read back with Prometheus' own parser: (name, labels) -> value."""
    text = metrics.render()[0].decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def at(label: str, name: str | None = None, **more: str) -> frozenset[tuple[str, str]]:
    labels = {"connector": "helpdesk", "label": label, **more}
    return frozenset((labels | ({"class": name} if name else {})).items())


def test_the_live_pooled_precision_is_set_against_the_target_and_flagged_once(world: World) -> None:
    rules = {"queue": LabelRule(target_precision=0.9), "priority": LabelRule(threshold=0.6)}
    job = harvest_job(world, rules)
    with capture_logs() as logs:
        got = after_harvest(job)
        after_harvest(job)  # a flag is logged when it is raised, not at every harvest
    assert got["ticketd_label_precision_ratio", at("queue")] == pytest.approx(30 / 37)  # 37 routed, 7 wrong
    assert 0.85 < got["ticketd_label_precision_upper_bound_ratio", at("queue")] < 0.9
    assert got["ticketd_label_precision_target_ratio", at("queue")] == 0.9
    assert got["ticketd_label_below_target", at("queue")] == 1.0
    assert got["ticketd_label_below_target", at("priority")] == 0.0  # no target: never flagged
    assert ("ticketd_label_precision_target_ratio", at("priority")) not in got
    pooled = [e for e in logs if e["event"] == "live pooled precision clearly below target"]
    assert len(pooled) == 1 and pooled[0]["label"] == "queue" and pooled[0]["routed"] == 37

    rules["queue"] = LabelRule(target_precision=0.85)
    with capture_logs() as logs:
        got = after_harvest(job)
    assert got["ticketd_label_below_target", at("queue")] == 0.0
    assert got["ticketd_label_precision_target_ratio", at("queue")] == 0.85
    assert [e["label"] for e in logs if e["event"] == "live pooled precision no longer below target"] == ["queue"]


def test_the_served_fit_is_published_per_class_and_stale_series_go(world: World) -> None:
    rules = {"queue": FLOORED, "priority": LabelRule(threshold=0.6)}
    model = world.services.model.get()
    fitted = model.thresholds("queue", FLOORED.policy(model.classes("queue")))
    assert fitted is not None and fitted.pooled is not None
    job = harvest_job(world, rules)
    got = after_harvest(job)

    pooled = fitted.pooled
    assert got["ticketd_label_estimated_coverage_ratio", at("queue")] == pooled.coverage
    for bound in ("estimate", "lower", "upper"):
        assert got["ticketd_label_estimated_precision_ratio", at("queue", bound=bound)] == getattr(pooled, bound)
    assert got["ticketd_label_precision_target_ratio", at("queue")] == 0.9

    forced = fitted.classes["Technical Support"].figure  # always_route: threshold 0, every ticket routed
    assert got["ticketd_class_threshold", at("queue", "Technical Support")] == 0.0
    assert got["ticketd_class_estimated_coverage_ratio", at("queue", "Technical Support")] == 1.0
    assert forced.lower is not None and forced.estimate is not None and forced.upper is not None
    assert forced.lower <= forced.estimate <= forced.upper
    for bound in ("estimate", "lower", "upper"):
        value = got["ticketd_class_estimated_precision_ratio", at("queue", "Technical Support", bound=bound)]
        assert value == getattr(forced, bound)

    def state(name: str) -> str:
        on = [
            s
            for (metric, labels), v in got.items()
            if metric == "ticketd_class_routing" and v == 1.0
            for key, s in labels
            if key == "ticketd_class_routing" and ("class", name) in labels
        ]
        assert len(on) == 1, (name, on)
        return on[0]

    assert state("Technical Support") == "always_route"
    assert state("Customer Service") == "below_floor"  # 5 tickets, never 95% right
    assert state("General Inquiry") == "too_few_tickets"  # no evidence ticket at all
    states = {"not enough closed": "too_few_tickets", "its estimated precision never": "below_floor"}
    states |= {"left out:": "left_out", "always_route": "always_route"}
    for name, c in fitted.classes.items():
        assert state(name) == ("routed" if c.reason is None else next(v for k, v in states.items() if k in c.reason))
    assert got["ticketd_class_min_precision_ratio", at("queue", "Customer Service")] == 0.95
    assert ("ticketd_class_threshold", at("queue", "Customer Service")) not in got  # not routed: no threshold
    assert ("ticketd_class_estimated_precision_ratio", at("queue", "Customer Service", bound="estimate")) not in got
    assert got["ticketd_class_below_pooled", at("queue", "Technical Support")] == 0.0  # it is the whole pool
    assert not any(labels >= at("priority") for (metric, labels) in got if "estimated" in metric)  # fixed threshold

    rules["queue"] = LabelRule(target_precision=0.9)  # floors and always_route gone from the config
    got = after_harvest(job)
    assert ("ticketd_class_threshold", at("queue", "Technical Support")) not in got
    assert ("ticketd_class_min_precision_ratio", at("queue", "Customer Service")) not in got
    assert state("Technical Support") != "always_route"
    del rules["queue"]  # no routing for the label at all: nothing estimated is left for it
    got = after_harvest(job)
    assert not any(labels >= at("queue") for (metric, labels) in got if "estimated" in metric or "routing" in metric)


def test_a_routed_class_below_the_pooled_figure_is_marked() -> None:
    """Evidence where two classes are routed, one of them less precise than the two together."""
    rng = np.random.default_rng(7)
    names, sizes, precision = ["sure", "fair", "rare"], [40, 40, 3], [1.0, 0.9, 1.0]
    predicted = np.repeat(np.arange(3), sizes)
    right = np.concatenate([rng.random(n) < p for n, p in zip(sizes, precision, strict=True)])
    evidence = Evidence(names, predicted, np.round(rng.uniform(0.5, 0.99, len(predicted)), 4), right)

    class Model:  # what publish_fits asks of the served model (daemon.ml.serving.LoadedModel)
        def thresholds(self, label: str, policy: Policy) -> Thresholds:
            return fit(evidence, policy)

        def classes(self, label: str) -> list[str]:
            return names

    metrics = Metrics()
    publish_fits(metrics, Model(), {"helpdesk": {"queue": LabelRule(target_precision=0.8)}})  # type: ignore[arg-type]
    got = exposed(metrics)
    fitted = fit(evidence, Policy(0.8))
    assert fitted.pooled is not None and fitted.pooled.estimate is not None
    sure, fair = fitted.classes["sure"].figure, fitted.classes["fair"].figure
    assert fair.estimate is not None and sure.estimate is not None
    assert fair.estimate < fitted.pooled.estimate <= sure.estimate
    assert got["ticketd_class_below_pooled", at("queue", "fair")] == 1.0
    assert got["ticketd_class_below_pooled", at("queue", "sure")] == 0.0
    assert got["ticketd_class_below_pooled", at("queue", "rare")] == 0.0  # not routed: no figure to compare
    for name in ("sure", "fair"):
        assert got["ticketd_class_threshold", at("queue", name)] == fitted.per_class[name]
        assert got["ticketd_class_routing", at("queue", name, ticketd_class_routing="routed")] == 1.0
    assert got["ticketd_class_routing", at("queue", "rare", ticketd_class_routing="too_few_tickets")] == 1.0
    assert got["ticketd_label_estimated_precision_ratio", at("queue", bound="lower")] >= 0.8
