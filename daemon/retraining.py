"""The one place that says whether a training runs: the daemon's cron and the API both claim it here.

Never two trainings at once: they would compete for the same cores for hours and race to promote.
The claim carries who holds it and since when (for `/readyz`, the API's 409 and the log) and one
cancel event, which kills the training process of whoever holds the claim (daemon.retrain).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

Who = Literal["schedule", "api"]


@dataclass(frozen=True)
class Claim:
    """Who trains, since when (monotonic seconds)."""

    who: Who
    since: float

    def describe(self) -> str:
        """For messages: 'the scheduled retrain (running 12 s)'."""
        name = "the scheduled retrain" if self.who == "schedule" else "a training job started through the API"
        return f"{name} (running {time.monotonic() - self.since:.0f} s)"


class Retraining:
    """A non-blocking lock for training, with a cancel event for the holder."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._claim: Claim | None = None
        self.cancel = threading.Event()
        self.progress: dict[str, Any] | None = None  # the holder's latest training event

    @property
    def holder(self) -> Claim | None:
        """The running training's claim, if one runs."""
        return self._claim

    def try_claim(self, who: Who) -> Claim | None:
        """Take the claim if free; None while another training holds it."""
        with self._lock:
            if self._claim is not None:
                return None
            self.cancel.clear()
            self.progress = None
            self._claim = Claim(who, time.monotonic())
            return self._claim

    def release(self, claim: Claim) -> None:
        """Give the claim back (only its holder can)."""
        with self._lock:
            if self._claim is claim:
                self._claim = None

    @contextmanager
    def claimed(self, who: Who) -> Iterator[Claim | None]:
        """`with retraining.claimed("schedule") as claim:` claim is None when another training runs."""
        claim = self.try_claim(who)
        try:
            yield claim
        finally:
            if claim is not None:
                self.release(claim)

    def note_progress(self, event: dict[str, Any]) -> None:
        """The training process's latest event, for `GET /api/v1/training` (daemon.retrain relays them)."""
        self.progress = event

    def stop(self) -> None:
        """Cancel whatever trains: its process is killed and `current` keeps serving."""
        self.cancel.set()
