"""The body size limit (declared and streamed), unknown paths and methods, and the 500 envelope."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from fastapi.testclient import TestClient

from tests.support.web import AUTH, services_of


def _chunks(total: int, size: int = 1000) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b"x" * min(size, total - sent)
        sent += size


def test_declared_oversize_body_is_413(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_body_bytes=2000)
    big = b"text,queue\n" + b"a,b\n" * 1000
    for path, media in (("/api/v1/train-data", "text/csv"), ("/api/v1/classify", "application/json")):
        response = client.post(path, content=big, headers={**AUTH, "content-type": media})
        assert response.status_code == 413
        error = response.json()["error"]
        assert error["code"] == "body_too_large"
        assert "2000" in error["message"]


def test_streamed_oversize_body_is_413(make_client: Callable[..., TestClient]) -> None:
    # A generator body goes out chunked, without Content-Length: the limit counts received bytes.
    client = make_client(max_body_bytes=2000)
    for path, media in (
        ("/api/v1/train-data", "text/csv"),
        ("/api/v1/classify", "application/json"),
        ("/api/v1/train-data", "multipart/form-data; boundary=xyz"),
    ):
        response = client.post(path, content=_chunks(5000), headers={**AUTH, "content-type": media})
        assert response.status_code == 413, (path, response.text)
        assert response.json()["error"]["code"] == "body_too_large"
    assert services_of(client).datasets.versions() == []


def test_body_under_the_limit_passes(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_body_bytes=2000)
    response = client.post("/api/v1/classify", json={"ticket_data": "small"}, headers=AUTH)
    assert response.status_code == 200


def test_unknown_path_and_method(client: TestClient) -> None:
    missing = client.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    wrong = client.delete("/api/v1/classify", headers=AUTH)
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "method_not_allowed"
    assert "POST" in wrong.headers["allow"]


def test_unexpected_error_is_a_bare_500(client: TestClient) -> None:
    svc = services_of(client)

    def broken() -> tuple[bool, dict[str, object]]:
        raise RuntimeError("secret internals /etc/ticketd")

    svc.readiness = broken
    response = client.get("/readyz")
    assert response.status_code == 500
    assert response.json() == {
        "error": {
            "code": "internal_error",
            "message": "internal error; the daemon's log has the details",
            "details": [],
        }
    }
    assert "secret internals" not in response.text and "Traceback" not in response.text
