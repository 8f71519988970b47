"""Routing: how a prediction becomes a helpdesk value. The rule, the target lookup and `decide`, in one place.

Per label: a queue in `never_route`, a confidence below the threshold that applies, or a ticket with no
text to classify gets the fallback, or the field is left alone; otherwise the model's label is mapped to
the helpdesk's name (`map`, identity by default), and a name the live helpdesk does not have falls back
too. The threshold is the configured one (`fixed`), 0 for a class in `always_route`, or with
`target_precision` the model's threshold for the predicted class (`target`): fitted so that the label's
routed tickets together meet the target, each floored class its own `min_precision` (daemon.ml.thresholds);
a class the rule leaves out is not routed, and the reason says why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from connectors.base import WRITABLE
from daemon.ml.thresholds import DEFAULT_TARGET, Policy

if TYPE_CHECKING:
    from daemon.config import ConnectorEntry
    from daemon.ml.thresholds import Thresholds


@dataclass(frozen=True)
class LabelRule:
    """How one label's prediction becomes a helpdesk value; `fallback` None means leave the field alone."""

    map: Mapping[str, str] = field(default_factory=dict)
    threshold: float = 0.6
    fallback: str | None = None
    target_precision: float | None = None  # use the model's per-class thresholds for this pooled precision
    never: frozenset[str] = frozenset()  # model labels or helpdesk names that are never routed automatically
    always: frozenset[str] = frozenset()  # ... routed whenever predicted (with text), at any confidence
    floors: Mapping[str, float] = field(default_factory=dict)  # min_precision per model label or helpdesk name

    def target(self, predicted: str) -> str:
        """The helpdesk name for a model label (identity unless `map` says otherwise)."""
        return self.map.get(predicted, predicted)

    def names(self, predicted: str) -> tuple[str, str]:
        """Both names a setting may use for a class: the model's label and the helpdesk's."""
        return predicted, self.target(predicted)

    def policy(self, classes: Sequence[str]) -> Policy:
        """The target, floors and opt-outs in the model's class names, for daemon.ml.thresholds.fit."""
        floors = {c: v for c in classes for name, v in self.floors.items() if name in self.names(c)}
        return Policy.of(
            self.target_precision or DEFAULT_TARGET,
            floors,
            [c for c in classes if not self.never.isdisjoint(self.names(c))],
            [c for c in classes if not self.always.isdisjoint(self.names(c))],
        )


def label_rules(entry: ConnectorEntry) -> dict[str, LabelRule]:
    """A connector entry's configured routing as rules."""
    never = frozenset(entry.routing.never_route)
    return {
        label: LabelRule(
            map=dict(routing.map),
            threshold=routing.threshold,
            fallback=routing.fallback_name,
            target_precision=routing.target_precision,
            never=never if label == "queue" else frozenset(),
            always=frozenset(routing.always_route),
            floors=dict(routing.min_precision),
        )
        for label, routing in entry.routing.labels.items()
    }


@dataclass(frozen=True)
class Decision:
    """What to write, and per label why."""

    queue: str | None
    priority: str | None
    reasons: dict[str, str]
    missing: dict[str, str] = field(default_factory=dict)  # label -> mapped target the helpdesk lacks
    # label -> {"threshold": value or None, "basis": fixed | target | never_route | always_route | fallback}
    basis: dict[str, dict[str, Any]] = field(default_factory=dict)
    routed: dict[str, bool] = field(
        default_factory=dict
    )  # label -> the model's label was (or in shadow: would be) written

    @property
    def writes(self) -> bool:
        """Whether anything would change in the helpdesk."""
        return self.queue is not None or self.priority is not None


def decide(
    predictions: Mapping[str, Mapping[str, Any]],
    rules: Mapping[str, LabelRule],
    live: Mapping[str, set[str]],
    thresholds: Mapping[str, Thresholds | None] | None = None,
) -> Decision:
    """never_route, then the threshold that applies, then mapping, then whether the target exists in the helpdesk.

    `thresholds`: per label, the served model's per-class thresholds for the rule's policy (None for a model
    trained without them: the fixed threshold applies, basis "fallback").
    """
    chosen: dict[str, str | None] = {}
    reasons: dict[str, str] = {}
    missing: dict[str, str] = {}
    basis: dict[str, dict[str, Any]] = {}
    routed: dict[str, bool] = {}
    for label in WRITABLE:
        prediction, rule = predictions.get(label), rules.get(label)
        if prediction is None or rule is None:
            chosen[label], reasons[label] = None, "not routed"
            continue
        confidence = float(prediction["confidence"])
        predicted = str(prediction["label"])
        target = rule.target(predicted)
        fitted = (thresholds or {}).get(label)
        threshold, kind = _threshold(rule, predicted, fitted)
        basis[label] = {"threshold": threshold, "basis": kind}
        why = None
        if kind == "never_route":
            why = f"{target!r} is in never_route"
        elif confidence <= 0.0:  # the classifier's verdict on a ticket without text: no evidence at any threshold
            why = "no text to classify"
        elif threshold is None:
            assert fitted is not None  # only a fitted target leaves a class without a threshold
            why = fitted.why_not(predicted)
        elif confidence < threshold:
            why = f"confidence {confidence:.2f} below {threshold:.2f}"
        elif label in live and target not in live[label]:
            why = f"{target!r} does not exist in the helpdesk"
            missing[label] = target
        routed[label] = why is None
        if why is not None:
            chosen[label] = rule.fallback
            reasons[label] = f"{why}: " + (f"fallback {rule.fallback!r}" if rule.fallback else "left as is")
        else:
            assert threshold is not None
            chosen[label] = target
            reasons[label] = f"confidence {confidence:.2f}"
            if kind == "target":
                goal = rule.target_precision
                reasons[label] += f" at or above {threshold:.2f}, {predicted!r}'s threshold for precision {goal:.2f}"
            elif kind == "always_route":
                reasons[label] += f", {target!r} is in always_route"
    return Decision(chosen["queue"], chosen["priority"], reasons, missing, basis, routed)


_BASIS = {
    "fixed": "the configured threshold",
    "target": "its class's threshold for the label's pooled precision {goal:.2f}",
    "always_route": "its class is in always_route",
    "fallback": "the configured threshold (this model has no per-class thresholds)",
}


def note(
    version: str | None,
    predictions: Mapping[str, Mapping[str, Any]],
    decision: Decision,
    rules: Mapping[str, LabelRule],
    words: Mapping[str, list[str]],
) -> str:
    """The internal note's sentence: per label what the model said, what was done and why, and the words behind it."""
    parts = [
        explain(label, predictions[label], decision, rules[label], words.get(label, []))
        for label in WRITABLE
        if label in predictions and label in rules and label in decision.basis
    ]
    return f"ticketd {version or 'model'}: " + ". ".join(parts) + "."


def explain(label: str, prediction: Mapping[str, Any], decision: Decision, rule: LabelRule, words: list[str]) -> str:
    """One label's reason in words: routed at which threshold and why, or left and why; then the words behind it."""
    predicted, confidence = str(prediction["label"]), float(prediction["confidence"])
    basis = decision.basis[label]
    if decision.routed.get(label):
        kind = _BASIS[basis["basis"]].format(goal=rule.target_precision or 0.0)
        at = f"confidence {confidence:.2f} >= {basis['threshold']:.2f}"
        said = f"{label} set to {rule.target(predicted)!r}: {at}, {kind}"
    else:
        said = f"{label} {decision.reasons[label]} (model said {predicted!r}, confidence {confidence:.2f})"
    return said + ("; words: " + ", ".join(words) if words else "")


def _threshold(rule: LabelRule, predicted: str, fitted: Thresholds | None) -> tuple[float | None, str]:
    """The threshold for this prediction and where it comes from."""
    if not rule.never.isdisjoint(rule.names(predicted)):
        return None, "never_route"
    if not rule.always.isdisjoint(rule.names(predicted)):
        return 0.0, "always_route"
    if rule.target_precision is None:
        return rule.threshold, "fixed"
    if fitted is None:  # a model trained before per-class thresholds: the configured threshold still applies
        return rule.threshold, "fallback"
    return fitted.for_class(predicted), "target"
