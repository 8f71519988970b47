"""Liveness, readiness (with the daemon's own check) and the Prometheus exposition."""

from __future__ import annotations

from collections.abc import Callable
from importlib import metadata
from typing import Any

from fastapi.testclient import TestClient

from tests.support.web import AUTH, services_of


def test_healthz(make_client: Callable[..., TestClient]) -> None:
    client = make_client(versions=0)
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": metadata.version("ticketd")}


def test_readyz_with_and_without_a_model(make_client: Callable[..., TestClient]) -> None:
    ready = make_client().get("/readyz", headers=AUTH)
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "details": {"model": {"loaded": True, "version": "v2"}}}
    not_ready = make_client(versions=0).get("/readyz", headers=AUTH)
    assert not_ready.status_code == 503
    assert not_ready.json() == {"ready": False, "details": {"model": {"loaded": False, "version": None}}}


def test_readyz_uses_the_daemons_check(client: TestClient) -> None:
    def connectors_down() -> tuple[bool, dict[str, Any]]:
        return False, {"connectors": {"znuny": {"ready": False, "reason": "stopped: credentials rejected"}}}

    services_of(client).readiness = connectors_down
    response = client.get("/readyz", headers=AUTH)
    assert response.status_code == 503
    assert response.json()["details"]["connectors"]["znuny"]["reason"].startswith("stopped")


def test_metrics_exposition(client: TestClient) -> None:
    svc = services_of(client)
    svc.metrics.ticket("demo", "applied")
    svc.metrics.retrain("promoted")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'ticketd_tickets_total{connector="demo",decision="applied"} 1.0' in text
    assert 'ticketd_retrain_runs_total{outcome="promoted"} 1.0' in text
    assert 'ticketd_model_info{version="v2"} 1.0' in text  # set when the app starts


def test_openapi_and_docs(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    assert set(paths) >= {
        "/api/v1/train-data",
        "/api/v1/train",
        "/api/v1/train/{job_id}",
        "/api/v1/classify",
        "/api/v1/classify/batch",
        "/api/v1/model",
        "/api/v1/models",
        "/api/v1/models/{version}/promote",
        "/api/v1/models/rollback",
        "/api/v1/hooks/{connector}",
        "/healthz",
        "/readyz",
        "/metrics",
    }
    upload = paths["/api/v1/train-data"]["post"]
    assert set(upload["requestBody"]["content"]) >= {"text/csv", "multipart/form-data", "application/x-ndjson"}
    for path in paths.values():
        for operation in path.values():
            for status, answer in operation["responses"].items():
                if status.startswith(("4", "5")) and status != "503":
                    ref = answer["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorResponse"), (status, operation["operationId"])
    assert "swagger" in client.get("/docs").text.lower()


def test_the_docs_pages_load_nothing_from_outside(client: TestClient) -> None:
    import re

    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        sources = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html) + re.findall(
            r"""url: ?["']([^"']+)["']""", html
        )
        assert sources, page
        outside = [s for s in sources if re.match(r"(https?:)?//", s)]
        assert outside == [], (page, outside)  # no CDN: an offline site gets a working page
        for asset in (s for s in sources if s.startswith("/docs/static/")):
            answer = client.get(asset)
            assert answer.status_code == 200 and len(answer.content) > 1000, asset
