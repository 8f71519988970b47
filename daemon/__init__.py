"""ticketd: on-premise ticket triage."""

__version__ = "0.1.0"

__ticketd__ = True  # tells ticketd's own package from another distribution's (daemon.conflicts)
