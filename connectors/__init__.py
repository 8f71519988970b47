"""Helpdesk connector plugins (Znuny/OTRS/OTOBO, Zammad, IMAP) share one contract; added in a later issue."""
