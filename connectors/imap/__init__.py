"""IMAP mailbox connector: folders are queues, `$Priority_<name>` keywords are priorities."""

from connectors.imap.config import ImapConfig
from connectors.imap.connector import ImapConnector

__all__ = ["ImapConfig", "ImapConnector"]
