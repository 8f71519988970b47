"""Configuration of a local Maildir++ used as a helpdesk: folders are queues, keywords are priorities."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from connectors.base import ConnectorConfig

# Priorities become keywords in `dovecot-keywords`: one word, no spaces or control characters.
_KEYWORD_SAFE = re.compile(r"^[A-Za-z0-9_.+-]+$")


class MaildirConfig(ConnectorConfig):
    """`type: maildir`; folder names are written as a mail client shows them ("Queues/Billing")."""

    type: Literal["maildir"] = "maildir"
    path: Path = Field(description="the Maildir root (the directory holding cur/ new/ tmp/)")
    inbound_folder: str = Field(default="", description='"" or "INBOX": the root itself; else a Maildir++ folder')
    queue_root: str = Field(default="Queues", description="a queue without a queue_folders entry is <root>/<name>")
    queue_folders: dict[str, str] = Field(default_factory=dict, description="queue name -> folder")
    priorities: list[str] = Field(default_factory=lambda: ["high", "medium", "low"])
    create_folders: bool = Field(default=True, description="create a queue's folder when the first mail goes there")

    @field_validator("priorities")
    @classmethod
    def _keyword_safe(cls, value: list[str]) -> list[str]:
        bad = [p for p in value if not _KEYWORD_SAFE.match(p)]
        if bad:
            raise ValueError(f"priority names become mail keywords and may only use A-Z a-z 0-9 _ . + -: {bad}")
        if len({p.lower() for p in value}) != len(value):
            raise ValueError("priority names must differ in more than case (mail keywords ignore case)")
        return value

    @field_validator("queue_root")
    @classmethod
    def _root_named(cls, value: str) -> str:
        if not value.strip("/."):
            raise ValueError("queue_root must name a folder")
        return value
