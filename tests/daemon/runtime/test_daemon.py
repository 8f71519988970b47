"""The daemon in-process: no secret in any log event, hot reload, the API inside the daemon.

SIGHUP after rejected credentials: tests/e2e/test_faults.py, for Znuny and Zammad.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from structlog.testing import capture_logs

from daemon.config import load_config
from daemon.ml.store import ModelStore
from daemon.runtime.daemon import Daemon
from daemon.web.hosting import start_api
from tests.support.daemon import API_TOKEN, SUBJECTS, write_config
from tests.support.fakes.http import serve
from tests.support.fakes.znuny import FakeZnuny

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
PASSWORD = "s3cret-agent-password"
KEPT, REVOKED = "kept-token-0123456789-abcdef", "revoked-token-0123456789-abcdef"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fake() -> Iterator[tuple[FakeZnuny, str]]:
    znuny = FakeZnuny(passwords={"agent1": PASSWORD})
    znuny.agent_update(3, queue="Misc")
    with serve(znuny) as url:
        yield znuny, url


def _values(event: dict[str, Any]) -> str:
    return " ".join(repr(v) for v in event.values())


async def test_no_log_event_carries_a_secret_or_ticket_text(
    tmp_path: Path, fake: tuple[FakeZnuny, str], store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    znuny, url = fake
    ids = [znuny.add_customer_ticket(s, b) for s, b in SUBJECTS]
    monkeypatch.setenv("TEST_ZNUNY_PASSWORD", PASSWORD)
    daemon = Daemon(load_config(write_config(tmp_path, url, store)))
    with capture_logs() as logs:
        await daemon.start()
        try:
            await daemon.run_once()
        finally:
            await daemon.shutdown()
    assert all(znuny.queue_name(t) != "Raw" for t in ids)
    assert {"ticketd started", "ticket routed", "ticketd stopped"} <= {e["event"] for e in logs}
    leaked = [e for e in logs if PASSWORD in _values(e) or any(b[:20] in _values(e) for _, b in SUBJECTS)]
    assert leaked == []


async def test_promotion_is_hot_reloaded(tmp_path: Path, fake: tuple[FakeZnuny, str], store: Path) -> None:
    """A version promoted outside the process (`ticketd models promote`, a retrain Job) is served after SIGHUP."""
    import asyncio
    import os
    import signal

    _, url = fake
    own = tmp_path / "models"
    shutil.copytree(store, own, symlinks=True)
    config = yaml.safe_load(write_config(tmp_path, url, own).read_text())
    config["connectors"][0]["password"] = PASSWORD
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    daemon = Daemon(load_config(path), config_path=path)
    await daemon.start()
    serving = asyncio.create_task(daemon.serve())
    reloaded = asyncio.Event()
    original = daemon._reload_model

    async def spy() -> None:  # observes the daemon's own reload path; changes nothing in it
        await original()
        reloaded.set()

    daemon._reload_model = spy  # type: ignore[method-assign]

    async def version_after_sighup() -> str:
        reloaded.clear()
        os.kill(os.getpid(), signal.SIGHUP)  # the daemon's own trigger, through its signal handler
        try:
            await asyncio.wait_for(reloaded.wait(), 30)
        except TimeoutError:
            pytest.fail("SIGHUP did not reload the daemon")
        return str(daemon.model.get().version)

    try:
        await asyncio.sleep(0.1)  # serve() has installed its signal handlers
        first = daemon.model.get().version
        models = ModelStore(own)
        new = models.add(_copy(own / "current", tmp_path / "next"))
        models.promote(new)
        assert daemon.model.get().version == first  # nothing is reloaded behind the operator's back
        assert (first, await version_after_sighup()) == ("v1", new)
        loaded = daemon.model.get()
        assert await version_after_sighup() == new
        assert daemon.model.get() is loaded  # nothing changed: no second load
    finally:
        daemon.request_stop("test")
        await asyncio.wait_for(serving, 30)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src.resolve(), dst)
    return dst


async def test_api_runs_inside_the_daemon_with_readiness_and_metrics(
    tmp_path: Path, fake: tuple[FakeZnuny, str], store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    import httpx

    znuny, url = fake
    ids = [znuny.add_customer_ticket(s, b) for s, b in SUBJECTS[:3]]
    monkeypatch.setenv("TEST_ZNUNY_PASSWORD", PASSWORD)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = yaml.safe_load(write_config(tmp_path, url, store).read_text())
    config["api"] = {"enabled": True, "host": "127.0.0.1", "port": port, "tokens": [API_TOKEN]}
    path = tmp_path / "api.yaml"
    path.write_text(yaml.safe_dump(config))
    daemon = Daemon(load_config(path))
    await daemon.start()
    await start_api(daemon)
    try:
        await daemon.run_once()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/healthz")).status_code == 200
            ready = await client.get("/readyz")
            assert ready.status_code == 200, ready.text
            metrics = (await client.get("/metrics")).text
            answer = await client.post(
                "/api/v1/classify",
                json={"ticket_data": "VPN is down"},
                headers={"Authorization": f"Bearer {API_TOKEN}"},
            )
    finally:
        await daemon.shutdown()
    assert all(znuny.queue_name(t) != "Raw" for t in ids)
    assert 'ticketd_tickets_total{connector="fake",decision="applied"} 3.0' in metrics
    assert "ticketd_classify_seconds_count 3.0" in metrics
    assert 'ticketd_model_info{version="v1"} 1.0' in metrics
    assert 'ticketd_last_successful_poll_timestamp_seconds{connector="fake"}' in metrics
    assert answer.status_code == 200 and answer.json()["model_version"] == "v1"


async def test_sighup_reapplies_api_tokens_and_names_what_needs_a_restart(
    tmp_path: Path, fake: tuple[FakeZnuny, str], store: Path
) -> None:
    import asyncio
    import os
    import signal

    import httpx

    _, url = fake
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{KEPT}\n{REVOKED}\n")
    daemon, serving, port = await _serving(url, store, tmp_path, {"tokens_file": str(tokens)})
    path = tmp_path / "config.yaml"
    config = yaml.safe_load(path.read_text())

    async def status(client: httpx.AsyncClient, token: str) -> int:
        answer = await client.post(
            "/api/v1/classify", json={"ticket_data": "VPN is down"}, headers={"Authorization": f"Bearer {token}"}
        )
        return answer.status_code

    try:
        await asyncio.sleep(0.1)  # serve() has installed its signal handlers
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await status(client, KEPT), await status(client, REVOKED)) == (200, 200)
            tokens.write_text(f"{KEPT}\n")
            config["api"]["port"] = port + 1  # cannot move a listening socket: said, not applied
            path.write_text(yaml.safe_dump(config))
            with capture_logs() as logs:
                os.kill(os.getpid(), signal.SIGHUP)
                for _ in range(300):
                    if any(e["event"] == "config reloaded" for e in logs):
                        break
                    await asyncio.sleep(0.1)
            assert (await status(client, KEPT), await status(client, REVOKED)) == (200, 401)
    finally:
        daemon.request_stop("test")
        await asyncio.wait_for(serving, 30)
    restart = [e for e in logs if e["event"] == "config changes that take effect only after a restart"]
    assert len(restart) == 1 and restart[0]["keys"] == ["api.port"]


async def test_a_scheduled_retrain_never_blocks_polling_the_api_sighup_or_sigterm(
    tmp_path: Path, fake: tuple[FakeZnuny, str], store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow trainer (it waits for its cancel, as the real one's process does): everything else goes on."""
    import asyncio
    import os
    import signal
    import threading
    import time

    import httpx

    import daemon.training.champion as retrain_module
    from daemon.training.champion import RetrainResult

    znuny, url = fake
    training = threading.Event()
    cancelled = threading.Event()

    def slow_retrain(rows: Any, store: Any, policy: Any, *, cancel: threading.Event, **_: Any) -> RetrainResult:
        training.set()
        if cancel.wait(120):  # the real retrain polls this event and kills the training process group
            cancelled.set()
            return RetrainResult("failed", None, "v1", {}, {}, "training was cancelled (the daemon is stopping)")
        return RetrainResult("rejected", None, "v1", {}, {}, "slow trainer timed out")

    monkeypatch.setattr(retrain_module, "retrain", slow_retrain)
    own = tmp_path / "models"  # the API stores uploads and the retrain its files in the store: a copy
    shutil.copytree(store, own, symlinks=True, ignore=shutil.ignore_patterns("torch"))
    daemon, serving, port = await _serving(url, own, tmp_path, {"tokens": [API_TOKEN]})
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    timings: dict[str, float] = {}
    try:
        await asyncio.sleep(0.1)
        daemon._start_retrain()  # what the cron trigger calls
        assert await asyncio.to_thread(training.wait, 30)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            csv = "text,queue,priority\n" + "".join(f"ticket {i},Q{i % 2},low\n" for i in range(20))
            upload = await client.post("/api/v1/train-data", content=csv, headers={**auth, "Content-Type": "text/csv"})
            assert upload.status_code == 201, upload.text
            refused = await client.post("/api/v1/train", json={}, headers=auth)
            assert refused.status_code == 409 and "the scheduled retrain" in refused.json()["error"]["message"]
            now = (await client.get("/api/v1/training", headers=auth)).json()
            assert now["running"] and now["started_by"] == "schedule" and not now["cancelling"]
            tid = znuny.add_customer_ticket(*SUBJECTS[1])  # polling goes on while it trains
            started = time.monotonic()
            while znuny.queue_name(tid) == "Raw" and time.monotonic() - started < 30:
                await asyncio.sleep(0.1)
            timings["routed_during_training_s"] = time.monotonic() - started
            assert znuny.queue_name(tid) != "Raw"
            with capture_logs() as logs:
                started = time.monotonic()
                os.kill(os.getpid(), signal.SIGHUP)
                while not any(e["event"] == "config reloaded" for e in logs) and time.monotonic() - started < 30:
                    await asyncio.sleep(0.05)
                timings["sighup_reload_s"] = time.monotonic() - started
            assert any(e["event"] == "config reloaded" for e in logs)
            assert daemon.retraining.holder is not None and not cancelled.is_set()  # still training
            assert (await client.get("/healthz")).status_code == 200
    finally:
        started = time.monotonic()
        daemon.request_stop("SIGTERM")
        await asyncio.wait_for(serving, 90)  # the unit's TimeoutStopSec
        timings["sigterm_exit_s"] = time.monotonic() - started
    assert cancelled.is_set() and daemon.retraining.holder is None
    assert ModelStore(own).current() == "v1"  # the cancelled training left `current` serving
    print("retraining interaction timings:", {k: round(v, 2) for k, v in timings.items()})


async def _serving(url: str, store: Path, tmp_path: Path, api: dict[str, Any]) -> tuple[Daemon, Any, int]:
    """The daemon with its API on a free port and `serve()` running (signal handlers installed): daemon, task, port."""
    import asyncio

    from tests.support.servers import free_port

    port = free_port()
    config = yaml.safe_load(write_config(tmp_path, url, store).read_text())
    config["connectors"][0]["password"] = PASSWORD
    config["api"] = {"enabled": True, "host": "127.0.0.1", "port": port, **api}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    daemon = Daemon(load_config(path), config_path=path)
    await daemon.start()
    await start_api(daemon)
    return daemon, asyncio.create_task(daemon.serve()), port


async def test_forget_erases_a_person_and_a_ticket_for_good(
    tmp_path: Path,
    fake: tuple[FakeZnuny, str],
    store: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`ticketd forget` on the running daemon's database: gone from the store, the file, the retrain, later harvests."""
    import anyio.to_thread

    import daemon.training.champion as retrain_module
    from daemon.cli import main
    from daemon.pipeline.privacy import digest
    from daemon.state import State
    from daemon.training.champion import RetrainResult

    znuny, url = fake
    person = znuny.add_customer_ticket("Refund", "Refund please, then write to Anna.Schmidt@example.de")
    kept = znuny.add_customer_ticket("VPN keeps dropping", "The VPN disconnects every few minutes.")
    ticket = znuny.add_customer_ticket("Laptop screen", "The screen flickers madly and goes black.")
    for tid, queue in ((person, "Billing"), (kept, "Technical Support"), (ticket, "Hardware")):
        znuny.agent_update(tid, queue=queue, state="closed successful")
    config = yaml.safe_load(write_config(tmp_path, url, store).read_text())
    config["connectors"][0]["password"] = PASSWORD
    config["privacy"] = {"scrub": []}  # rows stored before scrubbing was on still hold the address
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    db = tmp_path / "state.db"
    daemon = Daemon(load_config(path), config_path=path)
    await daemon.start()
    try:
        state = daemon.state
        assert state is not None
        harvest = daemon.stacks["fake"].pipeline.harvest
        await harvest()
        assert {str(person), str(kept), str(ticket)} <= {r.ticket_id for r in state.training_rows()}
        forget = ["forget", "--config", str(path)]
        assert await anyio.to_thread.run_sync(main, [*forget, "--email", "anna.schmidt@EXAMPLE.de"]) == 0
        assert await anyio.to_thread.run_sync(main, [*forget, "--ticket", str(ticket), "--connector", "fake"]) == 0
        out = capsys.readouterr().out
        assert "forgot the address: 1 training row(s) erased" in out and "anna" not in out.lower()
        assert f"forgot ticket {ticket} of fake: 1 training row(s) erased" in out
        for secret in (b"Anna.Schmidt", b"flickers madly"):  # not left in a free page or the WAL either
            assert all(secret not in f.read_bytes() for f in tmp_path.glob("state.db*")), secret
        seen: list[Any] = []

        def capture(rows: Any, store: Any, policy: Any, **_: Any) -> RetrainResult:
            seen.extend(rows())  # the daemon hands the store over as passes, never as one list
            return RetrainResult("rejected", None, "v1", {}, {}, "captured by the test")

        monkeypatch.setattr(retrain_module, "retrain", capture)
        await daemon.retrain_now(force=True)
        trained = {r.ticket_id for r in seen}
        assert str(kept) in trained and str(person) not in trained and str(ticket) not in trained
        # The helpdesk hands them out again (a cursor from the start, the tickets touched once more).
        znuny.agent_update(person, queue="Misc")
        znuny.agent_update(ticket, queue="Misc")
        await anyio.to_thread.run_sync(state.cursor_set, "fake", "closed", None)
        await harvest()
        again = {r.ticket_id for r in state.training_rows()}
        assert str(kept) in again and str(person) not in again and str(ticket) not in again
    finally:
        await daemon.shutdown()
    with State.open(f"sqlite:///{db}") as state:
        tickets, people = state.forgotten()
    assert tickets == {("fake", str(ticket))} and people == {digest("Anna.Schmidt@example.de")}


async def test_retention_runs_on_a_schedule_with_the_configured_days(
    tmp_path: Path, fake: tuple[FakeZnuny, str], store: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    import anyio.to_thread

    from daemon.state import TrainingRow

    _, url = fake
    config = yaml.safe_load(write_config(tmp_path, url, store).read_text())
    config["connectors"][0]["password"] = PASSWORD
    config["retrain"]["keep_days"] = 30
    config["state"]["keep_days"] = 7
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    daemon = Daemon(load_config(path), config_path=path)
    await daemon.start()
    try:
        state = daemon.state
        assert state is not None
        now = datetime.now(UTC)
        rows = [
            TrainingRow("fake", tid, "some text", "Billing", None, None, now - timedelta(days=age), now)
            for tid, age in (("a", 31), ("b", 29))
        ]
        await anyio.to_thread.run_sync(state.training_add, rows)
        with capture_logs() as logs:
            assert await daemon.purge_now() == (1, 0)
            assert await daemon.purge_now() == (0, 0)
        assert [r.ticket_id for r in state.training_rows()] == ["b"]
        purged = [e for e in logs if e["event"] == "retention purge"]
        assert len(purged) == 1 and purged[0]["retrain_keep_days"] == 30 and purged[0]["state_keep_days"] == 7
        daemon._start_scheduler()
        job = daemon._scheduler.get_job("retention") if daemon._scheduler else None
        assert job is not None and job.trigger.interval == timedelta(days=1)
    finally:
        await daemon.shutdown()
