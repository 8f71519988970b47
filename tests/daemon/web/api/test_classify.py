"""Classification: the on-prem response shape, subject/body input, batches, and 503 without a model."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from daemon.ml.text import compose
from daemon.web.schemas import MAX_BATCH
from tests.support.web import AUTH, services_of


def test_classify_ticket_data(client: TestClient) -> None:
    response = client.post("/api/v1/classify", json={"ticket_data": "My invoice shows the wrong amount"}, headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    labels = services_of(client).model.get().labels
    assert body["predicted_label"] in labels["queue"]
    assert 0 <= body["confidence"] <= 1
    assert body["priority"]["label"] in labels["priority"]
    assert 0 <= body["priority"]["confidence"] <= 1
    assert body["labels"]["queue"] == {"label": body["predicted_label"], "confidence": body["confidence"]}
    assert body["model_version"] == "v2"


def test_classify_subject_and_body_matches_the_classifier(client: TestClient) -> None:
    ticket = {"subject": "Laptop broken", "body": "<p>The screen of my <b>laptop</b> stays black.</p>"}
    response = client.post("/api/v1/classify", json=ticket, headers=AUTH)
    assert response.status_code == 200
    expected = services_of(client).model.get().classify(ticket["body"], subject=ticket["subject"])
    assert response.json()["predicted_label"] == expected["queue"]["label"]
    assert response.json()["confidence"] == expected["queue"]["confidence"]


def test_classify_says_why_with_the_models_own_thresholds(client: TestClient) -> None:
    ticket = {"subject": "Invoice wrong", "body": "The invoice for the licence shows a wrong amount, please refund."}
    body = client.post("/api/v1/classify", json=ticket, headers=AUTH).json()
    model = services_of(client).model.get()
    for label in ("queue", "priority"):
        reason = body["reasons"][label]
        assert reason["predicted"] == body["labels"][label]["label"]
        assert reason["confidence"] == body["labels"][label]["confidence"]
        head = model.classifier.heads[label]
        assert head.routing is not None and reason["target_precision"] == head.routing.target
        assert reason["basis"] == "target" and reason["threshold"] == head.routing.for_class(reason["predicted"])
        threshold = reason["threshold"]
        assert reason["routed"] == (threshold is not None and reason["confidence"] >= threshold)
        assert head.tfidf is not None  # the tiny model has a TF-IDF part: the words are its top pushes, exactly
        expected = head.tfidf.top_words(
            compose(ticket["subject"], ticket["body"]), head.classes.index(reason["predicted"])
        )
        assert reason["words"] == expected and 1 <= len(expected) <= 3
        assert reason["text"].startswith(label) and ", ".join(reason["words"]) in reason["text"]
    batch = client.post("/api/v1/classify/batch", json={"tickets": [ticket]}, headers=AUTH).json()
    assert batch["predictions"][0]["reasons"] == body["reasons"]


def test_classify_records_metrics(client: TestClient) -> None:
    client.post("/api/v1/classify", json={"ticket_data": "password reset please"}, headers=AUTH)
    text = client.get("/metrics").text
    assert "ticketd_classify_seconds_count 1.0" in text
    assert 'ticketd_confidence_count{label="queue"} 1.0' in text
    assert 'ticketd_confidence_count{label="priority"} 1.0' in text
    assert 'ticketd_model_info{version="v2"} 1.0' in text


def test_batch_keeps_order_and_version(client: TestClient) -> None:
    tickets = [{"ticket_data": "refund my last payment"}, {"subject": "VPN", "body": "cannot connect to the VPN"}]
    response = client.post("/api/v1/classify/batch", json={"tickets": tickets}, headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == "v2"
    assert len(body["predictions"]) == 2
    single = [client.post("/api/v1/classify", json=t, headers=AUTH).json() for t in tickets]
    assert [p["predicted_label"] for p in body["predictions"]] == [s["predicted_label"] for s in single]


def test_batch_limit(client: TestClient) -> None:
    full = {"tickets": [{"ticket_data": f"ticket {i}"} for i in range(MAX_BATCH)]}
    assert client.post("/api/v1/classify/batch", json=full, headers=AUTH).status_code == 200
    over = {"tickets": [{"ticket_data": f"ticket {i}"} for i in range(MAX_BATCH + 1)]}
    response = client.post("/api/v1/classify/batch", json=over, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
    assert client.post("/api/v1/classify/batch", json={"tickets": []}, headers=AUTH).status_code == 422


def test_bad_classify_inputs_are_422(client: TestClient) -> None:
    secret = "Customer account 4711 password hunter2"
    for body in (
        {},
        {"ticket_data": 42},
        {"ticket_data": None},
        {"ticket_data": ""},
        {"subject": "only a subject"},
        {"ticket_data": secret, "body": "both shapes at once"},
        {"text": "unknown field"},
        [secret],
    ):
        response = client.post("/api/v1/classify", json=body, headers=AUTH)
        assert response.status_code == 422, body
        error = response.json()["error"]
        assert error["code"] == "validation_error"
        assert error["details"] and all({"loc", "msg", "type"} <= d.keys() for d in error["details"])
        assert secret not in response.text  # inputs are never echoed back
    malformed = client.post(
        "/api/v1/classify", content=b'{"ticket_data": ', headers={**AUTH, "content-type": "application/json"}
    )
    assert malformed.status_code == 422
    wrong_type = client.post("/api/v1/classify", content=b"ticket", headers={**AUTH, "content-type": "text/plain"})
    assert wrong_type.status_code == 415
    assert wrong_type.json()["error"]["message"].startswith("unsupported content type 'text/plain'")


def test_no_model_is_503(make_client: Callable[..., TestClient]) -> None:
    client = make_client(versions=0)
    for path, body in (
        ("/api/v1/classify", {"ticket_data": "hello"}),
        ("/api/v1/classify/batch", {"tickets": [{"ticket_data": "hello"}]}),
    ):
        response = client.post(path, json=body, headers=AUTH)
        assert response.status_code == 503
        error = response.json()["error"]
        assert error["code"] == "no_model"
        assert "POST /api/v1/train" in error["message"]
