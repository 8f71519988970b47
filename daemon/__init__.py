"""ticketd: on-premise ticket triage."""

__version__ = "0.1.0"
