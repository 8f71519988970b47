"""Ticket created -> written back: push versus poll, for the fake Zammad, a Maildir, the real Znuny and the real RT.

For each helpdesk and mode, `ticketd run` runs as a separate process (its API on a loopback port for the
pushes) and N tickets are created one after another at `--rate` per second, after the daemon's first poll.
A watcher in this process looks at the helpdesk itself every 20 ms (the fake's memory, the Maildir's
folders, Znuny's database) and stamps the moment each ticket left the inbound queue: that is when ticketd
wrote it back. Latency = that moment minus the moment the ticket existed (the create call returned).

- push: `routing.push.enabled`. Zammad: this process plays the trigger and POSTs the signed webhook the
  fake builds (`FakeZammad.webhook_request`, Zammad's headers and HMAC) right after creating the ticket;
  real Zammad sends it from its background job queue, which adds that queue's own delay. Maildir: file
  events on new/. Znuny: the shipped invoker (deploy/znuny/ticketd-webservice.yml, asynchronous, sent by
  Znuny's own scheduler daemon). RT: the shipped scrip (deploy/rt/ticketd-push.pl, TransactionBatch stage,
  posted from inside the create request). Polling goes on at `routing.push.poll_interval` (300 s).
- poll: push off, `routing.poll_interval` = `--poll-interval` (30 s).

The real Znuny needs root and Debian's packages (`make system-deps`); `--desks` leaves it out elsewhere. The real
RT (`--desks rt`, not in the default set) needs Debian's request-tracker5, rt5-db-sqlite and rt5-standalone; one
REST 2 create takes it about 0.5 s on 2 cores, so run it at `--rate 1`.

    python bench/latency.py [--model STORE] [--tickets 200] [--rate 4] [--poll-interval 30] [--desks ...]

Prints a table, then one JSON line (`push_p50_s`, `push_p99_s`, `poll_p50_s`, ... over all helpdesks).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import mailbox
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

API_TOKEN = "bench-token-0123456789-abcdef"
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.end_to_end import SUBJECTS, ensure_model, percentile  # noqa: E402
from tests.support.daemon import PASSWORD, ZAMMAD_TOKEN  # noqa: E402
from tests.support.helpdesks import Helpdesk  # noqa: E402
from tests.support.servers import free_port  # noqa: E402

SECRET = "bench-push-secret"
TARGETS = ["Billing", "Hardware", "Technical Support", "Misc"]
LOOK_EVERY = 0.02  # seconds between two looks of the watcher


def ticket(i: int) -> tuple[str, str]:
    subject, body = SUBJECTS[i % len(SUBJECTS)]
    return f"{subject} #{i}", f"{body} Reference {i}."


def label_map(store: Path, label: str, names: list[str]) -> dict[str, Any]:
    classes = json.loads((store / "current" / label / "labels.json").read_text())
    return {"map": {c: names[i % len(names)] for i, c in enumerate(classes)}, "threshold": 0}


class ZammadDesk:
    """The fake Zammad on a loopback port; this process plays its trigger for pushes."""

    name = "zammad (fake)"
    connector = "desk"

    def __init__(self, tmp: Path) -> None:
        self.desk = Helpdesk("zammad")
        self._served = self.desk.served()
        self.url = self._served.__enter__()
        self.hook = ""

    def connection(self, store: Path, api: str) -> dict[str, Any]:
        self.hook = f"{api}/api/v1/hooks/{self.connector}"
        d = self.desk
        return {
            "type": "zammad",
            "url": self.url,
            "token": ZAMMAD_TOKEN,
            "inbound_groups": [d.inbound],
            "webhook_secret": SECRET,
            "labels": {
                "queue": label_map(store, "queue", d.queues),
                "priority": label_map(store, "priority", d.priorities),
            },
        }

    def create(self, i: int, push: bool) -> str:
        tid = self.desk.add_ticket(*ticket(i))
        if push:  # what the trigger does on "ticket created": one signed POST
            headers, body = self.desk.zammad.webhook_request(tid, SECRET)
            post = {"content": body, "headers": headers}
            threading.Thread(target=httpx.post, args=(self.hook,), kwargs=post, daemon=True).start()
        return str(tid)

    def moved(self, keys: list[str]) -> set[str]:
        return {k for k in keys if self.desk.queue_of(int(k)) != self.desk.inbound}

    def close(self) -> None:
        self._served.__exit__(None, None, None)


class MaildirDesk:
    """A Maildir++ in a temporary folder; mail is delivered through tmp/ into new/, as an MTA does."""

    name = "maildir"
    connector = "desk"

    def __init__(self, tmp: Path) -> None:
        self.root = tmp / "Maildir"
        self.box = mailbox.Maildir(str(self.root), create=True)
        for queue in TARGETS:  # Queues/<name>, as Dovecot lays out Maildir++ folders
            self.box.add_folder(f"Queues.{queue}")

    def connection(self, store: Path, api: str) -> dict[str, Any]:
        return {
            "type": "maildir",
            "path": str(self.root),
            "labels": {
                "queue": label_map(store, "queue", TARGETS),
                "priority": label_map(store, "priority", ["high", "medium", "low"]),
            },
        }

    def create(self, i: int, push: bool) -> str:
        subject, body = ticket(i)
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "Kunde <kunde@example.org>", "helpdesk@example.com", subject
        msg["Message-ID"] = f"<bench-{i}-{os.getpid()}@example.org>"
        msg.set_content(body)
        return str(self.box.add(bytes(msg)))

    def moved(self, keys: list[str]) -> set[str]:
        inbox = {name.split(":", 1)[0] for sub in ("new", "cur") for name in os.listdir(self.root / sub)}
        return {k for k in keys if k not in inbox}

    def close(self) -> None:
        pass


class ZnunyDesk:
    """The real Znuny 7.1.7 the tests use, with ticketd's shipped web service (its invoker on) imported."""

    name = "znuny (real 7.1.7)"
    connector = "znuny"  # the shipped invoker pushes to /api/v1/hooks/znuny

    def __init__(self, tmp: Path) -> None:
        import psycopg

        from tests.support import znuny_live as live
        from tests.support.paths import ZNUNY_WEBSERVICES
        from tests.support.servers.znuny import missing_reason, start_znuny

        reason = missing_reason()
        if reason:
            raise SystemExit(f"no real Znuny: {reason} (leave it out with --desks)")
        self.root = Path(tempfile.mkdtemp(prefix="ticketd-bench-znuny-"))
        self.server = start_znuny(self.root, ZNUNY_WEBSERVICES)
        self.human = live.human(self.server)
        self.inbox = "BenchInbox"
        self.server.console("Admin::Queue::Add", "--name", self.inbox, "--group", "users")
        self.db = psycopg.connect(
            host="127.0.0.1", port=self.server.pg_port, user="znuny", password=self.server.db_password, dbname="znuny"
        )
        self.db.autocommit = True
        self.pushing = False

    def connection(self, store: Path, api: str) -> dict[str, Any]:
        from tests.support import znuny_live as live

        ws = self.server.psql(f"SELECT id FROM gi_webservice_config WHERE name = '{live.WEBSERVICE}'").strip()
        rendered = self.server.root / "webservices" / "ticketd-bench.yml"
        rendered.write_text(live.render(api, SECRET), encoding="utf-8")
        rendered.chmod(0o644)
        self.server.console("Admin::WebService::Update", "--webservice-id", ws, "--source-path", str(rendered))
        self.server.start_daemon()
        return {
            "type": "znuny",
            **live.connection(self.server, live.WEBSERVICE, self.inbox, push_token=SECRET),
            "queues": TARGETS,
            "labels": {
                "queue": label_map(store, "queue", TARGETS),
                "priority": label_map(store, "priority", ["2 low", "3 normal", "4 high"]),
            },
        }

    def create(self, i: int, push: bool) -> str:
        return str(self.human.add_ticket(*ticket(i), self.inbox))

    def moved(self, keys: list[str]) -> set[str]:
        rows = self.db.execute(
            "SELECT t.id::text FROM ticket t JOIN queue q ON q.id = t.queue_id WHERE t.id = ANY(%s) AND q.name <> %s",
            ([int(k) for k in keys], self.inbox),
        ).fetchall()
        return {r[0] for r in rows}

    def close(self, keep: Path | None = None) -> None:
        self.db.close()
        self.server.stop()
        if keep is not None:  # Apache's logs, for a run whose daemon log shows dropped connections
            for name in ("error.log", "access.log"):
                with contextlib.suppress(OSError):
                    shutil.copyfile(self.root / "apache" / name, keep / f"znuny-apache-{name}")
        shutil.rmtree(self.root, ignore_errors=True)


class RTDesk:
    """A real Request Tracker 5 (Debian's package, SQLite, Starlet with 2 workers) with deploy/rt's scrip loaded."""

    name = "rt (real 5.0.3, password: web session)"
    connector = "rt"  # the scrip pushes to /api/v1/hooks/rt
    token = False  # user + password: ticketd rides RT's web session (one bcrypt per login, not per call)

    def __init__(self, tmp: Path) -> None:
        import sqlite3

        from tests.support.servers.rt import missing_reason, start_rt

        reason = missing_reason()
        if reason:
            raise SystemExit(f"no real RT: {reason} (leave it out with --desks)")
        self.root = Path(tempfile.mkdtemp(prefix="ticketd-bench-rt-"))
        self.server = start_rt(self.root)
        self.inbox = "BenchInbox"
        created = self.server.rest("POST", "/queue", json={"Name": self.inbox})
        self.inbox_id = int(created["id"])
        # The watcher reads the queue straight from RT's database: REST calls would take RT's two workers.
        self.db = sqlite3.connect(f"file:{self.root / 'rt5.db'}?mode=ro", uri=True, timeout=10, check_same_thread=False)

    def connection(self, store: Path, api: str) -> dict[str, Any]:
        # README's command; a second load (the poll run) points the same scrip at that run's port, where
        # ticketd, with push off, answers 404 at once.
        env = {"TICKETD_HOOK_URL": f"{api}/api/v1/hooks/{self.connector}", "TICKETD_PUSH_SECRET": SECRET * 2}
        self.server.insert(ROOT / "deploy" / "rt" / "ticketd-push.pl", env=env)
        targets = ["Billing", "Hardware", "Technical Support", "Misc"]  # the agent may create tickets there
        return {
            "type": "rt",
            "url": self.server.url,
            **(
                {"token": self.server.token}
                if self.token
                else {"user": self.server.agent, "password": self.server.agent_password}
            ),
            "inbound_queues": [self.inbox],
            "queues": targets,
            "push_secret": SECRET * 2,
            "labels": {
                "queue": label_map(store, "queue", targets),
                "priority": label_map(store, "priority", ["Low", "Medium", "High"]),
            },
        }

    def create(self, i: int, push: bool) -> str:
        subject, body = ticket(i)
        record = {"Queue": self.inbox, "Subject": subject, "Content": body, "ContentType": "text/plain"}
        return str(self.server.rest("POST", "/ticket", json={**record, "Requestor": "customer@example.org"})["id"])

    def moved(self, keys: list[str]) -> set[str]:
        marks = ",".join("?" * len(keys))
        rows = self.db.execute(f"SELECT id FROM Tickets WHERE id IN ({marks}) AND Queue <> ?", [*keys, self.inbox_id])
        return {str(r[0]) for r in rows.fetchall()}

    def close(self, keep: Path | None = None) -> None:
        self.db.close()
        if keep is not None:  # RT's own log: the scrip's warnings, if a push failed
            with contextlib.suppress(OSError):
                shutil.copyfile(self.root / "server.log", keep / "rt-server.log")
        self.server.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class RTTokenDesk(RTDesk):
    """The same RT, ticketd reading with an auth token: RT checks it with bcrypt on every REST 2 call."""

    name = "rt (real 5.0.3, auth token)"
    token = True


DESKS: dict[str, Any] = {
    "zammad": ZammadDesk,
    "maildir": MaildirDesk,
    "znuny": ZnunyDesk,
    "rt": RTDesk,
    "rt-token": RTTokenDesk,
}


def write_config(
    tmp: Path, desk: Any, store: Path, push: bool, poll_interval: float, port: int, log_level: str = "info"
) -> Path:
    connection = desk.connection(store, f"http://127.0.0.1:{port}")
    labels = connection.pop("labels")
    routing: dict[str, Any] = {"poll_interval": poll_interval, "jitter": 0, "labels": labels, "recover_after": 0}
    if push:
        routing["push"] = {"enabled": True}
    config = {
        "model": {"store": str(store)},
        "state": {"url": f"sqlite:///{tmp / 'state.db'}"},
        "retrain": {"enabled": False},
        "api": {"enabled": True, "host": "127.0.0.1", "port": port, "tokens": [API_TOKEN]},
        "log": {"level": log_level, "json": True},
        "connectors": [{**connection, "name": desk.connector, "routing": routing}],
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def readyz(api: str, name: str) -> dict[str, Any]:
    with contextlib.suppress(httpx.HTTPError, ValueError):
        auth = {"Authorization": f"Bearer {API_TOKEN}"}  # /readyz shows the connectors' details to a token only
        body: dict[str, Any] = httpx.get(f"{api}/readyz", timeout=2, headers=auth).json()
        found: dict[str, Any] = body.get("details", {}).get("connectors", {}).get(name, {})
        return found
    return {}


@contextlib.contextmanager
def running(config: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "TEST_ZNUNY_PASSWORD": PASSWORD}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "run", "--config", str(config)], cwd=ROOT, env=env, stdout=out, stderr=out
        )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def measure(
    desk: Any,
    store: Path,
    tmp: Path,
    *,
    push: bool,
    n: int,
    rate: float,
    poll_interval: float,
    log_level: str = "info",
    keep_log: Path | None = None,
) -> dict[str, Any]:
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    log = tmp / f"daemon-{'push' if push else 'poll'}.log"
    config = write_config(tmp, desk, store, push, poll_interval, port, log_level)
    created: dict[str, float] = {}
    done: dict[str, float] = {}
    with running(config, log) as proc:
        deadline = time.monotonic() + 180
        while not readyz(api, desk.connector).get("last_success") or (
            push and readyz(api, desk.connector).get("mode") != "push"
        ):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"ticketd did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                waiting = [k for k in created if k not in done]
                if waiting:
                    now = time.monotonic()
                    for k in desk.moved(waiting):
                        done[k] = now
                time.sleep(LOOK_EVERY)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        start = time.monotonic()
        for i in range(n):
            time.sleep(max(0.0, start + i / rate - time.monotonic()))
            key = desk.create(i, push)
            created[key] = time.monotonic()
        limit = time.monotonic() + poll_interval * 2 + 60
        while len(done) < n and time.monotonic() < limit:
            time.sleep(0.1)
        stop.set()
        watcher.join()
    latencies = [max(0.0, done[k] - created[k]) for k in created if k in done]
    if len(latencies) < n:  # say why, from the daemon's own log
        problems = [line for line in log.read_text(errors="replace").splitlines() if '"level": "info"' not in line]
        print(f"# {n - len(latencies)} not routed; daemon log:", *problems[-10:], sep="\n", file=sys.stderr)
    events = [line for line in log.read_text(errors="replace").splitlines() if "pushed ticket" in line]
    if keep_log is not None:
        keep_log.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log, keep_log)
    return {
        "tickets": n,
        "routed": len(latencies),
        "lost": n - len(latencies),
        "p50_s": round(percentile(latencies, 0.5), 3) if latencies else None,
        "p99_s": round(percentile(latencies, 0.99), 3) if latencies else None,
        "max_s": round(max(latencies), 3) if latencies else None,
        # pushes that came before the ticket was complete (looked at again; counted at log level debug)
        "early_looks": sum("looking again soon" in line for line in events),
        "left_to_poll": sum("left to polling" in line for line in events),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / ".ticketd" / "bench-latency-model")
    parser.add_argument("--tickets", type=int, default=200)
    parser.add_argument("--rate", type=float, default=4.0, help="tickets created per second")
    parser.add_argument("--poll-interval", type=float, default=30.0)
    parser.add_argument("--desks", default="zammad,maildir,znuny")
    parser.add_argument("--modes", default="push,poll")
    parser.add_argument("--log-level", default="info", choices=["debug", "info"])
    parser.add_argument("--keep-logs", type=Path, help="copy each run's daemon log into this folder")
    args = parser.parse_args()
    store = ensure_model(args.model)
    rows: dict[str, dict[str, Any]] = {}
    for key in args.desks.split(","):
        with tempfile.TemporaryDirectory() as tmpdir:
            tmp = Path(tmpdir)
            desk = DESKS[key](tmp)
            try:
                for push in [m == "push" for m in args.modes.split(",")]:
                    sub = tmp / ("push" if push else "poll")
                    sub.mkdir()
                    result = measure(
                        desk,
                        store,
                        sub,
                        push=push,
                        n=args.tickets,
                        rate=args.rate,
                        poll_interval=args.poll_interval,
                        log_level=args.log_level,
                        keep_log=args.keep_logs / f"{key}-{sub.name}.log" if args.keep_logs else None,
                    )
                    rows[f"{key}/{'push' if push else 'poll'}"] = {"desk": desk.name, **result}
                    print(f"# {desk.name} {'push' if push else 'poll'}: {result}", file=sys.stderr, flush=True)
            finally:
                if args.keep_logs and isinstance(desk, ZnunyDesk | RTDesk):
                    desk.close(keep=args.keep_logs)
                else:
                    desk.close()
    print(f"tickets per run: {args.tickets} at {args.rate:g}/s; poll interval {args.poll_interval:g} s; 2 cores")
    print("| helpdesk | mode | routed | lost | p50 s | p99 s | max s |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        cells = [r["desk"], name.split("/")[1], r["routed"], r["lost"], r["p50_s"], r["p99_s"], r["max_s"]]
        print("| " + " | ".join(str(c) for c in cells) + " |")

    def pooled(mode: str, q: str) -> float | None:
        values = [r[q] for k, r in rows.items() if k.endswith(mode) and r[q] is not None]
        return max(values) if values else None  # the worst helpdesk: every target must hold for each

    summary = {
        "push_p50_s": pooled("push", "p50_s"),
        "push_p99_s": pooled("push", "p99_s"),
        "poll_p50_s": pooled("poll", "p50_s"),
        "poll_p99_s": pooled("poll", "p99_s"),
        "lost": sum(r["lost"] for r in rows.values()),
        "meets_target": all(
            r["lost"] == 0 and r["p50_s"] is not None and r["p50_s"] <= 1.0 and r["p99_s"] <= 3.0
            for k, r in rows.items()
            if k.endswith("push")
        ),
        "runs": rows,
        "tickets": args.tickets,
        "rate": args.rate,
        "poll_interval_s": args.poll_interval,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
