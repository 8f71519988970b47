"""The settings both mail connectors have: folders that are queues, priorities that become keywords."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from connectors.base import ConnectorConfig

# A keyword is an IMAP atom and a word in Dovecot's keyword file: no spaces, parentheses, braces,
# quotes, wildcards, backslashes or control characters.
_KEYWORD_SAFE = re.compile(r"^[A-Za-z0-9_.+-]+$")


class MailboxConfig(ConnectorConfig):
    """Base of `ImapConfig` and `MaildirConfig`."""

    inbound_folder: str = "INBOX"
    queue_root: str = Field(default="Queues", description="a queue without a queue_folders entry is <root>/<name>")
    queue_folders: dict[str, str] = Field(default_factory=dict, description="queue name -> folder")
    priorities: list[str] = Field(default_factory=lambda: ["high", "medium", "low"])

    @field_validator("priorities")
    @classmethod
    def _keyword_safe(cls, value: list[str]) -> list[str]:
        bad = [p for p in value if not _KEYWORD_SAFE.match(p)]
        if bad:
            raise ValueError(f"priority names become mail keywords and may only use A-Z a-z 0-9 _ . + -: {bad}")
        if len({p.lower() for p in value}) != len(value):
            raise ValueError("priority names must differ in more than case (mail keywords ignore case)")
        return value
