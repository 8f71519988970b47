"""Numeric ticket ids as helpdesks write them: ASCII digits only.

`str.isdigit()` is also true for '١٢٣' (Arabic-Indic) and '²'; `int()` even reads the former as 123. An id
taken from a push or a helpdesk answer goes into URLs and the ledger, so only 0-9 pass.
"""

from __future__ import annotations


def is_number(value: str) -> bool:
    """True for a non-empty string of the ASCII digits 0-9, nothing else."""
    return value.isascii() and value.isdigit()
