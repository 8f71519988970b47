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
  compared by its form `<rt-…@ticketd.test>`;
- `<RT_PORT>` in the session cookie's name is the fake's port, and a session placeholder (`<SESSION>`, ...) is
  the session id the fake set where the recording has RT set it (then any 32 hex digits); a recording that
  sends the placeholder's cookie sends the fake's id;
- an HTML login page (RT's login form) is compared by status, headers and that its body is HTML: the fake's
  page is a stand-in for RT's.
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

from tests.support.fakes.rt import (
    AGENT,
    AGENT_PASSWORD,
    AGENT_TOKEN,
    API,
    LOGIN,
    ROOT,
    ROOT_PASSWORD,
    VERSION,
    FakeRT,
)

RECORDINGS = Path(__file__).parent / "recordings"
NAMES = sorted(p.name for p in RECORDINGS.glob("[0-9]*.json"))
URL = "http://rt.test"
PORT = str(httpx.URL(URL).port or 80)
TOLERANCE_S = 1
DATE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
MESSAGE_ID = re.compile(r"<rt-[^@>\s]+@ticketd\.test>")
SESSION = re.compile(r"<[A-Z_0-9]*SESSION[A-Z_0-9]*>")
HTML = re.compile(r"<html[\s>]", re.IGNORECASE)
AUTH: dict[str, dict[str, Any]] = {
    "agent": {"auth": (AGENT, AGENT_PASSWORD)},
    "root": {"auth": (ROOT, ROOT_PASSWORD)},
    "token": {"headers": {"Authorization": f"token {AGENT_TOKEN}"}},
    "wrong-password": {"auth": (AGENT, "WrongPassword")},
    "wrong-token": {"headers": {"Authorization": "token 1-99-0123456789abcdef"}},
    "none": {},
}
# Every call the connector makes (and the harness's own), each of which must have a recording: the paths below
# RT's web root.
ROUTES = {
    ("POST", LOGIN),
    ("GET", API + r"/rt"),
    ("GET", API + r"/queues/all"),
    ("GET", API + r"/queue/\d+"),
    ("GET", API + r"/tickets"),
    ("GET", API + r"/ticket/\d+"),
    ("PUT", API + r"/ticket/\d+"),
    ("POST", API + r"/ticket"),
    ("POST", API + r"/ticket/\d+/comment"),
    ("GET", API + r"/ticket/\d+/history"),
    ("GET", API + r"/transaction/\d+/attachments"),
}


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RECORDINGS / name).read_text(encoding="utf-8"))
    return data


def _web_path(req: dict[str, Any]) -> str:
    """The request's path below RT's web root."""
    return str(req["base"]).removeprefix("<RT_URL>") + req["path"]


def _fill(text: str, sessions: dict[str, str]) -> str:
    """A recorded text with the fake's URL, port and session ids for RT's."""
    text = SESSION.sub(lambda m: sessions.get(m.group(0), m.group(0)), text)
    return text.replace("<RT_URL>", URL).replace("<RT_PORT>", PORT)


def _set_cookie(want: str, mine: str | None, sessions: dict[str, str]) -> list[str]:
    """A Set-Cookie header; a session placeholder not bound yet binds to the id the fake set."""
    pattern, names = "", []
    for part in re.split(f"({SESSION.pattern})", want):
        if SESSION.fullmatch(part) and part not in sessions:
            pattern += "([0-9a-f]{32})"
            names.append(part)
        else:
            pattern += re.escape(_fill(part, sessions))
    match = re.fullmatch(pattern, mine or "")
    if match is None:
        return [f"header Set-Cookie: {mine!r} != {want!r}"]
    sessions.update(zip(names, match.groups(), strict=True))
    return []


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


def _compare(rec: dict[str, Any], got: httpx.Response, sessions: dict[str, str]) -> list[str]:
    want = rec["response"]
    problems = [] if got.status_code == want["status"] else [f"status {got.status_code} != {want['status']}"]
    for name, value in want["headers"].items():
        mine = got.headers.get(name)
        if name == "Last-Modified" and mine and DATE.fullmatch(mine) and DATE.fullmatch(value):
            problems += _diff(value, mine, f"header {name}")
        elif name == "Set-Cookie":
            problems += _set_cookie(value, mine, sessions)
        elif mine != _fill(value, sessions):
            problems.append(f"header {name}: {mine!r} != {value!r}")
    meaningful = {"content-type", "location", "etag", "last-modified", "set-cookie"}
    extra = meaningful & set(got.headers.keys()) - {k.lower() for k in want["headers"]}
    problems += [f"header {name} not sent by RT: {got.headers[name]!r}" for name in sorted(extra)]
    if _web_path(rec["request"]) == LOGIN and want["headers"].get("Content-Type", "").startswith("text/html"):
        if not HTML.search(got.text):
            problems.append(f"body is not HTML: {got.text!r:.300}")
    elif want["body_json"] is not None:
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
    sessions: dict[str, str] = {}  # placeholder -> the fake's session id
    with httpx.Client(transport=fake.transport()) as client:
        for name in NAMES:
            rec = _load(name)
            req = rec["request"]
            fake.set_time(rec["sent_at"])
            if rec.get("sessions_ended"):
                fake.end_sessions()
            url = _fill(req["base"], sessions) + req["path"] + (f"?{req['query']}" if req["query"] else "")
            headers = {k: _fill(v, sessions) for k, v in req.get("headers", {}).items()}
            kwargs: dict[str, Any] = dict(AUTH[req["auth"]])
            kwargs["headers"] = {"Accept": "application/json", **kwargs.get("headers", {}), **headers}
            if "form" in req:  # RT's login form: the auth's user and password as form fields, httpx's Accept
                user, password = kwargs.pop("auth")
                assert req["form"] == {"user": user, "pass": "<PASSWORD>"}, name
                kwargs["data"] = {"user": user, "pass": password}
                del kwargs["headers"]["Accept"]
            if req["body_json"] is not None:
                kwargs["json"] = req["body_json"]
            got = client.request(req["method"], url, **kwargs)
            client.cookies.clear()  # a cookie travels only where a recording sends it
            results[name] = _compare(rec, got, sessions)
    return results


def test_there_are_recordings() -> None:
    assert len(NAMES) > 50, f"recordings missing in {RECORDINGS}: run python -m tests.connectors.rt.record"


def test_recordings_cover_every_call_the_connector_makes() -> None:
    seen = {
        (method, pattern)
        for name in NAMES
        for method, pattern in ROUTES
        if _load(name)["request"]["method"] == method and re.fullmatch(pattern, _web_path(_load(name)["request"]))
    }
    assert seen == ROUTES, f"no recording of {sorted(ROUTES - seen)}"


def test_recordings_hold_no_secret_port_or_session() -> None:
    for name in NAMES:
        text = (RECORDINGS / name).read_text(encoding="utf-8")
        assert "127.0.0.1" not in text and "Authorization" not in text, name
        for cookie in re.findall(r"RT_SID_[^=\s\"]*=[^;\s\"]*", text):
            assert re.fullmatch(rf"RT_SID_ticketd-test\.<RT_PORT>={SESSION.pattern}", cookie), (name, cookie)


def test_the_fake_reports_the_recorded_version() -> None:
    assert _load("server.json")["rt_version"] == VERSION


@pytest.mark.parametrize("name", NAMES)
def test_recording_is_reproduced(name: str) -> None:
    problems = _replay()[name]
    assert not problems, f"{name}: {_load(name)['description']}\n" + "\n".join(problems[:20])
