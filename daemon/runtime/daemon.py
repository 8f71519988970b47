"""Wiring and lifecycle of `ticketd run`: state, model, connectors, coordinators, scheduled jobs, signals."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio.to_thread
import httpx

from connectors.base import Connector
from connectors.errors import NotReady, PushRejected
from connectors.registry import connector_class
from daemon.config import Config, ConnectorEntry, load_config
from daemon.errors import ConfigError, Fenced, TicketdError
from daemon.logging import configure, get_logger
from daemon.metrics import Metrics
from daemon.ml.serving import Follower, ModelHolder
from daemon.pipeline.flow import Pipeline
from daemon.pipeline.routing import label_rules
from daemon.runtime import systemd
from daemon.runtime.coordinator import Coordinator
from daemon.runtime.leadership import SCHEDULER, Leadership, default_replica_id, last_check
from daemon.runtime.push import Inbox, InboxFull, PushResult, Watcher
from daemon.state import LedgerEntry, State, TrainingRow
from daemon.state.leases import Fence
from daemon.training.lock import Retraining

if TYPE_CHECKING:
    from daemon.training.champion import RetrainResult
    from daemon.web.server import ApiServer

log = get_logger(__name__)


@dataclass
class ConnectorStack:
    """One configured connector and what runs it: its HTTP client, coordinator (polling policy) and pipeline."""

    entry: ConnectorEntry
    connector: Connector
    coordinator: Coordinator
    pipeline: Pipeline
    client: httpx.AsyncClient  # its own timeouts; closed with the connector
    inbox: Inbox | None = None  # pushed ids waiting, while `routing.push` is on (webhooks, invokers)
    watcher: Watcher | None = None  # the mailbox's own signal of new mail, while `routing.push` is on
    # Polls and pushed tickets of one connector take turns for its lanes: one conversation with the helpdesk
    # at a time, two where the connector declares `concurrent_apply` (a burst of pushes then overlaps).
    lanes: int = 1
    lock: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))
    active: int = 0  # pushed tickets being routed now
    jobs: int = 0  # polls, harvests and pushed tickets running now (a lease is handed over only at 0)
    drain: asyncio.Task[None] | None = None  # routes the inbox's ids, or runs the watcher
    pushing: bool = False  # the helpdesk announces new work now, so polling runs at routing.push.poll_interval

    @property
    def poll_interval(self) -> float:
        """Seconds between polls: slower while the helpdesk announces new work itself."""
        routing = self.entry.routing
        return routing.push.poll_interval if self.pushing else routing.poll_interval


@dataclass(frozen=True)
class PushReply:
    """How `/api/v1/hooks/<connector>` answers one push: the result (metric label), HTTP status and message."""

    result: PushResult | Literal["unknown"]
    status: int
    message: str
    queued: int = 0


class Daemon:
    """One process: polls every connector on its own schedule, retrains on a cron, reloads on SIGHUP."""

    def __init__(self, config: Config, *, config_path: Path | None = None, dry_run: bool = False) -> None:
        self.config = config
        self.config_path = config_path
        self.dry_run = dry_run
        self.state: State | None = None
        self.model = ModelHolder(config.model.store, threads=config.model.threads)
        self.metrics = Metrics()
        self.api: ApiServer | None = None
        self.stacks: dict[str, ConnectorStack] = {}
        self._scheduler: Any = None
        self._stop = asyncio.Event()
        self._stopping = False
        self._inflight: set[asyncio.Task[Any]] = set()
        self._reload_requested = False
        self.retraining = Retraining()  # one training at a time, the cron's and the API's
        self._retrain_task: asyncio.Task[Any] | None = None
        self._below_target: set[tuple[str, str, str]] = set()  # classes flagged at the last harvest
        self.leadership: Leadership | None = None  # several replicas on PostgreSQL: who owns which connector
        self._leading: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """A model is loaded, the database answers (replicas) and every connector this replica runs is ready."""
        reachable = self.leadership is None or self.leadership.reachable
        running = [w for name, w in self.stacks.items() if self.owns(name)]  # another replica's are its business
        return self.model.loaded and reachable and all(w.coordinator.ready for w in running)

    def owns(self, name: str) -> bool:
        """Whether this replica runs connector `name` (or, for SCHEDULER, the once-only jobs) now."""
        return self.leadership is None or self.leadership.owns(name)

    def _fence(self, name: str) -> Fence | None:
        """The owner's proof for a write; Fenced once this replica no longer owns `name` (None: one process)."""
        if self.leadership is None:
            return None
        fence = self.leadership.fence(name)
        if fence is None:
            raise Fenced(f"lease {name!r}: not held by {self.leadership.replica} any more")
        stale = self.leadership.stale(name)
        if stale is not None:  # paused or cut off: another replica may own it by now, whatever the lease row says
            raise Fenced(f"lease {name!r}: not renewed for {stale:.1f} s; this replica stalled")
        return fence

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """`/readyz`: the verdict and, per part, why."""
        connectors = {
            name: {
                "ready": w.coordinator.ready,
                "state": w.coordinator.state,
                "failure": w.coordinator.failure_class,
                "reason": w.coordinator.reason,
                "last_success": w.coordinator.last_success.isoformat() if w.coordinator.last_success else None,
                "last_error": w.coordinator.last_error if w.coordinator.state != "ok" else None,
                "mode": "push" if w.pushing else "poll",
                "owned": self.owns(name),
            }
            for name, w in self.stacks.items()
        }
        model = {"loaded": self.model.loaded, "version": self.model.get().version if self.model.loaded else None}
        details: dict[str, Any] = {"model": model, "connectors": connectors}
        if self.leadership is not None:
            details["replica"] = {
                "id": self.leadership.replica,
                "database": "reachable" if self.leadership.reachable else "unreachable",
                "leases": self.leadership.held(),
                "replicas_alive": self.leadership.alive,
            }
        return self.ready, details

    async def start_api(self) -> None:
        """The REST API in this process and event loop, sharing the model, metrics and readiness."""
        if not self.config.api.enabled:
            return
        from daemon.web.server import ApiServer
        from daemon.web.services import Services

        services = Services.from_config(
            self.config,
            model=self.model,
            metrics=self.metrics,
            readiness=self.readiness,
            retraining=self.retraining,
            dashboard=self._dashboard_source(),
            hooks=self.receive_push,
            state=self.state,
            replica=self.leadership.replica if self.leadership is not None else "",
        )
        self.api = ApiServer(services)
        try:
            await self.api.start()
        except OSError as exc:
            self.api = None
            raise ConfigError(f"api: {exc.strerror or exc}") from None
        if self.config.api.dashboard:
            log.info("dashboard", url=self.dashboard_url)

    @property
    def dashboard_url(self) -> str | None:
        """Where /ui answers (None while the API is not listening or the dashboard is off)."""
        if self.api is None or not self.config.api.dashboard:
            return None
        return f"http://{self.config.api.host}:{self.api.port}/ui"

    def _dashboard_source(self) -> Any:
        """What /ui reads of this process: the state, each connector's health, the routing rules."""
        from daemon.web.ui.data import DashboardSource

        def connectors() -> list[dict[str, Any]]:
            return [
                {
                    "name": name,
                    "type": w.entry.type,
                    "mode": w.pipeline.mode,
                    "state": w.coordinator.state,
                    "failure": w.coordinator.failure_class,
                    "reason": w.coordinator.reason if w.coordinator.state != "ok" else None,
                    "last_success": w.coordinator.last_success.strftime("%Y-%m-%d %H:%M:%S UTC")
                    if w.coordinator.last_success
                    else None,
                }
                for name, w in self.stacks.items()
            ]

        def ticket_url(connector: str, ticket_id: str) -> str | None:
            stack = self.stacks.get(connector)
            return stack.connector.ticket_url(ticket_id) if stack is not None else None

        return DashboardSource(
            state=self.state,
            connectors=connectors,
            rules=lambda: {name: w.pipeline.rules for name, w in self.stacks.items()},
            include_ticket_text=lambda: self.config.log.include_ticket_text,
            ticket_url=ticket_url,
        )

    async def start(self, *, load_model: bool = True) -> None:
        """Open state, load the model (not for `bootstrap`, which makes the first one), build connectors."""
        self.state = state = await anyio.to_thread.run_sync(State.open, self.config.state.url)
        cluster = self.config.cluster
        replica = cluster.replica_id or default_replica_id()
        if state.shared:
            state.end_stalled_transactions(cluster.lease_seconds / 2)
            await anyio.to_thread.run_sync(lambda: self.model.share(state.model_versions(replica)))
            self.retraining.share(state, replica)
        if load_model:
            await self.model.reload()
            self.metrics.model_version(self.model.get().version)
        self._build_stacks(self.config)
        if state.shared:
            self.leadership = Leadership(
                state,
                replica,
                [*self.stacks, SCHEDULER],
                ttl=cluster.lease_seconds,
                renew=cluster.renew_interval,
                on_change=self._ownership_changed,
                busy=lambda name: name in self.stacks and self.stacks[name].jobs > 0,
            )
        log.info(
            "ticketd started",
            connectors=list(self.stacks),
            model_version=self.model.get().version if self.model.loaded else None,
            dry_run=self.dry_run,
        )

    def _build_stacks(self, config: Config) -> None:
        assert self.state is not None
        self.stacks = {}
        for entry in config.connectors:
            timeout = entry.routing.timeout
            client = httpx.AsyncClient(
                timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
                event_hooks={"request": [last_check(lambda name=entry.name: self._fence(name))]},  # type: ignore[misc]
            )
            connector = connector_class(entry.type).from_config(entry.connection, client)
            mode = "shadow" if self.dry_run else entry.routing.mode
            routing = entry.routing
            coordinator = Coordinator(
                entry.name,
                base_delay=max(routing.poll_interval, 1.0),
                max_delay=routing.max_backoff,
                recover_after=routing.recover_after,
            )
            pipeline = Pipeline(
                entry.name,
                connector,
                self.state,
                self.model.get,
                label_rules(entry),
                mode=mode,
                note=entry.routing.note,
                batch_limit=entry.routing.batch_limit,
                include_ticket_text=config.log.include_ticket_text,
                entry_factory=LedgerEntry,
                row_factory=TrainingRow,
                stopping=lambda: self._stopping,
                degraded=coordinator.failing,
                metrics=self.metrics,
                fence=lambda name=entry.name: self._fence(name),  # type: ignore[misc]
                scrub=config.privacy.scrubber().scrub if config.privacy.scrub else None,
            )
            lanes = 2 if connector.concurrent_apply else 1
            worker = ConnectorStack(
                entry, connector, coordinator, pipeline, client, lanes=lanes, lock=asyncio.Semaphore(lanes)
            )
            if routing.push.enabled:
                if connector.accepts_push():
                    if not config.api.enabled:
                        raise ConfigError(
                            f"connectors.{entry.name}.routing.push.enabled: pushes arrive at the API "
                            f"(POST /api/v1/hooks/{entry.name}); set api.enabled: true"
                        )
                    worker.inbox = Inbox(routing.push.queue_limit)
                    worker.pushing = True
                elif connector.offers_watch():
                    worker.watcher = self._watcher(worker)
                else:
                    key = connector.push_secret_key
                    how = f"set connection.{key}" if key else f"the {entry.type} connector takes no pushes"
                    raise ConfigError(f"connectors.{entry.name}.routing.push.enabled: {how}")
            self.metrics.push_mode.labels(entry.name).set(int(worker.pushing))
            self.stacks[entry.name] = worker

    def _watcher(self, worker: ConnectorStack) -> Watcher:
        """The loop that polls a mailbox when it signals new mail; its failures go through a coordinator too."""
        name, routing = worker.entry.name, worker.entry.routing

        def mode(pushing: bool) -> None:
            if pushing == worker.pushing or self._stopping:
                return
            worker.pushing = pushing
            self.metrics.push_mode.labels(name).set(int(pushing))
            if self._scheduler is not None:
                from apscheduler.triggers.interval import IntervalTrigger

                trigger = IntervalTrigger(seconds=worker.poll_interval, jitter=routing.jitter or None)
                self._scheduler.reschedule_job(f"poll:{name}", trigger=trigger)
            how = "new mail is signalled; polling slowed" if pushing else "the signal of new mail is gone; polling"
            log.info(
                f"connector {'in push' if pushing else 'back in poll'} mode: {how}",
                connector=name,
                poll_interval=worker.poll_interval,
            )

        return Watcher(
            name,
            worker.connector,
            policy=Coordinator(
                name, base_delay=5.0, max_delay=routing.max_backoff, recover_after=routing.recover_after
            ),
            poll=lambda: self._job(name, "poll", signalled=True),
            mode=mode,
            routed=lambda seconds: self.metrics.pushed_routed(name, seconds),
        )

    def stopped(self) -> dict[str, tuple[str, str]]:
        """Connectors that stopped (rejected credentials, configuration error): name -> (reason, error)."""
        return {
            name: (w.coordinator.stop_reason or "stopped", w.coordinator.last_error or "")
            for name, w in self.stacks.items()
            if w.coordinator.state == "stopped"
        }

    async def run_once(self) -> dict[str, int]:
        """One poll and one harvest per connector, then return (tests, demos, cron-style use).

        With several replicas, only the connectors whose leases this process can take now (its share).
        """
        done: dict[str, int] = {}
        if self.leadership is not None and not self.leadership.held():
            for name, gained in await anyio.to_thread.run_sync(self.leadership.renew_now):
                self._ownership_changed(name, gained)
        for name, worker in self.stacks.items():
            if not self.owns(name):
                continue
            routed = await worker.coordinator.run(self._work(worker, "poll"), "poll")
            if routed is not None:
                self.metrics.poll_succeeded(name)
            await worker.coordinator.run(self._work(worker, "harvest"), "harvest")
            self.metrics.connector_health(name, worker.coordinator.ready, worker.coordinator.failure_class)
            done[name] = routed or 0
        return done

    async def harvest_all(self) -> dict[str, int | None]:
        """`ticketd bootstrap`: harvest every connector, then give the leases back (before a training of hours).

        With several replicas, the connectors this process can lease now; a running replica that owns one
        harvests it on its own schedule (None here). The leases are renewed while the harvest runs.
        """
        if self.leadership is not None:
            for name, gained in await anyio.to_thread.run_sync(self.leadership.renew_now):
                self._ownership_changed(name, gained)
            self._leading = asyncio.create_task(self._lead(self.leadership), name="leadership")
        try:
            return {
                name: await worker.pipeline.harvest() if self.owns(name) else None
                for name, worker in self.stacks.items()
            }
        finally:
            await self._stop_leading()

    async def serve(self) -> None:
        """Run the scheduler until SIGTERM/SIGINT; SIGHUP reloads the config."""
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.request_stop, "SIGTERM")
        loop.add_signal_handler(signal.SIGINT, self.request_stop, "SIGINT")
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        if self.leadership is not None:
            self._leading = asyncio.create_task(self._lead(self.leadership), name="leadership")
        self._start_scheduler()
        self._notify_ready()
        watchdog = systemd.start_watchdog()
        try:
            while not self._stop.is_set():
                await self._stop.wait()
                if self._reload_requested and not self._stopping:
                    self._reload_requested = False
                    self._stop.clear()
                    systemd.reloading()
                    await self._reload()
                    await self._reload_model()
                    self._notify_ready()
        finally:
            try:
                await self.shutdown()  # the loop still runs: pings go on while the ticket in flight finishes
            finally:
                if watchdog is not None:
                    watchdog.cancel()

    async def _reload_model(self) -> None:
        """SIGHUP also loads a `current` switched outside this process (`ticketd models rollback`, a retrain Job)."""
        try:
            if await self.model.reload():
                self.metrics.model_version(self.model.get().version)
        except Exception as exc:  # a broken version must not take the daemon down: keep serving the loaded one
            log.error("model reload failed; keeping the loaded model", error=str(exc))

    def _notify_ready(self) -> None:
        """systemd (Type=notify): the model is loaded and the API is up; a no-op outside a unit."""
        version = self.model.get().version if self.model.loaded else None
        api = f"api on {self.config.api.host}:{self.api.port}" if self.api is not None else "no api"
        systemd.notify("READY=1", f"STATUS=model {version}, {len(self.stacks)} connector(s), {api}")

    def request_stop(self, why: str = "stop") -> None:
        """Finish the ticket in flight, then exit; new tickets are not started."""
        log.info("stopping: finishing the ticket in flight", signal=why)
        self._stopping = True
        self._stop.set()

    def request_reload(self) -> None:
        """Re-read the config file at the next safe point."""
        self._reload_requested = True
        self._stop.set()

    async def shutdown(self) -> None:
        """Stop jobs, wait for in-flight work, close connectors and state."""
        systemd.notify("STOPPING=1", "STATUS=stopping: finishing the ticket in flight")
        self._stopping = True
        if self.api is not None:
            await self.api.stop()
            self.api = None
        await self._stop_scheduler()
        await self._stop_retrain()
        await self._stop_leading()
        await self._close_stacks()
        if self.state is not None:
            self.state.close()
            self.state = None
        log.info("ticketd stopped")

    async def _stop_leading(self) -> None:
        """Hand every lease back once the work in flight is done, so another replica takes over at once."""
        if self.leadership is None:
            return
        await self.leadership.stop()
        if self._leading is not None:
            await asyncio.gather(self._leading, return_exceptions=True)
            self._leading = None

    async def _lead(self, leadership: Leadership) -> None:
        listening = asyncio.create_task(leadership.listen(self._relayed), name="push relay")
        following = asyncio.create_task(self._follow_model(leadership.renew), name="model follower")
        try:
            await leadership.run()
        finally:
            following.cancel()
            await asyncio.gather(listening, following, return_exceptions=True)

    async def _follow_model(self, every: float) -> None:
        """Replicas: a promotion or rollback anywhere (API, CLI, a retrain) is served here within `every` s."""
        follower = Follower(self.model)
        while not self._stopping and self.model.loaded:  # `bootstrap` loads none: it makes the first one
            await asyncio.sleep(every)
            if await anyio.to_thread.run_sync(follower.tick):
                self.metrics.model_version(self.model.get().version)

    def _ownership_changed(self, name: str, gained: bool) -> None:
        """A lease came or went: poll at once when it came; stop watching the mailbox when it went."""
        if name == SCHEDULER or name not in self.stacks:
            return
        worker = self.stacks[name]
        self.metrics.owned(name, gained)
        if gained:
            if self._scheduler is not None and not self._stopping:
                self._scheduler.modify_job(f"poll:{name}", next_run_time=datetime.now(UTC))
                self._start_watch(worker)
            return
        if worker.watcher is not None and worker.drain is not None:
            watcher, worker.drain = worker.watcher, None
            worker.watcher = self._watcher(worker)  # a fresh one for the next time this replica owns it
            self._track(asyncio.create_task(watcher.stop()))

    def _start_watch(self, worker: ConnectorStack) -> None:
        if worker.watcher is not None and (worker.drain is None or worker.drain.done()) and not self._stopping:
            worker.drain = asyncio.create_task(worker.watcher.run(), name=f"watch:{worker.entry.name}")

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    def _lost(self, name: str, exc: Fenced) -> int:
        """A fenced write was refused: this replica no longer owns the connector; the job ends quietly."""
        if self.leadership is not None:
            self.leadership.fenced(name, str(exc))
        return 0

    async def _close_stacks(self) -> None:
        for worker in self.stacks.values():
            await worker.connector.aclose()
            await worker.client.aclose()

    async def _stop_scheduler(self) -> None:
        """No new job runs; running ones end after their current ticket; only then is the scheduler shut.

        APScheduler's shutdown cancels running coroutine jobs, which would abort a ticket mid-write-back.
        """
        if self._scheduler is not None:
            self._scheduler.pause()
        drains = [w.drain for w in self.stacks.values() if w.drain is not None]
        for worker in self.stacks.values():
            if worker.inbox is not None:
                worker.inbox.close()  # the ticket in hand finishes; what still waits is left to polling
            if worker.watcher is not None:
                await worker.watcher.stop()
        if drains:
            await asyncio.gather(*drains, return_exceptions=True)
        while self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None

    async def _reload(self) -> None:
        if self.config_path is None:
            log.warning("SIGHUP ignored: running on embedded defaults, no config file to re-read")
            return
        try:
            config = await anyio.to_thread.run_sync(load_config, self.config_path)
        except TicketdError as exc:
            log.error("config reload failed; keeping the running config", error=str(exc))
            return
        log.info("reloading config", path=str(self.config_path))
        self._stopping = True
        await self._stop_scheduler()
        await self._close_stacks()
        self._stopping = False
        if config.log != self.config.log:
            configure(config.log.level, json=config.log.json)
        needs_restart = _restart_only_changes(self.config, config)
        self.config = config
        if self.api is not None:  # tokens, public_classify and the retrain policy apply to the next request
            from daemon.training.champion import policy_from_config

            self.api.services.api = config.api.model_copy(update=_kept_api_keys(self.api.services.api))
            self.api.services.policy = policy_from_config(config)
        self._build_stacks(config)
        self._start_scheduler()
        log.info("config reloaded", connectors=list(self.stacks))
        if needs_restart:
            log.warning("config changes that take effect only after a restart", keys=needs_restart)

    # -- jobs ------------------------------------------------------------------------------------

    def _start_scheduler(self) -> None:
        from apscheduler.schedulers.asyncio import AsyncIOScheduler
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        scheduler = AsyncIOScheduler(timezone=UTC)
        now = datetime.now(UTC)
        for name, worker in self.stacks.items():
            routing = worker.entry.routing
            for what, seconds in (("poll", worker.poll_interval), ("harvest", routing.harvest_interval)):
                scheduler.add_job(
                    self._job,
                    IntervalTrigger(seconds=seconds, jitter=routing.jitter or None),
                    args=[name, what],
                    id=f"{what}:{name}",
                    max_instances=1,
                    coalesce=True,
                    next_run_time=now,
                )
        scheduler.add_job(  # retention: once a minute after start, then daily (on one replica)
            self._tracked(self._purge_job),
            IntervalTrigger(hours=24),
            id="retention",
            max_instances=1,
            coalesce=True,
            next_run_time=now + timedelta(minutes=1),
        )
        if self.config.retrain.enabled:
            scheduler.add_job(
                self._start_retrain,
                CronTrigger.from_crontab(self.config.retrain.cron, timezone=UTC),
                id="retrain",
                max_instances=1,
                coalesce=True,
            )
        scheduler.start()
        self._scheduler = scheduler
        for worker in self.stacks.values():
            if worker.inbox is not None:
                worker.drain = asyncio.create_task(self._drain(worker), name=f"push:{worker.entry.name}")
            elif worker.watcher is not None and self.owns(worker.entry.name):
                self._start_watch(worker)

    async def _job(self, name: str, what: str, *, signalled: bool = False) -> int | None:
        """One poll or harvest under the connector's failure policy; how many tickets it took, None if it failed.

        `signalled`: the helpdesk just announced new work, which may end a transient backoff early.
        """
        worker = self.stacks.get(name)
        if worker is None or self._stopping or not self.owns(name):
            return None
        if signalled:
            worker.coordinator.signalled()
        worker.jobs += 1
        try:
            result: int | None = await self._tracked(lambda: worker.coordinator.run(self._work(worker, what), what))()
        finally:
            worker.jobs -= 1
        if result is not None and what == "poll":
            self.metrics.poll_succeeded(name)
        self.metrics.connector_health(name, worker.coordinator.ready, worker.coordinator.failure_class)
        return result

    def _work(self, worker: ConnectorStack, what: str) -> Callable[[], Awaitable[int]]:
        """A poll, or a harvest followed by the agreement gauges: one job, so one failure policy covers both."""
        if what == "poll":

            async def poll() -> int:
                async with worker.lock:
                    try:
                        return await worker.pipeline.poll()
                    except Fenced as exc:
                        return self._lost(worker.entry.name, exc)

            return poll

        async def harvest() -> int:
            try:
                harvested = await worker.pipeline.harvest()
            except Fenced as exc:
                return self._lost(worker.entry.name, exc)
            if harvested:
                await anyio.to_thread.run_sync(self._update_agreement)  # reads the state: off the event loop
            return harvested

        return harvest

    def receive_push(self, name: str, headers: Mapping[str, str], body: bytes) -> PushReply:
        """One push request (`POST /api/v1/hooks/<name>`): verified by the connector, its ids queued for routing."""
        worker = self.stacks.get(name)
        if worker is None or worker.inbox is None:
            return PushReply("unknown", 404, f"no connector {name!r} takes pushes (routing.push.enabled)")
        try:
            push = worker.connector.read_push(headers, body)
        except PushRejected as exc:  # logged, with the client's address, by the API's throttle
            return self._push_reply(name, PushReply("rejected", 401, str(exc)))
        except ValueError as exc:
            return self._push_reply(name, PushReply("invalid", 400, str(exc)))
        if self.leadership is not None and not self.owns(name):  # another replica routes this connector
            self._track(asyncio.create_task(self._relay(name, push.ticket_ids)))
            return self._push_reply(name, PushReply("relayed", 202, "relayed to the replica that owns it", 0))
        try:
            offered = worker.inbox.offer(push.ticket_ids)
        except InboxFull as exc:
            return self._push_reply(name, PushReply("throttled", 429, f"{exc}; polling will route them"))
        result: PushResult = "accepted" if offered.queued else "duplicate"
        log.debug("push received", connector=name, tickets=list(push.ticket_ids), delivery=push.delivery)
        message = "queued" if offered.queued else "already waiting"
        return self._push_reply(name, PushReply(result, 202, message, offered.queued))

    async def _relay(self, name: str, ticket_ids: Sequence[str]) -> None:
        assert self.leadership is not None
        try:
            await anyio.to_thread.run_sync(self.leadership.relay, name, ticket_ids)
        except TicketdError as exc:  # the owner's poll routes them
            log.warning("push not relayed to the owning replica", connector=name, error=str(exc))

    def _relayed(self, name: str, ticket_ids: list[str]) -> None:
        """A push another replica received for a connector this one owns."""
        worker = self.stacks.get(name)
        if worker is None or worker.inbox is None or not self.owns(name) or self._stopping:
            return
        with contextlib.suppress(InboxFull):  # the poll routes them
            worker.inbox.offer(ticket_ids)

    def _push_reply(self, name: str, reply: PushReply) -> PushReply:
        self.metrics.push(name, reply.result)
        return reply

    async def _drain(self, worker: ConnectorStack) -> None:
        """Route pushed ids, one per lane at a time, through the connector's pipeline and failure policy."""
        await asyncio.gather(*(self._drain_lane(worker) for _ in range(worker.lanes)))

    async def _drain_lane(self, worker: ConnectorStack) -> None:
        assert worker.inbox is not None
        name, coordinator = worker.entry.name, worker.coordinator
        while not self._stopping:
            item = await worker.inbox.take()
            if item is None:
                return
            ticket_id, received = item
            if not self.owns(name):  # the lease went meanwhile: the new owner's poll routes it
                continue

            early: list[NotReady] = []

            async def route(tid: str = ticket_id, found: list[NotReady] = early) -> int:
                async with worker.lock:
                    worker.active += 1
                    try:
                        return await worker.pipeline.route_pushed(tid)
                    except NotReady as exc:  # announced before it was written: not a failure of the helpdesk
                        found.append(exc)
                        return 0
                    except Fenced as exc:
                        return self._lost(name, exc)
                    finally:
                        worker.active -= 1

            coordinator.signalled()
            # During a transient outage the id waits for the next call the policy allows (a push ends the
            # backoff SIGNAL_RETRY s after the last failure) instead of for the slow poll.
            while not self._stopping and coordinator.state == "failing" and not coordinator.due():
                await asyncio.sleep(min(1.0, max(0.05, coordinator.not_before - time.monotonic())))
            worker.jobs += 1
            try:
                routed = await self._tracked(lambda: coordinator.run(route, "push"))()
            finally:
                worker.jobs -= 1
            if routed is None and coordinator.state == "failing" and not self._stopping:
                worker.inbox.retry(ticket_id, received)  # tried again once the policy allows; a stop leaves it
            elif early:
                if worker.inbox.later(ticket_id, received):
                    self.metrics.push_recheck(name)
                    log.debug("pushed ticket not complete yet; looking again soon", connector=name, ticket_id=ticket_id)
                else:
                    log.info("pushed ticket still not complete; left to polling", connector=name, ticket_id=ticket_id)
            else:
                worker.inbox.done(ticket_id)
            if routed:
                self.metrics.pushed_routed(name, time.monotonic() - received)
            self.metrics.connector_health(name, worker.coordinator.ready, worker.coordinator.failure_class)

    async def purge_now(self) -> tuple[int, int]:
        """Retention (`retrain.keep_days`, `state.keep_days`): old training rows go, old ledger details go."""
        state = self.state
        if state is None:
            return 0, 0
        now = datetime.now(UTC)
        train_days, ledger_days = self.config.retrain.keep_days, self.config.state.keep_days
        try:
            deleted, stripped = await anyio.to_thread.run_sync(
                lambda: state.purge(
                    training_before=None if train_days is None else now - timedelta(days=train_days),
                    ledger_before=None if ledger_days is None else now - timedelta(days=ledger_days),
                )
            )
        except TicketdError as exc:  # the next day tries again; polling is not affected
            log.warning("retention purge failed", error=str(exc))
            return 0, 0
        if deleted or stripped:
            log.info(
                "retention purge",
                training_rows_deleted=deleted,
                ledger_entries_stripped=stripped,
                retrain_keep_days=train_days,
                state_keep_days=ledger_days,
            )
        return deleted, stripped

    def _update_agreement(self) -> None:
        """After a harvest: agreement of recorded predictions with the agents' final labels, as gauges."""
        from daemon.pipeline.report import build_report

        assert self.state is not None
        rules = {name: w.pipeline.rules for name, w in self.stacks.items()}
        for r in build_report(self.state, rules):
            if r.agreement is not None:
                self.metrics.agreement(r.connector, r.label, r.agreement)
            for c in r.classes:
                self.metrics.class_quality(r.connector, r.label, c.name, c.precision, c.target, c.flagged)
                key = (r.connector, r.label, c.name)
                if c.flagged == (key in self._below_target):
                    continue  # logged once when it falls below, once when it recovers
                fields = {"connector": r.connector, "label": r.label, "model_class": c.name, "target": c.target}
                fields |= {"precision": round(c.precision or 0.0, 3), "routed": c.routed}
                if c.flagged:
                    self._below_target.add(key)
                    log.warning("live precision clearly below target", **fields)
                else:
                    self._below_target.discard(key)
                    log.info("live precision no longer below target", **fields)

    def _tracked(self, fn: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
        """Register the running task so shutdown can wait for the ticket in flight."""

        async def run() -> Any:
            task = asyncio.current_task()
            if task is not None:
                self._inflight.add(task)
            try:
                return await fn()
            except TicketdError as exc:
                log.error("job failed", error=str(exc))
                return None
            except Exception as exc:  # never to the scheduler's own logger: one JSON event with the traceback
                log.error("job failed unexpectedly", error=str(exc), error_type=type(exc).__name__, exc_info=exc)
                return None
            finally:
                if task is not None:
                    self._inflight.discard(task)

        return run

    async def _purge_job(self) -> None:
        if self.owns(SCHEDULER):
            await self.purge_now()

    def _start_retrain(self) -> None:
        """The cron's job: start the retrain as a task of its own and return at once.

        Polling, SIGHUP and the API never wait for a training (hours); shutdown cancels it instead.
        With several replicas only the one that holds the scheduler's lease retrains.
        """
        if not self.owns(SCHEDULER):
            return
        if self._stopping or (self._retrain_task is not None and not self._retrain_task.done()):
            return
        self._retrain_task = asyncio.create_task(self._retrain_job(), name="retrain")

    async def _retrain_job(self) -> None:
        try:
            await self.retrain_now()
        except TicketdError as exc:
            log.error("retrain failed", error=str(exc))
        except Exception as exc:  # a JSON event with the traceback, never the scheduler's own logger
            log.error("retrain failed unexpectedly", error=str(exc), error_type=type(exc).__name__, exc_info=exc)

    async def _stop_retrain(self, wait: float = 45.0) -> None:
        """Kill a running training (its process group) and wait, bounded, for the retrain to note it."""
        task = self._retrain_task
        if task is None or task.done():
            return
        holder = self.retraining.holder
        log.info("stopping the running training", holder=holder.describe() if holder else None)
        self.retraining.stop()
        done, _ = await asyncio.wait({task}, timeout=wait)
        if not done:  # its worker thread cannot be interrupted; the process exits without it
            log.warning("training did not stop in time; exiting without waiting for it", waited_s=wait)

    async def retrain_now(self, *, force: bool = False) -> RetrainResult | None:
        """Train a challenger from the training store; promote and hot-reload only if it is better."""
        with self.retraining.claimed("schedule") as claim:
            if claim is None:
                holder = await anyio.to_thread.run_sync(self.retraining.busy_with)
                log.info("scheduled retrain skipped: another training is running", holder=holder)
                return None
            return await self._retrain(force)

    async def _retrain(self, force: bool) -> RetrainResult:
        from daemon.training.champion import policy_from_config, retrain

        state = self.state
        assert state is not None
        section = self.config.retrain

        def read() -> int:  # the state is read off the event loop
            last = state.retrain_last()
            since = datetime.fromisoformat(str(last["finished_at"])) if last else None
            return state.training_count_since(since)

        new = await anyio.to_thread.run_sync(read)
        rows = state.iter_training_rows  # passed over in the retrain's worker thread, never held whole
        policy = policy_from_config(self.config, min_new_examples=0 if force else section.min_new_examples)
        started = datetime.now(UTC)
        workdir = Path(self.config.model.store) / "retrain"
        workdir.mkdir(parents=True, exist_ok=True)
        log.info("retraining", new_rows=new)
        slot = self.retraining
        result = await anyio.to_thread.run_sync(
            lambda: retrain(
                rows,
                self.model.store,
                policy,
                new_since_last=new,
                workdir=workdir,
                cancel=slot.cancel,
                progress=slot.note_progress,
            )
        )
        await anyio.to_thread.run_sync(
            lambda: state.retrain_record(
                started, datetime.now(UTC), result.outcome, {"reason": result.reason, "version": result.version}
            )
        )
        log.info("retrain finished", outcome=result.outcome, version=result.version, reason=result.reason)
        self.metrics.retrain(result.outcome)
        if result.outcome == "promoted":
            await self.model.reload()
            self.metrics.model_version(self.model.get().version)
        return result


# What a running process cannot change: the API's socket and body limit, the state database, the model store.
_RESTART_ONLY = {
    "api": ("enabled", "host", "port", "max_body_bytes", "dashboard", "trusted_proxies", "allowed_hosts"),
    "state": ("url",),
    "model": ("store", "threads"),
}


def _restart_only_changes(old: Config, new: Config) -> list[str]:
    """`section.key` of every restart-only setting that differs between two configs."""
    return [
        f"{section}.{key}"
        for section, keys in _RESTART_ONLY.items()
        for key in keys
        if getattr(getattr(old, section), key) != getattr(getattr(new, section), key)
    ]


def _kept_api_keys(running: Any) -> dict[str, Any]:
    """The running API's restart-only keys: the reloaded section keeps them until a restart."""
    return {key: getattr(running, key) for key in _RESTART_ONLY["api"]}


def load_or_default(path: Path | None) -> Config:
    """The config file, or the embedded defaults (`make run`)."""
    from daemon.config import default_config

    if path is None:
        return default_config()
    return load_config(path)
