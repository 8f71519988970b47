"""Configuration of a local Maildir++ used as a helpdesk: folders are queues, keywords are priorities."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from connectors._mail.config import MailboxConfig


class MaildirConfig(MailboxConfig):
    """`type: maildir`; folder names are written as a mail client shows them ("Queues/Billing")."""

    type: Literal["maildir"] = "maildir"
    path: Path = Field(description="the Maildir root (the directory holding cur/ new/ tmp/)")
    inbound_folder: str = Field(default="", description='"" or "INBOX": the root itself; else a Maildir++ folder')
    create_folders: bool = Field(default=True, description="create a queue's folder when the first mail goes there")

    @field_validator("queue_root")
    @classmethod
    def _root_named(cls, value: str) -> str:
        if not value.strip("/."):
            raise ValueError("queue_root must name a folder")
        return value
