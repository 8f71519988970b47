"""The config's schema: one frozen, key-strict pydantic model per section."""

from __future__ import annotations

import ipaddress
import os
import warnings
from pathlib import Path
from typing import Annotated, Any, Literal

from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped, unused-ignore]
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_core import PydanticCustomError

from connectors import secrets
from connectors.base import WRITABLE, ConnectorConfig
from daemon.config.yaml_lines import Loc

MIN_TOKEN_CHARS = 24
MAKE_TOKEN = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


def state_dir() -> Path:
    """systemd's StateDirectory= (`$STATE_DIRECTORY`) under a unit, else ./.ticketd; absolute either way."""
    first = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(first) if first else Path.cwd() / ".ticketd"


def _at(suffix: Loc, message: str) -> PydanticCustomError:
    """A validation error that points `suffix` deeper than the validator's own location (for the line number)."""
    return PydanticCustomError("ticketd", "{message}", {"message": message, "at": suffix})


DEFAULT_FINETUNE_CAP = 3000  # tickets each transformer head fine-tunes on, at most (daemon.ml.sampling)


class _Section(BaseModel):
    """Frozen and strict about keys: a typo is an error, never a silently ignored setting."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class LabelRouting(_Section):
    """How one label's prediction becomes a helpdesk value; below `threshold` the fallback applies."""

    map: dict[str, str] = Field(default_factory=dict)
    threshold: float = Field(default=0.6, ge=0, le=1)
    # Instead of one threshold: per-class thresholds under which the label's routed tickets together meet this
    # precision (daemon.ml.thresholds).
    target_precision: float | None = Field(default=None, ge=0.5, lt=1)
    # Per class (model label or helpdesk name): routed only where its own estimated precision meets this floor.
    min_precision: dict[str, Annotated[float, Field(gt=0, lt=1)]] = Field(default_factory=dict)
    always_route: list[str] = Field(default_factory=list)  # classes routed whenever predicted, at any confidence
    fallback: Literal["leave"] | dict[str, str] = "leave"

    @model_validator(mode="after")
    def _one_kind_of_threshold(self) -> LabelRouting:
        if self.target_precision is not None and "threshold" in self.model_fields_set:
            raise ValueError("set threshold (one for every class) or target_precision (per class), not both")
        if self.min_precision and self.target_precision is None:
            raise _at(("min_precision",), "a floor needs target_precision (the model's evidence estimates it)")
        for name in self.always_route:
            if name in self.min_precision:
                raise _at(("min_precision", name), f"{name!r} is in always_route: set a floor or always_route")
        return self

    @field_validator("fallback", mode="before")
    @classmethod
    def _fallback_shape(cls, value: Any) -> Any:
        if value == "leave":
            return value
        if isinstance(value, dict) and len(value) == 1:
            ((key, name),) = value.items()
            if key in WRITABLE and isinstance(name, str) and name.strip():
                return value
        raise ValueError("fallback must be 'leave', {queue: NAME} or {priority: NAME}")

    @property
    def fallback_name(self) -> str | None:
        """The fixed helpdesk value used below the threshold; None means leave the field as it is."""
        return None if isinstance(self.fallback, str) else next(iter(self.fallback.values()))


def _default_labels() -> dict[str, LabelRouting]:
    return {label: LabelRouting() for label in WRITABLE}


class PushSection(_Section):
    """Pushes from the helpdesk to `/api/v1/hooks/<connector>`; polling stays as the safety net."""

    enabled: bool = False
    poll_interval: float = Field(default=300.0, gt=0)  # seconds between polls while pushes are on
    queue_limit: int = Field(default=1000, ge=1)  # pushed ids waiting; a push beyond it gets 429


class RoutingSection(_Section):
    """The daemon's per-connector behaviour: which labels it writes, how often it polls, live or shadow."""

    mode: Literal["live", "shadow"] = "live"
    poll_interval: float = Field(default=60.0, gt=0)
    jitter: float = Field(default=5.0, ge=0)
    batch_limit: int = Field(default=50, ge=1)
    harvest_interval: float = Field(default=900.0, gt=0)
    timeout: float = Field(default=30.0, gt=0)  # seconds per helpdesk request (connect: at most 10)
    max_backoff: float = Field(default=900.0, gt=0)  # the longest wait between tries while failing
    recover_after: float = Field(default=180.0, ge=0)  # uninterrupted success before "recovered" is logged
    labels: dict[str, LabelRouting] = Field(default_factory=_default_labels)
    never_route: list[str] = Field(default_factory=list)  # queues (model or helpdesk names) left to people
    note: bool = True
    push: PushSection = Field(default_factory=PushSection)

    @model_validator(mode="after")
    def _never_or_always(self) -> RoutingSection:
        queue = self.labels.get("queue")
        for name in queue.always_route if queue is not None else []:
            if name in self.never_route:
                raise _at(("never_route",), f"{name!r} is also in labels.queue.always_route: choose one")
        return self

    @field_validator("labels")
    @classmethod
    def _fallback_fits_label(cls, labels: dict[str, LabelRouting]) -> dict[str, LabelRouting]:
        for label, rule in labels.items():
            if label not in WRITABLE:
                raise _at((label,), f"unknown label; the daemon routes {' and '.join(WRITABLE)}")
            if isinstance(rule.fallback, dict) and label not in rule.fallback:
                raise _at((label, "fallback"), f"the {label} label's fallback must be 'leave' or {{{label}: NAME}}")
        return labels


class ConnectorEntry(_Section):
    """One helpdesk: `connection` is the connector's own validated config, `routing` the daemon's part."""

    name: str = Field(min_length=1)
    type: str
    connection: ConnectorConfig
    routing: RoutingSection = Field(default_factory=RoutingSection)


class ModelSection(_Section):
    """Where versions live (serving loads `current`) and what a retrain trains."""

    store: Path = Field(default_factory=lambda: state_dir() / "models")
    base: str | None = None
    labels: list[str] = Field(default_factory=lambda: [str(label) for label in WRITABLE], min_length=1)
    threads: int | None = Field(default=None, ge=1)

    @field_validator("labels")
    @classmethod
    def _known_and_unique(cls, labels: list[str]) -> list[str]:
        unknown = [label for label in labels if label not in WRITABLE]
        if unknown:
            raise ValueError(f"unknown label {unknown[0]!r}; the daemon routes {' and '.join(WRITABLE)}")
        if len(set(labels)) != len(labels):
            raise ValueError("labels must not repeat")
        return labels


class StateSection(_Section):
    """The ledger, cursors and training store; the URL may hold a password, so it stays out of repr."""

    url: str = Field(default_factory=lambda: f"sqlite:///{state_dir() / 'state.db'}", repr=False)
    # Finished ledger entries older than this lose their predictions, decision and detail (daily); the
    # entry itself stays, so a ticket is never routed twice. None keeps everything.
    keep_days: int | None = Field(default=90, ge=1)

    @field_validator("url")
    @classmethod
    def _database_url(cls, url: str) -> str:
        if "://" not in url:
            raise ValueError("expected a database URL such as sqlite:///path/state.db or postgresql+psycopg://...")
        return url

    @property
    def safe_url(self) -> str:
        """The URL with any password masked, for logs and `check-config` output."""
        return secrets.redact_url(self.url)


class RetrainSection(_Section):
    """When and how the model retrains on harvested tickets, and the promotion rule."""

    enabled: bool = True
    cron: str = "0 3 * * 0"
    min_new_examples: int = Field(default=200, ge=0)
    tolerance: float = Field(default=0.0, ge=0, le=1)
    keep_versions: int = Field(default=5, ge=1)
    holdout_share: float = Field(default=0.2, gt=0, lt=1)
    epochs: int = Field(default=3, ge=1)
    max_length: int = Field(default=256, ge=8)
    # `ticketd train --budget`: epochs and ticket length shrink so a retrain fits; None trains without a limit.
    # 30: a year's store (50k tickets) retrains both heads overnight in half an hour on 2 cores (bench/retrain.py).
    budget_minutes: float | None = Field(default=30.0, gt=0)
    # Each transformer head fine-tunes on at most this many tickets (stratified, recent ones likelier);
    # TF-IDF learns from all of them. None: every ticket (the cost then grows with the store).
    finetune_cap: int | None = Field(default=DEFAULT_FINETUNE_CAP, ge=100)
    # The challenger fine-tunes from the current model's weights (kept for it: ~90 MiB more per head and version).
    warm_start: bool = False
    # Training rows of tickets closed longer ago are deleted (daily): a year of labels, then they age out.
    keep_days: int | None = Field(default=365, ge=1)

    @field_validator("cron")
    @classmethod
    def _crontab(cls, cron: str) -> str:
        try:
            CronTrigger.from_crontab(cron, timezone="UTC")
        except ValueError as exc:
            raise ValueError(f"not a valid crontab expression 'min hour day month weekday': {exc}") from None
        return cron


class ClusterSection(_Section):
    """Several replicas on one PostgreSQL `state.url` (daemon.runtime.leadership); SQLite is one process, no leases."""

    # An owner that has not renewed a lease for this long loses it (a paused or cut-off replica); a crashed
    # owner's leases go at once (PostgreSQL ends its session and its advisory locks).
    lease_seconds: float = Field(default=10.0, gt=0, le=300)
    renew_interval: float = Field(default=2.0, gt=0)  # renew held leases, look for free ones
    replica_id: str | None = None  # default: host name and process id (a pod's name in Kubernetes)

    @model_validator(mode="after")
    def _renew_well_within_the_lease(self) -> ClusterSection:
        if self.renew_interval * 3 > self.lease_seconds:
            raise ValueError(
                f"renew_interval ({self.renew_interval:g} s) must be at most a third of lease_seconds "
                f"({self.lease_seconds:g} s), or one slow renewal loses the lease"
            )
        return self


class ApiSection(_Section):
    """The HTTP API and the dashboard; `tokens` are admins, `read_tokens` may only look (SecretStr: never printed)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    tokens: list[SecretStr] = Field(default_factory=list)
    read_tokens: list[SecretStr] = Field(default_factory=list)  # dashboard read-only, classify, GET models
    public_classify: bool = False
    dashboard: bool = True  # /ui: a login page exchanges a token for a session cookie
    public_dashboard: bool = False  # true: /ui read-only without login, to anyone who can reach the port
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    # Wrong bearer tokens, dashboard logins and push signatures per client address and minute; then 429.
    failed_auth_per_minute: int = Field(default=10, ge=1, le=10_000)
    # Reverse proxies (addresses or CIDRs) whose X-Forwarded-For/-Proto/-Host are believed; none by default.
    trusted_proxies: list[str] = Field(default_factory=list)
    # Host headers answered (names, `*.example.org`, or `*` for any); IP addresses always are. None: this
    # machine's names (localhost, `host`, the host name): a DNS-rebinding page cannot read the API.
    allowed_hosts: list[str] | None = None

    @field_validator("tokens", "read_tokens")
    @classmethod
    def _strong_tokens(cls, tokens: list[SecretStr]) -> list[SecretStr]:
        for i, token in enumerate(tokens):
            value = token.get_secret_value()
            if not value.strip():
                raise _at((i,), "an empty token would let anyone in")
            if len(value) < MIN_TOKEN_CHARS:
                raise _at(
                    (i,),
                    f"a token of {len(value)} characters can be guessed; use at least {MIN_TOKEN_CHARS} "
                    f"(make one: {MAKE_TOKEN})",
                )
        return tokens

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, proxies: list[str]) -> list[str]:
        for i, proxy in enumerate(proxies):
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise _at((i,), f"{proxy!r} is not an IP address or network (10.0.0.0/8, fd00::/8)") from None
        return proxies

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, hosts: list[str] | None) -> list[str] | None:
        for i, host in enumerate(hosts or []):
            wildcard = "*" in host and host != "*" and not (host.startswith("*.") and "*" not in host[2:])
            if not host or wildcard or any(c in host for c in "/:@ "):
                raise _at((i,), f"{host!r} is not a host name (ticketd.example.org, *.example.org or *)")
        return None if hosts is None else [h.lower().rstrip(".") for h in hosts]

    @model_validator(mode="after")
    def _roles_apart(self) -> ApiSection:
        admin = {t.get_secret_value() for t in self.tokens}
        if any(t.get_secret_value() in admin for t in self.read_tokens):
            raise ValueError("a token is in both tokens and read_tokens: give each token one role")
        return self


with warnings.catch_warnings():
    # `json` is the documented key; it shadows only BaseModel.json(), pydantic v1's deprecated serialiser.
    warnings.filterwarnings("ignore", message='Field name "json"', category=UserWarning)

    class LogSection(_Section):
        """Log level and format (None: JSON lines off a terminal); ticket text is opt-in."""

        level: Literal["debug", "info", "warning", "error", "critical"] = "info"
        json: bool | None = None  # type: ignore[assignment]
        include_ticket_text: bool = False

        @field_validator("level", mode="before")
        @classmethod
        def _lower(cls, value: Any) -> Any:
            return value.lower() if isinstance(value, str) else value


ScrubKind = Literal["email", "phone", "iban", "card"]
SCRUB_KINDS: tuple[ScrubKind, ...] = ("email", "phone", "iban", "card")


class PrivacySection(_Section):
    """What is replaced by a placeholder before a harvested ticket's text is stored (daemon/pipeline/privacy.py)."""

    scrub: list[ScrubKind] = Field(default_factory=lambda: list(SCRUB_KINDS))  # []: the text as the helpdesk has it
    phone_regions: list[str] = Field(default_factory=lambda: ["DE", "AT", "CH", "GB", "US"])

    @field_validator("phone_regions")
    @classmethod
    def _regions(cls, regions: list[str]) -> list[str]:
        import phonenumbers

        known = phonenumbers.SUPPORTED_REGIONS
        for region in regions:
            if region.upper() not in known:
                raise ValueError(f"unknown phone region {region!r}: use a two-letter country code such as DE or US")
        return [r.upper() for r in regions]


class Config(_Section):
    """The whole file; `load_config` builds it so that errors carry lines, `default_config` for `make run`."""

    connectors: list[ConnectorEntry] = Field(min_length=1)
    model: ModelSection = Field(default_factory=ModelSection)
    state: StateSection = Field(default_factory=StateSection)
    retrain: RetrainSection = Field(default_factory=RetrainSection)
    api: ApiSection = Field(default_factory=ApiSection)
    cluster: ClusterSection = Field(default_factory=ClusterSection)
    log: LogSection = Field(default_factory=LogSection)
    privacy: PrivacySection = Field(default_factory=PrivacySection)

    @field_validator("connectors")
    @classmethod
    def _unique_names(cls, entries: list[ConnectorEntry]) -> list[ConnectorEntry]:
        seen: dict[str, int] = {}
        for i, entry in enumerate(entries):
            if entry.name in seen:
                raise _at(
                    (i, "name"),
                    f"duplicate connector name {entry.name!r} (connectors[{seen[entry.name]}] has it too); "
                    "the ledger keys tickets by it, so give each entry its own 'name'",
                )
            seen[entry.name] = i
        return entries

    @model_validator(mode="after")
    def _routed_labels_are_trained(self) -> Config:
        for i, entry in enumerate(self.connectors):
            if "labels" not in entry.routing.model_fields_set:
                continue  # the default routes whichever of queue/priority the model predicts
            for label in entry.routing.labels:
                if label not in self.model.labels:
                    raise _at(
                        ("connectors", i, "routing", "labels", label),
                        f"the model has no {label!r} label (model.labels: {', '.join(self.model.labels)})",
                    )
        return self


# What a running process cannot change: the API's socket and body limit, the state database, the model store.
RESTART_ONLY = {
    "api": ("enabled", "host", "port", "max_body_bytes", "dashboard", "trusted_proxies", "allowed_hosts"),
    "state": ("url",),
    "model": ("store", "threads"),
}


def restart_only_changes(old: Config, new: Config) -> list[str]:
    """`section.key` of every restart-only setting that differs between two configs."""
    return [
        f"{section}.{key}"
        for section, keys in RESTART_ONLY.items()
        for key in keys
        if getattr(getattr(old, section), key) != getattr(getattr(new, section), key)
    ]
