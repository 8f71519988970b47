"""No secret and no ticket text in any log line, whatever fails, on every path that logs an unexpected error.

Each path raises from a frame that holds a bearer token, a helpdesk token, a webhook secret, a database URL
with its password and a ticket's text (structlog's dict tracebacks and rich's console tracebacks used to
print every frame's locals), through the process's real output in both formats (JSON lines off a terminal,
the console renderer on one). The config's secret values are also kept out of exception messages.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from daemon.config import load_config
from daemon.logging import configure, get_logger
from daemon.metrics import Metrics
from daemon.ml.serving import ModelHolder
from daemon.runtime.coordinator import Coordinator
from daemon.runtime.daemon import Daemon
from daemon.state import State
from daemon.training.champion import RetrainPolicy
from daemon.web import Services, create_app

# Built at run time, so no traceback's source line can show them either.
BEARER = "-".join(["bearer", "token", "4f1c2d9e8b7a6c5d"])
HELPDESK = "".join(["zammad", "-api-", "9c8b7a6f5e4d3c2b"])
WEBHOOK = "_".join(["webhook", "secret", "1a2b3c4d5e6f"])
DB_PASSWORD = "pg" + "-pass-" + "77e1a0c3b2"
DB_URL = f"postgresql+psycopg://ticketd:{DB_PASSWORD}@db.internal/ticketd"
TICKET = "Refund please, IBAN " + "DE89 3704 0044 0532 0130 00" + ", Jane Roe, 4711"
NEVER = (BEARER, HELPDESK, WEBHOOK, DB_PASSWORD, "DE89 3704", "Jane Roe")


def _explode(where: str) -> None:
    """Fail the way a bug would, with every kind of secret in this frame's locals."""
    bearer, helpdesk, webhook, database, ticket = BEARER, HELPDESK, WEBHOOK, DB_URL, TICKET
    assert all((bearer, helpdesk, webhook, database, ticket))
    raise RuntimeError(f"{where} broke")


def _explode_saying_secrets(where: str) -> None:
    """A library error whose message carries configured secrets (an URL with its password, a header value)."""
    raise ConnectionError(f"{where}: cannot reach {DB_URL} with token {HELPDESK}")


@pytest.fixture
def config_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config holding every kind of secret, so the loader registers them with the log."""
    monkeypatch.setenv("TEST_ZAMMAD_TOKEN", HELPDESK)
    config = {
        "model": {"store": str(tmp_path / "models")},
        "state": {"url": DB_URL},  # never connected to here
        "api": {"host": "127.0.0.1", "port": 1, "tokens": [BEARER]},
        "connectors": [
            {
                "type": "zammad",
                "url": "http://127.0.0.1:9",
                "token": "${TEST_ZAMMAD_TOKEN}",
                "webhook_secret": WEBHOOK,
                "inbound_groups": ["Users"],
                "routing": {"push": {"enabled": True}},
            }
        ],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture(params=[True, False], ids=["json", "console"])
def output(request: pytest.FixtureRequest, capfd: pytest.CaptureFixture[str]) -> Iterator[Callable[[], str]]:
    """The process's stdout and stderr, with logging configured as `ticketd` does in that format."""
    configure("info", json=request.param)
    capfd.readouterr()
    yield lambda: "".join(capfd.readouterr())
    configure("info", json=True)


def _clean(text: str, *events: str) -> None:
    assert all(event in text for event in events), text  # the failure was logged ...
    assert "Traceback" in text or '"exception"' in text, text  # ... with its traceback ...
    leaked = [value for value in NEVER if value in text]
    assert leaked == [], text  # ... and nothing else


def _api(tmp_path: Path, config_path: Path) -> tuple[Services, TestClient]:
    config = load_config(config_path)
    services = Services(
        api=config.api.model_copy(update={"read_tokens": []}),
        model=ModelHolder(tmp_path / "models", threads=1),
        datasets_dir=tmp_path / "datasets",
        workdir=tmp_path / "work",
        metrics=Metrics(),
        policy=RetrainPolicy(),
    )
    return services, TestClient(create_app(services), base_url="http://localhost", raise_server_exceptions=False)


def test_api(tmp_path: Path, config_path: Path, output: Callable[[], str], monkeypatch: pytest.MonkeyPatch) -> None:
    services, client = _api(tmp_path, config_path)
    monkeypatch.setattr(services.store, "list", lambda: _explode("the model list"))
    with client:
        answer = client.get("/api/v1/models", headers={"Authorization": f"Bearer {BEARER}"})
        monkeypatch.setattr(services.store, "list", lambda: _explode_saying_secrets("the model list"))
        again = client.get("/api/v1/models", headers={"Authorization": f"Bearer {BEARER}"})
    assert answer.status_code == again.status_code == 500
    assert not any(value in answer.text + again.text for value in NEVER)
    _clean(output(), "api_unhandled_error", "[redacted]")


def test_dashboard(
    tmp_path: Path, config_path: Path, output: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    services, client = _api(tmp_path, config_path)
    with client:
        login = client.post("/ui/login", data={"token": BEARER}, follow_redirects=False)
        assert login.status_code == 303
        monkeypatch.setattr(services.store, "list", lambda: _explode("the dashboard's models page"))
        assert client.get("/ui/models").status_code == 500
    _clean(output(), "api_unhandled_error", "/ui/models")


def test_push(tmp_path: Path, config_path: Path, output: Callable[[], str], monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib
    import hmac

    import connectors.zammad.connector as zammad

    daemon = Daemon(load_config(config_path))
    daemon.state = State.open(f"sqlite:///{tmp_path / 'state.db'}")
    daemon.stacks = asyncio.run(daemon._build_stacks(daemon.config))
    services, client = _api(tmp_path, config_path)
    services.hooks = daemon.receive_push
    monkeypatch.setattr(zammad, "webhook_ticket_ids", lambda payload: _explode("reading a push"))
    body = b'{"ticket": {"id": 7, "title": "' + TICKET.encode() + b'"}}'
    signature = "sha1=" + hmac.new(WEBHOOK.encode(), body, hashlib.sha1).hexdigest()
    with client:
        answer = client.post("/api/v1/hooks/zammad", content=body, headers={"X-Hub-Signature": signature})
    daemon.state.close()
    assert answer.status_code == 500
    _clean(output(), "api_unhandled_error", "/api/v1/hooks/zammad")


def test_connector_poll(output: Callable[[], str]) -> None:
    coordinator = Coordinator("zammad", base_delay=1)

    async def poll() -> None:
        _explode("a poll")

    assert asyncio.run(coordinator.run(poll)) is None
    _clean(output(), "zammad")


def test_retraining(config_path: Path, output: Callable[[], str]) -> None:
    daemon = Daemon(load_config(config_path))

    async def retrain_now(**_: object) -> None:
        _explode("the retrain")

    daemon.retrain_now = retrain_now  # type: ignore[method-assign]
    asyncio.run(daemon._retrain_job())
    _clean(output(), "retrain failed unexpectedly")


def test_cli(config_path: Path, output: Callable[[], str], monkeypatch: pytest.MonkeyPatch) -> None:
    import daemon.cli as cli

    def command(args: object) -> int:
        load_config(config_path)  # the secrets are registered as a real command would
        _explode_saying_secrets("check")
        return 0

    monkeypatch.setattr(cli, "_command", lambda name: command)
    assert cli.main(["check-config", str(config_path)]) == 1
    text = output()
    _clean(text, "command failed unexpectedly", "[redacted]")
    assert "ticketd: error: check-config failed unexpectedly (ConnectionError)" in text


def test_uncaught_in_a_thread_and_through_a_librarys_logger(output: Callable[[], str]) -> None:
    thread = threading.Thread(target=_explode, args=("a worker thread",), name="worker")
    thread.start()
    thread.join()
    try:
        _explode("inside uvicorn")
    except RuntimeError:
        logging.getLogger("uvicorn.error").error("Exception in ASGI application", exc_info=True)
    _clean(output(), "uncaught exception", "Exception in ASGI application")


def test_nested_secrets_in_structures_are_redacted(output: Callable[[], str]) -> None:
    get_logger("t").warning(
        "helpdesk answered oddly",
        answer={"data": [{"headers": {"Authorization": f"Token token={HELPDESK}"}, "body": TICKET}]},
        deep=[[[[[[[[[[[[[[[[["down here"]]]]]]]]]]]]]]]]],
    )
    text = output()
    assert "helpdesk answered oddly" in text and "nested too deeply" in text
    assert not [value for value in NEVER if value in text]
