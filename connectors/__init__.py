"""Helpdesk connector plugins (Znuny/OTRS/OTOBO, Zammad, IMAP) behind one contract (`connectors.base`).

Imports flow one way: `daemon` imports `connectors`, never the reverse.
"""
