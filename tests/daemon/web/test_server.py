"""uvicorn embedding: the API as a task in a running loop, leaving signal handling to the daemon."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from daemon.config import ApiSection, RetrainSection, default_config
from daemon.web.server import ApiServer, serve
from daemon.web.services import Services
from tests.support.web import AUTH


def test_api_server_runs_in_the_callers_loop(make_services: Callable[..., Services]) -> None:
    services = make_services()

    async def scenario() -> tuple[int, int, object]:
        before = signal.getsignal(signal.SIGTERM)
        server = ApiServer(services, host="127.0.0.1", port=0)
        await server.start()
        during = signal.getsignal(signal.SIGTERM)
        port = server.port
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            health = await http.get("/healthz")
            classify = await http.post("/api/v1/classify", json={"ticket_data": "printer jam"}, headers=AUTH)
        await server.stop()
        assert during is before
        return health.status_code, classify.status_code, server.server.started

    health, classify, _ = asyncio.run(scenario())
    assert (health, classify) == (200, 200)


def test_api_server_start_fails_on_a_taken_port(make_services: Callable[..., Services]) -> None:
    import socket

    services = make_services()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        async def scenario() -> None:
            server = ApiServer(services, host="127.0.0.1", port=port)
            with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
                await server.start()

        asyncio.run(scenario())


def test_services_from_config_and_serve_on_a_taken_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        base = default_config()
        config = base.model_copy(
            update={
                "api": ApiSection(port=port),
                "retrain": RetrainSection(epochs=2, max_length=64, tolerance=0.01, min_new_examples=500),
            }
        )
        services = Services.from_config(config)
        assert services.datasets_dir == tmp_path / "models" / "datasets"
        assert services.workdir == tmp_path / "models" / "retrain"
        assert services.policy.epochs == 2 and services.policy.max_length == 64
        assert services.policy.tolerance == 0.01
        assert services.policy.min_new_examples == 0  # an API request is an explicit ask to train
        assert services.policy.labels == ("queue", "priority")
        assert services.ready() == (False, {"model": {"loaded": False, "version": None}})
        assert serve(config) == 1  # the port is taken: a clear log line and exit status 1
