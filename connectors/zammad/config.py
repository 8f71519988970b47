"""Configuration of the Zammad connector; validated once, before any request goes out."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from connectors._http import root_url
from connectors.base import ConnectorConfig


class ZammadConfig(ConnectorConfig):
    """What ticketd needs to poll one Zammad instance; secrets stay SecretStr until they go on the wire."""

    type: Literal["zammad"] = "zammad"
    url: str
    token: SecretStr | None = None
    user: str | None = None
    password: SecretStr | None = None
    inbound_groups: list[str] = Field(min_length=1)
    new_states: list[str] = Field(default_factory=lambda: ["new"], min_length=1)
    per_page: int = Field(default=100, ge=1, le=200)
    on_behalf_of: str | None = None
    # The webhook's "signature token" in Zammad: pushes to /api/v1/hooks/<name> must carry its X-Hub-Signature.
    webhook_secret: SecretStr | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return root_url(value, api="/api/v1")

    @field_validator("inbound_groups", "new_states")
    @classmethod
    def _no_blank_names(cls, value: list[str]) -> list[str]:
        if any(not v.strip() for v in value):
            raise ValueError("names must not be blank")
        return value

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> ZammadConfig:
        basic = self.user is not None or self.password is not None
        if self.token is not None and basic:
            raise ValueError("give either 'token' or 'user' + 'password', not both")
        if self.token is None and (self.user is None or self.password is None):
            raise ValueError("give 'token', or both 'user' and 'password'")
        return self
