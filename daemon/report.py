"""Shadow-mode (and live) report: how the model's decisions compare with what agents finally decided."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from daemon.routing import WRITABLE, LabelRule


@dataclass(frozen=True)
class LabelReport:
    """One connector x label: agreement overall and at the routing threshold."""

    connector: str
    label: str
    compared: int  # classified tickets that have since closed
    agreement: float | None  # share whose (mapped) prediction equals the final label
    auto_routed_share: float | None  # share at or above the threshold: would have been routed
    accuracy_at_threshold: float | None  # agreement among those


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
            n = agreed = above = agreed_above = 0
            for predicted, truth, confident, count in counted[label]:
                ok = rule.target(predicted) == truth
                n += count
                agreed += count if ok else 0
                above += count if confident else 0
                agreed_above += count if ok and confident else 0
            if n:
                out.append(
                    LabelReport(connector, label, n, agreed / n, above / n, agreed_above / above if above else None)
                )
    return out


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
    """A table a person can read in a terminal."""
    if not reports:
        return "no classified ticket has closed yet: nothing to compare"

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.1%}"

    lines = [f"{'connector':<20}{'label':<10}{'closed':>8}{'agree':>9}{'auto':>9}{'acc@thr':>9}"]
    for r in reports:
        lines.append(
            f"{r.connector:<20}{r.label:<10}{r.compared:>8}{pct(r.agreement):>9}"
            f"{pct(r.auto_routed_share):>9}{pct(r.accuracy_at_threshold):>9}"
        )
    return "\n".join(lines)
