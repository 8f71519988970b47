"""Local Maildir++ connector: folders are queues, Dovecot keywords are priorities (no helpdesk needed)."""

from connectors.maildir.config import MaildirConfig
from connectors.maildir.connector import MaildirConnector

__all__ = ["MaildirConfig", "MaildirConnector"]
