"""The daemon's commands as an admin types them: check-config, check, report, bootstrap."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from daemon.cli import main
from tests.support.daemon import PASSWORD, SUBJECTS, write_config
from tests.support.fakes.http import serve
from tests.support.fakes.znuny import FakeZnuny

pytestmark = pytest.mark.slow


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeZnuny, str]]:
    monkeypatch.setenv("TEST_ZNUNY_PASSWORD", PASSWORD)
    znuny = FakeZnuny(passwords={"agent1": PASSWORD})
    znuny.agent_update(3, queue="Misc")
    with serve(znuny) as url:
        yield znuny, url


def test_check_config_ok_and_bad_line(
    tmp_path: Path, fake: tuple[FakeZnuny, str], store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, url = fake
    path = write_config(tmp_path, url, store)
    assert main(["check-config", str(path)]) == 0
    assert "ok (1 connector(s): fake)" in capsys.readouterr().out
    bad = yaml.safe_load(path.read_text())
    bad["connectors"][0]["routing"]["labels"]["queue"]["threshold"] = 1.5
    path.write_text(yaml.safe_dump(bad))
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ticketd: error: ") and "threshold" in err and "config.yaml:" in err
    assert "Traceback" not in err


def test_check_reports_labels_without_a_live_target(
    tmp_path: Path, fake: tuple[FakeZnuny, str], store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, url = fake
    path = write_config(tmp_path, url, store)
    assert main(["check", "--config", str(path)]) == 0
    assert "fake: reachable" in capsys.readouterr().out
    config = yaml.safe_load(path.read_text())
    first = next(iter(config["connectors"][0]["routing"]["labels"]["queue"]["map"]))
    config["connectors"][0]["routing"]["labels"]["queue"]["map"][first] = "Accounting"
    path.write_text(yaml.safe_dump(config))
    assert main(["check", "--config", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"model queue label {first!r} maps to 'Accounting', which the helpdesk does not have" in out


def test_check_reports_routing_names_that_match_nothing(
    tmp_path: Path, fake: tuple[FakeZnuny, str], store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """never_route, min_precision and always_route take a model label or a helpdesk name; a typo is named by key."""
    _, url = fake
    config = yaml.safe_load(write_config(tmp_path, url, store).read_text())
    routing = config["connectors"][0]["routing"]
    queue = routing["labels"]["queue"]
    model_label = next(iter(queue["map"]))
    del queue["threshold"]
    queue["target_precision"] = 0.9
    queue["min_precision"] = {model_label: 0.95, "Billng": 0.95}  # a model label, a typo
    queue["always_route"] = ["Misc", "Lgal"]  # a helpdesk name, a typo
    routing["never_route"] = ["Hardware", "Spma"]
    routing["labels"]["priority"]["always_route"] = ["4 high", "9 urgent"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["check", "--config", str(path)]) == 1
    problems = [line for line in capsys.readouterr().out.splitlines() if "not a class of the model" in line]
    assert problems == [
        "fake: connectors[0].routing.never_route[1] = 'Spma': not a class of the model nor a queue of the helpdesk",
        "fake: connectors[0].routing.labels.queue.min_precision.Billng: not a class of the model nor a queue of the "
        "helpdesk",
        "fake: connectors[0].routing.labels.queue.always_route[1] = 'Lgal': not a class of the model nor a queue of "
        "the helpdesk",
        "fake: connectors[0].routing.labels.priority.always_route[1] = '9 urgent': not a class of the model nor a "
        "priority of the helpdesk",
    ]


def test_check_names_rejected_credentials(
    tmp_path: Path,
    fake: tuple[FakeZnuny, str],
    store: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, url = fake
    monkeypatch.setenv("TEST_ZNUNY_PASSWORD", "wrong")
    assert main(["check", "--config", str(write_config(tmp_path, url, store))]) == 1
    out = capsys.readouterr().out
    assert "fake: AuthError" in out and "wrong" not in out


def test_report_after_shadow_run_and_closing(
    tmp_path: Path, fake: tuple[FakeZnuny, str], store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    znuny, url = fake
    ids = [znuny.add_customer_ticket(s, b) for s, b in SUBJECTS]
    path = write_config(tmp_path, url, store)
    assert main(["run", "--config", str(path), "--dry-run", "--once"]) == 0
    assert all(znuny.queue_name(t) == "Raw" and znuny.writes(t) == 0 for t in ids)
    for t in ids:
        znuny.agent_update(t, queue="Billing", priority="3 normal", state="closed successful")
    assert main(["run", "--config", str(path), "--dry-run", "--once"]) == 0  # harvests the closed ones
    capsys.readouterr()
    assert main(["report", "--config", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    queue = next(r for r in report["labels"] if r["label"] == "queue")
    assert queue["compared"] == len(ids) and 0.0 <= queue["agreement"] <= 1.0
    assert report["ledger"] == {"fake:shadow": len(ids)}


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_bootstrap_harvests_closed_tickets_and_trains_the_first_model(
    tmp_path: Path,
    fake: tuple[FakeZnuny, str],
    store: Path,
    sample_csv: Path,
    capsys: pytest.CaptureFixture[str],
    database: str,
    request: pytest.FixtureRequest,
) -> None:
    """On PostgreSQL (replicas, or a retrain Job beside them) it leases the connector to harvest it, gives it
    back, and the model goes into the database's store, which every replica serves from."""
    import csv

    znuny, url = fake
    targets = {"Billing": "Billing", "Technical Support": "Technical Support"}
    with sample_csv.open(encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f)][:80]
    for i, row in enumerate(rows):
        queue = list(targets)[i % 2]  # a learnable signal: the queue follows a word we put in the subject
        subject = ("Invoice: " if queue == "Billing" else "Outage: ") + (row.get("subject") or "ticket")[:60]
        tid = znuny.add_customer_ticket(subject, row.get("body") or row.get("text") or "body")
        znuny.agent_update(tid, queue=queue, priority=["2 low", "4 high"][i % 2], state="closed successful")
    config = yaml.safe_load(write_config(tmp_path, url, store).read_text())
    config["model"]["store"] = str(tmp_path / "fresh-store")
    config["retrain"] = {"enabled": False, "epochs": 1, "max_length": 32, "min_new_examples": 10}
    config["connectors"][0]["routing"].pop("labels")
    if database == "postgresql":
        config["state"] = {"url": request.getfixturevalue("postgres_server").new_database()}
    path = tmp_path / "bootstrap.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["bootstrap", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "closed tickets harvested" in out and "bootstrap: promoted" in out
    metadata = json.loads((tmp_path / "fresh-store" / "current" / "metadata.json").read_text())
    if database == "postgresql":
        from daemon.state import State

        with State.open(config["state"]["url"]) as state:
            versions = state.model_versions("test")
            assert versions is not None and versions.pointer().stack == ["v1"]
            assert versions.versions()[0].metadata == metadata
            assert [lease.owner for lease in state.leases() if lease.name == "fake"] == [None]  # given back
    assert set(metadata["heads"]["queue"]["classes"]) <= {"Billing", "Technical Support", "Junk"}
