"""Helpdesk connector plugins (Znuny/OTRS/OTOBO, Zammad, IMAP) behind one contract (`connectors.base`).

Imports flow one way: `daemon` imports `connectors`, never the reverse.
"""

__ticketd__ = True  # tells ticketd's own package from another distribution's (daemon.conflicts)
