"""Znuny, OTRS and OTOBO through the stock GenericTicketConnectorREST web service."""

from connectors.znuny.config import ZnunyConfig
from connectors.znuny.connector import ZnunyConnector

__all__ = ["ZnunyConfig", "ZnunyConnector"]
