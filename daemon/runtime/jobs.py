"""The scheduler's jobs: polls, harvests, retention and the retrain cron, each under its connector's policy."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from daemon.errors import Fenced, TicketdError, TrainingBusy
from daemon.logging import get_logger
from daemon.runtime.coordinator import Coordinator
from daemon.runtime.intake import PushIntake
from daemon.runtime.leadership import SCHEDULER
from daemon.runtime.push import Watcher
from daemon.runtime.stacks import ConnectorStack

if TYPE_CHECKING:
    from daemon.metrics import Metrics
    from daemon.ml.serving import LoadedModel
    from daemon.pipeline.routing import LabelRule
    from daemon.training.champion import RetrainResult

log = get_logger(__name__)
POOLED = ""  # the class of a (connector, label, class) key in Core._below_target that stands for the label's pool


class Jobs(PushIntake):
    """Polls and harvests per connector, retention daily, the retrain on its cron; shutdown waits for them."""

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
            await anyio.to_thread.run_sync(self._update_fits)  # a fit not yet cached is computed: off the loop
            return harvested

        return harvest

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
        """After a harvest: agreement of recorded predictions with the agents' final labels, as gauges; the live
        precision of each label's routed tickets together and of each class against its target, logged once
        when it falls clearly below and once when it recovers."""
        from daemon.pipeline.report import build_report

        assert self.state is not None
        rules = {name: w.pipeline.rules for name, w in self.stacks.items()}
        for r in build_report(self.state, rules):
            if r.agreement is not None:
                self.metrics.agreement(r.connector, r.label, r.agreement)
            precision = r.routed_correct / r.routed if r.routed else None
            self.metrics.label_quality(
                r.connector, r.label, precision, r.pooled_upper_bound, r.target_precision, r.pooled_flagged
            )
            fields = {"connector": r.connector, "label": r.label, "target": r.target_precision}
            fields |= {"precision": round(precision or 0.0, 3), "routed": r.routed}
            self._note_below((r.connector, r.label, POOLED), r.pooled_flagged, "live pooled precision", fields)
            for c in r.classes:
                self.metrics.class_quality(r.connector, r.label, c.name, c.precision, c.target, c.flagged)
                fields = {"connector": r.connector, "label": r.label, "model_class": c.name, "target": c.target}
                fields |= {"precision": round(c.precision or 0.0, 3), "routed": c.routed}
                self._note_below((r.connector, r.label, c.name), c.flagged, "live precision", fields)

    def _note_below(self, key: tuple[str, str, str], flagged: bool, what: str, fields: Mapping[str, Any]) -> None:
        """Log once when `key` falls clearly below its target, once when it recovers."""
        if flagged == (key in self._below_target):
            return
        if flagged:
            self._below_target.add(key)
            log.warning(f"{what} clearly below target", **fields)
        else:
            self._below_target.discard(key)
            log.info(f"{what} no longer below target", **fields)

    def _update_fits(self) -> None:
        """After every harvest: the served model's fit for each connector's routing as gauges (fitted once per model
        version and policy, daemon.ml.serving), so a promotion or a reloaded config shows at the next harvest."""
        rules = {name: w.pipeline.rules for name, w in self.stacks.items()}
        try:
            publish_fits(self.metrics, self.model.get() if self.model.loaded else None, rules)
        except Exception as exc:  # the gauges wait for the next harvest; the connector's job does not fail for them
            log.warning("threshold gauges not updated", error=str(exc), error_type=type(exc).__name__)

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
        except TrainingBusy as exc:  # an API job, another replica's training: the next cron tick tries again
            log.info("scheduled retrain skipped: another training is running", holder=exc.holder)
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

    async def retrain_now(self, *, force: bool = False) -> RetrainResult:
        """Train a challenger from the training store; promote and hot-reload only if it is better.

        TrainingBusy while another training (an API job, another replica's) holds the cluster's one claim.
        """
        with self.retraining.claimed("schedule") as claim:
            if claim is None:
                raise TrainingBusy(await anyio.to_thread.run_sync(self.retraining.busy_with))
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

    def _start_watch(self, worker: ConnectorStack) -> None:
        if worker.watcher is not None and (worker.drain is None or worker.drain.done()) and not self._stopping:
            worker.drain = asyncio.create_task(worker.watcher.run(), name=f"watch:{worker.entry.name}")


def publish_fits(metrics: Metrics, model: LoadedModel | None, rules: Mapping[str, Mapping[str, LabelRule]]) -> None:
    """Per connector and label with a target_precision, the served thresholds (as daemon.pipeline.flow fits them)
    as gauges: the label's pooled evidence figure and per class (the model's class names) threshold, estimated
    precision with its bounds, coverage, floor and routing state. Every earlier series is dropped first."""
    metrics.forget_fits()
    if model is None:
        return
    for connector, by_label in rules.items():
        for label, rule in by_label.items():
            if rule.target_precision is None:
                continue
            fitted = model.thresholds(label, rule.policy(model.classes(label)))
            if fitted is None or fitted.pooled is None:  # a model without per-class thresholds: the fixed one applies
                metrics.label_fit(connector, label, rule.target_precision)
                continue
            pooled = fitted.pooled
            metrics.label_fit(
                connector, label, fitted.target, (pooled.estimate, pooled.lower, pooled.upper), pooled.coverage
            )
            for name, c in fitted.classes.items():
                figure = c.figure
                metrics.class_fit(
                    connector,
                    label,
                    name,
                    threshold=c.threshold,
                    bounds=(figure.estimate, figure.lower, figure.upper),
                    coverage=figure.coverage,
                    floor=c.floor,
                    state=c.state,
                    below_pooled=c.below_pooled(pooled.estimate),
                )
