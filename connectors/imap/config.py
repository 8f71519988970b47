"""Configuration of an IMAP mailbox used as a helpdesk: folders are queues, keywords are priorities."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from connectors.base import ConnectorConfig

# A keyword is an IMAP atom: no spaces, parentheses, braces, quotes, wildcards or backslashes.
_ATOM_SAFE = re.compile(r"^[A-Za-z0-9_.+-]+$")


class ImapConfig(ConnectorConfig):
    """`type: imap`; the password may come from `password_file` or `${ENV}` (see ConnectorConfig)."""

    type: Literal["imap"] = "imap"
    host: str
    port: int | None = Field(default=None, ge=1, le=65535, description="993, or 143 when ssl is false")
    ssl: bool = True
    starttls: bool = False
    user: str
    password: SecretStr
    inbound_folder: str = "INBOX"
    queue_root: str = Field(default="Queues", description="a queue without a queue_folders entry is <root>/<name>")
    queue_folders: dict[str, str] = Field(default_factory=dict, description="queue name -> folder")
    priorities: list[str] = Field(default_factory=lambda: ["high", "medium", "low"])
    timeout: float = Field(default=30.0, gt=0)
    use_move: Literal["auto", "never"] = Field(default="auto", description="never: COPY + \\Deleted + UID EXPUNGE")

    @field_validator("priorities")
    @classmethod
    def _keyword_safe(cls, value: list[str]) -> list[str]:
        bad = [p for p in value if not _ATOM_SAFE.match(p)]
        if bad:
            raise ValueError(f"priority names become IMAP keywords and may only use A-Z a-z 0-9 _ . + -: {bad}")
        if len({p.lower() for p in value}) != len(value):
            raise ValueError("priority names must differ in more than case (IMAP keywords ignore case)")
        return value

    @model_validator(mode="after")
    def _tls_choice(self) -> ImapConfig:
        if self.ssl and self.starttls:
            raise ValueError("give ssl (implicit TLS, port 993) or starttls (port 143), not both")
        return self

    @property
    def effective_port(self) -> int:
        """The port to dial: the configured one, else the IMAP default for the TLS mode."""
        return self.port if self.port is not None else (993 if self.ssl else 143)
