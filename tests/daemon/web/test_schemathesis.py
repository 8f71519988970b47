"""schemathesis over /openapi.json: no 5xx and every response as the schema declares it (status, type, body).

Training is stubbed (a job finishes at once): the fuzzer starts many, and a real one takes a minute.
The tally (operations, cases run, failures) is printed in pytest's terminal summary.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from daemon.training import jobs
from daemon.training.champion import RetrainResult
from tests.support.fuzz import fuzz
from tests.support.web import AUTH, record_summary, services_of

# Per operation; SCHEMATHESIS_EXAMPLES raises it for a longer run.
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "100"))


def instant_retrain(rows: Any, store: Any, policy: Any, **_: Any) -> RetrainResult:
    """Stands in for retrain: the fuzzer starts many jobs and a real one takes a minute."""
    return RetrainResult("rejected", None, store.current(), {"queue": {"macro_f1": 0.5}}, {}, "stub")


def test_schemathesis_finds_no_server_errors_or_schema_violations(
    make_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "retrain", instant_retrain)
    client = make_client(max_body_bytes=64 * 1024, allowed_hosts=["testserver"])  # schemathesis' ASGI client's Host
    # A dataset exists, so POST /train reaches the job machinery rather than stopping at 409 no_dataset.
    data = "text,queue\n" + "".join(f"ticket {i},{'A' if i % 2 else 'B'}\n" for i in range(6))
    client.post("/api/v1/train-data", content=data.encode(), headers={**AUTH, "content-type": "text/csv"})
    tally, problems = fuzz(client.app, AUTH, EXAMPLES)
    record_summary("schemathesis", tally)
    assert not problems, "\n\n".join(problems)
    assert tally["failures"] == 0
    assert tally["operations"] >= 12
    assert tally["cases"] >= tally["operations"] * 10
    assert services_of(client).model.loaded
