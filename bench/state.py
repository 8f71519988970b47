"""State at a year's scale: per-ticket overhead, a harvest page, the report and loading the retrain data.

Generates a synthetic ledger (10k, 100k, 1M rows) and training store (10k to 200k rows) straight into
a fresh state database per size, on SQLite and, with --pg-url (an empty database it may fill), on
PostgreSQL. Measures with the daemon's own State calls:

- per ticket: the pipeline's ledger lookup of a page, `ledger_get`, `ledger_begin`, `ledger_finish`
  and the page's cursor update, for 200 new tickets (median of 3 rounds);
- a harvest page: `training_add` of 50 closed tickets;
- `ticketd report` (agreement by SQL, entries that missed a target, ledger counts), which the
  agreement gauges also run after every harvest;
- a retrain's data phase (its passes over the store, the holdout, the training CSV), and the peak RSS
  of a process doing it (VmHWM); the training itself runs in a process of its own.

Prints a table, then one JSON line with `overhead_ratio_1m_vs_10k`, `report_seconds_1m` and
`peak_rss_mib_200k`. Targets: overhead at 1M within 1.2x of 10k; report <= 2 s at 1M; peak RSS
<= 300 MiB with a 200k-row training store.

    python bench/state.py [--ledger 10000,100000,1000000] [--training 10000,200000] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QUEUES = ["Billing", "Technical Support", "Hardware", "Sales", "Returns", "IT", "HR", "General"]
PRIORITIES = ["low", "medium", "high"]
WORDS = [
    "invoice",
    "refund",
    "vpn",
    "printer",
    "laptop",
    "password",
    "screen",
    "order",
    "delivery",
    "licence",
    "server",
    "mail",
    "account",
]
CONNECTOR = "helpdesk"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
CHUNK = 20_000

LOAD_RSS = """
import sys, tempfile
from pathlib import Path
from daemon.logging import configure
from daemon.training.champion import RetrainPolicy, _plan, _write_csv
from daemon.state import State
configure("warning")
if len(sys.argv) > 2:  # the daemon's serving model, loaded and used as it is while a retrain runs
    from daemon.ml.classifier import Classifier
    Classifier.load(sys.argv[2]).predict_texts(["The printer in room 4 jams again"])
state = State.open(sys.argv[1])
source = state.iter_training_rows  # what the daemon hands its retrain: passes, never one list
plan = _plan(source, RetrainPolicy())
with tempfile.TemporaryDirectory() as tmp:
    written = _write_csv(source, plan, Path(tmp) / "train.csv")
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(plan.total, hwm)
"""


def _ledger_rows(n: int, rng: random.Random) -> Any:
    for i in range(n):
        q, p = rng.choice(QUEUES), rng.choice(PRIORITIES)
        at = T0 + timedelta(seconds=30 * i)
        decision: dict[str, Any] = {"queue": q, "priority": p, "note": f"ticketd: {q}", "reasons": {}}
        if i % 997 == 0:
            decision["missing"] = {"queue": "Accounting"}
        yield {
            "connector": CONNECTOR,
            "ticket_id": str(i),
            "model_version": "v3",
            "predictions": {
                "queue": {"label": q, "confidence": round(rng.random(), 3)},
                "priority": {"label": p, "confidence": round(rng.random(), 3)},
            },
            "decision": decision,
            "mode": "live",
            "state": "applied",
            "detail": None,
            "created_at": at,
            "updated_at": at,
        }


def _training_rows(n: int, n_ledger: int, rng: random.Random) -> Any:
    step = max(n_ledger // max(n, 1), 1)  # closed tickets spread over the ledger's ids: most join
    for i in range(n):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 160)))  # ~0.4-1.4 kB, like a ticket
        at = T0 + timedelta(seconds=30 * i * step + 3600)
        yield {
            "connector": CONNECTOR,
            "ticket_id": str(i * step),
            "text": text,
            "queue": rng.choice(QUEUES),
            "priority": rng.choice(PRIORITIES),
            "language": "en",
            "closed_at": at,
            "harvested_at": at,
        }


def _fill(url: str, n_ledger: int, n_training: int) -> float:
    """Open (migrate) and bulk-insert; returns seconds."""
    import sqlalchemy as sa

    from daemon.state import State
    from daemon.state.schema import ledger, training

    started = time.perf_counter()
    rng = random.Random(7)
    state = State.open(url)
    engine = state._engine
    try:
        for table, rows in (
            (ledger, _ledger_rows(n_ledger, rng)),
            (training, _training_rows(n_training, n_ledger, rng)),
        ):
            batch: list[dict[str, Any]] = []
            for row in rows:
                batch.append(row)
                if len(batch) == CHUNK:
                    with engine.begin() as conn:
                        conn.execute(sa.insert(table), batch)
                    batch = []
            if batch:
                with engine.begin() as conn:
                    conn.execute(sa.insert(table), batch)
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("ANALYZE")
        else:
            with engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE")
    finally:
        state.close()
    return time.perf_counter() - started


def _per_ticket(url: str) -> float:
    """Seconds of state work per new ticket, as the pipeline does it, median of 3 rounds of 200."""
    from daemon.state import LedgerEntry, State

    state = State.open(url)
    rounds = []
    try:
        for r in range(3):
            ids = [f"new-{r}-{i}" for i in range(200)]
            started = time.perf_counter()
            for page in range(0, len(ids), 50):
                chunk = ids[page : page + 50]
                state.ledger_known(CONNECTOR, chunk)
                for tid in chunk:
                    state.ledger_get(CONNECTOR, tid)
                    now = datetime.now(UTC)
                    state.ledger_begin(
                        LedgerEntry(
                            connector=CONNECTOR,
                            ticket_id=tid,
                            model_version="v3",
                            predictions={"queue": {"label": "Billing", "confidence": 0.9}},
                            decision={"queue": "Billing", "priority": None},
                            mode="live",
                            state="pending",
                            detail=None,
                            created_at=now,
                            updated_at=now,
                        )
                    )
                    state.ledger_finish(CONNECTOR, tid, "applied")
                state.cursor_set(CONNECTOR, "new", chunk[-1])
            rounds.append((time.perf_counter() - started) / len(ids))
    finally:
        state.close()
    return statistics.median(rounds)


def _harvest_page(url: str) -> float:
    from daemon.state import State, TrainingRow

    state = State.open(url)
    try:
        now = datetime.now(UTC)
        rows = [
            TrainingRow(CONNECTOR, f"closed-{i}", "printer jams again " * 20, "Hardware", "low", "en", now, now)
            for i in range(50)
        ]
        started = time.perf_counter()
        state.training_add(rows)
        return time.perf_counter() - started
    finally:
        state.close()


def _report(url: str) -> float:
    from daemon.pipeline.report import build_report, missing_targets
    from daemon.pipeline.routing import LabelRule
    from daemon.state import State

    state = State.open(url)
    try:
        rules = {CONNECTOR: {"queue": LabelRule(threshold=0.6), "priority": LabelRule(threshold=0.6)}}
        started = time.perf_counter()
        reports = build_report(state, rules)
        missing_targets(state.ledger_with_missing())
        state.ledger_counts()
        seconds = time.perf_counter() - started
        assert reports and reports[0].compared > 0, "the synthetic ledger and store must join"
        return seconds
    finally:
        state.close()


def _load(url: str, model: str | None = None) -> tuple[float, int, float]:
    """Seconds of a retrain's data phase, rows seen, and the peak RSS (MiB) of a process that runs it."""
    started = time.perf_counter()
    out = (
        subprocess.run(
            [sys.executable, "-c", LOAD_RSS, url, *([model] if model else [])],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=3600,
        )
        .stdout.strip()
        .splitlines()[-1]
        .split()
    )  # after the state's own log lines
    return time.perf_counter() - started, int(out[0]), int(out[1]) / 1024


def _reset_pg(url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
    finally:
        engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ledger", default="10000,100000,1000000", help="ledger sizes (comma-separated)")
    parser.add_argument("--training", default="10000,200000", help="training-store sizes (comma-separated)")
    parser.add_argument("--pg-url", help="an empty PostgreSQL database to fill as well (it is wiped per size)")
    parser.add_argument("--model", help="a model directory: the RSS process serves it, as the daemon does")
    args = parser.parse_args()
    from daemon.logging import configure

    configure("warning")  # the state's own events would interleave with the table
    ledgers = [int(x) for x in args.ledger.split(",") if x]
    trainings = [int(x) for x in args.training.split(",") if x]
    backends = ["sqlite"] + (["postgresql"] if args.pg_url else [])
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ticketd-bench-state-") as tmp:
        for backend in backends:
            for n_ledger in ledgers:
                for n_training in trainings:
                    if backend == "sqlite":
                        url = f"sqlite:///{tmp}/{n_ledger}-{n_training}.db"
                    else:
                        url = args.pg_url
                        _reset_pg(url)
                    fill_s = _fill(url, n_ledger, n_training)
                    row = {
                        "backend": backend,
                        "ledger": n_ledger,
                        "training": n_training,
                        "fill_s": round(fill_s, 1),
                        "per_ticket_ms": round(_per_ticket(url) * 1000, 3),
                        "harvest_page_ms": round(_harvest_page(url) * 1000, 1),
                        "report_s": round(_report(url), 3),
                    }
                    load_s, n_rows, rss = _load(url, args.model)
                    row.update({"load_retrain_data_s": round(load_s, 2), "peak_rss_mib": round(rss, 1)})
                    assert n_rows == n_training + 50
                    results.append(row)
                    print(json.dumps(row), file=sys.stderr, flush=True)
                    if backend == "sqlite":
                        for f in Path(tmp).glob(f"{n_ledger}-{n_training}.db*"):
                            f.unlink()
    print(
        f"{'backend':<11}{'ledger':>9}{'training':>9}{'ticket ms':>10}{'page ms':>9}"
        f"{'report s':>9}{'load s':>8}{'RSS MiB':>9}"
    )
    for r in results:
        print(
            f"{r['backend']:<11}{r['ledger']:>9}{r['training']:>9}{r['per_ticket_ms']:>10.3f}"
            f"{r['harvest_page_ms']:>9.1f}{r['report_s']:>9.3f}{r['load_retrain_data_s']:>8.2f}{r['peak_rss_mib']:>9.1f}"
        )
    summary: dict[str, Any] = {}
    for backend in backends:
        mine = [r for r in results if r["backend"] == backend]
        small = [r["per_ticket_ms"] for r in mine if r["ledger"] == min(ledgers)]
        big = [r["per_ticket_ms"] for r in mine if r["ledger"] == max(ledgers)]
        key = "" if backend == "sqlite" else "_postgresql"
        summary[f"overhead_ratio_1m_vs_10k{key}"] = round(statistics.mean(big) / statistics.mean(small), 3)
        summary[f"report_seconds_1m{key}"] = max(r["report_s"] for r in mine if r["ledger"] == max(ledgers))
        summary[f"peak_rss_mib_200k{key}"] = max(r["peak_rss_mib"] for r in mine if r["training"] == max(trainings))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
