"""Replays every recorded exchange with a real RT 5.0.3 against a fresh FakeRT: the proof that the fake is faithful.

The recordings (tests/connectors/rt/record.py) are one consistent history; they are sent to one fake in name
order, through its httpx transport, with the fake's clock set to each recording's send time, and each answer is
compared with what RT sent: the status, the headers that carry meaning (Content-Type, Location, ETag,
Last-Modified), and the body: as JSON when RT sent JSON (values, types and list order; numbers and strings are
told apart, since RT mixes them), byte for byte otherwise. Normalised, and only this:

- `<RT_URL>` in a recording is the fake's base URL (the recorder's RT ran on a random loopback port);
- a date may differ by one second: RT stamps the moment it processed the request, the fake the moment the
  recorded request left, which is up to a second earlier in RT's whole-second clock;
- an EmailRecord's `Data` is RT's Message-ID of the mail it sent (with RT's process id and a random number),
  compared by its form `<rt-…@ticketd.test>`.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.fakes.rt import AGENT, AGENT_PASSWORD, AGENT_TOKEN, API, ROOT, ROOT_PASSWORD, FakeRT

RECORDINGS = Path(__file__).parent / "recordings"
NAMES = sorted(p.name for p in RECORDINGS.glob("[0-9]*.json"))
URL = "http://rt.test"
TOLERANCE_S = 1
DATE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
MESSAGE_ID = re.compile(r"<rt-[^@>\s]+@ticketd\.test>")
AUTH: dict[str, dict[str, Any]] = {
    "agent": {"auth": (AGENT, AGENT_PASSWORD)},
    "root": {"auth": (ROOT, ROOT_PASSWORD)},
    "token": {"headers": {"Authorization": f"token {AGENT_TOKEN}"}},
    "wrong-password": {"auth": (AGENT, "WrongPassword")},
    "wrong-token": {"headers": {"Authorization": "token 1-99-0123456789abcdef"}},
}
# Every call the connector makes (and the harness's own), each of which must have a recording.
ROUTES = {
    ("GET", r"/queues/all"),
    ("GET", r"/queue/\d+"),
    ("GET", r"/tickets"),
    ("GET", r"/ticket/\d+"),
    ("PUT", r"/ticket/\d+"),
    ("POST", r"/ticket"),
    ("POST", r"/ticket/\d+/comment"),
    ("GET", r"/ticket/\d+/history"),
    ("GET", r"/transaction/\d+/attachments"),
}


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RECORDINGS / name).read_text(encoding="utf-8"))
    return data


def _seconds(value: str) -> float:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def _diff(want: Any, got: Any, path: str = "$", key: str | None = None) -> list[str]:
    """Differences between two JSON values, with the two normalisations above."""
    if isinstance(want, dict) and isinstance(got, dict):
        out = [f"{path}: keys {sorted(set(want) ^ set(got))}"] if set(want) != set(got) else []
        for k in sorted(set(want) & set(got)):
            out += _diff(want[k], got[k], f"{path}.{k}", k)
        return out
    if isinstance(want, list) and isinstance(got, list):
        if len(want) != len(got):
            return [f"{path}: {len(want)} items expected, got {len(got)}: {got!r:.300}"]
        return [d for i, (w, g) in enumerate(zip(want, got, strict=True)) for d in _diff(w, g, f"{path}[{i}]", key)]
    if type(want) is type(got) and want == got:
        return []
    if isinstance(want, str) and isinstance(got, str):
        if DATE.fullmatch(want) and DATE.fullmatch(got) and abs(_seconds(want) - _seconds(got)) <= TOLERANCE_S:
            return []
        if MESSAGE_ID.fullmatch(want) and MESSAGE_ID.fullmatch(got):
            return []
    return [f"{path}: expected {want!r}, got {got!r}"]


def _compare(rec: dict[str, Any], got: httpx.Response) -> list[str]:
    want = rec["response"]
    problems = [] if got.status_code == want["status"] else [f"status {got.status_code} != {want['status']}"]
    for name, value in want["headers"].items():
        mine = got.headers.get(name)
        if name == "Last-Modified" and mine and DATE.fullmatch(mine) and DATE.fullmatch(value):
            problems += _diff(value, mine, f"header {name}")
        elif mine != value.replace("<RT_URL>", URL):
            problems.append(f"header {name}: {mine!r} != {value!r}")
    extra = {"Location", "ETag", "Last-Modified"} & set(got.headers.keys()) - {k.title() for k in want["headers"]}
    problems += [f"header {name} not sent by RT: {got.headers[name]!r}" for name in sorted(extra)]
    if want["body_json"] is not None:
        try:
            mine = got.json()
        except ValueError:
            return [*problems, f"body is not JSON: {got.text!r:.300}"]
        problems += _diff(json.loads(json.dumps(want["body_json"]).replace("<RT_URL>", URL)), mine)
    elif got.text != want["body_text"]:
        problems.append(f"body {got.text!r:.300} != {want['body_text']!r:.300}")
    return problems


@cache
def _replay() -> dict[str, list[str]]:
    """All recordings through one fake, in order; per recording its differences (none: reproduced)."""
    server = _load("server.json")
    first = _load(NAMES[0])
    fake = FakeRT(
        url=URL,
        timezone=server["agent_timezone"],
        now=first["sent_at"],
        initialized_at=server["initialized_at"],
        data_loaded_at=server["data_loaded_at"],
    )
    results: dict[str, list[str]] = {}
    with httpx.Client(transport=fake.transport()) as client:
        for name in NAMES:
            rec = _load(name)
            req = rec["request"]
            fake.set_time(rec["sent_at"])
            url = URL + API + req["path"] + (f"?{req['query']}" if req["query"] else "")
            kwargs: dict[str, Any] = {"json": req["body_json"]} if req["body_json"] is not None else {}
            got = client.request(req["method"], url, **AUTH[req["auth"]], **kwargs)
            results[name] = _compare(rec, got)
    return results


def test_there_are_recordings() -> None:
    assert len(NAMES) > 50, f"recordings missing in {RECORDINGS}: run python -m tests.connectors.rt.record"


def test_recordings_cover_every_call_the_connector_makes() -> None:
    seen = {
        (method, pattern)
        for name in NAMES
        for method, pattern in ROUTES
        if _load(name)["request"]["method"] == method and re.fullmatch(pattern, _load(name)["request"]["path"])
    }
    assert seen == ROUTES, f"no recording of {sorted(ROUTES - seen)}"


def test_recordings_hold_no_secret_or_port() -> None:
    for name in NAMES:
        text = (RECORDINGS / name).read_text(encoding="utf-8")
        assert "127.0.0.1" not in text and "Authorization" not in text, name


@pytest.mark.parametrize("name", NAMES)
def test_recording_is_reproduced(name: str) -> None:
    problems = _replay()[name]
    assert not problems, f"{name}: {_load(name)['description']}\n" + "\n".join(problems[:20])
