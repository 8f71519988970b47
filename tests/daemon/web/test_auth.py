"""Bearer tokens: protected endpoints never open by default; classify opens only with public_classify."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from daemon.web.auth import token_matches
from tests.support.web import AUTH, TOKEN

PROTECTED = [
    ("post", "/api/v1/train-data"),
    ("post", "/api/v1/train"),
    ("get", "/api/v1/train/abc"),
    ("get", "/api/v1/model"),
    ("get", "/api/v1/models"),
    ("post", "/api/v1/models/v1/promote"),
    ("post", "/api/v1/models/rollback"),
    ("post", "/api/v1/classify"),
    ("post", "/api/v1/classify/batch"),
]
TICKET = {"ticket_data": "I cannot log in to the VPN"}


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_protected_endpoints_need_a_token(client: TestClient, method: str, path: str) -> None:
    missing = client.request(method, path)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "unauthorized"
    assert missing.headers["www-authenticate"].startswith("Bearer")
    wrong = client.request(method, path, headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_token"
    basic = client.request(method, path, headers={"Authorization": f"Basic {TOKEN}"})
    assert basic.status_code == 401


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_no_configured_tokens_closes_protected_endpoints(
    make_client: Callable[..., TestClient], method: str, path: str
) -> None:
    client = make_client(tokens=[])
    for headers in ({}, AUTH):
        response = client.request(method, path, headers=headers)
        assert response.status_code == 403
        error = response.json()["error"]
        assert error["code"] == "auth_not_configured"
        assert "api.tokens" in error["message"]


def test_right_token_passes(client: TestClient) -> None:
    assert client.post("/api/v1/classify", json=TICKET, headers=AUTH).status_code == 200
    assert client.get("/api/v1/models", headers=AUTH).status_code == 200


def test_any_configured_token_passes(make_client: Callable[..., TestClient]) -> None:
    client = make_client(
        tokens=[SecretStr("first-token-0123456789-abcdef"), SecretStr("second-token-0123456789-abcdef")]
    )
    for token in ("first-token-0123456789-abcdef", "second-token-0123456789-abcdef"):
        response = client.get("/api/v1/models", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200


def test_public_classify_opens_classify_only(make_client: Callable[..., TestClient]) -> None:
    client = make_client(public_classify=True)
    assert client.post("/api/v1/classify", json=TICKET).status_code == 200
    assert client.post("/api/v1/classify/batch", json={"tickets": [TICKET]}).status_code == 200
    assert client.get("/api/v1/models").status_code == 401
    assert client.post("/api/v1/train").status_code == 401
    # Even with no tokens at all, public classify works and the rest stays closed.
    open_client = make_client(public_classify=True, tokens=[])
    assert open_client.post("/api/v1/classify", json=TICKET).status_code == 200
    assert open_client.post("/api/v1/models/rollback").status_code == 403


def test_operational_endpoints_are_open(make_client: Callable[..., TestClient]) -> None:
    client = make_client(tokens=[])
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"):
        assert client.get(path).status_code == 200, path


def test_token_matches() -> None:
    assert token_matches("b", ["a", "b"])
    assert not token_matches("c", ["a", "b"])
    assert not token_matches("", ["a"])
    assert not token_matches("ä", ["a"])


def test_openapi_declares_bearer_auth(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "security" in schema["paths"]["/api/v1/train"]["post"]
    assert "security" not in schema["paths"]["/healthz"]["get"]


def test_a_read_only_token_reads_and_classifies_but_changes_nothing(make_client: Callable[..., TestClient]) -> None:
    client = make_client(read_tokens=[SecretStr("reader-token-123-0123456789-abcdef")])
    reader = {"Authorization": "Bearer reader-token-123-0123456789-abcdef"}
    assert client.post("/api/v1/classify", json=TICKET, headers=reader).status_code == 200
    assert client.get("/api/v1/models", headers=reader).status_code == 200
    assert client.get("/api/v1/model", headers=reader).status_code == 200
    for method, path in [("post", "/api/v1/models/v1/promote"), ("post", "/api/v1/models/rollback")]:
        refused = client.request(method, path, headers=reader)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "read_only_token"
    assert client.post("/api/v1/train", json={}, headers=reader).json()["error"]["code"] == "read_only_token"
    assert client.get("/api/v1/model", headers=AUTH).json()["version"] == "v2"  # nothing was promoted
