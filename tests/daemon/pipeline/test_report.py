"""The live report: per-class precision among routed tickets against the target, and when a class is flagged."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from daemon.pipeline.report import ClassReport, build_report, format_report, wilson_upper
from daemon.pipeline.routing import LabelRule


class Counts:
    """agreement_counts as the database returns them, for one connector."""

    def __init__(self, queue: list[tuple[str, str, bool, int]]) -> None:
        self.queue = queue

    def ledger_connectors(self) -> list[str]:
        return ["helpdesk"]

    def agreement_counts(
        self, connector: str, thresholds: Mapping[str, float]
    ) -> dict[str, list[tuple[str, str, bool, int]]]:
        return {"queue": self.queue, "priority": []}


def test_wilson_upper_bound() -> None:
    assert wilson_upper(0, 0) is None
    assert wilson_upper(10, 10) == 1.0
    # 80 of 100: the one-sided 95% upper bound is about 0.857 (Wilson); 8 of 10 leaves far more room
    assert wilson_upper(80, 100) == pytest.approx(0.8575, abs=1e-3)
    assert wilson_upper(8, 10) == pytest.approx(0.9313, abs=1e-3)


def test_a_class_is_flagged_only_when_clearly_below_its_target() -> None:
    assert ClassReport("Billing", 100, 80, 100, 0.9).flagged  # 0.80 with 100 routed: bound 0.857 < 0.9
    assert not ClassReport("Billing", 10, 8, 10, 0.9).flagged  # 0.80 of 10 could be bad luck: bound 0.93
    assert not ClassReport("Billing", 100, 80, 100, None).flagged  # no target, nothing to fall short of
    assert not ClassReport("Billing", 0, 0, 5, 0.9).flagged  # nothing routed to it


def test_report_per_class_precision_recall_and_flags() -> None:
    counts = Counts(
        [
            ("IT", "Hardware", True, 90),  # mapped: IT is Hardware in the helpdesk
            ("IT", "Sales", True, 30),
            ("IT", "Hardware", False, 10),  # left for agents: counts for recall, not precision
            ("Sales", "Sales", True, 40),
        ]
    )
    rule = LabelRule(map={"IT": "Hardware"}, target_precision=0.9)
    (report,) = build_report(counts, {"helpdesk": {"queue": rule}})
    classes = {c.name: c for c in report.classes}
    hardware, sales = classes["Hardware"], classes["Sales"]
    assert (hardware.routed, hardware.correct, hardware.actual) == (120, 90, 100)
    assert hardware.precision == pytest.approx(0.75) and hardware.recall == pytest.approx(0.9)
    assert (sales.routed, sales.correct, sales.actual) == (40, 40, 70)
    assert sales.precision == 1.0 and sales.recall == pytest.approx(40 / 70)
    assert report.flagged == ["Hardware"] and report.target_precision == 0.9
    text = format_report([report])
    (line,) = [ln for ln in text.splitlines() if "Hardware" in ln]
    assert "75.0%" in line and "90.0%" in line and "FLAGGED" in line
    assert "FLAGGED" not in next(ln for ln in text.splitlines() if ln.split()[2:3] == ["Sales"])
    data = report.as_json()
    assert data["flagged"] == ["Hardware"] and data["classes"][0]["precision_upper_bound"] < 0.9


def test_the_pooled_precision_is_checked_against_the_target_and_a_floor_against_its_class() -> None:
    # Routed: 150 Hardware (135 right, 90%), 100 Sales (80 right, 80%): 86% pooled, clearly below 0.9.
    counts = Counts(
        [
            ("IT", "Hardware", True, 135),
            ("IT", "Sales", True, 15),
            ("Sales", "Sales", True, 80),
            ("Sales", "Hardware", True, 20),
        ]
    )
    rule = LabelRule(map={"IT": "Hardware"}, target_precision=0.9, floors={"IT": 0.95})
    (report,) = build_report(counts, {"helpdesk": {"queue": rule}})
    assert (report.routed, report.routed_correct) == (250, 215)
    assert report.pooled_upper_bound is not None and report.pooled_upper_bound < 0.9 and report.pooled_flagged
    classes = {c.name: c for c in report.classes}
    assert classes["Hardware"].target == 0.95  # its floor (named by model label), not the label's target
    assert classes["Sales"].target == 0.9
    assert report.flagged == ["Hardware", "Sales"]
    assert report.as_json()["pooled_flagged"] is True
    assert "FLAGGED: routed tickets clearly below the target" in format_report([report])
    # The same precision on 20 routed tickets could be bad luck: not flagged.
    small = Counts(
        [
            ("IT", "Hardware", True, 9),
            ("IT", "Sales", True, 1),
            ("Sales", "Sales", True, 8),
            ("Sales", "Hardware", True, 2),
        ]
    )
    (few,) = build_report(small, {"helpdesk": {"queue": rule}})
    assert few.routed == 20 and not few.pooled_flagged
