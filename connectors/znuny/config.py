"""Settings for one Znuny / OTRS / OTOBO helpdesk."""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from connectors.base import ConnectorConfig
from connectors.znuny.routes import DEFAULTS, Route, Routes

STOCK_PRIORITIES = ["1 very low", "2 low", "3 normal", "4 high", "5 very high"]


class RoutesConfig(BaseModel):
    """Routes of a web service whose layout is neither stock one; unnamed operations keep the stock routes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ticket_search: str
    session_create: str = str(DEFAULTS["session_create"])
    ticket_get: str = str(DEFAULTS["ticket_get"])
    ticket_update: str = str(DEFAULTS["ticket_update"])

    @field_validator("ticket_search", "session_create", "ticket_get", "ticket_update")
    @classmethod
    def _route(cls, value: str) -> str:
        return str(Route.parse(value))

    @field_validator("ticket_get", "ticket_update")
    @classmethod
    def _per_ticket(cls, value: str) -> str:
        if ":TicketID" not in value:
            raise ValueError(f"{value!r} must contain :TicketID where the ticket id goes")
        return value

    def resolve(self) -> Routes:
        """The configured routes, labelled as such for `ticketd check`."""
        return Routes(
            Route.parse(self.session_create),
            Route.parse(self.ticket_search),
            Route.parse(self.ticket_get),
            Route.parse(self.ticket_update),
            "routes from the config",
        )


class ZnunyConfig(ConnectorConfig):
    """`url` is the server root; the web service path is built from `path_prefix` (default: the type)."""

    type: Literal["znuny", "otrs", "otobo"]
    url: str
    webservice: str = "GenericTicketConnectorREST"
    path_prefix: str | None = None
    user: str | None = None
    password: SecretStr | None = None
    session_id: SecretStr | None = None
    inbound_queues: list[str] = Field(min_length=1)
    new_state_types: list[str] = Field(default_factory=lambda: ["new", "open"], min_length=1)
    closed_state_types: list[str] = Field(default_factory=lambda: ["closed"], min_length=1)
    queues: list[str] = Field(default_factory=list)
    priorities: list[str] = Field(default_factory=lambda: list(STOCK_PRIORITIES))
    timezone: str = "UTC"
    note_subject: str = "ticketd"
    routes: RoutesConfig | None = None  # None: probe the web service for a stock layout
    # The shared token of the TicketCreate invoker (deploy/znuny/): its pushes carry it as the Basic auth password
    # (the requester's BasicAuth) or in an `X-Ticketd-Token` header (its AdditionalHeaders).
    push_token: SecretStr | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _credentials(self) -> ZnunyConfig:
        if self.session_id is None and not (self.user and self.password is not None):
            raise ValueError("give 'user' and 'password' (or 'password_file'), or a 'session_id'")
        if self.password is not None and not self.user:
            raise ValueError("'password' needs 'user'")
        return self

    @property
    def _prefix(self) -> str:
        return (self.path_prefix if self.path_prefix is not None else self.type).strip("/")

    @property
    def base_url(self) -> str:
        """The web service root; every route is appended to it."""
        parts = [self.url, self._prefix, "nph-genericinterface.pl", "Webservice", quote(self.webservice, safe="")]
        return "/".join(p for p in parts if p)

    def agent_url(self, ticket_id: str) -> str:
        """The ticket's page in the agent interface (AgentTicketZoom), beside the web service's script."""
        parts = [self.url, self._prefix, f"index.pl?Action=AgentTicketZoom;TicketID={quote(ticket_id, safe='')}"]
        return "/".join(p for p in parts if p)

    @property
    def zone(self) -> ZoneInfo:
        """The server's OTRSTimeZone: the API reads and writes every date in it."""
        return ZoneInfo(self.timezone)
