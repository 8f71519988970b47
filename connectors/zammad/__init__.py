"""Zammad helpdesk connector (REST API v1)."""

from connectors.zammad.config import ZammadConfig
from connectors.zammad.connector import ZammadConnector

__all__ = ["ZammadConfig", "ZammadConnector"]
