"""Configuration of the Request Tracker connector; validated once, before any request goes out."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from connectors._http import root_url
from connectors.base import ConnectorConfig

# RT 5's default $PriorityAsString: a name covers the range from its number up to the next name's.
DEFAULT_PRIORITIES = {"Low": 0, "Medium": 50, "High": 100}


class RTConfig(ConnectorConfig):
    """The same keys as Znuny's where they mean the same; `priorities` maps each name to the number RT stores."""

    type: Literal["rt"] = "rt"
    url: str
    user: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None  # an RT auth token (Settings -> Auth Tokens): `Authorization: token <it>`
    inbound_queues: list[str] = Field(min_length=1)
    new_statuses: list[str] = Field(default_factory=lambda: ["new"], min_length=1)
    closed_statuses: list[str] = Field(default_factory=lambda: ["resolved"], min_length=1)
    queues: list[str] = Field(default_factory=list)
    priorities: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_PRIORITIES), min_length=1)
    per_page: int = Field(default=100, ge=1, le=100)
    note_subject: str = "ticketd"
    # The shared secret of deploy/rt's scrip: its pushes carry `X-Ticketd-Signature: sha256=<HMAC of the body>`.
    push_secret: SecretStr | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return root_url(value, api="/REST/2.0")

    @field_validator("inbound_queues", "new_statuses", "closed_statuses", "queues")
    @classmethod
    def _no_blank_names(cls, value: list[str]) -> list[str]:
        if any(not v.strip() for v in value):
            raise ValueError("names must not be blank")
        return value

    @field_validator("priorities")
    @classmethod
    def _distinct_numbers(cls, value: dict[str, int]) -> dict[str, int]:
        if any(not name.strip() for name in value):
            raise ValueError("priority names must not be blank")
        seen: dict[int, str] = {}
        for name, number in value.items():
            if number in seen:
                raise ValueError(f"priorities {seen[number]!r} and {name!r} both map to {number}; give each its own")
            seen[number] = name
        return value

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> RTConfig:
        basic = self.user is not None or self.password is not None
        if self.token is not None and basic:
            raise ValueError("give either 'token' or 'user' + 'password', not both")
        if self.token is None and (self.user is None or self.password is None):
            raise ValueError("give 'token', or both 'user' and 'password' (or 'password_file')")
        return self

    def priority_name(self, number: int) -> str:
        """The name whose range holds `number` (the highest name at or below it), as RT shows it."""
        ranked = sorted(self.priorities.items(), key=lambda kv: kv[1])
        below = [name for name, value in ranked if value <= number]
        return below[-1] if below else ranked[0][0]

    def ticket_url(self, ticket_id: str) -> str:
        """The ticket's page in RT's web UI."""
        return f"{self.url}/Ticket/Display.html?id={ticket_id}"
