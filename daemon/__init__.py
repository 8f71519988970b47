"""ticketd: on-premise ticket triage."""

import importlib.metadata

# pyproject.toml's [project] version is the one place it is written; the package is always installed (editable in
# development), so its metadata has it.
__version__ = importlib.metadata.version("ticketd")

__ticketd__ = True  # tells ticketd's own package from another distribution's (daemon.conflicts)
