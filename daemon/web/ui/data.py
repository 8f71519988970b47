"""What each dashboard page shows, computed from the daemon's state, its connectors and the model store.

Everything here is plain data (dicts, lists, numbers) for the templates and the charts' JSON; the ledger
is read through SQL aggregates and a bounded list of recent entries, never loaded whole.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from connectors.base import WRITABLE
from daemon.ml.thresholds import ClassFit, Evidence, Figure, Policy, Thresholds, fit
from daemon.pipeline.report import label_report
from daemon.pipeline.routing import LabelRule
from daemon.web.services import DashboardSource

if TYPE_CHECKING:
    from daemon.ml.serving import LoadedModel

Rules = Mapping[str, Mapping[str, LabelRule]]  # connector -> label -> rule
Served = tuple[Thresholds | None, str]  # a head's fit for the policy it is served with, and whose policy that is

WEEKS = 26  # the agreement chart's span
RELIABILITY_BINS = 10
SHORT_TICKET_ID = 16  # a helpdesk's own ticket number or id is this long at most; a Message-ID is longer
_ID_WRAPPING = re.compile(r"^[a-z]+:|[<>]")  # `maildir:` and a Message-ID's angle brackets say nothing of the mail


def ticket_name(ticket_id: str) -> str:
    """How every page names a ticket: a short id as it is; a long opaque one (a Message-ID) by its start and a hash
    of the whole, stable and distinct, so a row fits and a person can still tell tickets apart."""
    if len(ticket_id) <= SHORT_TICKET_ID:
        return ticket_id
    start = _ID_WRAPPING.sub("", ticket_id)[:6]
    return f"{start}…{hashlib.sha256(ticket_id.encode('utf-8')).hexdigest()[:6]}"


def _today() -> datetime:
    now = datetime.now(UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def overview(source: DashboardSource | None, models: list[dict[str, Any]]) -> dict[str, Any]:
    """Per connector its mode, state and today's tickets; the served model against the baseline."""
    connectors: list[dict[str, Any]] = []
    if source is not None:
        today = source.state.ledger_counts(since=_today())
        routed = source.state.routed_counts(since=_today())
        for info in source.connectors():
            name = info["name"]
            counts = {state: n for (connector, state), n in today.items() if connector == name}
            connectors.append(
                {
                    **info,
                    "today": counts,
                    "today_total": sum(counts.values()),
                    "today_routed": routed.get(name, 0),
                    "today_failed": counts.get("failed", 0),
                }
            )
    current = next((m for m in models if m["current"]), None)
    return {"connectors": connectors, "model": current, "has_daemon": source is not None}


def model_summary(version: str, current: bool, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """A version's heads: the chosen candidate, validation scores with their standard errors, and the baseline's."""
    heads = []
    for name, head in (metadata.get("heads") or {}).items():
        if not isinstance(head, Mapping):
            continue
        validation = head.get("validation") or {}
        chosen = next((c for c in head.get("candidates") or [] if c.get("candidate") == head.get("chosen")), None)
        versus = (chosen or {}).get("vs_reference") or {}

        def baseline(key: str, validation: Mapping[str, Any] = validation, versus: Mapping[str, Any] = versus) -> Any:
            if key not in validation or key not in versus:
                return None
            return round(float(validation[key]) - float(versus[key]), 4)

        thresholds = head.get("thresholds") or {}
        per_class = thresholds.get("per_class") or {}
        heads.append(
            {
                "name": name,
                "chosen": head.get("chosen"),
                "classes": len(head.get("classes") or []),
                "accuracy": validation.get("accuracy"),
                "accuracy_se": validation.get("accuracy_se"),
                "macro_f1": validation.get("macro_f1"),
                "macro_f1_se": validation.get("macro_f1_se"),
                "ece": validation.get("ece"),
                "baseline_accuracy": baseline("accuracy"),
                "baseline_macro_f1": baseline("macro_f1"),
                "judged_on": judged_on(head),
                "target": thresholds.get("target"),
                "routable_classes": sum(1 for v in per_class.values() if v is not None),
            }
        )
    data = metadata.get("data") or {}
    return {
        "version": version,
        "current": current,
        "created_at": metadata.get("created_at"),
        "training_rows": data.get("rows") if isinstance(data, Mapping) else None,
        "heads": heads,
    }


def judged_on(head: Mapping[str, Any]) -> int | None:
    """How many held-out tickets a head's scores were judged on (its validation split, each scored out of fold): the
    one number the Overview and the Quality page give, not the data's total nor the threshold evidence's count."""
    rows = (head.get("validation") or {}).get("rows")
    return rows if isinstance(rows, int) and not isinstance(rows, bool) else None


def judged_per_head(metadata: Mapping[str, Any]) -> dict[str, int | None]:
    """`judged_on` of each head a model's metadata describes."""
    heads = metadata.get("heads") or {}
    return {name: judged_on(head) for name, head in heads.items() if isinstance(head, Mapping)}


def _week(day: date) -> date:
    return day - timedelta(days=day.weekday())


def quality(
    source: DashboardSource,
    evidence: Mapping[str, Evidence],
    served: Mapping[str, Served],
    judged: Mapping[str, int | None],
) -> dict[str, Any]:
    """Per connector and label: weekly agreement, live pooled and per-class precision, recall, confusion; per head
    the model's reliability and coverage-precision curve, and the served rule's fit per class."""
    rules = source.rules()
    since = _today() - timedelta(weeks=WEEKS)
    sections = []
    for connector in source.state.ledger_connectors():
        label_rules = {label: rules.get(connector, {}).get(label, LabelRule()) for label in WRITABLE}
        fixed = {label: rule.threshold for label, rule in label_rules.items()}
        counted = source.state.agreement_counts(connector, fixed)  # one query feeds the report and the confusion
        for label, rule in label_rules.items():
            report = label_report(connector, label, rule, counted[label])
            if report is not None:
                days = source.state.agreement_by_day(connector, {label: rule.threshold}, since)[label]
                sections.append({"report": report, **_weekly(days, rule), "confusion": confusion(counted[label], rule)})
    return {"sections": sections, "heads": model_curves(evidence, served, judged)}


def served_fits(model: LoadedModel | None, rules: Rules) -> dict[str, Served]:
    """Per head the fit the daemon routes with: the first connector whose rule for the label sets target_precision
    (its target, floors and opt-outs), else the model's own fit at its training target (`ticketd serve`)."""
    if model is None:
        return {}
    out: dict[str, Served] = {}
    for label, head in model.classifier.heads.items():
        found = next(
            ((name, by[label]) for name, by in rules.items() if label in by and by[label].target_precision is not None),
            None,
        )
        if found is None:
            out[label] = (head.routing, "the model's fit at its training target (no connector sets target_precision)")
        else:
            connector, rule = found
            fitted = model.thresholds(label, rule.policy(model.classes(label)))
            out[label] = (fitted, f"connector {connector}'s routing.labels.{label}")
    return out


def model_curves(
    evidence: Mapping[str, Evidence], served: Mapping[str, Served], judged: Mapping[str, int | None]
) -> list[dict[str, Any]]:
    """Per head the held-out tickets it was judged on, the reliability and coverage-precision curves of its
    evidence, and the served fit (all `ticketd serve` shows)."""
    out = []
    for name, ev in evidence.items():
        if name not in WRITABLE:
            continue
        fitted, basis = served.get(name, (None, ""))
        view = None if fitted is None else {**fit_view(fitted), "basis": basis}
        out.append({"name": name, "judged_on": judged.get(name), **curves(ev, fitted), "fit": view})
    return out


def _weekly(days: list[tuple[date, str, str, bool, int]], rule: LabelRule) -> dict[str, Any]:
    """Per closing week: agreement, and precision among routed tickets, as the chart's series."""
    weekly: dict[date, list[int]] = {}
    for day, predicted, truth, routed, n in days:
        cell = weekly.setdefault(_week(day), [0, 0, 0, 0])
        ok = rule.target(predicted) == truth
        cell[0] += n
        cell[1] += n if ok else 0
        cell[2] += n if routed else 0
        cell[3] += n if routed and ok else 0
    weeks = sorted(weekly)
    chart = {
        "x": [datetime(w.year, w.month, w.day, tzinfo=UTC).timestamp() for w in weeks],
        "agreement": [round(weekly[w][1] / weekly[w][0], 4) for w in weeks],
        "precision": [round(weekly[w][3] / weekly[w][2], 4) if weekly[w][2] else None for w in weeks],
        "tickets": [weekly[w][0] for w in weeks],
    }
    return {"weekly": chart}


def confusion(counts: list[tuple[str, str, bool, int]], rule: LabelRule) -> dict[str, Any]:
    """Predicted (as the helpdesk names it) against final, with each cell's share of its row for shading."""
    cells: dict[tuple[str, str], int] = {}
    for predicted, truth, _, n in counts:
        key = (rule.target(predicted), truth)
        cells[key] = cells.get(key, 0) + n
    names = sorted({k[0] for k in cells} | {k[1] for k in cells})
    rows = []
    for p in names:
        total = sum(cells.get((p, t), 0) for t in names)
        rows.append(
            {
                "predicted": p,
                "cells": [
                    {
                        "n": cells.get((p, t), 0),
                        "shade": int(9 * cells.get((p, t), 0) / total) if total else 0,
                        "diagonal": p == t,
                    }
                    for t in names
                ],
            }
        )
    return {"names": names, "rows": rows}


def curves(evidence: Evidence, thresholds: Thresholds | None) -> dict[str, Any]:
    """Reliability diagram and coverage-precision curve of a head's validation tickets, thresholds marked."""
    conf = np.asarray(evidence.confidence, dtype=np.float64)
    right = np.asarray(evidence.correct, dtype=bool)
    n = len(conf)
    reliability: dict[str, list[Any]] = {"confidence": [], "accuracy": [], "tickets": []}
    edges = np.linspace(0.0, 1.0, RELIABILITY_BINS + 1)
    for lo, hi in itertools.pairwise(edges):
        mask = (conf > lo) & (conf <= hi) if lo > 0 else (conf >= lo) & (conf <= hi)
        if mask.any():
            reliability["confidence"].append(round(float(conf[mask].mean()), 4))
            reliability["accuracy"].append(round(float(right[mask].mean()), 4))
            reliability["tickets"].append(int(mask.sum()))
    order = np.argsort(-conf, kind="stable")
    hits = np.cumsum(right[order])
    k = np.arange(1, n + 1)
    step = max(1, n // 200)  # at most ~200 points: the chart's shape, not every ticket
    coverage = {
        "coverage": [round(float(v), 4) for v in (k / max(n, 1))[::step]],
        "precision": [round(float(v), 4) for v in (hits / k)[::step]],
    }
    marks = []
    if thresholds is not None:
        single = None if thresholds.global_threshold is None else thresholds.global_pooled
        for mark, figure in (("per-class", thresholds.pooled), ("global", single)):
            if figure is not None and figure.routed and figure.coverage is not None:
                marks.append({"name": mark, "coverage": figure.coverage, "precision": figure.correct / figure.routed})
    return {
        "tickets": n,
        "reliability": reliability,
        "coverage": coverage,
        "marks": marks,
        "target": None if thresholds is None else thresholds.target,
    }


def advisor(
    evidence: Mapping[str, Evidence], target: float, rules: Mapping[str, LabelRule] | None = None
) -> list[dict[str, Any]]:
    """Per head the pooled rule's fit for a target: with a connector's `rules`, under its floors and opt-outs."""
    out = []
    for name, ev in evidence.items():
        rule = (rules or {}).get(name)
        policy = Policy(target) if rule is None else replace(rule, target_precision=target).policy(ev.classes)
        out.append({"head": name, **fit_view(fit(ev, policy))})
    return out


def fit_view(fitted: Thresholds) -> dict[str, Any]:
    """A fit as the pages show it: the label's pooled figure against the target, the one global threshold's, the
    policy, and per class its threshold, evidence figure (estimate with its one-sided 95% bounds) and marks."""
    policy = fitted.policy or Policy(fitted.target)
    pooled = fitted.pooled or Figure.of(sum(fitted.support.values()), 0, 0, 0.0)
    estimate = pooled.estimate
    classes = [
        {"class": name, "threshold": c.threshold, "floor": c.floor, "reason": c.reason, **c.figure.to_json()}
        | {"marks": [{"text": m, "kind": _kind(m, c)} for m in c.marks(estimate)]}
        for name, c in fitted.classes.items()
    ]
    return {
        "target": fitted.target,
        "tickets": pooled.tickets,
        "pooled": pooled.to_json(),
        "meets": pooled.lower is not None and pooled.lower >= fitted.target - 1e-9,
        "global_threshold": fitted.global_threshold,
        "global": None if fitted.global_pooled is None else fitted.global_pooled.to_json(),
        "rule": _rule_text(policy),
        "classes": classes,
    }


def _rule_text(policy: Policy) -> list[str]:
    """The policy's floors and opt-outs as the config names them, one part each (none for a bare target)."""
    parts = []
    if policy.floors:
        parts.append("min_precision " + ", ".join(f"{name} {floor:g}" for name, floor in policy.floors))
    for key, names in (("always_route", policy.always), ("never_route", policy.never)):
        if names:
            parts.append(f"{key} " + ", ".join(sorted(names)))
    return parts


def _kind(mark: str, fitted: ClassFit) -> str:
    """The badge of one of a class's marks (ClassFit.marks): floor, always (always_route), below (the pooled
    figure), or why it is not routed: never (never_route), left (left out by the pooled target), off (switched off)."""
    if fitted.floor is not None and mark == f"floor {fitted.floor:g}":
        return "floor"
    if fitted.threshold is not None:  # routed: forced by always_route, or below the pooled figure
        return "always" if mark == fitted.reason == "always_route" else "below"
    return {"never_route": "never", "left_out": "left"}.get(fitted.state, "off")


def decisions(
    source: DashboardSource, *, connector: str | None, label: str | None, outcome: str | None, limit: int
) -> list[dict[str, Any]]:
    """Recent tickets: prediction, confidence, decision and reason, and the final label once closed."""
    routed = {"routed": True, "left": False}.get(outcome or "")
    state = outcome if outcome in ("applied", "skipped", "shadow", "failed", "pending") else None
    by_label = (label or "queue") if routed is not None else None
    rows = source.state.ledger_recent(limit=limit, connector=connector, state=state, label=by_label, routed=routed)
    text_allowed = source.include_ticket_text()
    all_rules = source.rules()
    out = []
    for entry, final in rows:
        rules = all_rules.get(entry.connector, {})
        labels = []
        for name in WRITABLE:
            if label and name != label:
                continue
            prediction = (entry.predictions or {}).get(name)
            if prediction is None:
                continue
            rule = rules.get(name, LabelRule())
            predicted = rule.target(str(prediction.get("label")))
            truth = (final or {}).get(name)
            decision = entry.decision or {}
            labels.append(
                {
                    "name": name,
                    "predicted": predicted,
                    "confidence": prediction.get("confidence"),
                    "routed": (decision.get("routed") or {}).get(name),
                    "threshold": ((decision.get("thresholds") or {}).get(name) or {}).get("threshold"),
                    "basis": ((decision.get("thresholds") or {}).get(name) or {}).get("basis"),
                    "reason": (decision.get("reasons") or {}).get(name),
                    "final": truth,
                    "corrected": truth is not None and truth != predicted,
                    "words": (decision.get("words") or {}).get(name) if text_allowed else None,
                }
            )
        out.append(
            {
                "connector": entry.connector,
                "ticket_id": entry.ticket_id,
                "subject": (entry.decision or {}).get("subject") if text_allowed else None,
                "url": source.ticket_url(entry.connector, entry.ticket_id),
                "state": entry.state,
                "mode": entry.mode,
                "model_version": entry.model_version,
                "created_at": entry.created_at,
                "labels": labels,
                "closed": final is not None,
            }
        )
    return out
