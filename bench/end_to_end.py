"""Daemon benchmark: the bare model's tickets/s vs the daemon's end-to-end tickets/s on the same tickets.

The model side runs LoadedModel.classify per ticket in this process (ONNX, torch-free), twice: loaded
as the daemon loads it (daemon.ml.serving.ModelHolder, the same ONNX Runtime thread setting), and with
the classifier's own default threads (min(4, cores)). The ratio is taken against the faster of the
two, so a daemon setting that slows the bare model can never make the daemon look better. The daemon
side runs `python -m daemon run --once` in a subprocess against the fake Znuny on a real port
(fetch -> classify -> write back -> ledger). Its clock starts at the daemon's first TicketSearch
(model load excluded) and stops at the last "ticket routed" log event. Poll-to-write-back latency
per ticket runs from the start of the poll that found it (all N are waiting, one batch) to the
daemon's "ticket routed" line (written back and in the ledger), so it includes queueing behind the
tickets before it; the per-ticket service time is the gap between consecutive routed tickets
(classify + write back + ledger for one ticket). Peak RSS is the
subprocess's VmHWM, read from /proc/self/status at exit.

Timings swing with whatever else runs on the machine, so CPU time per ticket is printed too: the
model's (this process, all threads), the daemon's (its /proc/PID/stat, from its first TicketSearch to
its last TicketUpdate) and the fake helpdesk's (this process while it serves the daemon; a real
helpdesk would spend it on another host, here it competes for the same cores).

    python bench/end_to_end.py [--model STORE] [--n 300]

Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from daemon.ml.classifier import Classifier  # noqa: E402
from daemon.ml.serving import LoadedModel, ModelHolder  # noqa: E402
from tests.support.daemon import every_label  # noqa: E402
from tests.support.fakes.http import serve  # noqa: E402
from tests.support.fakes.znuny import FakeZnuny  # noqa: E402

PASSWORD = "bench-agent-password"
SUBJECTS = [
    ("Invoice charged twice", "We were billed twice for March, please refund the second charge."),
    ("VPN keeps dropping", "The VPN disconnects every few minutes since the update, please help."),
    ("Need a quote", "Please send an offer for 30 more licences for our Berlin office."),
    ("Laptop screen broken", "My screen flickers and then goes black after a few minutes."),
    ("Payment failed", "The card payment failed although the card is valid and has funds."),
    ("Password reset", "I cannot reset my password, the link in the mail has expired."),
    ("Printer offline", "The printer on floor 3 shows offline for everyone since this morning."),
    ("Refund request", "We cancelled within the trial period and would like our money back."),
]

# Runs the daemon's CLI and prints the process's peak RSS (VmHWM) as a JSON log line at exit.
WRAPPER = """
import atexit, json, runpy, sys
def _hwm():
    kib = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    sys.stderr.write(json.dumps({"event": "bench vmhwm", "kib": kib}) + "\\n")
    sys.stderr.flush()
atexit.register(_hwm)
sys.argv = ["daemon", *sys.argv[1:]]
runpy.run_module("daemon", run_name="__main__")
"""


class TimedZnuny(FakeZnuny):
    """The fake Znuny, stamping every request with the wall clock."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stamps: list[tuple[float, str, str]] = []
        self.pid: int | None = None  # the daemon's, for its CPU time
        self.cpu: list[tuple[float, float]] = []  # (daemon, this process) CPU seconds at each search and update

    def handle(self, method: str, path: str, query: str, headers: Any, body: bytes) -> Any:
        self.stamps.append((time.time(), method, path))
        if self.pid is not None and (is_search(method, path) or method == "PATCH"):
            self.cpu.append((process_cpu(self.pid), time.process_time()))
        return super().handle(method, path, query, headers, body)


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a live process, all threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ticket(i: int) -> tuple[str, str]:
    subject, body = SUBJECTS[i % len(SUBJECTS)]
    return f"{subject} #{i}", f"{body} Reference {i}."


def ensure_model(store: Path) -> Path:
    if (store / "current").is_dir():
        return store
    data = ROOT / "daemon" / "ml" / "data" / "starter-tickets.csv"
    cmd = [sys.executable, "-m", "daemon", "train", str(data), "--store", str(store), "--promote"]
    subprocess.run([*cmd, "--epochs", "1", "--max-length", "64"], cwd=ROOT, check=True)
    return store


def bench_model(model: LoadedModel, texts: list[tuple[str, str]]) -> tuple[float, float]:
    """Tickets/s and CPU ms per ticket."""
    model.classify(texts[0][1], subject=texts[0][0])  # warm-up
    start, cpu = time.perf_counter(), time.process_time()
    for subject, body in texts:
        model.classify(body, subject=subject)
    return len(texts) / (time.perf_counter() - start), (time.process_time() - cpu) * 1000 / len(texts)


def write_config(tmp: Path, url: str, store: Path, n: int) -> Path:
    queues = json.loads((store / "current" / "queue" / "labels.json").read_text())
    priorities = json.loads((store / "current" / "priority" / "labels.json").read_text())
    targets = ["Billing", "Hardware", "Technical Support", "Misc"]
    config = {
        "model": {"store": str(store)},
        "state": {"url": f"sqlite:///{tmp / 'state.db'}"},
        "retrain": {"enabled": False},
        "api": {"enabled": False},
        "log": {"level": "info", "json": True},
        "connectors": [
            {
                "type": "znuny",
                "name": "bench",
                "url": url,
                "user": "agent1",
                "password": "${BENCH_ZNUNY_PASSWORD}",
                "inbound_queues": ["Raw"],
                "queues": targets,
                "routing": {
                    "poll_interval": 1,
                    "jitter": 0,
                    "batch_limit": n + 10,
                    "labels": every_label(queues, priorities, targets, ["2 low", "3 normal", "4 high"]),
                },
            }
        ],
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def ts(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def is_search(method: str, path: str) -> bool:
    return method == "GET" and path.rstrip("/").endswith("/Ticket")


def bench_daemon(store: Path, texts: list[tuple[str, str]]) -> dict[str, Any]:
    znuny = TimedZnuny(passwords={"agent1": PASSWORD})
    znuny.agent_update(3, queue="Misc")  # the installation's own sample ticket
    ids = [znuny.add_customer_ticket(s, b) for s, b in texts]
    with tempfile.TemporaryDirectory() as tmpdir, serve(znuny) as url:
        tmp = Path(tmpdir)
        config = write_config(tmp, url, store, len(texts))
        log = tmp / "daemon.log"
        env = {**os.environ, "BENCH_ZNUNY_PASSWORD": PASSWORD}
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-c", WRAPPER, "run", "--config", str(config), "--once"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            znuny.pid = proc.pid  # before its first request: loading the model takes the daemon a second or more
            returncode = proc.wait(timeout=1800)
        lines = log.read_text(encoding="utf-8").splitlines()
        if returncode != 0:
            raise SystemExit("daemon failed:\n" + "\n".join(lines[-30:]))
    events = [json.loads(line) for line in lines if line.startswith("{")]
    routed = [e for e in events if e.get("event") == "ticket routed"]
    left = [t for t in ids if znuny.queue_name(t) == "Raw"]
    first_poll = next(when for when, method, path in znuny.stamps if is_search(method, path))
    end = max(ts(e) for e in routed)
    done = sorted(ts(e) for e in routed)
    latencies = [t - first_poll for t in done]  # poll start -> this ticket written back and in the ledger
    service = [b - a for a, b in zip([first_poll, *done], done, strict=False)]  # one ticket's own cost
    hwm = next(e["kib"] for e in events if e.get("event") == "bench vmhwm")
    (daemon_cpu0, fake_cpu0), (daemon_cpu1, fake_cpu1) = znuny.cpu[0], znuny.cpu[-1]
    return {
        "routed": len(routed),
        "left_unrouted": len(left),
        "tickets_per_s": len(routed) / (end - first_poll),
        "latency_p50_ms": percentile(latencies, 0.5) * 1000,
        "latency_p99_ms": percentile(latencies, 0.99) * 1000,
        "service_p50_ms": percentile(service, 0.5) * 1000,
        "service_p99_ms": percentile(service, 0.99) * 1000,
        "peak_rss_mib": hwm / 1024,
        "cpu_ms": (daemon_cpu1 - daemon_cpu0) * 1000 / len(routed),
        "fake_cpu_ms": (fake_cpu1 - fake_cpu0) * 1000 / len(routed),
        "requests": len(znuny.stamps),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / ".ticketd" / "models", help="model store")
    parser.add_argument("--n", type=int, default=300, help="tickets")
    args = parser.parse_args()
    store = ensure_model(args.model.resolve())
    texts = [ticket(i) for i in range(args.n)]
    holder = ModelHolder(store)  # the bench config leaves model.threads unset, as the daemon below sees it
    holder.load()
    served_tps, served_cpu = bench_model(holder.get(), texts)
    del holder
    default_tps, default_cpu = bench_model(LoadedModel(Classifier.load(store / "current"), None), texts)
    model_tps = max(served_tps, default_tps)
    d = bench_daemon(store, texts)
    ratio = d["tickets_per_s"] / model_tps
    print(f"{'what':<48} {'value':>12}")
    print(f"{'tickets':<48} {args.n:>12}")
    print(f"{'model tickets/s, as the daemon loads it':<48} {served_tps:>12.1f}")
    print(f"{'model tickets/s, classifier default threads':<48} {default_tps:>12.1f}")
    print(f"{'model tickets/s (both heads, in-process; best)':<48} {model_tps:>12.1f}")
    print(f"{'daemon tickets/s (end to end)':<48} {d['tickets_per_s']:>12.1f}")
    print(f"{'daemon / model':<48} {ratio:>12.2f}")
    print(f"{'poll-to-write-back latency p50 (ms)':<48} {d['latency_p50_ms']:>12.1f}")
    print(f"{'poll-to-write-back latency p99 (ms)':<48} {d['latency_p99_ms']:>12.1f}")
    print(f"{'per-ticket service time p50 (ms)':<48} {d['service_p50_ms']:>12.1f}")
    print(f"{'per-ticket service time p99 (ms)':<48} {d['service_p99_ms']:>12.1f}")
    print(f"{'model CPU ms/ticket, as the daemon loads it':<48} {served_cpu:>12.1f}")
    print(f"{'model CPU ms/ticket, classifier default threads':<48} {default_cpu:>12.1f}")
    print(f"{'daemon CPU ms/ticket (all threads)':<48} {d['cpu_ms']:>12.1f}")
    print(f"{'fake helpdesk CPU ms/ticket (same machine)':<48} {d['fake_cpu_ms']:>12.1f}")
    print(f"{'daemon peak RSS (MiB)':<48} {d['peak_rss_mib']:>12.1f}")
    print(f"{'routed / left unrouted':<48} {d['routed']:>6} / {d['left_unrouted']:<4}")
    print(f"{'requests to the fake':<48} {d['requests']:>12}")
    print(
        json.dumps(
            {
                "n": args.n,
                "model_tickets_per_s": round(model_tps, 1),
                "model_served_tickets_per_s": round(served_tps, 1),
                "model_default_threads_tickets_per_s": round(default_tps, 1),
                "daemon_tickets_per_s": round(d["tickets_per_s"], 1),
                "daemon_vs_model_ratio": round(ratio, 3),
                "latency_p50_ms": round(d["latency_p50_ms"], 1),
                "latency_p99_ms": round(d["latency_p99_ms"], 1),
                "service_p50_ms": round(d["service_p50_ms"], 1),
                "service_p99_ms": round(d["service_p99_ms"], 1),
                "daemon_peak_rss_mib": round(d["peak_rss_mib"], 1),
                "model_served_cpu_ms_per_ticket": round(served_cpu, 2),
                "model_default_threads_cpu_ms_per_ticket": round(default_cpu, 2),
                "daemon_cpu_ms_per_ticket": round(d["cpu_ms"], 2),
                "fake_helpdesk_cpu_ms_per_ticket": round(d["fake_cpu_ms"], 2),
                "routed": d["routed"],
                "left_unrouted": d["left_unrouted"],
                "requests": d["requests"],
            }
        )
    )


if __name__ == "__main__":
    main()
