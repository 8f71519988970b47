"""One ticket's way: ledger -> classify -> decide (routing) -> write back, privacy scrubbing, the shadow report."""
