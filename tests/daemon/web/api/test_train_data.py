"""Training-data upload: CSV, multipart and JSON lines, validated like `ticketd train`, stored whole or not at all."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from pathlib import Path

from fastapi.testclient import TestClient

from daemon.ml.dataset import load_dataset
from tests.support.web import AUTH, services_of

URL = "/api/v1/train-data"
CSV = {**AUTH, "content-type": "text/csv"}
GOOD = "id,subject,body,queue,priority\n" + "".join(
    f"{i},Subject {i},Body of ticket {i},{'IT' if i % 2 else 'HR'},{'high' if i % 3 else 'low'}\n" for i in range(1, 9)
)


def stored(client: TestClient) -> list[str]:
    root = services_of(client).datasets.root
    return sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) if root.exists() else []


def test_csv_upload_counts_per_label(client: TestClient, sample_csv: Path) -> None:
    response = client.post(URL, content=sample_csv.read_bytes(), headers=CSV)
    assert response.status_code == 201
    body = response.json()
    expected = load_dataset(sample_csv)
    assert body["version"] == "v1"
    assert body["rows"] == len(expected)
    for label in expected.label_names:
        assert body["labels"][label] == dict(Counter(expected.labels(label)))
    assert stored(client) == ["v1.csv", "v1.json"]
    # The stored rows load back as the same dataset.
    again = load_dataset(services_of(client).datasets.csv_path("v1"))
    assert again.texts() == expected.texts()
    assert again.labels("queue") == expected.labels("queue")
    second = client.post(URL, content=GOOD.encode(), headers=CSV)
    assert second.status_code == 201
    assert second.json()["version"] == "v2"
    assert second.json()["labels"] == {"queue": {"HR": 4, "IT": 4}, "priority": {"high": 6, "low": 2}}


def test_multipart_upload(client: TestClient) -> None:
    files = {"file": ("tickets.csv", GOOD.encode(), "text/csv")}
    response = client.post(URL, files=files, headers=AUTH)
    assert response.status_code == 201, response.text
    assert response.json()["rows"] == 8
    lines = "\n".join(json.dumps({"text": f"ticket {i}", "queue": "A" if i % 2 else "B"}) for i in range(6))
    jsonl = client.post(
        URL, files={"file": ("tickets.jsonl", lines.encode(), "application/octet-stream")}, headers=AUTH
    )
    assert jsonl.status_code == 201, jsonl.text
    assert jsonl.json()["labels"] == {"queue": {"A": 3, "B": 3}}
    missing = client.post(URL, files={"other": ("x.csv", GOOD.encode(), "text/csv")}, headers=AUTH)
    assert missing.status_code == 422
    assert missing.json()["error"]["details"][0]["loc"] == ["body", "file"]


def test_json_lines_upload(client: TestClient) -> None:
    rows = [
        {"subject": f"s{i}", "body": f"body {i}", "queue": "X" if i < 3 else "Y", "priority": "low"} for i in range(6)
    ]
    body = "\n".join(json.dumps(r) for r in rows) + "\n"
    for media in ("application/x-ndjson", "application/jsonl"):
        response = client.post(URL, content=body.encode(), headers={**AUTH, "content-type": media})
        assert response.status_code == 201, response.text
        assert response.json()["labels"] == {"queue": {"X": 3, "Y": 3}, "priority": {"low": 6}}
    bad = body + "{not json\n"
    response = client.post(URL, content=bad.encode(), headers={**AUTH, "content-type": "application/x-ndjson"})
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["line"] == 7


def test_column_overrides(client: TestClient) -> None:
    data = "message,category\n" + "".join(f"text {i},{'A' if i % 2 else 'B'}\n" for i in range(6))
    plain = client.post(URL, content=data.encode(), headers=CSV)
    assert plain.status_code == 400
    assert plain.json()["error"]["code"] == "invalid_dataset"
    mapped = client.post(
        URL, params=[("column", "text=message"), ("column", "queue=category")], content=data.encode(), headers=CSV
    )
    assert mapped.status_code == 201, mapped.text
    assert mapped.json()["labels"] == {"queue": {"A": 3, "B": 3}}
    nonsense = client.post(URL, params={"column": "nonsense"}, content=data.encode(), headers=CSV)
    assert nonsense.status_code == 400


def test_malformed_csv_names_the_line_and_stores_nothing(client: TestClient) -> None:
    cases = {
        # An unclosed quote on line 4.
        'id,text,queue\n1,fine,A\n2,fine too,A\n3,"never closed,B\n': (4, None),
        # Wrong field count on line 3.
        "id,text,queue\n1,fine,A\n2,too,many,fields\n": (3, None),
        # Empty label on line 3.
        "id,text,queue\n1,fine,A\n2,no label,\n3,x,A\n": (3, "queue"),
        # Duplicate id on line 4.
        "id,text,queue\n1,a,A\n2,b,A\n1,c,A\n": (4, "id"),
        # A class with a single example (line 4).
        "id,text,queue\n1,a,A\n2,b,A\n3,c,B\n": (4, "queue"),
    }
    for data, (line, column) in cases.items():
        response = client.post(URL, content=data.encode(), headers=CSV)
        assert response.status_code == 400, data
        error = response.json()["error"]
        assert error["code"] == "invalid_dataset"
        assert error["message"].startswith(f"line {line}")
        assert error["details"][0]["line"] == line
        assert error["details"][0]["column"] == column
        assert "/tmp" not in error["message"] and "upload" not in error["message"]  # no server paths
    assert stored(client) == []
    assert [p.name for p in services_of(client).datasets.root.iterdir()] == [".lock"] or not any(
        p.name.startswith(".upload") for p in services_of(client).datasets.root.iterdir()
    )


def test_missing_columns_and_empty_bodies(client: TestClient) -> None:
    no_label = client.post(URL, content=b"id,text\n1,a\n2,b\n", headers=CSV)
    assert no_label.status_code == 400
    assert "label" in no_label.json()["error"]["message"]
    no_text = client.post(URL, content=b"id,queue\n1,a\n2,a\n", headers=CSV)
    assert no_text.status_code == 400
    assert "text" in no_text.json()["error"]["message"]
    empty = client.post(URL, content=b"", headers=CSV)
    assert empty.status_code == 400
    header_only = client.post(URL, content=b"text,queue\n", headers=CSV)
    assert header_only.status_code == 400
    latin1 = client.post(URL, content="text,queue\nK\xe4se,A\nBrot,A\n".encode("latin-1"), headers=CSV)
    assert latin1.status_code == 400
    assert "UTF-8" in latin1.json()["error"]["message"]
    assert stored(client) == []


def test_wrong_content_type_is_415(client: TestClient) -> None:
    for media in ("text/plain", "application/xml", "application/octet-stream"):
        response = client.post(URL, content=GOOD.encode(), headers={**AUTH, "content-type": media})
        assert response.status_code == 415
        assert response.json()["error"]["code"] == "unsupported_media_type"
    bare = client.post(URL, content=GOOD.encode(), headers={**AUTH, "content-type": ""})
    assert bare.status_code == 415


def test_stored_csv_is_normalised(client: TestClient) -> None:
    data = 'subject,body,queue\nHello,"<p>Line <b>one</b></p>",A\nHi,two,A\n'
    assert client.post(URL, content=data.encode(), headers=CSV).status_code == 201
    path = services_of(client).datasets.csv_path("v1")
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    assert rows[0]["text"] == "Hello. Line one"
    summary = json.loads((path.parent / "v1.json").read_text(encoding="utf-8"))
    assert summary["rows"] == 2 and summary["version"] == "v1"
