"""Shadow-mode (and live) report: how the model's decisions compare with what agents finally decided."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

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


def build_report(
    entries: Iterable[Any], finals: Iterable[Any], rules: Mapping[str, Mapping[str, LabelRule]]
) -> list[LabelReport]:
    """Join ledger entries with harvested final labels by (connector, ticket id)."""
    final = {(r.connector, r.ticket_id): r for r in finals}
    cells: dict[tuple[str, str], list[tuple[bool, bool]]] = {}
    for entry in entries:
        row = final.get((entry.connector, entry.ticket_id))
        if row is None:
            continue
        for label in WRITABLE:
            prediction = entry.predictions.get(label)
            truth = getattr(row, label, None)
            if prediction is None or truth is None:
                continue
            rule = rules.get(entry.connector, {}).get(label, LabelRule())
            mapped = rule.target(str(prediction["label"]))
            confident = float(prediction["confidence"]) >= rule.threshold
            cells.setdefault((entry.connector, label), []).append((mapped == truth, confident))
    out = []
    for (connector, name), pairs in sorted(cells.items()):
        n = len(pairs)
        above = [ok for ok, confident in pairs if confident]
        out.append(
            LabelReport(
                connector,
                name,
                n,
                sum(ok for ok, _ in pairs) / n if n else None,
                len(above) / n if n else None,
                sum(above) / len(above) if above else None,
            )
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
