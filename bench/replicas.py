"""Several replicas on one PostgreSQL: failover time after killing an owner, and throughput with 1 vs 3 replicas.

    python bench/replicas.py [--tickets 2000] [--kills 20] [--pauses 20] [--only-pauses]

Failover: three `ticketd run` replicas on a private PostgreSQL, a fake Znuny and a fake Zammad (the
suite's, served on loopback), the tickets already waiting. The owner of a random connector is SIGKILLed
at random moments and a new replica started each time; failover is kill -> the first write-back of
that connector by another replica (wall clock, from the replicas' own logs). At the end every ticket
must have left the inbound queue with exactly one ticketd note (`lost`, `doubled`).

Pauses: two replicas, 120 new tickets each round; the owner of a random busy connector is SIGSTOPped
until the other replica owns everything and wrote that connector back, then SIGCONTed, `--pauses`
times. Whatever the paused one had in flight must not reach the helpdesk as a second write (`doubled`,
`rewritten`, and the tickets concerned in `culprits`).

Throughput: four connectors (two fake Znunys, two fake Zammads), the same tickets, routed by one
replica and then by three; tickets per second from the first write-back to the last. On 2 cores the
replicas share the same CPUs, so three are not expected to be faster: they buy availability.

Prints a table and one JSON line (`failover_p50_s`, `failover_p99_s`, `lost`, `doubled`, ...).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.end_to_end import ensure_model, percentile  # noqa: E402
from tests.support.replicas import LEASE_SECONDS, Cluster, cluster, when  # noqa: E402
from tests.support.servers.postgres import running_postgres  # noqa: E402


def failover(tmp: Path, store: Path, database: str, *, tickets: int, kills: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    times: list[float] = []
    with cluster(tmp, store, database, tickets=tickets) as c:
        for _ in range(3):
            c.start()
        c.wait_owned(list(c.desks))
        for _ in range(kills):
            time.sleep(rng.uniform(0.2, 0.8))
            owners = c.wait_owned(list(c.desks))
            connector = rng.choice(sorted(owners))
            victim = c.replica(owners[connector])
            had_work = bool(c.remaining()[connector])
            killed = time.time()
            victim.proc.send_signal(signal.SIGKILL)
            victim.proc.wait(timeout=30)
            c.start()
            if not had_work:
                continue
            deadline = time.monotonic() + 60
            firsts: list[float] = []
            while time.monotonic() < deadline and not firsts and c.remaining()[connector]:
                firsts = [when(e) for r in c.replicas if r is not victim for e in r.routed(connector, after=killed)]
                time.sleep(0.05)
            if firsts:
                times.append(min(firsts) - killed)
        routed = c.wait_routed(timeout=600)
        verdict = c.verdict()
    return {
        "kills": kills,
        "measured": len(times),
        "failover_p50_s": round(percentile(times, 0.5), 3) if times else None,
        "failover_p99_s": round(percentile(times, 0.99), 3) if times else None,
        "failover_max_s": round(max(times), 3) if times else None,
        "all_routed": routed,
        **verdict,
    }


def pauses(tmp: Path, store: Path, database: str, *, pauses: int, seed: int, per_pause: int = 120) -> dict[str, Any]:
    """SIGSTOP a busy owner past its lease, let the other replica take over and write back, then SIGCONT it."""
    rng = random.Random(seed)
    busy = 0
    with cluster(tmp, store, database, tickets=0) as c:
        for _ in range(2):
            c.start(warm=True)
        c.wait_owned(list(c.desks))
        for _ in range(pauses):
            c.add(per_pause)
            time.sleep(rng.uniform(0.05, 0.5))  # the owners are writing these back now
            owners = c.wait_owned(list(c.desks))
            connector = rng.choice(sorted(owners))
            victim = c.replica(owners[connector])
            busy += bool(c.remaining()[connector])
            victim.proc.send_signal(signal.SIGSTOP)
            paused = time.time()
            try:
                c.wait_owned(list(c.desks), timeout=60, exclude={victim.id})
                deadline = time.monotonic() + 30
                while c.remaining()[connector] and time.monotonic() < deadline:
                    if any(r.routed(connector, after=paused) for r in c.replicas if r is not victim):
                        break  # the new owner wrote back what the paused one may have had in flight
                    time.sleep(0.05)
            finally:
                victim.proc.send_signal(signal.SIGCONT)
            time.sleep(LEASE_SECONDS)  # it resumes, finds its leases gone, and may get its share back
        routed = c.wait_routed(timeout=600)
        verdict, culprits = c.verdict(), c.culprits()
    return {"pauses": pauses, "busy": busy, "all_routed": routed, **verdict, "culprits": culprits}


def throughput(tmp: Path, store: Path, database: str, *, tickets: int, replicas: int) -> dict[str, Any]:
    desks = {"znuny-a": "znuny", "znuny-b": "znuny", "zammad-a": "zammad", "zammad-b": "zammad"}
    with cluster(tmp, store, database, tickets=tickets, desks=desks) as c:
        for _ in range(replicas):
            c.start(warm=True)  # routing measured, not each new replica's model download (fetch_s)
        routed = c.wait_routed(timeout=900)
        stamps = sorted(when(e) for r in c.replicas for e in r.routed())
        verdict = c.verdict()
        spread = _spread(c)
    seconds = stamps[-1] - stamps[0] if len(stamps) > 1 else float("nan")
    return {
        "replicas": replicas,
        "tickets_per_s": round((len(stamps) - 1) / seconds, 1) if seconds == seconds and seconds > 0 else None,
        "all_routed": routed,
        "connectors_per_replica": spread,
        **verdict,
    }


def _pause_row(pa: dict[str, Any]) -> str:
    return (
        f"| pause | 2 | 2 | {pa['pauses']} SIGSTOPs past the lease ({pa['busy']} mid-work), then SIGCONT "
        f"| {pa['lost']} | {pa['doubled']} (rewritten {pa['rewritten']}) | | | |"
    )


def _spread(c: Cluster) -> list[int]:
    owners = c.owners()
    return sorted((sum(1 for o in owners.values() if o == r.id) for r in c.replicas if r.alive), reverse=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / ".ticketd" / "bench-latency-model")
    parser.add_argument("--tickets", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--pauses", type=int, default=20)
    parser.add_argument("--seed", type=int, default=20261205)
    parser.add_argument("--only-pauses", action="store_true", help="the pause run alone (its table row and JSON)")
    args = parser.parse_args()
    store = ensure_model(args.model)
    with running_postgres() as server, tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for sub in ("failover", "pause", "one", "three"):
            (tmp / sub).mkdir()
        pa = pauses(tmp / "pause", store, server.new_database(), pauses=args.pauses, seed=args.seed)
        print(f"# pauses: {pa}", file=sys.stderr, flush=True)
        if args.only_pauses:
            print(_pause_row(pa))
            print(json.dumps({k: v for k, v in pa.items() if k != "culprits"}))
            return
        fo = failover(
            tmp / "failover", store, server.new_database(), tickets=args.tickets, kills=args.kills, seed=args.seed
        )
        print(f"# failover: {fo}", file=sys.stderr, flush=True)
        one = throughput(tmp / "one", store, server.new_database(), tickets=args.tickets, replicas=1)
        print(f"# 1 replica: {one}", file=sys.stderr, flush=True)
        three = throughput(tmp / "three", store, server.new_database(), tickets=args.tickets, replicas=3)
        print(f"# 3 replicas: {three}", file=sys.stderr, flush=True)
    print(f"{args.tickets} tickets; 2 cores; lease 3 s, renewal every 0.5 s (tests/support/replicas.py)")
    print("| run | replicas | connectors | kills | lost | doubled | failover p50 s | p99 s | tickets/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(
        f"| failover | 3 | 2 | {fo['kills']} ({fo['measured']} mid-work) | {fo['lost']} | {fo['doubled']} "
        f"| {fo['failover_p50_s']} | {fo['failover_p99_s']} | |"
    )
    print(_pause_row(pa))
    for run in (one, three):
        print(
            f"| throughput | {run['replicas']} | 4 (spread {run['connectors_per_replica']}) | 0 | {run['lost']} "
            f"| {run['doubled']} | | | {run['tickets_per_s']} |"
        )
    ratio = (
        round(three["tickets_per_s"] / one["tickets_per_s"], 2)
        if one["tickets_per_s"] and three["tickets_per_s"]
        else None
    )
    print(f"throughput 3 replicas / 1 replica: {ratio}")
    summary = {
        "failover_p50_s": fo["failover_p50_s"],
        "failover_p99_s": fo["failover_p99_s"],
        "lost": fo["lost"] + pa["lost"] + one["lost"] + three["lost"],
        "doubled": fo["doubled"] + pa["doubled"] + one["doubled"] + three["doubled"],
        "kills": fo["kills"],
        "pauses": pa["pauses"],
        "pause_rewritten": pa["rewritten"],
        "throughput_1_per_s": one["tickets_per_s"],
        "throughput_3_per_s": three["tickets_per_s"],
        "throughput_ratio": ratio,
        "meets_target": bool(
            fo["failover_p99_s"] is not None
            and fo["failover_p99_s"] <= 15
            and fo["lost"] + pa["lost"] + one["lost"] + three["lost"] == 0
            and fo["doubled"] + pa["doubled"] + one["doubled"] + three["doubled"] == 0
            and pa["rewritten"] == 0
        ),
        "tickets": args.tickets,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
