"""The one place that says whether a training runs: the daemon's cron and the API both claim it here.

Never two trainings at once: they would compete for the same cores for hours and race to promote.
With several replicas on PostgreSQL the claim also takes a session advisory lock there, so one training
runs in the whole cluster (the cron's owner, an API request to any replica, a retrain Job); PostgreSQL
frees it with the session when its holder dies. A row beside the lock (daemon/state/uploads.py) tells any
replica who trains, how far it got, and carries a cancel request to the holder. The claim carries who
holds it and since when (for `/readyz`, the API's 409 and the log) and one cancel event, which kills the
training process of whoever holds the claim (daemon.training.champion).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, cast

from daemon.logging import get_logger

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from daemon.state import State
    from daemon.state.uploads import DatabaseTraining

log = get_logger(__name__)

TRAINING_LOCK = 0x74696374  # session advisory lock key of the cluster's one training ("tict")
ELSEWHERE = "a training on another replica or in a retrain Job"
Who = Literal["schedule", "api"]


@dataclass(frozen=True)
class Claim:
    """Who trains, since when (monotonic seconds), and where, for a training on another replica."""

    who: Who
    since: float
    replica: str | None = None

    def describe(self) -> str:
        """For messages: 'the scheduled retrain (running 12 s)'."""
        name = "the scheduled retrain" if self.who == "schedule" else "a training job started through the API"
        where = f" on {self.replica}" if self.replica else ""
        return f"{name}{where} (running {time.monotonic() - self.since:.0f} s)"


class Retraining:
    """A non-blocking lock for training, with a cancel event for the holder."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._claim: Claim | None = None
        self.cancel = threading.Event()
        self.progress: dict[str, Any] | None = None  # the holder's latest training event
        self._state: State | None = None
        self._shared: DatabaseTraining | None = None
        self.replica = ""
        self._session: Connection | None = None
        self._ended = threading.Event()

    def share(self, state: State, replica: str) -> None:
        """Several replicas: claim the cluster's one training in `state`'s PostgreSQL as well."""
        from daemon.state.uploads import DatabaseTraining

        self._state, self._shared, self.replica = state, DatabaseTraining(state, TRAINING_LOCK), replica

    @property
    def holder(self) -> Claim | None:
        """This process's running training's claim, if one runs."""
        return self._claim

    def running(self) -> Claim | None:
        """The training running now: this process's, or (several replicas) another replica's."""
        return self.status()[0]

    def status(self) -> tuple[Claim | None, bool, dict[str, Any] | None]:
        """(claim, cancelling, latest progress) of the training running now, wherever it runs."""
        claim = self._claim
        if claim is not None or self._shared is None:
            return claim, claim is not None and self.cancel.is_set(), self.progress if claim else None
        other = self._shared.running()
        if other is None:
            return None, False, None
        age = (datetime.now(UTC) - other.started_at).total_seconds()
        return Claim(cast(Who, other.who), time.monotonic() - age, other.replica), other.cancel, other.progress

    def busy_with(self) -> str:
        """For a refusal: what holds the training now."""
        claim = self.running()
        return claim.describe() if claim is not None else ELSEWHERE if self._shared else "another training"

    def try_claim(self, who: Who) -> Claim | None:
        """Take the claim if free; None while another training holds it."""
        with self._lock:
            if self._claim is not None:
                return None
            if self._state is not None and self._shared is not None:
                self._session = self._state.try_session_lock(TRAINING_LOCK)
                if self._session is None:
                    return None
                try:
                    self._shared.started(who, self.replica)
                except BaseException:
                    self._end_session()
                    raise
            self.cancel.clear()
            self.progress = None
            self._claim = Claim(who, time.monotonic())
            if self._shared is not None:
                self._ended.clear()
                threading.Thread(target=self._relay, name="training relay", daemon=True).start()
            return self._claim

    def _relay(self) -> None:
        """The holder, each second: its progress to the row, and a cancel request from any replica to it."""
        assert self._shared is not None
        written: dict[str, Any] | None = None
        while not self._ended.wait(1.0):
            try:
                if (progress := self.progress) is not written:  # written when a new event came, not every second
                    self._shared.note(progress)
                    written = progress
                if self._shared.cancel_requested():
                    self.cancel.set()
            except Exception as exc:  # the database is away: the training goes on, cancellable here
                log.debug("training relay skipped", error=str(exc))

    def _end_session(self) -> None:
        if self._session is not None:
            self._session.invalidate()  # the session ends, and its advisory lock with it
            self._session.close()
            self._session = None

    def release(self, claim: Claim) -> None:
        """Give the claim back (only its holder can)."""
        with self._lock:
            if self._claim is claim:
                self._claim = None
                self._ended.set()
                if self._shared is not None and self._session is not None:
                    try:
                        self._shared.ended()
                    except Exception as exc:  # the row is ignored anyway once the lock is gone
                        log.debug("training row not removed", error=str(exc))
                self._end_session()

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
        """The training process's latest event, for `GET /api/v1/training` (daemon.training.champion relays them)."""
        self.progress = event

    def stop(self) -> bool:
        """Cancel whatever trains: its process is killed and `current` keeps serving; False if nothing ran.

        A training on another replica is asked through the database and stops within about a second.
        """
        if self._claim is not None or self._shared is None:
            self.cancel.set()
            return True
        return self._shared.request_cancel()
