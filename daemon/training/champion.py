"""Self-retraining: train a challenger in a child process, compare it with the champion, promote only if not worse.

The daemon calls `retrain` from its cron job (and `ticketd bootstrap` with no champion). Training runs as
`python -m daemon train ...` in a separate process, so the daemon itself never imports torch; evaluation uses
the torch-free Classifier on a time-ordered holdout (the most recently closed tickets), which both models score.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from connectors.base import WRITABLE
from daemon.errors import ModelStoreError, TicketdError
from daemon.logging import get_logger
from daemon.ml.sampling import DEFAULT_FINETUNE_CAP
from daemon.ml.store import ModelStore
from daemon.ml.text import compose
from daemon.ml.thresholds import DEFAULT_TARGET

if TYPE_CHECKING:
    from daemon.config import Config
    from daemon.config.schema import RetrainSection
    from daemon.state.records import TrainingRow

log = get_logger(__name__)

OUTCOMES = ("promoted", "rejected", "skipped", "failed")
_KILL_GRACE_S = 10.0  # after SIGTERM, how long the training process group gets before SIGKILL
_LOG_TAIL_CHARS = 400  # how much of the training log a failure reason quotes
_KEEP_LOGS = 20  # training logs kept in the workdir
_POLL_S = 1.0  # how often a running training checks the cancel event and relays its progress
_RELAYED_LEVELS = {"warning": "warning", "error": "error", "critical": "error"}  # anything else: info
_OWN_KEYS = ("event", "level", "timestamp", "logger")  # the daemon's own processors set these again

Progress = Callable[[dict[str, Any]], None]


Outcome = Literal["promoted", "rejected", "skipped", "failed"]


@dataclass(frozen=True)
class RetrainPolicy:
    """When to retrain, how hard to train, and what it takes to replace the current model."""

    min_new_examples: int = 200
    holdout_share: float = 0.2
    tolerance: float = 0.0
    keep_versions: int = 5
    labels: tuple[str, ...] = WRITABLE
    epochs: int = 3
    max_length: int = 256
    budget_minutes: float | None = None  # passed as `train --budget`: epochs and ticket length shrink to fit
    finetune_cap: int | None = DEFAULT_FINETUNE_CAP  # passed as `train --finetune-cap`
    warm_start: bool = False  # `train --warm-start` from the champion, and `--keep-torch` for the next one
    target_precision: float = DEFAULT_TARGET  # passed as `train --target-precision`
    train_args: tuple[str, ...] = ()
    timeout_s: float | None = 6 * 3600.0  # a hung training must not block every later retrain

    def __post_init__(self) -> None:
        if not 0.0 < self.holdout_share < 1.0:
            raise ValueError(f"holdout_share must be between 0 and 1, got {self.holdout_share}")
        if self.keep_versions < 1:
            raise ValueError(f"keep_versions must be at least 1, got {self.keep_versions}")
        if not self.labels:
            raise ValueError("labels must name at least one label")


def policy_from_config(config: Config, *, min_new_examples: int = 0) -> RetrainPolicy:
    """The config's retrain settings as a policy; 0 new examples by default, since asking to train is explicit."""
    policy = policy_from_section(config.retrain, tuple(config.model.labels), min_new_examples=min_new_examples)
    return replace(policy, target_precision=configured_target(config))


def configured_target(config: Config) -> float:
    """The strictest `target_precision` any connector's routing asks for (serving refits others from evidence)."""
    targets = [
        rule.target_precision
        for entry in config.connectors
        for rule in entry.routing.labels.values()
        if rule.target_precision is not None
    ]
    return max(targets, default=DEFAULT_TARGET)


def policy_from_section(
    section: RetrainSection, labels: tuple[str, ...], *, min_new_examples: int = 0
) -> RetrainPolicy:
    """One `retrain:` section as a policy (bench/retrain.py times the defaults' own)."""
    return RetrainPolicy(
        min_new_examples=min_new_examples,
        holdout_share=section.holdout_share,
        tolerance=section.tolerance,
        keep_versions=section.keep_versions,
        labels=labels,
        epochs=section.epochs,
        max_length=section.max_length,
        budget_minutes=section.budget_minutes,
        finetune_cap=section.finetune_cap,
        warm_start=section.warm_start,
    )


def training_size_args(policy: RetrainPolicy) -> list[str]:
    """The `ticketd train` options a retrain passes: its cost (epochs, length, budget, cap) and precision target."""
    args = ["--epochs", str(policy.epochs), "--max-length", str(policy.max_length)]
    if policy.budget_minutes is not None:
        args += ["--budget", f"{policy.budget_minutes:g}"]
    args += ["--finetune-cap", str(policy.finetune_cap or 0)]
    return [*args, "--target-precision", f"{policy.target_precision:g}"]


@dataclass(frozen=True)
class RetrainResult:
    """What one retrain did and why, with both models' holdout scores (per label: macro_f1, accuracy, n)."""

    outcome: Outcome
    version: str | None  # the promoted version; None unless promoted
    champion: str | None  # the version that was current when retrain started
    challenger_metrics: dict[str, dict[str, Any]]
    champion_metrics: dict[str, dict[str, Any]]
    reason: str
    log_path: Path | None = None  # the training process's stdout/stderr
    pruned: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, e.g. for state.retrain_record's detail."""
        out = asdict(self)
        out["log_path"] = str(self.log_path) if self.log_path is not None else None
        out["pruned"] = list(self.pruned)
        return out


def _label_value(row: TrainingRow, label: str) -> str:
    value = getattr(row, label, None)
    return value.strip() if isinstance(value, str) else ""


def _dedup(rows: Sequence[TrainingRow]) -> list[TrainingRow]:
    """One row per ticket (the latest close wins), in time order: the holdout is the newest tail."""
    latest: dict[tuple[str, str], TrainingRow] = {}
    for row in rows:
        key = (row.connector, row.ticket_id)
        if key not in latest or row.closed_at >= latest[key].closed_at:
            latest[key] = row
    return sorted(latest.values(), key=_order)  # the state's own order: close time, ticket id, connector


def _order(row: TrainingRow) -> tuple[datetime, str, str]:
    return (row.closed_at, row.ticket_id, row.connector)


@dataclass
class _Plan:
    """What a retrain trains on, found in passes over the rows: only the holdout is held in memory."""

    total: int = 0
    usable: int = 0
    labels: list[str] = field(default_factory=list)
    holdout: list[TrainingRow] = field(default_factory=list)
    kept: set[tuple[str, ...]] = field(default_factory=set)  # label combinations common enough to train on
    n_train: int = 0
    n_rare: int = 0


def _plan(source: Callable[[], Iterable[TrainingRow]], policy: RetrainPolicy) -> _Plan:
    """Labels at least half the rows carry, the newest `holdout_share` of usable rows, and the rare classes.

    Three passes over `source()`, none of which keeps more than the holdout: a store of any size fits.
    """
    from daemon.ml.dataset import keep_common

    plan = _Plan()
    carried: Counter[str] = Counter()
    for row in source():
        plan.total += 1
        carried.update(name for name in policy.labels if _label_value(row, name))
    # A helpdesk without priorities trains queue only.
    plan.labels = [name for name in policy.labels if 2 * carried[name] >= plan.total]
    plan.usable = sum(1 for _ in _usable(source, plan.labels))
    n_holdout = round(plan.usable * policy.holdout_share)
    n_train = plan.usable - n_holdout
    combos: Counter[tuple[str, ...]] = Counter()
    for i, row in enumerate(_usable(source, plan.labels)):
        if i < n_train:
            combos[_combo(row, plan.labels)] += 1
        else:
            plan.holdout.append(row)
    # Training needs two examples of every class: `ticketd train --min-examples 2`'s rule, on the label
    # combinations (the same fixpoint as over the rows, without holding them).
    items = [combo for combo, n in combos.items() for _ in range(n)]
    column = {name: i for i, name in enumerate(plan.labels)}
    kept, _ = keep_common(items, plan.labels, lambda combo, name: combo[column[name]], 2)
    plan.kept = set(kept)
    plan.n_train = len(kept)
    plan.n_rare = n_train - plan.n_train
    return plan


def _usable(source: Callable[[], Iterable[TrainingRow]], labels: Sequence[str]) -> Iterator[TrainingRow]:
    return (r for r in source() if r.text.strip() and all(_label_value(r, n) for n in labels))


def _combo(row: TrainingRow, labels: Sequence[str]) -> tuple[str, ...]:
    return tuple(_label_value(row, n) for n in labels)


def _write_csv(source: Callable[[], Iterable[TrainingRow]], plan: _Plan, path: Path) -> int:
    """Write the training rows (older than the holdout, of kept classes) as the training CSV; returns rows written.

    The holdout's first row bounds the training side by its sort key, not by position: a ticket harvested or
    relabelled between the passes can never land on both sides.
    """
    boundary = _order(plan.holdout[0]) if plan.holdout else None
    held = {(r.connector, r.ticket_id) for r in plan.holdout}
    written = 0
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        # closed_at: `ticketd train` weights its fine-tuning sample towards recent tickets.
        writer.writerow(["id", "text", *plan.labels, "language", "closed_at"])
        for r in _usable(source, plan.labels):
            if boundary is not None and _order(r) >= boundary:
                break
            if (r.connector, r.ticket_id) in held or _combo(r, plan.labels) not in plan.kept:
                continue
            when = r.closed_at if r.closed_at.tzinfo else r.closed_at.replace(tzinfo=UTC)
            writer.writerow(
                [f"{r.connector}:{r.ticket_id}", r.text, *_combo(r, plan.labels), r.language or "", when.isoformat()]
            )
            written += 1
    return written


def _log_tail(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""
    lines = [line for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ticketd: error:")]
    tail = errors[-1] if errors else (lines[-1] if lines else "")
    return tail[-_LOG_TAIL_CHARS:]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the whole training process group, then kill it if it does not go."""
    for sig, wait in ((signal.SIGTERM, _KILL_GRACE_S), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


class _Relay:
    """The training process's JSON events, re-logged as the daemon's own: one structured stream, no tqdm bars.

    Its output file stays the full record; only complete JSON lines are relayed (anything else the process
    printed stays in the file, since it may hold anything).
    """

    def __init__(self, path: Path, progress: Progress | None) -> None:
        self.path, self.progress = path, progress
        self.offset, self.partial = 0, b""

    def __call__(self) -> None:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except OSError:
            return
        self.offset += len(chunk)
        *lines, self.partial = (self.partial + chunk).split(b"\n")
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if not isinstance(entry, dict) or not isinstance(entry.get("event"), str):
                continue
            level = str(entry.get("level", "info")).lower()
            if level == "debug":
                continue
            fields = {k: v for k, v in entry.items() if k not in _OWN_KEYS}
            getattr(log, _RELAYED_LEVELS.get(level, "info"))("training", step_event=entry["event"], **fields)
            if self.progress is not None:
                self.progress({"event": entry["event"], **fields})


def _run_training(
    cmd: list[str],
    log_path: Path,
    timeout_s: float | None,
    cancel: threading.Event | None,
    progress: Progress | None = None,
) -> str | None:
    """Run the training command with its output in `log_path`; None on success, else why it failed."""
    started = time.monotonic()
    deadline = None if timeout_s is None else started + timeout_s
    relay = _Relay(log_path, progress)
    with log_path.open("wb") as out:
        out.write(("$ " + " ".join(cmd) + "\n").encode())
        out.flush()
        relay.offset = out.tell()
        # Own session: a timeout kills the trainer and anything it started, and a SIGINT to the daemon's
        # terminal does not reach it half-way through writing the model. Its output is a file, not a
        # terminal, so it logs JSON lines: what the relay reads.
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        log.info("retrain_training_process", pid=proc.pid, log_path=str(log_path))
        try:
            while True:
                step = _POLL_S
                if deadline is not None:
                    step = min(step, max(deadline - time.monotonic(), 0.0))
                try:
                    rc = proc.wait(timeout=step)
                    break
                except subprocess.TimeoutExpired:
                    relay()
                    if cancel is not None and cancel.is_set():
                        _stop(proc)
                        return "training was cancelled (daemon stopping, or a cancel through the API); process killed"
                    if deadline is not None and time.monotonic() >= deadline:
                        _stop(proc)
                        return f"training exceeded its {timeout_s:g}s time limit and was killed"
        except BaseException:
            _stop(proc)
            raise
    relay()
    log.info("retrain_training_finished", returncode=rc, seconds=round(time.monotonic() - started, 1))
    if rc == 0:
        return None
    how = f"was killed by signal {-rc}" if rc < 0 else f"exited with status {rc}"
    tail = _log_tail(log_path)
    return f"training process {how}" + (f" ({tail})" if tail else "")


def _evaluate(model_dir: Path, rows: Sequence[TrainingRow], labels: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Macro-F1 and accuracy per label on the holdout; macro over the classes the holdout holds, same for both."""
    from sklearn.metrics import accuracy_score, f1_score

    from daemon.ml.classifier import Classifier

    clf = Classifier.load(model_dir)
    predictions = clf.predict_texts([compose(None, r.text) for r in rows])
    out: dict[str, dict[str, Any]] = {}
    for name in labels:
        if name not in clf.heads:
            out[name] = {"macro_f1": 0.0, "accuracy": 0.0, "n": len(rows), "missing_head": True}
            continue
        truth = [_label_value(r, name) for r in rows]
        guess = [p[name]["label"] for p in predictions]
        out[name] = {
            "macro_f1": round(
                float(f1_score(truth, guess, labels=sorted(set(truth)), average="macro", zero_division=0)), 4
            ),
            "accuracy": round(float(accuracy_score(truth, guess)), 4),
            "n": len(rows),
        }
    return out


def _prune_logs(workdir: Path) -> None:
    """Keep only the newest training logs, so a weekly retrain does not fill the state directory."""
    logs = sorted(workdir.glob("retrain-*.log"))
    for old in logs[: max(len(logs) - _KEEP_LOGS, 0)]:
        old.unlink(missing_ok=True)


def _fmt(metrics: dict[str, dict[str, Any]]) -> str:
    return ", ".join(f"{name} {m['macro_f1']:.3f}" for name, m in metrics.items())


def _champion_dir(store: ModelStore, champion: str | None) -> Path | None:
    """The current version's directory (fetched into the cache from a shared store), if it can be read."""
    if champion is None:
        return None
    try:
        path = store.path(champion)
    except (TicketdError, OSError) as exc:
        log.warning("retrain_champion_unreadable", champion=champion, error=str(exc))
        return None
    return path if path.is_dir() else None


Rows: TypeAlias = "Sequence[TrainingRow] | Callable[[], Iterable[TrainingRow]]"  # the store, or a function reading it


def retrain(
    rows: Rows,
    store: ModelStore,
    policy: RetrainPolicy,
    *,
    new_since_last: int,
    workdir: Path,
    cancel: threading.Event | None = None,
    progress: Progress | None = None,
) -> RetrainResult:
    """Train a challenger on all but the newest tickets; promote it if it scores no worse on them than the champion.

    `rows` is a sequence (deduplicated here), or a callable that returns a fresh pass over unique tickets,
    oldest close first: the state's store read in batches, so the store is never held in memory.
    Blocking (run it in a worker thread); setting `cancel` kills the training process and returns "failed";
    `progress` gets each event the training process logs (also relayed into the daemon's log).
    """
    champion = store.current()

    def result(outcome: Outcome, reason: str, **kw: Any) -> RetrainResult:
        kw.setdefault("challenger_metrics", {})
        kw.setdefault("champion_metrics", {})
        res = RetrainResult(outcome=outcome, version=kw.pop("version", None), champion=champion, reason=reason, **kw)
        log.info("retrain_done", outcome=outcome, version=res.version, champion=champion, reason=reason)
        return res

    if new_since_last < policy.min_new_examples:
        return result(
            "skipped",
            f"{new_since_last} new closed tickets since the last retrain; {policy.min_new_examples} are needed",
        )
    if callable(rows):
        source = rows
    else:
        ordered = _dedup(rows)
        source = lambda: ordered  # noqa: E731
    plan = _plan(source, policy)
    labels, holdout, n_rare = plan.labels, plan.holdout, plan.n_rare
    if not labels:
        return result("skipped", f"no usable labels: none of {', '.join(policy.labels)} is set on most tickets")
    if len(holdout) < 1 or plan.usable - len(holdout) < 2:
        return result("skipped", f"{plan.usable} labelled tickets are too few to train and hold out")
    if not plan.n_train:
        return result("skipped", "no training tickets left after dropping classes with fewer than 2 examples")

    workdir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    csv_path = workdir / f"retrain-{stamp}.csv"
    log_path = workdir / f"retrain-{stamp}.log"
    n_train = _write_csv(source, plan, csv_path)
    if swept := store.sweep_staging():
        log.info("retrain_swept_leftovers", staging=swept)
    staging = store.staging_dir()
    model_dir = staging / "model"
    cmd = [sys.executable, "-m", "daemon", "train", str(csv_path), "--out", str(model_dir)]
    cmd += training_size_args(policy)
    champion_dir = _champion_dir(store, champion)
    if policy.warm_start:
        cmd.append("--keep-torch")
        if champion_dir is not None:
            cmd += ["--warm-start", str(champion_dir)]
    for name in labels:
        cmd += ["--label", name]
    cmd += list(policy.train_args)
    log.info(
        "retrain_started",
        champion=champion,
        train=n_train,
        holdout=len(holdout),
        dropped_rare=n_rare,
        labels=labels,
        log_path=str(log_path),
    )
    data_note = f"trained on {n_train} tickets, held out the newest {len(holdout)}"
    if plan.usable < plan.total:
        data_note += f", skipped {plan.total - plan.usable} without text or a {'/'.join(labels)} label"
    if n_rare:
        data_note += f", left out {n_rare} of classes with fewer than 2 examples"
    if len(labels) < len(policy.labels):
        data_note += f", labels {', '.join(n for n in policy.labels if n not in labels)} missing on most tickets"
    try:
        failure = _run_training(cmd, log_path, policy.timeout_s, cancel, progress)
        if failure is None and not (model_dir / "metadata.json").is_file():
            failure = "training process exited without writing a model"
        if failure is not None:
            return result("failed", f"{failure}; see {log_path}; current model unchanged", log_path=log_path)
        try:
            challenger_metrics = _evaluate(model_dir, holdout, labels)
        except (TicketdError, OSError, ValueError, KeyError) as exc:
            return result("failed", f"the new model could not be evaluated: {exc}", log_path=log_path)
        champion_metrics: dict[str, dict[str, Any]] = {}
        if champion is not None:
            try:
                if champion_dir is None:
                    raise ModelStoreError(f"{champion} could not be read from {store.where}")
                champion_metrics = _evaluate(champion_dir, holdout, labels)
            except (TicketdError, OSError, ValueError, KeyError) as exc:
                log.warning("retrain_champion_unusable", champion=champion, error=str(exc))
                champion_metrics = {}
                data_note += f"; the current model {champion} could not be evaluated ({exc})"
        losing = [
            name
            for name in labels
            if name in champion_metrics
            and challenger_metrics[name]["macro_f1"] < champion_metrics[name]["macro_f1"] - policy.tolerance
        ]
        scores = f"holdout macro-F1 new {_fmt(challenger_metrics)}"
        if champion_metrics:
            scores += f" vs {champion} {_fmt(champion_metrics)}"
        if losing:
            return result(
                "rejected",
                f"kept {champion}: the new model is worse on {', '.join(losing)} "
                f"(tolerance {policy.tolerance:g}); {scores}; {data_note}",
                challenger_metrics=challenger_metrics,
                champion_metrics=champion_metrics,
                log_path=log_path,
            )
        try:
            version = store.add(model_dir)
            store.promote(version)
            pruned = store.prune(policy.keep_versions)
        except (TicketdError, OSError) as exc:
            return result("failed", f"could not store or promote the new model: {exc}", log_path=log_path)
        if champion is None:
            why = "there was no current model"
        elif not champion_metrics:
            why = f"the current model {champion} could not be scored"
        else:
            why = f"no label worse than {champion} (tolerance {policy.tolerance:g})"
        return result(
            "promoted",
            f"promoted {version}: {why}; {scores}; {data_note}",
            version=version,
            challenger_metrics=challenger_metrics,
            champion_metrics=champion_metrics,
            log_path=log_path,
            pruned=pruned,
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        csv_path.unlink(missing_ok=True)  # holds ticket text; the log and the result say what was trained
        _prune_logs(workdir)
