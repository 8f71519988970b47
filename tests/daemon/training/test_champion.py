"""Retraining: the challenger trains in a child process and replaces the champion only when it is not worse."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
import threading
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon.ml.dataset import load_dataset
from daemon.ml.store import ModelStore
from daemon.state import TrainingRow
from daemon.training.champion import RetrainPolicy, RetrainResult, retrain
from tests.support.paths import ROOT

# TF-IDF only: seconds per training run; one test below trains a tiny transformer.
FAST = RetrainPolicy(min_new_examples=1, epochs=1, max_length=48, train_args=("--tfidf-only",))


@pytest.fixture(scope="module")
def rows(sample_csv: Path) -> list[TrainingRow]:
    """The sample tickets, closed one hour apart in file order: the newest 20% are the holdout."""
    ds = load_dataset(sample_csv)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        TrainingRow(
            "demo",
            e.id,
            e.text,
            e.labels["queue"],
            e.labels.get("priority"),
            e.language or None,
            start + timedelta(hours=i),
            start + timedelta(hours=i),
        )
        for i, e in enumerate(ds.examples)
    ]


def shuffled(rows: list[TrainingRow], holdout_share: float = 0.2) -> list[TrainingRow]:
    """Labels permuted among the training part only, so the holdout still holds the agents' true labels."""
    n_train = len(rows) - round(len(rows) * holdout_share)
    rng = random.Random(7)
    queues = [r.queue for r in rows[:n_train]]
    priorities = [r.priority for r in rows[:n_train]]
    rng.shuffle(queues)
    rng.shuffle(priorities)
    head = [replace(r, queue=q, priority=p) for r, q, p in zip(rows[:n_train], queues, priorities, strict=True)]
    return head + rows[n_train:]


def leftovers(store: ModelStore) -> list[str]:
    """Staging or half-deleted directories inside the store."""
    return [p.name for p in store.versions_dir.iterdir() if p.name.startswith(".")]


def seeded_store(root: Path, *models: Path) -> ModelStore:
    """A store holding copies of trained models, each promoted in turn (the last is current)."""
    store = ModelStore(root)
    for model in models:
        store.promote(store.add(model))
    return store


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, rows: list[TrainingRow]) -> dict[str, Path]:
    """A model trained on true labels and one trained on shuffled labels, each via retrain with no champion."""
    out = {}
    for name, data in (("good", rows), ("shuffled", shuffled(rows))):
        base = tmp_path_factory.mktemp(name)
        store = ModelStore(base / "store")
        res = retrain(data, store, FAST, new_since_last=len(data), workdir=base / "work")
        assert res.outcome == "promoted", res.reason
        assert (res.version, res.champion, res.champion_metrics) == ("v1", None, {})
        assert store.current() == "v1"
        out[name] = store.versions_dir / "v1"
    return out


def test_no_champion_promotes_a_transformer_and_never_imports_torch(tmp_path: Path, rows: list[TrainingRow]) -> None:
    data = tmp_path / "rows.json"
    data.write_text(json.dumps([asdict(r) for r in rows], default=datetime.isoformat))
    script = textwrap.dedent(
        f"""
        import json, sys
        from datetime import datetime
        from pathlib import Path
        from daemon.logging import configure
        from daemon.ml.store import ModelStore
        from daemon.state import TrainingRow
        from daemon.training.champion import RetrainPolicy, retrain

        configure("info", json=True)
        seen = []
        raw = json.loads(Path({str(data)!r}).read_text())
        times = ("closed_at", "harvested_at")
        rows = [TrainingRow(**{{**r, **{{k: datetime.fromisoformat(r[k]) for k in times}}}}) for r in raw]
        policy = RetrainPolicy(
            min_new_examples=100, labels=("queue",), epochs=1, max_length=48, budget_minutes=30,
            train_args=("--seed", "3"),
        )
        res = retrain(rows, ModelStore({str(tmp_path / "store")!r}), policy, new_since_last=len(rows),
                      workdir=Path({str(tmp_path / "work")!r}), progress=seen.append)
        heavy = sorted(m for m in ("torch", "transformers", "optimum") if m in sys.modules)
        print(json.dumps({{"result": res.as_dict(), "heavy": heavy, "progress": seen}}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600, env=os.environ.copy()
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    result = report["result"]
    assert report["heavy"] == []
    assert result["outcome"] == "promoted", result["reason"]
    assert (result["version"], result["champion"]) == ("v1", None)
    assert set(result["challenger_metrics"]) == {"queue"}
    assert all(0.0 <= m["macro_f1"] <= 1.0 and m["n"] == 40 for m in result["challenger_metrics"].values())
    assert "no current model" in result["reason"] and "held out the newest 40" in result["reason"]
    store = ModelStore(tmp_path / "store")
    assert store.current() == "v1" and leftovers(store) == []
    meta = json.loads((store.versions_dir / "v1" / "metadata.json").read_text())
    assert {c["candidate"] for c in meta["heads"]["queue"]["candidates"]} > {"tfidf"}  # a transformer was trained
    assert meta["options"]["budget_minutes"] == 30  # the retrain trains under the configured budget
    plan = meta["heads"]["queue"]["fine_tune"]["plan"]
    assert (plan["epochs"], plan["max_length"]) == (1, 48) and plan["estimate_s"] < plan["seconds"]
    written = Path(result["log_path"]).read_text().splitlines()[1:]  # the training's output, after its command line
    assert "model written" in {json.loads(line)["event"] for line in written}  # JSON lines only: no Trainer dicts
    assert not list((tmp_path / "work").glob("*.csv"))  # the training CSV (ticket text) is not left behind
    # The training process's events reach the daemon's own log and its progress callback, step by step.
    steps = [e for e in report["progress"] if e["event"] == "fine-tuning" and "eta_s" in e]
    assert steps and steps[0]["step"] == 1 and steps[0]["steps"] >= 1 and steps[0]["label"] == "queue", steps
    logged = [json.loads(line) for line in proc.stderr.splitlines()]  # all JSON: no tqdm bar, no banner
    relayed = [e for e in logged if e["event"] == "training"]
    assert "fine-tuning" in {e["step_event"] for e in relayed}, relayed
    assert len(relayed) == len(report["progress"])


def test_worse_challenger_is_rejected(tmp_path: Path, rows: list[TrainingRow], trained: dict[str, Path]) -> None:
    store = seeded_store(tmp_path / "store", trained["good"])
    res = retrain(shuffled(rows), store, FAST, new_since_last=500, workdir=tmp_path / "work")
    assert res.outcome == "rejected", res.reason
    assert (res.version, res.champion) == (None, "v1")
    assert res.challenger_metrics["queue"]["macro_f1"] < res.champion_metrics["queue"]["macro_f1"]
    assert res.reason.startswith("kept v1: the new model is worse on ") and "queue" in res.reason
    assert store.current() == "v1"
    assert [v.version for v in store.list()] == ["v1"]
    assert leftovers(store) == []


def test_better_challenger_is_promoted_and_old_versions_pruned(
    tmp_path: Path, rows: list[TrainingRow], trained: dict[str, Path]
) -> None:
    store = seeded_store(tmp_path / "store", trained["good"], trained["good"], trained["shuffled"])
    policy = replace(FAST, keep_versions=2)
    res = retrain(rows, store, policy, new_since_last=500, workdir=tmp_path / "work")
    assert res.outcome == "promoted", res.reason
    assert (res.version, res.champion) == ("v4", "v3")
    for label in ("queue", "priority"):
        assert res.challenger_metrics[label]["macro_f1"] >= res.champion_metrics[label]["macro_f1"]
    assert "promoted v4: no label worse than v3" in res.reason
    assert store.current() == "v4"
    # v3 stays: it is what `models rollback` returns to.
    assert res.pruned == ("v1", "v2")
    assert [v.version for v in store.list()] == ["v3", "v4"]
    assert store.rollback() == "v3"
    assert leftovers(store) == []


def test_tolerance_lets_a_slightly_worse_challenger_through(
    tmp_path: Path, rows: list[TrainingRow], trained: dict[str, Path]
) -> None:
    store = seeded_store(tmp_path / "store", trained["good"])
    res = retrain(shuffled(rows), store, replace(FAST, tolerance=1.0), new_since_last=500, workdir=tmp_path / "work")
    assert res.outcome == "promoted", res.reason
    assert store.current() == "v2"


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (replace(FAST, timeout_s=0.3), "time limit and was killed"),
        (replace(FAST, train_args=("--tfidf-only", "--validation-size", "2")), "exited with status 2 (ticketd: error:"),
    ],
    ids=["killed", "cli-error"],
)
def test_failed_training_leaves_the_current_model(
    tmp_path: Path, rows: list[TrainingRow], trained: dict[str, Path], policy: RetrainPolicy, expected: str
) -> None:
    store = seeded_store(tmp_path / "store", trained["good"])
    res = retrain(rows, store, policy, new_since_last=500, workdir=tmp_path / "work")
    assert res.outcome == "failed"
    assert expected in res.reason and "current model unchanged" in res.reason
    assert res.log_path is not None and str(res.log_path) in res.reason and res.log_path.is_file()
    assert res.version is None and res.challenger_metrics == {}
    assert store.current() == "v1"
    assert [v.version for v in store.list()] == ["v1"]
    assert leftovers(store) == []


def test_cancel_kills_training(tmp_path: Path, rows: list[TrainingRow]) -> None:
    cancel = threading.Event()
    cancel.set()  # e.g. SIGTERM arrived while the retrain job was running
    store = ModelStore(tmp_path / "store")
    res = retrain(rows, store, FAST, new_since_last=500, workdir=tmp_path / "work", cancel=cancel)
    assert res.outcome == "failed" and "cancelled" in res.reason
    assert store.list() == [] and leftovers(store) == []


def test_too_few_new_examples_skips_without_training(tmp_path: Path, rows: list[TrainingRow]) -> None:
    store = ModelStore(tmp_path / "store")
    res = retrain(rows, store, RetrainPolicy(min_new_examples=200), new_since_last=199, workdir=tmp_path / "work")
    assert res == RetrainResult(
        "skipped", None, None, {}, {}, "199 new closed tickets since the last retrain; 200 are needed"
    )
    assert not (tmp_path / "work").exists()
    assert store.list() == []


def test_label_missing_from_every_row_is_dropped(tmp_path: Path, rows: list[TrainingRow]) -> None:
    no_priority = [replace(r, priority=None) for r in rows]
    store = ModelStore(tmp_path / "store")
    res = retrain(no_priority, store, FAST, new_since_last=500, workdir=tmp_path / "work")
    assert res.outcome == "promoted", res.reason
    assert list(res.challenger_metrics) == ["queue"]
    assert "labels priority missing on most tickets" in res.reason
    meta = json.loads((store.versions_dir / "v1" / "metadata.json").read_text())
    assert meta["label_names"] == ["queue"]


def _fake(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "metadata.json").write_text("{}")
    return path


def test_prune_keeps_current_and_rollback_target(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    for i in range(5):
        store.add(_fake(tmp_path / f"m{i}"))
    for version in ("v1", "v3", "v2"):  # current v2, rollback would return v3
        store.promote(version, check=False)  # metadata-only stand-ins: pruning never loads a model
    assert store.prune(keep=3) == ("v1", "v4")
    assert [v.version for v in store.list()] == ["v2", "v3", "v5"]
    assert store.prune(keep=1) == ("v5",)  # never below the two protected versions
    assert [v.version for v in store.list()] == ["v2", "v3"]
    assert store.rollback(check=False) == "v3"
    assert leftovers(store) == []


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="holdout_share"):
        RetrainPolicy(holdout_share=1.0)
    with pytest.raises(ValueError, match="keep_versions"):
        RetrainPolicy(keep_versions=0)


def test_rows_are_deduplicated_and_rare_training_classes_left_out(tmp_path: Path, rows: list[TrainingRow]) -> None:
    """The later close of a ticket wins; a class with one training example cannot be trained and is left out."""
    from daemon.training.champion import _dedup, _plan

    first = rows[0]
    relabelled = replace(first, queue="Billing", closed_at=first.closed_at + timedelta(days=999))
    ordered = _dedup([*rows, relabelled])
    assert len(ordered) == len(rows) and ordered[-1] == relabelled
    lonely = replace(rows[1], ticket_id="lonely", queue="Only Once")
    few = [rows[0], lonely, *rows[2:10]]  # lonely trains (it is not among the newest)
    plan = _plan(lambda: few, replace(FAST, labels=("queue",)))
    assert ("Only Once",) not in plan.kept and plan.n_rare >= 1
    assert len(plan.holdout) == 2 and plan.holdout == few[-2:]


def test_the_store_is_passed_over_never_held_and_a_ticket_moving_between_passes_never_trains_and_tests(
    tmp_path: Path, rows: list[TrainingRow]
) -> None:
    """A callable source is read in passes; a ticket relabelled mid-retrain cannot land on both sides."""
    import csv as csv_module

    from daemon.training.champion import _combo, _plan, _write_csv

    live = list(rows)
    passes: list[int] = []

    def source() -> list[TrainingRow]:
        passes.append(len(live))
        return list(live)

    plan = _plan(source, FAST)
    assert len(passes) == 3 and plan.total == len(rows) and len(plan.holdout) == round(len(rows) * 0.2)
    # An agent touches an old training ticket while the retrain runs: closed again, it is now the newest.
    index = next(i for i, r in enumerate(live) if _combo(r, plan.labels) in plan.kept)
    moved = live.pop(index)
    live.append(replace(moved, closed_at=live[-1].closed_at + timedelta(hours=1)))
    written = _write_csv(source, plan, tmp_path / "train.csv")
    with (tmp_path / "train.csv").open(encoding="utf-8") as fh:
        ids = [r["id"] for r in csv_module.DictReader(fh)]
    held = {f"{r.connector}:{r.ticket_id}" for r in plan.holdout}
    assert len(ids) == written and not held & set(ids)
    assert f"{moved.connector}:{moved.ticket_id}" not in ids  # it moved past the holdout's boundary
    assert written == plan.n_train - 1


def test_the_configured_budget_reaches_the_training_command(
    tmp_path: Path, rows: list[TrainingRow], monkeypatch: pytest.MonkeyPatch
) -> None:
    import daemon.training.champion as retrain_module

    policy = replace(FAST, budget_minutes=12.5)
    seen: list[list[str]] = []

    def fake_training(cmd: list[str], *args: object) -> str:
        seen.append(cmd)
        return "stopped by the test"

    monkeypatch.setattr(retrain_module, "_run_training", fake_training)
    res = retrain(rows, ModelStore(tmp_path / "store"), policy, new_since_last=len(rows), workdir=tmp_path / "w")
    assert res.outcome == "failed" and "stopped by the test" in res.reason
    assert seen[0][seen[0].index("--budget") + 1] == "12.5"
    retrain(rows, ModelStore(tmp_path / "store"), FAST, new_since_last=len(rows), workdir=tmp_path / "w")
    assert "--budget" not in seen[1]  # no budget: train as many epochs and tokens as configured
    assert seen[1][seen[1].index("--target-precision") + 1] == "0.9"  # the default target
    retrain(rows, ModelStore(tmp_path / "store"), replace(FAST, target_precision=0.95), new_since_last=len(rows),
            workdir=tmp_path / "w")  # fmt: skip
    assert seen[2][seen[2].index("--target-precision") + 1] == "0.95"


def test_the_strictest_configured_target_is_the_one_retraining_fits(tmp_path: Path) -> None:
    from daemon.config import load_config
    from daemon.training.champion import policy_from_config

    def entry(name: str, labels: dict[str, object]) -> str:
        return (
            f"  - type: imap\n    name: {name}\n    host: 127.0.0.1\n    user: u\n    password: p\n"
            f"    routing: {{labels: {labels}}}\n"
        )

    path = tmp_path / "ticketd.yaml"
    path.write_text("connectors:\n" + entry("a", {"queue": {"target_precision": 0.8}}), encoding="utf-8")
    assert policy_from_config(load_config(path)).target_precision == 0.8
    both = entry("a", {"queue": {"target_precision": 0.8}}) + entry("b", {"priority": {"target_precision": 0.95}})
    path.write_text("connectors:\n" + both, encoding="utf-8")
    assert policy_from_config(load_config(path)).target_precision == 0.95
    path.write_text("connectors:\n" + entry("a", {"queue": {"threshold": 0.7}}), encoding="utf-8")
    assert policy_from_config(load_config(path)).target_precision == 0.9  # nothing asks: the default


def test_the_cap_and_warm_start_reach_the_training_command_and_the_csv_carries_close_times(
    tmp_path: Path, rows: list[TrainingRow], tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import csv as csv_module

    import daemon.training.champion as retrain_module

    seen: list[list[str]] = []

    def fake_training(cmd: list[str], *args: object) -> str:
        seen.append(cmd)
        with open(cmd[4], encoding="utf-8") as fh:  # python -m daemon train CSV ...
            seen.append([r["closed_at"] for r in csv_module.DictReader(fh)])
        return "stopped by the test"

    monkeypatch.setattr(retrain_module, "_run_training", fake_training)
    store = ModelStore(tmp_path / "store")
    retrain(rows, store, replace(FAST, finetune_cap=500), new_since_last=len(rows), workdir=tmp_path / "w")
    assert seen[0][seen[0].index("--finetune-cap") + 1] == "500" and "--warm-start" not in seen[0]
    closed = seen[1]
    assert closed and closed == sorted(closed) and all(datetime.fromisoformat(c).tzinfo for c in closed)
    retrain(rows, store, replace(FAST, finetune_cap=None), new_since_last=len(rows), workdir=tmp_path / "w")
    assert seen[2][seen[2].index("--finetune-cap") + 1] == "0"  # no cap: every ticket
    version = store.add(tiny_model)
    store.promote(version)
    retrain(rows, store, replace(FAST, warm_start=True), new_since_last=len(rows), workdir=tmp_path / "w")
    assert seen[4][seen[4].index("--warm-start") + 1] == str(store.versions_dir / version)
    assert "--keep-torch" in seen[4]  # so that the next retrain can start from this one
