"""The API on a network, measured against real `ticketd serve` processes on loopback, side by side.

1. Keep-alive: `/healthz` requests per second on one kept-alive connection, ticketd's listening socket
   (TCP_NODELAY) against the socket it used to make (no IPPROTO_TCP, so asyncio left Nagle's algorithm
   on and every answer waited for the client's delayed ACK). Target: >= 500/s on 2 cores.
2. Guessing: wrong bearer tokens and wrong dashboard logins from one client for a few seconds, with the
   default `api.failed_auth_per_minute` (10) against the limit set out of reach (10,000): how many
   guesses got an answer (401) per second, and how many were refused unread (429).
3. Large HTML: while one client sends `--bursts` classify requests with `--html-mb` of HTML each, another
   asks `/healthz` every 20 ms on fresh connections: its worst and median latency, and the server's RSS
   before and after the burst (target: /healthz within 200 ms throughout, RSS within 50 MB).

Prints a table, then one JSON line.

    python bench/api.py [--seconds 3] [--html-mb 9.6] [--bursts 5] [--model DIR]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STARTER = ROOT / "daemon" / "ml" / "data" / "starter-tickets.csv"
TOKEN = "bench-admin-token-0123456789-abcdef"

# ticketd serve, optionally with the listening socket made the way it was before TCP_NODELAY took effect.
SERVE = """
import socket, sys
from pathlib import Path
import daemon.web.server as server
from daemon.config import load_config

def nagle_bind(host, port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # proto 0: asyncio leaves Nagle on
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock

if sys.argv[2] == "nagle":
    server.bind = nagle_bind
sys.exit(server.serve(load_config(Path(sys.argv[1]))))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(
    work: Path, name: str, *, socket_kind: str = "nodelay", model: Path | None = None, **api: Any
) -> Iterator[tuple[int, int]]:
    """A `ticketd serve` on a free loopback port: (port, pid)."""
    port = _free_port()
    store = work / f"{name}-models"
    if model is not None:
        (store / "versions").mkdir(parents=True)
        os.symlink(model, store / "versions" / "v1")
        os.symlink("versions/v1", store / "current")
    config = {
        "model": {"store": str(store)},
        "state": {"url": f"sqlite:///{work / f'{name}.db'}"},
        "api": {"host": "127.0.0.1", "port": port, "tokens": [TOKEN], "max_body_bytes": 32 << 20, **api},
        "log": {"level": "warning", "json": True},
        "connectors": [{"type": "maildir", "path": str(work / "mail")}],
    }
    path = work / f"{name}.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    log = (work / f"{name}.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-c", SERVE, str(path), socket_kind], stdout=log, stderr=log, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = (work / f"{name}.log").read_text()[-2000:]
                    raise SystemExit(f"ticketd serve did not start: {tail}") from None
                time.sleep(0.1)
        yield port, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def keep_alive(port: int, seconds: float) -> float:
    """`/healthz` answers per second on one kept-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/healthz")
    conn.getresponse().read()  # warm
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        conn.request("GET", "/healthz")
        answer = conn.getresponse()
        answer.read()
        assert answer.status == 200
        n += 1
    conn.close()
    return n / (time.perf_counter() - started)


def guesses(port: int, seconds: float, kind: str) -> dict[str, float]:
    """Wrong credentials for `seconds` from one client: answered (401) and refused unread (429) per second."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    counts: dict[int, int] = {}
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        n += 1
        if kind == "bearer":
            conn.request("GET", "/api/v1/models", headers={"Authorization": f"Bearer wrong-{n:08d}-0123456789abcdef"})
        else:
            form = f"token=wrong-{n:08d}-0123456789abcdef&next=%2Fui%2Foverview"
            conn.request("POST", "/ui/login", body=form, headers={"Content-Type": "application/x-www-form-urlencoded"})
        answer = conn.getresponse()
        answer.read()
        counts[answer.status] = counts.get(answer.status, 0) + 1
    elapsed = time.perf_counter() - started
    conn.close()
    return {
        "answered_per_s": counts.get(401, 0) / elapsed,
        "refused_per_s": counts.get(429, 0) / elapsed,
        "answered": counts.get(401, 0),
    }


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def heavy_html(megabytes: float) -> str:
    """An HTML mail the way heavy clients write it: a big style block, nested tables and spans, some text."""
    style = (
        "<style>" + "".join(f".c{i} {{ color: #{i % 999:03d}; margin: {i % 7}px }}\n" for i in range(2000)) + "</style>"
    )
    row = (
        "<tr><td class='c1'><div><span style='font-family:Calibri'><b>The printer on floor {i} drops jobs</b>"
        "</span></div></td><td><p class='c2'>&nbsp;Please check the queue, ticket {i}.</p></td></tr>"
    )
    rows: list[str] = []
    size, i = len(style), 0
    while size < megabytes * 1e6:
        rows.append(row.format(i=i))
        size += len(rows[-1])
        i += 1
    return f"<html><head>{style}</head><body><table>{''.join(rows)}</table></body></html>"


def html_burst(port: int, pid: int, megabytes: float, bursts: int) -> dict[str, float]:
    """/healthz latency on fresh connections while large HTML classify requests go in one after another."""
    body = json.dumps({"ticket_data": heavy_html(megabytes)}).encode()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    def classify() -> int:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        conn.request("POST", "/api/v1/classify", body=body, headers=headers)
        answer = conn.getresponse()
        answer.read()
        conn.close()
        return answer.status

    small = json.dumps({"ticket_data": "<p>The printer drops jobs</p>"}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", "/api/v1/classify", body=small, headers=headers)  # lazy loads done before "before"
    conn.getresponse().read()
    conn.close()
    time.sleep(0.5)
    before = _rss_mb(pid)
    latencies: list[float] = []
    statuses: list[int] = []
    done = threading.Event()

    def sender() -> None:
        try:
            statuses.extend(classify() for _ in range(bursts))
        finally:
            done.set()

    started = time.perf_counter()
    thread = threading.Thread(target=sender)
    thread.start()
    while not done.is_set():
        t0 = time.perf_counter()
        probe = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        probe.request("GET", "/healthz")
        probe.getresponse().read()
        probe.close()
        latencies.append(time.perf_counter() - t0)
        time.sleep(0.02)
    thread.join()
    took = time.perf_counter() - started
    time.sleep(1.0)
    after = _rss_mb(pid)
    assert statuses == [200] * bursts, statuses
    return {
        "healthz_max_ms": max(latencies) * 1000,
        "healthz_p50_ms": statistics.median(latencies) * 1000,
        "healthz_probes": len(latencies),
        "classify_s_each": took / bursts,
        "rss_before_mb": before,
        "rss_after_mb": after,
    }


def train_model(work: Path) -> Path:
    """A TF-IDF-only model on the bundled starter tickets (seconds): enough to classify."""
    out = work / "model"
    subprocess.run(
        [sys.executable, "-m", "daemon", "train", str(STARTER), "--out", str(out), "--tfidf-only"],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per keep-alive and guessing run")
    parser.add_argument("--html-mb", type=float, default=9.6, help="megabytes of HTML per classify request")
    parser.add_argument("--bursts", type=int, default=5, help="large HTML classify requests, one after another")
    parser.add_argument(
        "--model", type=Path, help="a model directory (default: train a TF-IDF one on the starter tickets)"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ticketd-bench-api-"))
    try:
        (work / "mail").mkdir()
        with serving(work, "nagle", socket_kind="nagle") as (port, _):
            before = keep_alive(port, args.seconds)
        with serving(work, "nodelay") as (port, _):
            after = keep_alive(port, args.seconds)
        with serving(work, "unlimited", failed_auth_per_minute=10_000) as (port, _):
            open_bearer = guesses(port, args.seconds, "bearer")
            open_login = guesses(port, args.seconds, "login")
        with serving(work, "limited") as (port, _):
            limited_bearer = guesses(port, args.seconds, "bearer")
        with serving(work, "limited-login") as (port, _):
            limited_login = guesses(port, args.seconds, "login")
        model = args.model or train_model(work)
        with serving(work, "html", model=model) as (port, pid):
            burst = html_burst(port, pid, args.html_mb, args.bursts)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"API on a network: real `ticketd serve` on loopback, {os.cpu_count()} cores")
    print(f"{'measure':<58} {'before':>10} {'after':>10} {'ratio':>8}")
    label = "/healthz per s, one kept-alive connection (Nagle -> NODELAY)"
    print(f"{label:<58} {before:>10.0f} {after:>10.0f} {after / before:>7.1f}x")
    for what, unlimited, limited in (
        ("bearer tokens", open_bearer, limited_bearer),
        ("logins", open_login, limited_login),
    ):
        ratio = unlimited["answered"] / max(limited["answered"], 1)
        label = f"wrong {what} answered in {args.seconds:g} s (no limit -> 10/min)"
        print(f"{label:<58} {unlimited['answered']:>10.0f} {limited['answered']:>10.0f} {ratio:>7.0f}x")
        print(f"{'  refused unread (429) per s with the limit':<58} {'':>10} {limited['refused_per_s']:>10.0f}")
    label = f"/healthz during {args.bursts} x {args.html_mb:g} MB HTML classify: max ms"
    print(f"{label:<58} {'':>10} {burst['healthz_max_ms']:>10.1f}")
    label = f"  median ms ({burst['healthz_probes']} probes)"
    print(f"{label:<58} {'':>10} {burst['healthz_p50_ms']:>10.1f}")
    print(f"{'  classify seconds each':<58} {'':>10} {burst['classify_s_each']:>10.2f}")
    rss = f"{burst['rss_before_mb']:>10.0f} {burst['rss_after_mb']:>10.0f}"
    print(f"{'  server RSS MB before -> after the burst':<58} {rss}")
    summary = {
        "keep_alive_per_s": {"nagle": before, "nodelay": after, "ratio": after / before},
        "keep_alive_target_met": after >= 500,
        "guessing": {
            "bearer": {"unlimited": open_bearer, "limited": limited_bearer},
            "login": {"unlimited": open_login, "limited": limited_login},
        },
        "html_burst": {**burst, "html_mb": args.html_mb, "bursts": args.bursts},
        "html_targets_met": burst["healthz_max_ms"] <= 200 and burst["rss_after_mb"] - burst["rss_before_mb"] <= 50,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
