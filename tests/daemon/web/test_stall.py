"""No request stalls the daemon (issue 39): huge HTML tickets leave /healthz answering and memory where it was.

A real `ticketd serve` process: the test sends ~9 MB HTML tickets to /classify and /classify/batch one after
another while a thread polls /healthz on fresh connections every 20 ms, and reads the server's resident memory
before and after.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from daemon.config import ApiSection
from daemon.metrics import Metrics
from daemon.ml.serving import ModelHolder
from daemon.web import Services
from daemon.web.api import classify as classify_route
from tests.support.paths import STARTER
from tests.support.servers.ticketd import serve_config, ticketd_serve
from tests.support.web import AUTH, FAST_POLICY, TOKEN, client_of, linked_store

BODY_LIMIT = 16 * 1024 * 1024  # api.max_body_bytes: the 9 MB tickets must be accepted
HUGE = 9 * 1024 * 1024  # characters of HTML per ticket
SINGLES = 3  # /classify requests of one huge ticket each, then one /classify/batch of two half-size tickets
HEALTHZ_BUDGET = 0.2  # seconds any /healthz may take while the tickets are classified
RSS_SLACK_MB = 50  # what the server may keep after the burst
LEAD = "Seit dem Update trennt der VPN-Client alle paar Minuten den Tunnel, die Anmeldung am Gateway schlägt fehl."


def heavy_html(size: int) -> str:
    """Outlook's markup at its heaviest: a big <style> in <head>, then nested tables of styled cells, little text."""
    rules = "".join(
        f'p.MsoNormal{i}, li.MsoList{i}, div.MsoNormal{i}\n\t{{margin:0cm; font-size:11.0pt; font-family:"Calibri",'
        f"sans-serif; color:#1F497D; mso-style-priority:{i};}}\n"
        for i in range(500)
    )
    head = (
        '<html xmlns:o="urn:schemas-microsoft-com:office:office"><head><meta name="Generator" '
        f'content="Microsoft Word 15 (filtered medium)"><style><!--\n{rules}--></style></head>'
        f"<body lang=DE><div class=WordSection1><p class=MsoNormal><span style='font-size:11.0pt'>{LEAD}</span></p>"
    )
    cell = (
        "<td width=120 valign=top style='border:solid #A3A3A3 1.0pt;padding:0cm 5.4pt'><div><p class=MsoNormal>"
        "<span lang=DE style='font-size:10.0pt;color:#1F497D'><b><i>Port</i></b> <a href='mailto:it@example.com'>"
        "<span style='color:#0563C1'>offen</span></a><o:p></o:p></span></p></div></td>"
    )
    table = f"<table class=MsoTableGrid border=1 cellspacing=0 cellpadding=0><tr>{cell * 6}</tr></table>"
    return head + table * ((size - len(head)) // len(table) + 1) + "</div></body></html>"


@pytest.fixture(scope="module")
def fast_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TF-IDF-only model on the bundled starter tickets: seconds to train, and no transformer in the server."""
    from daemon.ml.train import TrainOptions, train

    out = tmp_path_factory.mktemp("stall") / "model"
    train(STARTER, out, TrainOptions(tfidf_weights=(1.0,), seed=3))
    return out


def test_tickets_become_text_in_the_worker_thread_not_on_the_event_loop(
    tmp_path: Path, fast_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    holder = ModelHolder(linked_store(tmp_path / "models", fast_model, 1), threads=1)
    holder.load()
    services = Services(
        api=ApiSection(tokens=[SecretStr(TOKEN)]),
        model=holder,
        datasets_dir=tmp_path / "datasets",
        workdir=tmp_path / "work",
        metrics=Metrics(),
        policy=FAST_POLICY,
    )
    on_loop: list[bool] = []
    compose_text = classify_route._text

    def spy(ticket: Any) -> str:
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        return compose_text(ticket)

    monkeypatch.setattr(classify_route, "_text", spy)
    tickets = [{"ticket_data": f"<p>{LEAD}</p>"}, {"subject": "VPN", "body": LEAD}]
    with client_of(services) as client:
        one = client.post("/api/v1/classify", json=tickets[0], headers=AUTH)
        both = client.post("/api/v1/classify/batch", json={"tickets": tickets}, headers=AUTH)
    assert (one.status_code, both.status_code) == (200, 200)
    assert on_loop == [False, False, False]
    assert one.json()["predicted_label"] and len(both.json()["predictions"]) == 2


@pytest.fixture
def server(tmp_path: Path, fast_model: Path) -> Iterator[tuple[int, int]]:
    """`ticketd serve` in a process of its own, ready, with a 16 MiB body limit: its port and pid."""
    linked_store(tmp_path / "models", fast_model, 1)
    config = serve_config(tmp_path, {"tokens": [TOKEN], "max_body_bytes": BODY_LIMIT})
    config["log"]["level"] = "warning"
    with ticketd_serve(tmp_path, config, ready="/readyz") as served:  # ready: the model is loaded
        yield served.port, served.pid


def rss_mb(pid: int) -> float:
    """The process's resident memory (VmRSS), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def settled_rss_mb(pid: int) -> float:
    """VmRSS once unchanged for 0.5 s (at most 5 s): a request's buffers outlive the answer by a few milliseconds."""
    last, since, deadline = rss_mb(pid), time.monotonic(), time.monotonic() + 5
    while time.monotonic() < deadline and time.monotonic() - since < 0.5:
        time.sleep(0.1)
        now = rss_mb(pid)
        if now != last:
            last, since = now, time.monotonic()
    return last


def healthz_seconds(port: int) -> float:
    """One GET /healthz on a fresh connection, connect to last byte (a raw socket: no client-side work to time)."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    took = time.perf_counter() - started
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    return took


def test_huge_html_tickets_stall_nothing_and_leave_no_memory_behind(server: tuple[int, int]) -> None:
    port, pid = server
    single = json.dumps({"ticket_data": heavy_html(HUGE)}).encode()
    half = heavy_html(HUGE // 2)
    batch = json.dumps({"tickets": [{"ticket_data": half}, {"subject": "VPN", "body": half}]}).encode()
    headers = {**AUTH, "content-type": "application/json"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300) as http:
        warm = http.post("/api/v1/classify", json={"ticket_data": f"<p>{LEAD}</p>"}, headers=AUTH)
        assert warm.status_code == 200, warm.text  # bs4 and the model's predict path are imported now
        before = settled_rss_mb(pid)
        seconds: list[float] = []
        failures: list[str] = []
        done = threading.Event()

        def poll() -> None:
            while not done.is_set():
                try:
                    seconds.append(healthz_seconds(port))
                except (OSError, AssertionError) as exc:
                    failures.append(repr(exc))
                time.sleep(0.02)

        poller = threading.Thread(target=poll, name="healthz poller")
        poller.start()
        started = time.perf_counter()
        try:
            singles = [http.post("/api/v1/classify", content=single, headers=headers) for _ in range(SINGLES)]
            batched = http.post("/api/v1/classify/batch", content=batch, headers=headers)
        finally:
            took = time.perf_counter() - started
            done.set()
            poller.join(timeout=120)
        after = settled_rss_mb(pid)
    print(
        f"\n{SINGLES} x {len(single) / 1e6:.1f} MB classify + {len(batch) / 1e6:.1f} MB batch in {took:.1f} s; "
        f"{len(seconds)} /healthz, slowest {[round(s * 1000) for s in sorted(seconds)[-5:]]} ms; "
        f"RSS {before:.0f} -> {after:.0f} MiB"
    )
    assert failures == []
    assert [a.status_code for a in [*singles, batched]] == [200] * (SINGLES + 1), batched.text[:500]
    assert all(a.json()["predicted_label"] and a.json()["labels"] for a in singles)
    assert [bool(p["predicted_label"]) for p in batched.json()["predictions"]] == [True, True]
    assert len(seconds) >= 10 and max(seconds) < HEALTHZ_BUDGET, sorted(seconds)[-5:]
    assert after - before < RSS_SLACK_MB, f"RSS {before:.0f} -> {after:.0f} MiB"
