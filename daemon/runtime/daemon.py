"""The daemon's lifecycle: start, serve until a signal, reload the config on SIGHUP, shut down cleanly.

The parts it is made of, one module each: `core` (what they share), `stacks` (one connector's client, policy
and pipeline), `jobs` (the scheduler: polls, harvests, retention, the retrain cron), `intake` (pushes and
watched mailboxes), `leadership` (replicas), `coordinator` (a connector's failure policy), `wiring`
(what `ticketd run` and `ticketd serve` both build). The REST API runs in this process through
`daemon.web.hosting`.
"""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio.to_thread

from daemon.config import Config, load_config, restart_only_changes
from daemon.logging import configure, get_logger
from daemon.ml.serving import Follower
from daemon.runtime import stacks, systemd
from daemon.runtime.jobs import Jobs
from daemon.runtime.leadership import SCHEDULER, Leadership
from daemon.runtime.stacks import ConnectorStack
from daemon.runtime.wiring import open_state, replica_id, share

log = get_logger(__name__)


class Daemon(Jobs):
    """One process: polls every connector on its own schedule, retrains on a cron, reloads on SIGHUP."""

    @property
    def ready(self) -> bool:
        """A model is loaded, the database answers (replicas) and every connector this replica runs is ready."""
        reachable = self.leadership is None or self.leadership.reachable
        running = [w for name, w in self.stacks.items() if self.owns(name)]  # another replica's are its business
        return self.model.loaded and reachable and all(w.coordinator.ready for w in running)

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

    async def start(self, *, load_model: bool = True) -> None:
        """Open state, load the model (not for `bootstrap`, which makes the first one), build connectors."""
        self.state = state = await anyio.to_thread.run_sync(open_state, self.config)
        cluster = self.config.cluster
        replica = replica_id(self.config)
        if state.shared:
            state.end_stalled_transactions(cluster.lease_seconds / 2)
            await anyio.to_thread.run_sync(share, state, replica, self.model, self.retraining)
        if load_model:
            await self.model.reload()
            self.metrics.model_version(self.model.get().version)
        self.stacks = await self._build_stacks(self.config)
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
        await stacks.close(self.stacks)
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

    async def _reload(self) -> None:
        """SIGHUP: the new config's connectors are built first; only then are the old ones closed and replaced.

        A config that does not load, or whose connectors cannot be made, leaves the running config, connectors
        and jobs as they were (logged once); the daemon goes on.
        """
        if self.config_path is None:
            log.warning("SIGHUP ignored: running on embedded defaults, no config file to re-read")
            return
        try:
            config = await anyio.to_thread.run_sync(load_config, self.config_path)
            log.info("reloading config", path=str(self.config_path))
            fresh = await self._build_stacks(config)
        except Exception as exc:
            log.error("config reload failed; keeping the running config", error=str(exc))
            return
        self._stopping = True
        await self._stop_scheduler()
        old, self.stacks = self.stacks, fresh
        await stacks.close(old)
        self._stopping = False
        if config.log != self.config.log:
            configure(config.log.level, json=config.log.json)
        needs_restart = restart_only_changes(self.config, config)
        self.config = config
        if self.api is not None:  # tokens, public_classify and the retrain policy apply to the next request
            self.api.reconfigure(config)
        self._start_scheduler()
        log.info("config reloaded", connectors=list(self.stacks))
        if needs_restart:
            log.warning("config changes that take effect only after a restart", keys=needs_restart)

    async def _build_stacks(self, config: Config) -> dict[str, ConnectorStack]:
        assert self.state is not None
        return await stacks.Builder(
            config,
            state=self.state,
            model=self.model,
            metrics=self.metrics,
            dry_run=self.dry_run,
            fence=self._fence,
            stopping=lambda: self._stopping,
            watcher=self._watcher,
        ).build()


def load_or_default(path: Path | None) -> Config:
    """The config file, or the embedded defaults (`make run`)."""
    from daemon.config import default_config

    if path is None:
        return default_config()
    return load_config(path)
