"""Model versions: current, list, promote and rollback, each reloading the served model."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from tests.support.web import AUTH, services_of


def test_current_model(client: TestClient) -> None:
    response = client.get("/api/v1/model", headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert body["version"] == "v2" and body["current"] and body["served_version"] == "v2"
    assert set(body["labels"]) == {"queue", "priority"}
    assert body["labels"]["queue"] == services_of(client).model.get().labels["queue"]
    assert "macro_f1" in body["validation"]["queue"]
    assert body["training_rows"] > 0 and body["created_at"]


def test_list_models(client: TestClient) -> None:
    body = client.get("/api/v1/models", headers=AUTH).json()
    assert body["current"] == "v2"
    assert [(v["version"], v["current"]) for v in body["versions"]] == [("v1", False), ("v2", True)]


def test_promote_and_rollback_reload_the_served_model(client: TestClient) -> None:
    svc = services_of(client)
    promoted = client.post("/api/v1/models/v1/promote", headers=AUTH)
    assert promoted.status_code == 200
    assert promoted.json() == {"current": "v1", "previous": "v2", "served_version": "v1"}
    assert svc.model.get().version == "v1"
    classified = client.post("/api/v1/classify", json={"ticket_data": "hello"}, headers=AUTH).json()
    assert classified["model_version"] == "v1"
    assert 'ticketd_model_info{version="v1"}' in client.get("/metrics").text
    rolled = client.post("/api/v1/models/rollback", headers=AUTH)
    assert rolled.status_code == 200
    assert rolled.json() == {"current": "v2", "previous": "v1", "served_version": "v2"}
    assert svc.model.get().version == "v2"


def test_unknown_version_is_404(client: TestClient) -> None:
    response = client.post("/api/v1/models/v99/promote", headers=AUTH)
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "unknown_version"
    assert "v99" in error["message"] and "v1, v2" in error["message"]
    assert str(services_of(client).store.root) not in error["message"]
    for bad in ("latest", "..%2F..%2Fetc", "v1x"):
        assert client.post(f"/api/v1/models/{bad}/promote", headers=AUTH).status_code in (404, 422)
    assert services_of(client).store.current() == "v2"


def test_rollback_with_nothing_before_is_409(make_client: Callable[..., TestClient]) -> None:
    client = make_client(versions=1)
    response = client.post("/api/v1/models/rollback", headers=AUTH)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "nothing_to_roll_back"
    assert services_of(client).store.current() == "v1"


def test_empty_store(make_client: Callable[..., TestClient]) -> None:
    client = make_client(versions=0)
    current = client.get("/api/v1/model", headers=AUTH)
    assert current.status_code == 404
    assert current.json()["error"]["code"] == "no_model"
    assert client.get("/api/v1/models", headers=AUTH).json() == {"current": None, "versions": []}
    assert client.post("/api/v1/models/rollback", headers=AUTH).status_code == 409
