"""Routing: how a prediction becomes a helpdesk value. The rule, the target lookup and `decide`, in one place.

Per label: below the threshold (or with no text to classify) the fallback applies, or the field is
left alone; otherwise the model's label is mapped to the helpdesk's name (`map`, identity by default),
and a name the live helpdesk does not have falls back too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from daemon.config import ConnectorEntry

Label = Literal["queue", "priority"]
WRITABLE: tuple[Label, ...] = ("queue", "priority")  # the model labels a connector can write back (TicketUpdate)


@dataclass(frozen=True)
class LabelRule:
    """How one label's prediction becomes a helpdesk value; `fallback` None means leave the field alone."""

    map: Mapping[str, str] = field(default_factory=dict)
    threshold: float = 0.6
    fallback: str | None = None

    def target(self, predicted: str) -> str:
        """The helpdesk name for a model label (identity unless `map` says otherwise)."""
        return self.map.get(predicted, predicted)


def label_rules(entry: ConnectorEntry) -> dict[str, LabelRule]:
    """A connector entry's configured routing as rules."""
    return {
        label: LabelRule(map=dict(routing.map), threshold=routing.threshold, fallback=routing.fallback_name)
        for label, routing in entry.routing.labels.items()
    }


@dataclass(frozen=True)
class Decision:
    """What to write, and per label why."""

    queue: str | None
    priority: str | None
    reasons: dict[str, str]
    missing: dict[str, str] = field(default_factory=dict)  # label -> mapped target the helpdesk lacks

    @property
    def writes(self) -> bool:
        """Whether anything would change in the helpdesk."""
        return self.queue is not None or self.priority is not None


def decide(
    predictions: Mapping[str, Mapping[str, Any]],
    rules: Mapping[str, LabelRule],
    live: Mapping[str, set[str]],
) -> Decision:
    """Threshold, then mapping, then a check that the target exists in the live helpdesk."""
    chosen: dict[str, str | None] = {}
    reasons: dict[str, str] = {}
    missing: dict[str, str] = {}
    for label in WRITABLE:
        prediction, rule = predictions.get(label), rules.get(label)
        if prediction is None or rule is None:
            chosen[label], reasons[label] = None, "not routed"
            continue
        confidence = float(prediction["confidence"])
        target = rule.target(str(prediction["label"]))
        why = None
        if confidence <= 0.0:  # the classifier's verdict on a ticket without text: no evidence at any threshold
            why = "no text to classify"
        elif confidence < rule.threshold:
            why = f"confidence {confidence:.2f} below {rule.threshold:.2f}"
        elif label in live and target not in live[label]:
            why = f"{target!r} does not exist in the helpdesk"
            missing[label] = target
        if why is not None:
            chosen[label] = rule.fallback
            reasons[label] = f"{why}: " + (f"fallback {rule.fallback!r}" if rule.fallback else "left as is")
        else:
            chosen[label], reasons[label] = target, f"confidence {confidence:.2f}"
    return Decision(chosen["queue"], chosen["priority"], reasons, missing)
