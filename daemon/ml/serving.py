"""The model the daemon classifies with, swapped in place when the store's `current` version changes."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from daemon.errors import ModelError, NoModelError, StateError
from daemon.logging import get_logger
from daemon.ml.classifier import Classifier
from daemon.ml.store import ModelStore
from daemon.ml.thresholds import DEFAULT_TARGET, Policy, Thresholds

if TYPE_CHECKING:
    from daemon.config import Config
    from daemon.state.model_versions import DatabaseVersions

log = get_logger(__name__)

# ONNX Runtime intra-op threads per head when the config leaves `model.threads` unset. The daemon overlaps one
# ticket's classification with the previous ticket's write-back (daemon.pipeline.flow), so one thread per head keeps a
# core free for the event loop (HTTP, ledger, API). With more, each of the two heads' sessions keeps a pool of
# threads that spin-wait after every run; on a 2-core host they starved the write-back and each other:
# bench/end_to_end.py measured 45-48 daemon tickets/s with the classifier's default (2 threads here) against 74-93
# with 1, and the bare model itself ran faster with 1 while other processes shared the cores.
DEFAULT_THREADS = 1


class LoadedModel:
    """One loaded version; the pipeline holds it for a whole ticket, so a swap never mixes versions."""

    def __init__(self, classifier: Classifier, version: str | None) -> None:
        self.classifier = classifier
        self.version = version
        self._thresholds: dict[tuple[str, Policy], Thresholds | None] = {}

    def classify(self, text: str, *, subject: str | None = None) -> dict[str, dict[str, Any]]:
        """Both heads' top label and calibrated confidence."""
        return self.classifier.classify(text, subject=subject)

    def thresholds(self, label: str, policy: Policy) -> Thresholds | None:
        """A head's per-class thresholds for a routing policy, fitted once per version and policy."""
        key = (label, policy)
        if key not in self._thresholds:
            head = self.classifier.heads.get(label)
            self._thresholds[key] = None if head is None else head.thresholds(policy)
        return self._thresholds[key]

    def classes(self, label: str) -> list[str]:
        """The classes a head can emit (none without that head)."""
        head = self.classifier.heads.get(label)
        return [] if head is None else list(head.classes)

    def trained_target(self, label: str) -> float:
        """The precision target the head's thresholds were fitted for at training (the default without them)."""
        head = self.classifier.heads.get(label)
        return head.routing.target if head is not None and head.routing is not None else DEFAULT_TARGET

    @property
    def labels(self) -> dict[str, list[str]]:
        """Every label each head can emit (for `ticketd check`)."""
        return {name: list(head.classes) for name, head in self.classifier.heads.items()}


class ModelHolder:
    """Loads the store's current version and hot-reloads it after a promotion or rollback."""

    def __init__(self, store_root: Path, *, threads: int | None = None) -> None:
        self.store = ModelStore(store_root)
        self.threads = threads or DEFAULT_THREADS
        self._model: LoadedModel | None = None
        self._lock = threading.Lock()

    def share(self, versions: DatabaseVersions | None) -> None:
        """Several replicas: versions and `current` come from the database, and the store's root caches them."""
        if versions is not None:
            self.store = ModelStore(self.store.root, shared=versions)
            self.store.adopt_local()

    @property
    def loaded(self) -> bool:
        """Whether a model is ready to classify (readiness)."""
        return self._model is not None

    def get(self) -> LoadedModel:
        """The model to use for the next ticket."""
        if self._model is None:
            raise NoModelError(f"{self.store.root}: no model loaded (train one, or `ticketd bootstrap`)")
        return self._model

    def load(self, version: str | None = None) -> bool:
        """Load `current` (or `version`, just read from it) if it differs from what is loaded; whether it changed."""
        with self._lock:
            version = version or self.store.current()
            if version is None:
                raise NoModelError(f"{self.store.root}: the model store has no current version")
            if self._model is not None and self._model.version == version:
                return False
            try:
                classifier = Classifier.load(self.store.path(version), threads=self.threads)
            except ModelError as exc:  # at start the daemon refuses to run on it; on reload it keeps the loaded one
                raise ModelError(
                    f"current model version {version} cannot be loaded: {exc} "
                    "(`ticketd models rollback`, or `ticketd models promote` a version that loads)"
                ) from None
            previous = self._model.version if self._model else None
            self._model = LoadedModel(classifier, version)
        log.info("model loaded", version=version, previous=previous)
        return True

    async def reload(self) -> bool:
        """Load in a worker thread so polling of other connectors goes on meanwhile."""
        return await anyio.to_thread.run_sync(self.load)


@dataclass(frozen=True)
class Switched:
    """A promotion or rollback done: the store's new `current`, the version before it, what this process serves."""

    current: str
    previous: str | None
    served: str | None


async def promote(model: ModelHolder, version: str) -> Switched:
    """Make a stored version current and serve it; the API and the dashboard both change the model through here."""
    previous = model.store.current()
    await anyio.to_thread.run_sync(model.store.promote, version)
    log.info("model promoted", version=version, previous=previous)
    return await _serve(model, version, previous)


async def rollback(model: ModelHolder) -> Switched:
    """Return to the version promoted before the current one, and serve it."""
    previous = model.store.current()
    version = await anyio.to_thread.run_sync(model.store.rollback)
    log.info("model rolled back", version=version, previous=previous)
    return await _serve(model, version, previous)


async def _serve(model: ModelHolder, current: str, previous: str | None) -> Switched:
    try:
        await model.reload()
    except ModelError as exc:  # the store's pointer moved; a ModelError (not a store error): answered as such
        log.error("model reload failed after the switch", error=str(exc))
        raise ModelError(f"the store was switched but the model cannot be loaded: {exc}") from None
    return Switched(current, previous, model.get().version if model.loaded else None)


class Follower:
    """Replicas: load a version another replica (or a command) promoted; one line per new failure, one on recovery.

    A version that failed to load is tried again only after RETRY_S: not fetched and loaded every few seconds.
    """

    RETRY_S = 60.0

    def __init__(self, model: ModelHolder) -> None:
        self.model = model
        self._failing: str | None = None
        self._failed: tuple[str | None, float] = (None, 0.0)  # (version, when it failed to load)

    def tick(self) -> bool:
        """Look at the shared `current` once and load it if it changed; returns whether the model changed."""
        version: str | None = None
        try:
            version = self.model.store.current()
            if version is not None and self._failed[0] == version and time.monotonic() < self._failed[1] + self.RETRY_S:
                return False
            changed = self.model.load(version)  # the pointer is read once per look
        except StateError:  # the database is unreachable: the leadership says so, once, and gives its leases up
            return False
        except Exception as exc:  # keep serving the loaded model whatever went wrong
            if str(exc) != self._failing:
                log.error("model reload failed; keeping the loaded model", error=str(exc))
            self._failing = str(exc)
            self._failed = (version, time.monotonic())
            return False
        if self._failing is not None:
            log.info("model reload works again", version=self.model.get().version)
            self._failing = None
        return changed


@contextlib.contextmanager
def configured_store(config: Config, who: str) -> Iterator[ModelStore]:
    """The config's model store: in the state's database when that is PostgreSQL (replicas), else the directory."""
    from daemon.state import State

    if not State.is_shared_url(config.state.url):
        yield ModelStore(config.model.store)
        return
    with State.open(config.state.url) as state:
        store = ModelStore(config.model.store, shared=state.model_versions(who))
        store.adopt_local()
        yield store
