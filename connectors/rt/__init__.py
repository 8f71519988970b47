"""Request Tracker 5 connector (REST 2, built into RT 5)."""

from connectors.rt.config import RTConfig
from connectors.rt.connector import RTConnector

__all__ = ["RTConfig", "RTConnector"]
