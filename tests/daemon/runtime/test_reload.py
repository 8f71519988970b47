"""SIGHUP: the new config's connectors are made before the running ones are closed; a failure keeps what runs."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from structlog.testing import capture_logs

from connectors.znuny.connector import ZnunyConnector
from daemon.config import load_config
from daemon.runtime.daemon import Daemon
from tests.support.daemon import write_config
from tests.support.fakes.http import serve
from tests.support.fakes.znuny import FakeZnuny

pytestmark = [pytest.mark.anyio]
PASSWORD = "s3cret-agent-password"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fake() -> Iterator[str]:
    with serve(FakeZnuny(passwords={"agent1": PASSWORD})) as url:
        yield url


async def _reloaded(logs: list[dict[str, Any]], event: str) -> None:
    for _ in range(300):
        if any(e["event"] == event for e in logs):
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"no {event!r} after SIGHUP")


async def test_a_reload_whose_connectors_cannot_be_made_keeps_the_running_config(
    tmp_path: Path, fake: str, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(tmp_path, fake, store)
    config = yaml.safe_load(path.read_text())
    config["connectors"][0]["password"] = PASSWORD
    path.write_text(yaml.safe_dump(config))
    daemon = Daemon(load_config(path), config_path=path)
    await daemon.start()
    serving = asyncio.create_task(daemon.serve())
    running = daemon.stacks["fake"]
    try:
        await asyncio.sleep(0.1)  # serve() has installed its signal handlers
        config["connectors"][0]["routing"]["poll_interval"] = 7
        path.write_text(yaml.safe_dump(config))  # a valid config ...

        def broken(*_: Any, **__: Any) -> Any:  # ... whose connector raises while it is made
            raise RuntimeError("the connector could not be made")

        monkeypatch.setattr(ZnunyConnector, "from_config", classmethod(broken))
        with capture_logs() as logs:
            os.kill(os.getpid(), signal.SIGHUP)
            await _reloaded(logs, "config reload failed; keeping the running config")
            await asyncio.sleep(0.3)  # a daemon that went on to stop would have done so by now
        assert not serving.done()  # the daemon goes on
        assert daemon.stacks["fake"] is running and not running.client.is_closed  # the old connector still runs
        assert daemon.config.connectors[0].routing.poll_interval == 0.2  # the running config is kept
        failed = [e for e in logs if e["event"] == "config reload failed; keeping the running config"]
        assert len(failed) == 1 and "could not be made" in failed[0]["error"]  # logged once, saying why
        assert not [e for e in logs if e["event"] in ("config reloaded", "ticketd stopped")]
        assert daemon._scheduler is not None and daemon._scheduler.get_job("poll:fake") is not None  # still polls

        monkeypatch.undo()  # the next SIGHUP, with a connector that can be made, applies the new config
        with capture_logs() as logs:
            os.kill(os.getpid(), signal.SIGHUP)
            await _reloaded(logs, "config reloaded")
        assert daemon.config.connectors[0].routing.poll_interval == 7 and daemon.stacks["fake"] is not running
        assert running.client.is_closed  # the old one was closed once the new one was made
    finally:
        daemon.request_stop("test")
        await asyncio.wait_for(serving, 30)
