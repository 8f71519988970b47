"""Configuration of an IMAP mailbox used as a helpdesk: folders are queues, keywords are priorities."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from connectors._mail.config import MailboxConfig


class ImapConfig(MailboxConfig):
    """`type: imap`; the password may come from `password_file` or `${ENV}` (see ConnectorConfig)."""

    type: Literal["imap"] = "imap"
    host: str
    port: int | None = Field(default=None, ge=1, le=65535, description="993, or 143 when ssl is false")
    ssl: bool = True
    starttls: bool = False
    user: str
    password: SecretStr
    timeout: float = Field(default=30.0, gt=0)
    use_move: Literal["auto", "never"] = Field(default="auto", description="never: COPY + \\Deleted + UID EXPUNGE")
    # With routing.push: IDLE is ended and issued again this often; RFC 2177 lets a server drop an idle
    # client after 30 minutes, and NAT boxes often forget a silent connection sooner.
    idle_renew: float = Field(default=600.0, gt=0, le=1740, description="seconds between IDLE renewals")

    @model_validator(mode="after")
    def _tls_choice(self) -> ImapConfig:
        if self.ssl and self.starttls:
            raise ValueError("give ssl (implicit TLS, port 993) or starttls (port 143), not both")
        return self

    @property
    def effective_port(self) -> int:
        """The port to dial: the configured one, else the IMAP default for the TLS mode."""
        return self.port if self.port is not None else (993 if self.ssl else 143)
