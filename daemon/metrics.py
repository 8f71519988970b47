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
            "The class's configured target_precision (absent without one)",
            ["connector", "label", "class"],
            registry=r,
        )
        self.class_below = Gauge(
            "ticketd_class_below_target",
            "1 while the class's live precision is clearly below its target (95% upper bound under it), else 0",
            ["connector", "label", "class"],
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

    def retrain(self, outcome: str) -> None:
        """A retrain finished as promoted, rejected, skipped or failed."""
        self.retrains.labels(outcome).inc()

    def render(self) -> tuple[bytes, str]:
        """The text exposition format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
