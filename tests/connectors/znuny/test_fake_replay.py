"""Replays every recorded Znuny 7.0.19 exchange against a fresh fake: the proof that the fake is faithful.

Each recording is sent to the fake in name order (one consistent history, README section 2), with the
fake's clock set to the recording's time, and the answer is compared with what the real server sent:
status, headers, and the body byte for byte, apart from timestamps that may tick one second later on a
real server (the recorded send time is not the server's processing time) and the session ids.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.support.fakes.znuny import Drop, FakeZnuny, Response

FIXTURES = Path(__file__).parents[3].parent / "shared" / "fixtures" / "znuny-7.0.19"
NAMES = sorted(p.name for p in FIXTURES.glob("*.json")) if FIXTURES.is_dir() else []
PASSWORDS = {"agent1": "agent1-pass-0001", "root@localhost": "root-pass-000001"}
TIME_KEYS = {"Age", "Changed", "ChangeTime", "Closed", "CreateTime", "Created", "IncomingTime", "UnlockTimeout"}
TOLERANCE_S = 1
_PLACEHOLDER = re.compile(r"<SESSION_ID[A-Z0-9_]*>")


def _epoch(value: Any) -> float | None:
    if isinstance(value, int):
        return float(value)
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", value):
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").timestamp()
    return None


def _diff(want: Any, got: Any, path: str, key: str | None = None) -> list[str]:
    """Differences between two JSON values; wall-clock fields may be off by one second."""
    if isinstance(want, dict) and isinstance(got, dict):
        out = [f"{path}: keys {sorted(set(want) ^ set(got))}"] if set(want) != set(got) else []
        for k in sorted(set(want) & set(got)):
            out += _diff(want[k], got[k], f"{path}.{k}", k)
        return out
    if isinstance(want, list) and isinstance(got, list):
        if len(want) != len(got):
            return [f"{path}: {len(want)} items expected, got {len(got)}"]
        return [d for i, (w, g) in enumerate(zip(want, got, strict=True)) for d in _diff(w, g, f"{path}[{i}]", key)]
    if type(want) is type(got) and want == got:
        return []
    if key in TIME_KEYS and type(want) is type(got):
        a, b = _epoch(want), _epoch(got)
        if a is not None and b is not None and abs(a - b) <= TOLERANCE_S:
            return []
    return [f"{path}: expected {want!r}, got {got!r}"]


def _send(fake: FakeZnuny, rec: dict[str, Any], fill: Callable[[str], str]) -> Response | Drop:
    """One recorded request to the fake, at the recording's time, with placeholders filled in."""
    req = rec["request"]
    fake.set_time(rec["recorded_at_utc"])
    headers = {k: fill(v) for k, v in req["headers"].items()}
    body = fill(req["body_text"]).encode() if req["body_text"] is not None else b""
    return fake.handle(req["method"], fill(req["path"]), fill(req["query_string"]), headers, body)


@cache
def _replay() -> dict[str, list[str]]:
    """All recordings through one fake; per recording the list of differences (empty = identical)."""
    fake = FakeZnuny(passwords=PASSWORDS)
    sessions: dict[str, str] = {}
    results: dict[str, list[str]] = {}
    for name in NAMES:
        rec = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
        req, resp = rec["request"], rec["response"]

        def fill(text: str, req: dict[str, Any] = req) -> str:
            user = "root@localhost" if "root@localhost" in json.dumps(req) else "agent1"
            text = text.replace("<PASSWORD>", PASSWORDS[user])
            return _PLACEHOLDER.sub(lambda m: sessions.get(m.group(0), m.group(0)), text)

        got = _send(fake, rec, fill)
        problems: list[str] = []
        if resp["status"] is None:
            want_kind = "empty" if resp["body_text"] == "" else "no_status_line"
            if not isinstance(got, Drop) or got.kind != want_kind or got.raw != resp["body_text"].encode():
                problems.append(f"expected a dropped answer ({want_kind}), got {got!r:.200}")
            results[name] = problems
            continue
        problems += _compare(got, resp, fill, sessions)
        results[name] = problems
        if name.startswith("025-"):
            fake.expire_session(sessions["<SESSION_ID_EXPIRED>"])  # done in the database by the recorder
    return results


@pytest.mark.skipif(not NAMES, reason=f"recordings not found at {FIXTURES}")
@pytest.mark.parametrize("name", NAMES)
def test_recording_is_reproduced(name: str) -> None:
    problems = _replay()[name]
    assert not problems, f"{name}:\n" + "\n".join(problems[:20])


# -- Znuny 7.1.7: the release example and ticketd's web service, recorded by tests/connectors/znuny/record.py --

FIXTURES_717 = Path(__file__).parent / "fixtures" / "znuny-7.1.7"
NAMES_717 = sorted(p.name for p in FIXTURES_717.glob("*.json") if p.name[0].isdigit())
WEBSERVICES_717 = {"GenericTicketConnectorREST-Release": "release", "ticketd": "ticketd"}
PASSWORD_717 = "agent1-pass-0717"  # the recorder's server had a random one; any will do for the fake


def _compare(got: Any, resp: dict[str, Any], fill: Callable[[str], str], sessions: dict[str, str]) -> list[str]:
    """What differs between the fake's answer and a recorded one (status, headers in order, body)."""
    if isinstance(got, Drop):
        return [f"expected HTTP {resp['status']}, got a dropped connection"]
    problems: list[str] = []
    if got.status != resp["status"]:
        problems.append(f"status {got.status} != {resp['status']}")
    got_headers = dict(got.headers)
    same = {k: v for k, v in got_headers.items() if k != "Content-Length"} == {
        k: v for k, v in resp["headers"].items() if k != "Content-Length"
    }
    if list(got_headers) != list(resp["headers"]) or not same:  # Content-Length: checked below, after redaction
        problems.append(f"headers {got_headers} != {resp['headers']}")
    want_text = resp["body_text"]
    if resp["body_json"] is not None and got.content_type.startswith("application/json"):
        got_json = got.json()
        for key, value in resp["body_json"].items() if isinstance(resp["body_json"], dict) else []:
            if isinstance(value, str) and _PLACEHOLDER.fullmatch(value):
                sessions[value] = got_json.get(key, "")
        want_text = fill(want_text)
        problems += _diff(json.loads(want_text), got_json, "$")
    elif got.text != want_text:
        problems.append(f"body {got.text!r:.300} != {want_text!r:.300}")
    if got.text == fill(want_text) and int(got_headers["Content-Length"]) != int(resp["headers"]["Content-Length"]):
        problems.append(f"Content-Length {got_headers['Content-Length']} != {resp['headers']['Content-Length']}")
    return problems


@cache
def _replay_717() -> dict[str, list[str]]:
    """All 7.1.7 recordings through one fake serving both web services over one database, as the server did."""
    server = json.loads((FIXTURES_717 / "server.json").read_text(encoding="utf-8"))
    fake = FakeZnuny(
        webservices=WEBSERVICES_717,
        passwords={"agent1": PASSWORD_717},
        version=server["version"],
        seeded_at=server["seeded_at"],
        now=server["seeded_at"],
    )
    sessions: dict[str, str] = {}
    results: dict[str, list[str]] = {}
    for name in NAMES_717:
        rec = json.loads((FIXTURES_717 / name).read_text(encoding="utf-8"))
        resp = rec["response"]

        def fill(text: str) -> str:
            text = text.replace("<PASSWORD>", PASSWORD_717)
            return _PLACEHOLDER.sub(lambda m: sessions.get(m.group(0), m.group(0)), text)

        results[name] = _compare(_send(fake, rec, fill), resp, fill, sessions)
    return results


@pytest.mark.skipif(not NAMES_717, reason=f"recordings not found at {FIXTURES_717}")
@pytest.mark.parametrize("name", NAMES_717)
def test_717_recording_is_reproduced(name: str) -> None:
    problems = _replay_717()[name]
    assert not problems, f"{name}:\n" + "\n".join(problems[:20])
