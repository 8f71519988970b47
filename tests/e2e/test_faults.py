"""Fault suite: `ticketd run` against a fake helpdesk that fails 30% of calls, in every way we know of.

Faults (tests.support.fakes.faults): proxy 502/503 pages, connection resets before and after the helpdesk
did the work, hangs past the request timeout before and after the work, truncated JSON, HTML
instead of JSON, and the helpdesk's own error objects (Znuny: expired session as HTTP 200 error
object; Zammad: opaque HTTP 500). While they last, every ticket is still routed exactly once, the
daemon keeps running, every retry waits out an exponential backoff below `max_backoff`, and the log
says once that the connector is failing; once the faults stop, it says once that it recovered.
Rejected credentials make the daemon not ready and pause polling without a single further request
until SIGHUP brings fixed ones. CI routes 16 tickets per helpdesk (about 150 calls, 45 of them
failing, each kind at least 5 times, about 100 s each); TICKETD_FAULT_TICKETS scales it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import datetime
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.config import load_config
from daemon.runtime.daemon import Daemon
from tests.support.daemon import PASSWORD, SUBJECTS, events
from tests.support.fakes.faults import KINDS, Faulty
from tests.support.helpdesks import FLAVOURS, TOKEN, Helpdesk, start_daemon

pytestmark = pytest.mark.slow
TICKETS = int(os.environ.get("TICKETD_FAULT_TICKETS", "16"))
SEED = int(os.environ.get("TICKETD_FAULT_SEED", "20261129"))
RATE = 0.3
TIMEOUT = 1.0  # routing.timeout: injected hangs last 1.5 s
MAX_BACKOFF = 2.0
RECOVER_AFTER = 4.0


def _epoch(event: dict[str, object]) -> float:
    return datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_thirty_percent_failing_calls_still_route_every_ticket_once(tmp_path: Path, flavour: str, store: Path) -> None:
    desk = Helpdesk(flavour)
    ids = [desk.add_ticket(f"{s} #{i}", b) for i, (s, b) in ((i, SUBJECTS[i % 6]) for i in range(TICKETS))]
    faults = Faulty(desk.fake, flavour=flavour, rate=RATE, seed=SEED, timeout=TIMEOUT)  # type: ignore[arg-type]
    log = tmp_path / "daemon.log"
    with desk.served(faults) as url:
        config = desk.config(
            tmp_path,
            url,
            store,
            log_level="debug",
            timeout=TIMEOUT,
            max_backoff=MAX_BACKOFF,
            recover_after=RECOVER_AFTER,
        )
        proc = start_daemon(config, log=log)
        try:
            deadline = time.monotonic() + 400
            while time.monotonic() < deadline and proc.poll() is None:
                if all(desk.queue_of(t) != desk.inbound for t in ids):
                    break
                time.sleep(0.2)
            alive_under_faults = proc.poll() is None
            routed_at, faults.active = time.time(), False
            while time.monotonic() < deadline and proc.poll() is None:
                if any(e["event"] == "connector recovered" for e in events(log)):
                    break
                time.sleep(0.2)
            time.sleep(1.0)  # a few more healthy polls: nothing else may be logged about the connector
            alive = proc.poll() is None
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
    text = log.read_text(encoding="utf-8")
    assert alive_under_faults and alive and code == 0, text[-3000:]
    assert "Traceback" not in text

    # Every ticket routed exactly once, although writes were cut off after the helpdesk had done them.
    lost = [t for t in ids if desk.queue_of(t) == desk.inbound]
    doubled = {t: n for t in ids if (n := desk.notes(t)) != 1}
    rewritten = {t: w for t in ids if (w := desk.writes(t)) > 3}
    assert lost == [] and doubled == {} and rewritten == {}, f"lost {lost}, doubled {doubled}, rewritten {rewritten}"

    # The faults really happened: about 30% of calls, every kind more than once.
    during = [kind for at, _, _, kind in faults.log if at <= routed_at]
    share = sum(kind != "ok" for kind in during) / len(during)
    assert 0.2 <= share <= 0.4, share
    assert set(faults.injected) == set(KINDS), faults.injected
    print(f"{flavour}: {len(faults.log)} calls, injected {dict(faults.injected)}")

    # One warning when it started failing, one line when it recovered; each retry only at debug level.
    logged = events(log)
    mine = [e for e in logged if e.get("connector") == "fake" and e["event"].startswith("connector ")]
    assert [e["event"] for e in mine if e["level"] != "debug"] == [
        "connector failing; backing off",
        "connector recovered",
    ], [(e["level"], e["event"]) for e in mine]
    retries = [e for e in mine if e["event"] in ("connector failing; backing off", "connector still failing")]
    assert len(retries) >= 5
    assert all(1.0 <= float(e["retry_in"]) <= MAX_BACKOFF for e in retries)
    assert any(float(e["retry_in"]) == MAX_BACKOFF for e in retries)  # consecutive failures did back off

    # No request storm: after a failed poll nothing goes out until its backoff has passed.
    started = _epoch(next(e for e in logged if e["event"] == "ticketd started"))
    calls = sorted(at for at, _, _, _ in faults.log)
    for e in retries:
        failed_at, wait = _epoch(e), float(e["retry_in"])
        if e["job"] != "poll" or failed_at < started + 3.0:  # the start-up harvest may still be in flight
            continue
        early = [at for at in calls if failed_at + 0.25 < at < failed_at + wait - 0.25]
        assert early == [], f"{len(early)} calls within the {wait} s backoff after {e['error']}"


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_rejected_credentials_pause_polling_until_sighup_with_fixed_ones(
    tmp_path: Path, flavour: str, store: Path, monkeypatch: pytest.MonkeyPatch, anyio_backend: str
) -> None:
    desk = Helpdesk(flavour)
    tid = desk.add_ticket(*SUBJECTS[0])
    variable = "TEST_ZNUNY_PASSWORD" if flavour == "znuny" else "TEST_ZAMMAD_TOKEN"
    monkeypatch.setenv(variable, "wrong-credentials")
    with desk.served() as url:
        path = desk.config(tmp_path, url, store)
        daemon = Daemon(load_config(path), config_path=path)
        await daemon.start()
        with capture_logs() as logs:
            task = asyncio.create_task(daemon.serve())
            for _ in range(100):
                await asyncio.sleep(0.1)
                if not daemon.ready:
                    break
            ready_with_bad_credentials = daemon.ready
            before = len(desk.fake.requests)
            await asyncio.sleep(2.0)  # ten poll intervals: polling is paused, no request storm
            during_pause = len(desk.fake.requests) - before
            monkeypatch.setenv(variable, TOKEN if flavour == "zammad" else PASSWORD)
            os.kill(os.getpid(), signal.SIGHUP)
            for _ in range(150):
                await asyncio.sleep(0.1)
                if desk.queue_of(tid) != desk.inbound:
                    break
            ready_after_reload = daemon.ready
            daemon.request_stop("test")
            await asyncio.wait_for(task, 30)
    assert not ready_with_bad_credentials and during_pause == 0
    assert ready_after_reload and desk.queue_of(tid) != desk.inbound and desk.notes(tid) == 1
    events_seen = [e["event"] for e in logs]
    rejected = "connector credentials rejected; polling stopped until the config is fixed and reloaded"
    assert events_seen.count(rejected) == 1, events_seen
    assert {"config reloaded", "ticket routed", "ticketd stopped"} <= set(events_seen)
