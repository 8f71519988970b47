"""Configuration of a local Maildir++ used as a helpdesk: folders are queues, keywords are priorities."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator

from connectors._mail.config import MailboxConfig
from connectors.maildir import folders


def _folder(name: str) -> str:
    """A folder name Maildir++ can hold: no empty level ("INBOX..Sales", "Queues//Sales", "Sales/")."""
    folders.levels(name)  # ValueError names the folder; check-config shows it as file:line: key: message
    return name


Folder = Annotated[str, AfterValidator(_folder)]


class MaildirConfig(MailboxConfig):
    """`type: maildir`; folder names are written as a mail client shows them ("Queues/Billing")."""

    type: Literal["maildir"] = "maildir"
    path: Path = Field(description="the Maildir root (the directory holding cur/ new/ tmp/)")
    inbound_folder: Folder = Field(default="", description='"" or "INBOX": the root itself; else a Maildir++ folder')
    queue_folders: dict[str, Folder] = Field(default_factory=dict, description="queue name -> folder")
    create_folders: bool = Field(default=True, description="create a queue's folder when the first mail goes there")

    @field_validator("queue_root")
    @classmethod
    def _root_named(cls, value: str) -> str:
        if not value.strip("/."):
            raise ValueError("queue_root must name a folder")
        return _folder(value)
