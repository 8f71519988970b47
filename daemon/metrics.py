"""Prometheus metrics of one daemon process; a registry per instance, so tests and apps never share state."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)

_CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
# ticketd_class_routing's states (daemon.runtime.jobs maps a fitted class's reason onto them).
ROUTING_STATES = ("routed", "always_route", "never_route", "too_few_tickets", "below_floor", "left_out", "no_cut")
_BOUNDS = ("estimate", "lower", "upper")


class Metrics:
    """What operators alert on: routing outcomes, latency, confidence, model version, poll health, retrains."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.tickets = Counter(
            "ticketd_tickets", "Tickets processed, by connector and decision", ["connector", "decision"], registry=r
        )
        self.classify_seconds = Histogram(
            "ticketd_classify_seconds", "Time to classify one ticket (both heads)", registry=r
        )
        self.confidence = Histogram(
            "ticketd_confidence",
            "Calibrated top-1 confidence per label",
            ["label"],
            buckets=_CONFIDENCE_BUCKETS,
            registry=r,
        )
        self.model = Info("ticketd_model", "The model version being served", registry=r)
        self.last_poll = Gauge(
            "ticketd_last_successful_poll_timestamp_seconds",
            "Unix time of the last successful poll, per connector",
            ["connector"],
            registry=r,
        )
        self.shadow_agreement = Gauge(
            "ticketd_shadow_agreement_ratio",
            "Share of closed tickets whose final label matched the prediction, per connector and label",
            ["connector", "label"],
            registry=r,
        )
        self.class_precision = Gauge(
            "ticketd_class_precision_ratio",
            "Live precision among closed tickets routed to a class (shadow: would have been), per connector and label",
            ["connector", "label", "class"],
            registry=r,
        )
        self.class_target = Gauge(
            "ticketd_class_precision_target_ratio",
            "The class's min_precision floor, else its label's target_precision (absent without either)",
            ["connector", "label", "class"],
            registry=r,
        )
        self.class_below = Gauge(
            "ticketd_class_below_target",
            "1 while the class's live precision is clearly below its target (95% upper bound under it), else 0",
            ["connector", "label", "class"],
            registry=r,
        )
        # The label's routed tickets together, live: what target_precision promises.
        self.label_precision = Gauge(
            "ticketd_label_precision_ratio",
            "Live precision among all closed tickets of the label routed (shadow: would have been), per connector",
            ["connector", "label"],
            registry=r,
        )
        self.label_upper = Gauge(
            "ticketd_label_precision_upper_bound_ratio",
            "The one-sided 95% Wilson upper bound of ticketd_label_precision_ratio",
            ["connector", "label"],
            registry=r,
        )
        self.label_target = Gauge(
            "ticketd_label_precision_target_ratio",
            "The label's configured target_precision (absent without one)",
            ["connector", "label"],
            registry=r,
        )
        self.label_below = Gauge(
            "ticketd_label_below_target",
            "1 while the label's routed tickets together are clearly below its target (95% upper bound under it)",
            ["connector", "label"],
            registry=r,
        )
        # The served model's fit for each connector's routing (target_precision, floors, opt-outs), on its evidence;
        # `class` here is the model's class name (thresholds are per model class), the live gauges' the helpdesk's.
        self.label_estimate = Gauge(
            "ticketd_label_estimated_precision_ratio",
            "Estimated precision of the label's routed evidence tickets under the served thresholds (bound: "
            "estimate, or its one-sided 95% Wilson lower or upper bound)",
            ["connector", "label", "bound"],
            registry=r,
        )
        self.label_coverage = Gauge(
            "ticketd_label_estimated_coverage_ratio",
            "Share of the label's evidence tickets the served thresholds route",
            ["connector", "label"],
            registry=r,
        )
        self.class_threshold = Gauge(
            "ticketd_class_threshold",
            "The confidence a prediction of the class needs to be routed (0: always_route); absent while not routed",
            ["connector", "label", "class"],
            registry=r,
        )
        self.class_estimate = Gauge(
            "ticketd_class_estimated_precision_ratio",
            "Estimated precision of the class's routed evidence tickets (bound: estimate, lower or upper, one-sided "
            "95% Wilson); absent while not routed",
            ["connector", "label", "class", "bound"],
            registry=r,
        )
        self.class_coverage = Gauge(
            "ticketd_class_estimated_coverage_ratio",
            "Share of the evidence tickets predicted as the class that its threshold routes",
            ["connector", "label", "class"],
            registry=r,
        )
        self.class_floor = Gauge(
            "ticketd_class_min_precision_ratio",
            "The class's configured min_precision floor (absent without one)",
            ["connector", "label", "class"],
            registry=r,
        )
        self.class_below_pooled = Gauge(
            "ticketd_class_below_pooled",
            "1 while the routed class's estimated precision is below its label's pooled estimate, else 0",
            ["connector", "label", "class"],
            registry=r,
        )
        self.class_routing = Enum(
            "ticketd_class_routing",
            "Why the served thresholds route the class or not: routed, always_route, never_route, too_few_tickets "
            "(under 5 evidence tickets), below_floor (never reaches min_precision), left_out (would pull the "
            "pooled precision under the target), no_cut",
            ["connector", "label", "class"],
            states=list(ROUTING_STATES),
            registry=r,
        )
        self.missing_targets = Counter(
            "ticketd_missing_target",
            "Decisions whose mapped queue or priority the helpdesk does not have (field left as is)",
            ["connector", "label", "target"],
            registry=r,
        )
        self.retrains = Counter("ticketd_retrain_runs", "Retrain runs by outcome", ["outcome"], registry=r)
        self.connector_up = Gauge(
            "ticketd_connector_up", "1 while the connector is ready, 0 while it is not", ["connector"], registry=r
        )
        self.connector_failure = Enum(
            "ticketd_connector_failure",
            "The connector's failure class (ok while its last call succeeded); see daemon.runtime.coordinator",
            ["connector"],
            states=["ok", "transient", "credentials", "configuration", "state", "unexpected"],
            registry=r,
        )

        self.pushes = Counter(
            "ticketd_pushes",
            "Push requests per connector: accepted, duplicate (waiting), rejected (401), invalid, throttled (429)",
            ["connector", "result"],
            registry=r,
        )
        self.push_rechecks = Counter(
            "ticketd_push_rechecks",
            "Pushed tickets looked at again because the helpdesk had not finished writing them (no article yet)",
            ["connector"],
            registry=r,
        )
        self.push_latency = Histogram(
            "ticketd_push_to_writeback_seconds",
            "From a push's arrival to its ticket's write-back (or shadow record), per connector",
            ["connector"],
            buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0),
            registry=r,
        )
        self.push_mode = Gauge(
            "ticketd_connector_push_mode",
            "1 while the connector takes pushes (polling slowed to routing.push.poll_interval), 0 while it is polled",
            ["connector"],
            registry=r,
        )
        self.connector_owned = Gauge(
            "ticketd_connector_owned",
            "1 while this replica owns the connector's lease (several replicas on PostgreSQL; always 1 on SQLite)",
            ["connector"],
            registry=r,
        )

        self.auth_failures = Counter(
            "ticketd_auth_failures",
            "Credentials refused: a wrong bearer token, dashboard login or push signature, by kind",
            ["kind"],
            registry=r,
        )
        self.auth_throttled = Counter(
            "ticketd_auth_throttled",
            "Requests refused with 429 because their client had too many failed credentials (api.failed_auth_limit)",
            ["kind"],
            registry=r,
        )
        self.host_refused = Counter(
            "ticketd_host_refused", "Requests refused because their Host is not in api.allowed_hosts", registry=r
        )

    def auth_failed(self, kind: str) -> None:
        """Credentials of `kind` (bearer, login, push) were refused."""
        self.auth_failures.labels(kind).inc()

    def auth_limited(self, kind: str) -> None:
        """A client over its failed-credentials limit was answered 429."""
        self.auth_throttled.labels(kind).inc()

    def owned(self, connector: str, owned: bool) -> None:
        self.connector_owned.labels(connector).set(int(owned))

    def push(self, connector: str, result: str) -> None:
        """One push request answered as `result`."""
        self.pushes.labels(connector, result).inc()

    def push_recheck(self, connector: str) -> None:
        self.push_rechecks.labels(connector).inc()

    def pushed_routed(self, connector: str, seconds: float) -> None:
        """A pushed ticket was recorded: how long after its push."""
        self.push_latency.labels(connector).observe(seconds)

    def ticket(self, connector: str, decision: str) -> None:
        """One ticket recorded in the ledger as `decision` (applied, skipped, left, failed, shadow)."""
        self.tickets.labels(connector, decision).inc()

    def classified(self, seconds: float, predictions: Mapping[str, Mapping[str, Any]]) -> None:
        """One classification: its latency and every head's confidence."""
        self.classify_seconds.observe(seconds)
        for label, prediction in predictions.items():
            self.confidence.labels(label).observe(float(prediction["confidence"]))

    def missing_target(self, connector: str, label: str, target: str) -> None:
        """A decision could not write `label` because the helpdesk has no `target`."""
        self.missing_targets.labels(connector, label, target).inc()

    def model_version(self, version: str | None) -> None:
        """The version now served."""
        self.model.info({"version": version or ""})

    def poll_succeeded(self, connector: str) -> None:
        """A poll of `connector` finished without error."""
        self.last_poll.labels(connector).set(time.time())

    def connector_health(self, connector: str, ready: bool, failure: str | None) -> None:
        """After each job: whether the connector is ready and in which failure class."""
        self.connector_up.labels(connector).set(1 if ready else 0)
        self.connector_failure.labels(connector).state(failure or "ok")

    def agreement(self, connector: str, label: str, ratio: float) -> None:
        """Latest shadow/live agreement with the agents' final labels."""
        self.shadow_agreement.labels(connector, label).set(ratio)

    def class_quality(
        self, connector: str, label: str, name: str, precision: float | None, target: float | None, flagged: bool
    ) -> None:
        """One class's live precision against its target, after a harvest."""
        if precision is not None:
            self.class_precision.labels(connector, label, name).set(precision)
        if target is not None:
            self.class_target.labels(connector, label, name).set(target)
        self.class_below.labels(connector, label, name).set(1 if flagged else 0)

    def label_quality(
        self,
        connector: str,
        label: str,
        precision: float | None,
        upper: float | None,
        target: float | None,
        flagged: bool,
    ) -> None:
        """The label's routed tickets together, live, against its target, after a harvest."""
        if precision is not None:
            self.label_precision.labels(connector, label).set(precision)
        if upper is not None:
            self.label_upper.labels(connector, label).set(upper)
        if target is not None:
            self.label_target.labels(connector, label).set(target)
        self.label_below.labels(connector, label).set(1 if flagged else 0)

    def forget_fits(self) -> None:
        """Drop every fit series, and the label targets set with them from the config, before they are set afresh:
        a class, label, connector or target gone from the model or the config goes from the exposition."""
        for gauge in (
            self.label_target,
            self.label_estimate,
            self.label_coverage,
            self.class_threshold,
            self.class_estimate,
            self.class_coverage,
            self.class_floor,
            self.class_below_pooled,
            self.class_routing,
        ):
            gauge.clear()

    def label_fit(
        self,
        connector: str,
        label: str,
        target: float,
        bounds: tuple[float | None, float | None, float | None] = (None, None, None),
        coverage: float | None = None,
    ) -> None:
        """The label's target and the served thresholds' pooled figure on its evidence: (estimate, lower, upper) and
        coverage (none for a model without per-class thresholds)."""
        self.label_target.labels(connector, label).set(target)
        for bound, value in zip(_BOUNDS, bounds, strict=True):
            if value is not None:
                self.label_estimate.labels(connector, label, bound).set(value)
        if coverage is not None:
            self.label_coverage.labels(connector, label).set(coverage)

    def class_fit(
        self,
        connector: str,
        label: str,
        name: str,
        *,
        threshold: float | None,
        bounds: tuple[float | None, float | None, float | None],
        coverage: float | None,
        floor: float | None,
        state: str,
        below_pooled: bool,
    ) -> None:
        """One class under the served thresholds: its threshold, estimated precision, coverage, floor and state."""
        if threshold is not None:
            self.class_threshold.labels(connector, label, name).set(threshold)
            for bound, value in zip(_BOUNDS, bounds, strict=True):
                if value is not None:
                    self.class_estimate.labels(connector, label, name, bound).set(value)
        if coverage is not None:
            self.class_coverage.labels(connector, label, name).set(coverage)
        if floor is not None:
            self.class_floor.labels(connector, label, name).set(floor)
        self.class_below_pooled.labels(connector, label, name).set(1 if below_pooled else 0)
        self.class_routing.labels(connector, label, name).state(state)

    def retrain(self, outcome: str) -> None:
        """A retrain finished as promoted, rejected, skipped or failed."""
        self.retrains.labels(outcome).inc()

    def render(self) -> tuple[bytes, str]:
        """The text exposition format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
