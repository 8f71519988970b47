"""Shadow-mode (and live) report: how the model's decisions compare with what agents finally decided.

The live precision among routed tickets is set against the label's `target_precision`, pooled (all routed
tickets of the label: what the target promises) and per class (against the class's `min_precision` floor where
it has one, else the label's target: under a pooled target a class may sit below it by design, so the class
flag is a pointer to a floor, the pooled flag the shortfall). Either is flagged when *clearly* below: even the
upper end of its one-sided 95% Wilson interval falls short, so three routed tickets and one mistake are not
flagged by bad luck.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from connectors.base import WRITABLE
from daemon.ml.thresholds import wilson
from daemon.pipeline.routing import LabelRule


@dataclass(frozen=True)
class ClassReport:
    """One model class of one label: live precision among its routed tickets, recall among its closed ones."""

    name: str  # the helpdesk name (after `map`)
    routed: int  # closed tickets routed to it (or, in shadow mode, that would have been)
    correct: int  # of those, the agents left it there
    actual: int  # closed tickets whose final label is this class
    target: float | None  # the class's min_precision floor, else the label's target_precision, if configured

    @property
    def precision(self) -> float | None:
        return self.correct / self.routed if self.routed else None

    @property
    def recall(self) -> float | None:
        """Share of this class's closed tickets that were routed to it."""
        return self.correct / self.actual if self.actual else None

    @property
    def upper_bound(self) -> float | None:
        """The precision's one-sided 95% Wilson upper bound."""
        return wilson_upper(self.correct, self.routed)

    @property
    def flagged(self) -> bool:
        """Live precision clearly below the target (the bound itself is below it)."""
        bound = self.upper_bound
        return self.target is not None and bound is not None and bound < self.target


def wilson_upper(successes: int, n: int) -> float | None:
    """The one-sided 95% Wilson upper bound of a proportion; None without trials."""
    return wilson(successes, n)[1] if n > 0 else None


@dataclass(frozen=True)
class LabelReport:
    """One connector x label: agreement overall and among routed tickets, and per class."""

    connector: str
    label: str
    compared: int  # classified tickets that have since closed
    agreement: float | None  # share whose (mapped) prediction equals the final label
    auto_routed_share: float | None  # share that was (shadow: would have been) routed
    accuracy_at_threshold: float | None  # agreement among those
    target_precision: float | None = None
    classes: tuple[ClassReport, ...] = field(default=())
    routed: int = 0  # closed tickets that were (shadow: would have been) routed
    routed_correct: int = 0

    @property
    def flagged(self) -> list[str]:
        """Classes whose live precision is clearly below their floor or the target."""
        return [c.name for c in self.classes if c.flagged]

    @property
    def pooled_upper_bound(self) -> float | None:
        """The one-sided 95% Wilson upper bound of the precision of all routed tickets."""
        return wilson_upper(self.routed_correct, self.routed)

    @property
    def pooled_flagged(self) -> bool:
        """The label's routed tickets together are clearly below the target (what target_precision promises)."""
        bound = self.pooled_upper_bound
        return self.target_precision is not None and bound is not None and bound < self.target_precision

    def as_json(self) -> dict[str, Any]:
        """For `ticketd report --json` and the dashboard."""
        return {
            "connector": self.connector,
            "label": self.label,
            "compared": self.compared,
            "agreement": self.agreement,
            "auto_routed_share": self.auto_routed_share,
            "accuracy_at_threshold": self.accuracy_at_threshold,
            "target_precision": self.target_precision,
            "routed": self.routed,
            "pooled_precision_upper_bound": self.pooled_upper_bound,
            "pooled_flagged": self.pooled_flagged,
            "flagged": self.flagged,
            "classes": [
                {
                    "name": c.name,
                    "routed": c.routed,
                    "correct": c.correct,
                    "actual": c.actual,
                    "precision": c.precision,
                    "recall": c.recall,
                    "precision_upper_bound": c.upper_bound,
                    "target": c.target,
                    "flagged": c.flagged,
                }
                for c in self.classes
            ],
        }


class AgreementCounts(Protocol):
    """What the report reads: daemon.state.State's SQL aggregates."""

    def ledger_connectors(self) -> list[str]: ...
    def agreement_counts(
        self, connector: str, thresholds: Mapping[str, float]
    ) -> dict[str, list[tuple[str, str, bool, int]]]: ...


def build_report(state: AgreementCounts, rules: Mapping[str, Mapping[str, LabelRule]]) -> list[LabelReport]:
    """Per connector and label, from counts the database aggregates (the ledger is never loaded)."""
    out = []
    for connector in state.ledger_connectors():
        label_rules = {label: rules.get(connector, {}).get(label, LabelRule()) for label in WRITABLE}
        counted = state.agreement_counts(connector, {label: rule.threshold for label, rule in label_rules.items()})
        for label in WRITABLE:
            rule = label_rules[label]
            report = label_report(connector, label, rule, counted[label])
            if report is not None:
                out.append(report)
    return out


def label_report(
    connector: str, label: str, rule: LabelRule, counted: list[tuple[str, str, bool, int]]
) -> LabelReport | None:
    """One label's report from its (predicted, final, routed, n) counts; None when nothing has closed."""
    n = agreed = above = agreed_above = 0
    routed: dict[str, int] = {}
    correct: dict[str, int] = {}
    actual: dict[str, int] = {}
    for predicted, truth, confident, count in counted:
        target = rule.target(predicted)
        ok = target == truth
        n += count
        agreed += count if ok else 0
        actual[truth] = actual.get(truth, 0) + count
        if confident:
            above += count
            agreed_above += count if ok else 0
            routed[target] = routed.get(target, 0) + count
            correct[target] = correct.get(target, 0) + (count if ok else 0)
    if not n:
        return None
    floors = {rule.target(name): floor for name, floor in rule.floors.items()} | dict(rule.floors)
    goal = rule.target_precision
    classes = tuple(
        ClassReport(name, routed.get(name, 0), correct.get(name, 0), actual.get(name, 0), floors.get(name, goal))
        for name in sorted(set(routed) | set(actual))
    )
    return LabelReport(
        connector,
        label,
        n,
        agreed / n,
        above / n,
        agreed_above / above if above else None,
        rule.target_precision,
        classes,
        above,
        agreed_above,
    )


@dataclass(frozen=True)
class MissingTarget:
    """A mapped queue or priority the helpdesk lacked when a ticket was decided: that field was left as is."""

    connector: str
    label: str
    target: str
    tickets: int


def missing_targets(entries: Iterable[Any]) -> list[MissingTarget]:
    """Per connector, label and target: how many decided tickets could not get it."""
    counts: dict[tuple[str, str, str], int] = {}
    for entry in entries:
        for label, target in (entry.decision or {}).get("missing", {}).items():
            key = (entry.connector, label, target)
            counts[key] = counts.get(key, 0) + 1
    return [MissingTarget(*key, n) for key, n in sorted(counts.items())]


def format_missing(missing: list[MissingTarget]) -> str:
    """Lines for the terminal; empty when every mapped target existed."""
    return "\n".join(
        f"missing in the helpdesk: {m.connector} {m.label} {m.target!r} ({m.tickets} tickets left as is; "
        f"fix routing.labels.{m.label}.map or the connector's {m.label} names, see `ticketd check`)"
        for m in missing
    )


def format_report(reports: list[LabelReport]) -> str:
    """A table a person can read in a terminal, then per class the live precision against the target."""
    if not reports:
        return "no classified ticket has closed yet: nothing to compare"

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.1%}"

    lines = [f"{'connector':<20}{'label':<10}{'closed':>8}{'agree':>9}{'auto':>9}{'acc@thr':>9}{'target':>8}"]
    for r in reports:
        flag = "  FLAGGED: routed tickets clearly below the target" if r.pooled_flagged else ""
        lines.append(
            f"{r.connector:<20}{r.label:<10}{r.compared:>8}{pct(r.agreement):>9}"
            f"{pct(r.auto_routed_share):>9}{pct(r.accuracy_at_threshold):>9}{pct(r.target_precision):>8}{flag}"
        )
    head = f"{'connector':<20}{'label':<10}{'class':<24}{'routed':>8}{'precision':>11}{'target':>8}{'recall':>9}"
    lines += ["", head]
    for r in reports:
        for c in r.classes:
            flag = "  FLAGGED: clearly below target" if c.flagged else ""
            lines.append(
                f"{r.connector:<20}{r.label:<10}{c.name[:23]:<24}{c.routed:>8}{pct(c.precision):>11}"
                f"{pct(c.target):>8}{pct(c.recall):>9}{flag}"
            )
    return "\n".join(lines)
