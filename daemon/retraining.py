"""The one place that says whether a training runs: the daemon's cron and the API both claim it here.

Never two trainings at once: they would compete for the same cores for hours and race to promote.
With several replicas on PostgreSQL the claim also takes a session advisory lock there, so one training
runs in the whole cluster (the cron's owner, an API request to any replica, a retrain Job); PostgreSQL
frees it with the session when its holder dies. The claim carries who holds it and since when (for
`/readyz`, the API's 409 and the log) and one cancel event, which kills the training process of whoever
holds the claim (daemon.retrain).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from daemon.state import State

TRAINING_LOCK = 0x74696374  # session advisory lock key of the cluster's one training ("tict")
ELSEWHERE = "a training on another replica or in a retrain Job"
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
        self._state: State | None = None
        self._session: Connection | None = None
        self._elsewhere = False

    def share(self, state: State) -> None:
        """Several replicas: claim the cluster's one training in `state`'s PostgreSQL as well."""
        self._state = state

    def busy_with(self) -> str:
        """For a refusal: what holds the training now."""
        claim = self._claim
        if claim is not None:
            return claim.describe()
        return ELSEWHERE if self._elsewhere else "another training"

    @property
    def holder(self) -> Claim | None:
        """The running training's claim, if one runs."""
        return self._claim

    def try_claim(self, who: Who) -> Claim | None:
        """Take the claim if free; None while another training holds it."""
        with self._lock:
            if self._claim is not None:
                return None
            if self._state is not None:
                self._session = self._state.try_session_lock(TRAINING_LOCK)
                self._elsewhere = self._session is None
                if self._session is None:
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
                if self._session is not None:
                    self._session.invalidate()  # the session ends, and its advisory lock with it
                    self._session.close()
                    self._session = None

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
