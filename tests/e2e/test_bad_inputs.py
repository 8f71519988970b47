"""The bad-input catalogue: one table of cases, each with the clear error (or documented fallback) it must get.

Every case names its surface (training data in-process or through `ticketd train`, the config and `ticketd
check`, the REST API, tickets through the daemon's pipeline), what goes in, and what must come out: the
message naming the culprit (file, line, column, key, field, connector), the exit status or HTTP status, no
traceback, and the state afterwards (model store, dataset store, ledger, mailbox) unchanged or as documented.
docs/bad-inputs.md holds the same table for admins; `test_docs_list_the_same_cases` keeps the two in step.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import mailbox
import os
import re
import shutil
import socket
import subprocess
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from fastapi.testclient import TestClient
from pydantic import SecretStr
from structlog.testing import capture_logs

from connectors.maildir import MaildirConfig, MaildirConnector
from connectors.maildir import files as maildir_files
from connectors.znuny.mapping import to_ticket
from daemon.config import ApiSection, load_config
from daemon.errors import ConfigError, DatasetError
from daemon.metrics import Metrics
from daemon.ml.classifier import Classifier
from daemon.ml.dataset import load_dataset
from daemon.ml.serving import LoadedModel, ModelHolder
from daemon.ml.store import ModelStore
from daemon.ml.text import MAX_TEXT_CHARS
from daemon.pipeline.flow import Pipeline
from daemon.pipeline.routing import LabelRule
from daemon.state import LedgerEntry, State, TrainingRow
from daemon.web import Services, create_app
from tests.support.paths import ROOT, STARTER
from tests.support.web import AUTH, FAST_POLICY, TOKEN, linked_store

DOC = ROOT / "docs" / "bad-inputs.md"
SECRET_ENV = "TICKETD_BAD_INPUT_PASSWORD"
SECRET = "s3cret-helpdesk-pw-4711"
MAX_BODY = 1024 * 1024  # api.max_body_bytes in the API cases
DEEP = b"[" * 50_000 + b"]" * 50_000  # JSON deeper than json.loads can recurse


@dataclass(frozen=True)
class Case:
    """One row of the catalogue.

    `data` is the input itself (bytes, a YAML patch, a request, a mail); `status` the exit or HTTP status;
    `culprit` fragments the message must contain (`{file}`, `{port}` and `{line}` are filled in); `expect`
    holds the surface-specific outcome (the state check, the documented fallback's exact result).
    """

    id: str
    surface: str
    input: str
    expected: str
    data: Any = None
    status: int | None = None
    culprit: tuple[str, ...] = ()
    expect: dict[str, Any] = field(default_factory=dict)


def _csv(rows: list[list[str]], delimiter: str = ",") -> bytes:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


HEADER = ["id", "text", "queue", "priority"]
# Eight rows that pass every check: two queues, two priorities, four examples of each.
GOOD_ROWS = [
    [str(i), f"ticket number {i} about things", "IT" if i % 2 else "HR", "high" if i < 4 else "low"] for i in range(8)
]
GOOD_CSV = _csv([HEADER, *GOOD_ROWS])


def _fifty_mb_body() -> bytes:
    body = "log line of a pasted stack dump " * (50 * 1024 * 1024 // 32)
    return _csv([HEADER, *GOOD_ROWS, ["big", body, "IT", "high"]])


def _attachment_only_mail() -> bytes:
    msg = EmailMessage()
    msg["From"] = "scanner@example.org"
    msg["To"] = "helpdesk@example.com"
    msg["Message-ID"] = "<scan-0001@example.org>"
    msg.add_attachment(b"%PDF-1.4 scanned invoice", maintype="application", subtype="pdf", filename="scan.pdf")
    return bytes(msg)


def _mail(message_id: str, subject: str | None, body: str, subtype: str = "plain") -> bytes:
    msg = EmailMessage()
    msg["From"] = "Kunde <kunde@example.org>"
    msg["To"] = "helpdesk@example.com"
    msg["Message-ID"] = message_id
    if subject is not None:
        msg["Subject"] = subject
    msg.set_content(body, subtype=subtype)
    return bytes(msg)


ONE_MB_BODY = "The VPN client drops the tunnel every few minutes since the update. " * (1024 * 1024 // 68)
HTML_ONLY = (
    "<html><head><style>p { color: red }</style></head>"
    "<body><p>Invoice <b>4711</b> was charged twice</p><script>track()</script></body></html>"
)
HTML_NO_TEXT = '<html><body><img src="cid:logo"><br>&nbsp;<table><tr><td></td></tr></table></body></html>'


CASES: list[Case] = [
    # ------------------------------------------------------------------ training data: loader and `ticketd train`
    Case(
        "csv-wrong-delimiter",
        "train-cli",
        "CSV separated by `;` (a spreadsheet export)",
        "exit 2; names the delimiter; no store created",
        data=("tickets.csv", _csv([HEADER, *GOOD_ROWS], delimiter=";")),
        status=2,
        culprit=("{file}:1:", "semicolon-separated", "comma-separated"),
        expect={"store": "absent"},
    ),
    Case(
        "csv-missing-text-column",
        "data",
        "CSV without `text` or `subject`/`body`",
        "DatasetError naming the column it needs and those it found",
        data=("tickets.csv", _csv([["id", "message", "queue"], ["1", "a", "X"], ["2", "b", "X"]])),
        culprit=("{file}:1 column 'text':", "missing text column", "found id, message, queue"),
    ),
    Case(
        "csv-missing-label-column",
        "train-cli",
        "CSV without `queue`/`label`/`priority`",
        "exit 2; names the label columns it needs; existing store unchanged",
        data=("tickets.csv", _csv([["id", "text"], ["1", "printer broken"], ["2", "vpn down"]])),
        status=2,
        culprit=("{file}:2:", "no label column", "priority, queue"),
        expect={"store": "existing"},
    ),
    Case(
        "csv-bom",
        "data",
        "UTF-8 CSV with a byte-order mark (Excel)",
        "accepted: the BOM is dropped, the first column keeps its name",
        data=("tickets.csv", b"\xef\xbb\xbf" + GOOD_CSV),
        expect={"rows": 8, "first_id": "0"},
    ),
    Case(
        "csv-latin1",
        "train-cli",
        "CSV saved as Latin-1 (`é` as byte 0xe9)",
        "exit 2; names line and byte; existing store unchanged",
        data=("tickets.csv", GOOD_CSV + "9,caf\xe9 machine broken,IT,low\n".encode("latin-1")),
        status=2,
        culprit=("{file}:10:", "not valid UTF-8 (byte 0xe9", "re-save the file as UTF-8"),
        expect={"store": "existing"},
    ),
    Case(
        "csv-empty-file",
        "train-cli",
        "a 0-byte file",
        "exit 2; `file is empty`; no store created",
        data=("tickets.csv", b""),
        status=2,
        culprit=("{file}:1:", "file is empty"),
        expect={"store": "absent"},
    ),
    Case(
        "csv-header-only",
        "data",
        "CSV with a header and no rows",
        "DatasetError `no data rows` at line 2",
        data=("tickets.csv", _csv([HEADER])),
        culprit=("{file}:2:", "no data rows"),
    ),
    Case(
        "csv-single-class",
        "train-cli",
        "every ticket has the same queue",
        "exit 2 before training starts; names the label and its only class; no store created",
        data=("tickets.csv", _csv([HEADER, *([r[0], r[1], "IT", r[3]] for r in GOOD_ROWS)])),
        status=2,
        culprit=("{file}:2 column 'queue':", "queue label has one class only ('IT' in all 8 rows)"),
        expect={"store": "absent"},
    ),
    Case(
        "csv-label-with-one-example",
        "data",
        "a queue label that occurs once",
        "DatasetError naming line, column and label",
        data=("tickets.csv", GOOD_CSV + b"9,new queue ticket,Facilities,low\n"),
        culprit=("{file}:10 column 'queue':", "queue label 'Facilities' has 1 example(s); at least 2"),
    ),
    Case(
        "csv-50mb-body",
        "train-cli",
        "one ticket body of 50 MB",
        "exit 2 naming the line (no 800 MB parse); existing store unchanged",
        data=("tickets.csv", _fifty_mb_body),
        status=2,
        culprit=("{file}:10:", "a field is longer than 131072 characters", "shorten that field"),
        expect={"store": "existing"},
    ),
    Case(
        "json-malformed",
        "data",
        "JSON array with a syntax error on line 2",
        "DatasetError naming the line",
        data=("tickets.json", b'[{"text": "a", "queue": "X"},\n {"text": "b", "queue": }]\n'),
        culprit=("{file}:2:", "invalid JSON: Expecting value"),
    ),
    Case(
        "json-not-objects",
        "data",
        "JSON array of strings instead of objects",
        "DatasetError naming the line and what it found",
        data=("tickets.json", b'["printer broken", "vpn down"]'),
        culprit=("{file}:1:", "expected a JSON object, found str"),
    ),
    Case(
        "jsonl-malformed",
        "train-cli",
        "JSON lines with a broken third line",
        "exit 2 naming line 3; `--out` directory not created",
        data=(
            "tickets.jsonl",
            b'{"text": "a", "queue": "X"}\n{"text": "b", "queue": "X"}\n{"text": "c" "queue": "Y"}\n',
        ),
        status=2,
        culprit=("{file}:3:", "invalid JSON: Expecting ',' delimiter"),
        expect={"store": "out"},
    ),
    # ------------------------------------------------------------------ configuration
    Case(
        "config-unknown-key",
        "config",
        "`api.colour: blue` (a typo or unknown key)",
        "check-config exit 2; names file, line, key and the known keys",
        data={"api": {"enabled": False, "colour": "blue"}},
        status=2,
        culprit=("{file}:{line}: api.colour: unknown key (known: allowed_hosts, dashboard, enabled, failed_auth",),
        expect={"line_of": "colour"},
    ),
    Case(
        "config-wrong-type",
        "config",
        "`routing.poll_interval: often`",
        "check-config exit 2; names file, line, YAML path and the expected type",
        data={"routing": {"poll_interval": "often"}},
        status=2,
        culprit=("{file}:{line}: connectors[0].routing.poll_interval: Input should be a valid number",),
        expect={"line_of": "poll_interval"},
    ),
    Case(
        "config-missing-secret",
        "config",
        "`password: ${TICKETD_BAD_INPUT_PASSWORD}` with the variable unset",
        "check-config exit 2; names the key and the variable, never a value",
        data={"unset": True},
        status=2,
        culprit=("{file}:{line}: connectors[0].password: environment variable TICKETD_BAD_INPUT_PASSWORD is not set",),
        expect={"line_of": "password"},
    ),
    Case(
        "config-short-token",
        "config",
        "`api.tokens: [short-token]` (11 characters)",
        "check-config exit 2; names the line and the command that makes a good token, never the token",
        data={"api": {"enabled": True, "tokens": ["short-token"]}},
        status=2,
        culprit=(
            "{file}:{line}: api.tokens[0]: a token of 11 characters can be guessed; use at least 24",
            "secrets.token_urlsafe(32)",
        ),
        expect={"line_of": "short-token", "not_echoed": "short-token"},
    ),
    Case(
        "config-proxy-not-an-address",
        "config",
        "`api.trusted_proxies: [ingress-nginx]` (a name, not an address)",
        "check-config exit 2; names the line and the form expected",
        data={"api": {"enabled": True, "trusted_proxies": ["ingress-nginx"]}},
        status=2,
        culprit=("{file}:{line}: api.trusted_proxies[0]: 'ingress-nginx' is not an IP address or network",),
        expect={"line_of": "ingress-nginx"},
    ),
    Case(
        "config-unreachable-url",
        "check",
        "a Znuny connector at a closed local port",
        "`ticketd check` exit 1; names the connector, the error and the URL (without credentials)",
        status=1,
        culprit=("helpdesk-a: TransientError:", "ConnectError", "(http://127.0.0.1:{port}/otrs)", "1 problem(s)"),
    ),
    # ------------------------------------------------------------------ REST API
    Case(
        "api-train-data-wrong-content-type",
        "api",
        "`POST /api/v1/train-data` as `text/plain`",
        "415 naming the content type and the accepted ones; stored dataset unchanged",
        data={"path": "/api/v1/train-data", "content": GOOD_CSV, "type": "text/plain"},
        status=415,
        culprit=("unsupported content type 'text/plain'", "text/csv"),
        expect={"code": "unsupported_media_type"},
    ),
    Case(
        "api-train-data-bad-row",
        "api",
        "`POST /api/v1/train-data` with an empty queue on line 5",
        "400 `invalid_dataset` with line and column; no new version, v1 unchanged",
        data={
            "path": "/api/v1/train-data",
            "content": GOOD_CSV.replace(b"3,ticket number 3 about things,IT", b"3,ticket number 3 about things,"),
            "type": "text/csv",
        },
        status=400,
        culprit=("line 5 column 'queue': empty queue label",),
        expect={"code": "invalid_dataset", "details": [{"line": 5, "column": "queue", "message": "empty queue label"}]},
    ),
    Case(
        "api-train-data-huge-body",
        "api",
        "`POST /api/v1/train-data` over `api.max_body_bytes`",
        "413 naming the setting; nothing stored",
        data={"path": "/api/v1/train-data", "content": GOOD_CSV * (2 * MAX_BODY // len(GOOD_CSV)), "type": "text/csv"},
        status=413,
        culprit=(f"exceeds the limit of {MAX_BODY} bytes (api.max_body_bytes)",),
        expect={"code": "body_too_large"},
    ),
    Case(
        "api-classify-wrong-content-type",
        "api",
        "`POST /api/v1/classify` with a JSON body sent as `text/plain`",
        "415 naming the content type (was a vague 422 about dictionaries)",
        data={"path": "/api/v1/classify", "content": b'{"ticket_data": "printer broken"}', "type": "text/plain"},
        status=415,
        culprit=("unsupported content type 'text/plain'", "application/json"),
        expect={"code": "unsupported_media_type"},
    ),
    Case(
        "api-classify-missing-ticket-data",
        "api",
        '`POST /api/v1/classify` with `{"text": …}`',
        "422 naming `ticket_data` (and `body`) as required, without echoing the input",
        data={"path": "/api/v1/classify", "json": {"text": "Customer 4711 password hunter2"}},
        status=422,
        culprit=("body.TicketData.ticket_data: Field required",),
        expect={"code": "validation_error", "loc": ["body", "TicketData", "ticket_data"], "not_echoed": "hunter2"},
    ),
    Case(
        "api-classify-non-string",
        "api",
        '`POST /api/v1/classify` with `{"ticket_data": 42}`',
        "422 naming `ticket_data` and the expected type",
        data={"path": "/api/v1/classify", "json": {"ticket_data": 42}},
        status=422,
        culprit=("body.TicketData.ticket_data: Input should be a valid string",),
        expect={"code": "validation_error", "loc": ["body", "TicketData", "ticket_data"]},
    ),
    Case(
        "api-classify-malformed-json",
        "api",
        "`POST /api/v1/classify` with truncated JSON",
        "422 `json_invalid` with the position",
        data={"path": "/api/v1/classify", "content": b'{"ticket_data": ', "type": "application/json"},
        status=422,
        culprit=("invalid request: body.",),
        expect={"code": "validation_error", "type": "json_invalid"},
    ),
    Case(
        "api-classify-huge-body",
        "api",
        "`POST /api/v1/classify` with 2 MiB of ticket text",
        "413 naming `api.max_body_bytes`",
        data={"path": "/api/v1/classify", "json": {"ticket_data": "x" * (2 * MAX_BODY)}},
        status=413,
        culprit=(f"exceeds the limit of {MAX_BODY} bytes (api.max_body_bytes)",),
        expect={"code": "body_too_large"},
    ),
    Case(
        "api-classify-no-text",
        "api",
        '`POST /api/v1/classify` with `{"ticket_data": "<p>&nbsp;</p>"}`',
        "fallback: 200 with confidence 0 for every label (nothing to classify)",
        data={"path": "/api/v1/classify", "json": {"ticket_data": "<p>&nbsp;</p>"}},
        status=200,
        expect={"confidence": 0.0},
    ),
    Case(
        "api-classify-nested-json",
        "api",
        "`POST /api/v1/classify` with JSON nested 50,000 levels deep",
        "400 `invalid_json` (was a 422 saying the body is not UTF-8)",
        data={
            "path": "/api/v1/classify",
            "content": b'{"ticket_data": "x", "a": ' + DEEP + b"}",
            "type": "application/json",
        },
        status=400,
        culprit=("the JSON body is nested too deeply",),
        expect={"code": "invalid_json"},
    ),
    Case(
        "api-train-data-nested-json",
        "api",
        "`POST /api/v1/train-data` as JSON lines whose line 1 is nested 50,000 levels deep",
        "400 `invalid_dataset` naming the line (was a 500 that logged the token and the text)",
        data={"path": "/api/v1/train-data", "content": DEEP, "type": "application/x-ndjson"},
        status=400,
        culprit=("line 1: invalid JSON: nested too deeply",),
        expect={"code": "invalid_dataset"},
    ),
    Case(
        "api-unknown-host",
        "api",
        "a request whose `Host` is a name the server does not answer to (a DNS-rebinding page)",
        "400 `host_not_allowed` naming `api.allowed_hosts`",
        data={"path": "/api/v1/classify", "json": {"ticket_data": "VPN"}, "headers": {"Host": "rebind.example"}},
        status=400,
        culprit=("does not answer to the host 'rebind.example'", "api.allowed_hosts"),
        expect={"code": "host_not_allowed"},
    ),
    # ------------------------------------------------------------------ tickets through the daemon
    Case(
        "ticket-empty-body",
        "ticket",
        "mail with a subject and an empty body",
        "fallback: classified on the subject alone and routed",
        data=_mail("<empty-body@example.org>", "Invoice 4711 charged twice", ""),
        expect={"text": "Invoice 4711 charged twice", "state": "applied", "folder": "Queues/Billing"},
    ),
    Case(
        "ticket-only-html",
        "ticket",
        "mail whose only part is HTML (no subject)",
        "markup, styles and scripts dropped; the visible text is classified and routed",
        data=_mail("<html-only@example.org>", None, HTML_ONLY, subtype="html"),
        expect={"text": "Invoice 4711 was charged twice", "state": "applied", "folder": "Queues/Billing"},
    ),
    Case(
        "ticket-html-without-text",
        "ticket",
        "HTML mail with only an image and `&nbsp;` (no subject)",
        "fallback: confidence 0, left as is in the inbox, ledger `skipped`",
        data=_mail("<html-empty@example.org>", None, HTML_NO_TEXT, subtype="html"),
        expect={"text": "", "state": "skipped", "folder": ""},
    ),
    Case(
        "ticket-only-attachment",
        "ticket",
        "mail with a PDF attachment and no text or subject",
        "fallback: confidence 0, left as is in the inbox, ledger `skipped`",
        data=_attachment_only_mail(),
        expect={"text": "", "state": "skipped", "folder": ""},
    ),
    Case(
        "ticket-1mb-text",
        "ticket",
        "mail with 1 MB of body text",
        f"truncated to {MAX_TEXT_CHARS} characters (subject first), then to the model's max tokens; routed",
        data=_mail("<one-mb@example.org>", "VPN down", ONE_MB_BODY),
        expect={"prefix": "VPN down. The VPN client drops", "state": "applied", "folder": "Queues/IT Support"},
    ),
    Case(
        "ticket-znuny-html-article",
        "znuny",
        "Znuny article stored as `text/html`",
        "the connector reduces it to text before the model sees it",
        data={"Body": HTML_ONLY, "MimeType": "text/html", "SenderType": "customer"},
        expect={"body": "Invoice 4711 was charged twice"},
    ),
]

IDS = [c.id for c in CASES]


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def fast_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TF-IDF-only model on the bundled starter tickets (seconds, not the session's transformer minute)."""
    from daemon.ml.train import TrainOptions, train

    out = tmp_path_factory.mktemp("bad-inputs") / "model"
    train(STARTER, out, TrainOptions(tfidf_weights=(1.0,), seed=3))
    return out


def _fake_store(root: Path) -> None:
    """A store holding one version, v1, current: what a rejected `train --store` must leave alone."""
    store = ModelStore(root)
    staging = store.staging_dir()
    (staging / "model").mkdir()
    (staging / "model" / "metadata.json").write_text('{"label_names": []}', encoding="utf-8")
    store.promote(store.add(staging / "model"))
    shutil.rmtree(staging)


def _snapshot(root: Path) -> dict[str, str]:
    """Every path under `root` with its content (or link target), to prove nothing changed."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            out[rel] = path.read_text(encoding="utf-8", errors="replace")
        else:
            out[rel] = "dir"
    return out


def _run_cli(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != SECRET_ENV}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "daemon", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120
    )


def _one_clear_line(stderr: str) -> str:
    """The CLI's error: one `ticketd: error:` line per problem, never a traceback."""
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert lines and lines[0].startswith("ticketd: error: "), stderr
    return stderr


def _fill(fragment: str, **values: Any) -> str:
    for key, value in values.items():
        fragment = fragment.replace("{" + key + "}", str(value))
    return fragment


# ---------------------------------------------------------------------------------------------- runners


def run_data(case: Case, tmp_path: Path, **_: Any) -> None:
    name, raw = case.data
    path = tmp_path / name
    path.write_bytes(raw() if callable(raw) else raw)
    if not case.culprit:
        dataset = load_dataset(path)
        assert len(dataset) == case.expect["rows"]
        assert dataset.examples[0].id == case.expect["first_id"]  # the `id` column was found despite the BOM
        assert not any("\ufeff" in t for t in dataset.texts())
        return
    with pytest.raises(DatasetError) as info:
        load_dataset(path)
    message = str(info.value)
    assert "\n" not in message
    for fragment in case.culprit:
        assert _fill(fragment, file=path) in message, message
    assert info.value.file == str(path)


def run_train_cli(case: Case, tmp_path: Path, **_: Any) -> None:
    name, raw = case.data
    path = tmp_path / name
    path.write_bytes(raw() if callable(raw) else raw)
    store = tmp_path / "store"
    out = tmp_path / "out"
    if case.expect["store"] == "existing":
        _fake_store(store)
    before = _snapshot(store) if store.exists() else None
    dest = ["--out", str(out)] if case.expect["store"] == "out" else ["--store", str(store), "--promote"]
    result = _run_cli(["train", name, *dest, "--tfidf-only"], cwd=tmp_path)
    assert result.returncode == case.status, result.stderr
    err = _one_clear_line(result.stderr)
    assert len(err.strip().splitlines()) == 1, err
    for fragment in case.culprit:
        assert _fill(fragment, file=name) in err, err
    assert result.stdout == ""
    if case.expect["store"] == "existing":
        assert _snapshot(store) == before  # no new version, `current` still v1, no staging left
        assert ModelStore(store).current() == "v1"
    elif case.expect["store"] == "absent":
        assert not store.exists(), sorted(p.name for p in store.rglob("*"))
    else:
        assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({name, *(["store"] if before else [])})


def _config(tmp_path: Path, patch: dict[str, Any], store: Path) -> dict[str, Any]:
    connector: dict[str, Any] = {
        "type": "znuny",
        "name": "helpdesk-a",
        "url": "http://127.0.0.1:9/otrs",
        "user": "agent1",
        "password": "${" + SECRET_ENV + "}",
        "inbound_queues": ["Raw"],
        "queues": ["Billing", "Misc"],
    }
    if "routing" in patch:
        connector["routing"] = patch["routing"]
    return {
        "model": {"store": str(store)},
        "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
        "api": patch.get("api", {"enabled": False}),
        "connectors": [connector],
    }


def run_config(case: Case, tmp_path: Path, **_: Any) -> None:
    path = tmp_path / "config.yaml"
    text = yaml.safe_dump(_config(tmp_path, case.data, tmp_path / "models"), sort_keys=False)
    path.write_text(text, encoding="utf-8")
    line = next(i for i, t in enumerate(text.splitlines(), 1) if case.expect["line_of"] in t)
    env = {} if case.data.get("unset") else {SECRET_ENV: SECRET}
    # In-process: load_config raises ConfigError naming the culprit, and only that one problem.
    saved = os.environ.pop(SECRET_ENV, None)
    try:
        os.environ.update(env)
        with pytest.raises(ConfigError) as info:
            load_config(path)
    finally:
        os.environ.pop(SECRET_ENV, None)
        if saved is not None:
            os.environ[SECRET_ENV] = saved
    (problem,) = info.value.problems  # that one problem, and nothing else
    for fragment in case.culprit:
        assert _fill(fragment, file=path, line=line) in problem, problem
    # As an admin runs it: exit 2, the same line on stderr, no traceback, no secret.
    result = _run_cli(["check-config", "config.yaml"], cwd=tmp_path, env=env)
    assert result.returncode == case.status
    err = _one_clear_line(result.stderr)
    for fragment in case.culprit:
        assert _fill(fragment, file="config.yaml", line=line) in err, err
    assert SECRET not in err + result.stdout
    if "not_echoed" in case.expect:
        assert case.expect["not_echoed"] not in err + result.stdout
    assert not (tmp_path / "models").exists() and not (tmp_path / "state.db").exists()  # contacted nothing


def run_check(case: Case, tmp_path: Path, fast_model: Path, **_: Any) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = linked_store(tmp_path / "models", fast_model, 1)
    config = _config(tmp_path, {}, store)
    config["connectors"][0]["url"] = f"http://agent1:{SECRET}@127.0.0.1:{port}/otrs"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    result = _run_cli(["check", "--config", "config.yaml"], cwd=tmp_path, env={SECRET_ENV: SECRET})
    output = result.stdout + result.stderr
    assert result.returncode == case.status, output
    assert "Traceback" not in output
    assert "model: v1" in result.stdout  # the model is fine: the one problem is the helpdesk
    problem = next(line for line in result.stdout.splitlines() if line.startswith("helpdesk-a:"))
    for fragment in case.culprit[:-1]:
        assert _fill(fragment, port=port) in problem, problem
    assert _fill(case.culprit[-1], port=port) in result.stdout
    assert SECRET not in output  # neither the password nor the URL's userinfo


@pytest.fixture
def api_client(tmp_path: Path, fast_model: Path) -> Iterator[TestClient]:
    """The API over one stored model version and one stored dataset (v1), with a 1 MiB body limit."""
    base = tmp_path / "api"
    root = linked_store(base / "models", fast_model, 1)
    holder = ModelHolder(root, threads=1)
    holder.load()
    services = Services(
        api=ApiSection(tokens=[SecretStr(TOKEN)], max_body_bytes=MAX_BODY),
        model=holder,
        datasets_dir=base / "datasets",
        workdir=base / "work",
        metrics=Metrics(),
        policy=FAST_POLICY,
    )
    with TestClient(create_app(services), base_url="http://localhost", raise_server_exceptions=False) as client:
        first = client.post("/api/v1/train-data", content=GOOD_CSV, headers={**AUTH, "content-type": "text/csv"})
        assert first.status_code == 201 and first.json()["version"] == "v1"
        yield client


def run_api(case: Case, tmp_path: Path, api_client: TestClient, **_: Any) -> None:
    services: Services = api_client.app.state.services  # type: ignore[attr-defined]
    datasets = services.datasets.root
    before = _snapshot(datasets)
    request = case.data
    if "json" in request:
        response = api_client.post(
            request["path"], json=request["json"], headers={**AUTH, **request.get("headers", {})}
        )
    else:
        headers = {**AUTH, "content-type": request["type"]}
        response = api_client.post(request["path"], content=request["content"], headers=headers)
    assert response.status_code == case.status, response.text
    body = response.json()
    assert "Traceback" not in response.text
    if case.status == 200:
        assert body["confidence"] == case.expect["confidence"]
        assert all(head["confidence"] == case.expect["confidence"] for head in body["labels"].values())
        assert body["model_version"] == "v1"
    else:
        error = body["error"]
        assert error["code"] == case.expect["code"]
        for fragment in case.culprit:
            assert fragment in error["message"], error
        if "details" in case.expect:
            assert error["details"] == case.expect["details"]
        if "loc" in case.expect:
            assert case.expect["loc"] in [d["loc"] for d in error["details"]]
        if "type" in case.expect:
            assert [d["type"] for d in error["details"]] == [case.expect["type"]]
        if "not_echoed" in case.expect:
            assert case.expect["not_echoed"] not in response.text
    # Nothing replaced, nothing half-written: v1 as it was, no temp upload left.
    assert _snapshot(datasets) == before
    assert services.datasets.versions() == ["v1"]


class RecordingModel(LoadedModel):
    """The real loaded model; remembers the exact text each ticket was classified on."""

    def __init__(self, classifier: Classifier) -> None:
        super().__init__(classifier, "v-fast")
        self.texts: list[str] = []
        inner = classifier.predict_texts

        def record(texts: Any, batch_size: int = 1, *, explain: bool = False) -> list[dict[str, dict[str, Any]]]:
            self.texts.extend(texts)
            return inner(texts, batch_size, explain=explain)

        classifier.predict_texts = record  # type: ignore[method-assign]


def _folders(root: Path) -> dict[str, int]:
    """Mails per Maildir++ folder ('' is the inbox, `Queues/Billing` is `.Queues.Billing`)."""
    out = {}
    for folder in [root, *root.glob(".*")]:
        if (folder / "cur").is_dir():
            name = "" if folder == root else folder.name[1:].replace(".", "/")
            count = sum(1 for sub in ("cur", "new") for p in (folder / sub).iterdir() if not p.name.startswith("."))
            if count:
                out[name] = count
    return out


def run_ticket(case: Case, tmp_path: Path, fast_model: Path, **_: Any) -> None:
    root = tmp_path / "Maildir"
    mailbox.Maildir(str(root), create=True).add(case.data)
    for queue in ("Billing", "HR", "IT Support", "Sales"):  # the model's queues exist as folders
        maildir_files.create_folder(root, f"Queues/{queue}")
    model = RecordingModel(Classifier.load(fast_model))
    state = State.open(f"sqlite:///{tmp_path / 'state.db'}")
    rules = {"queue": LabelRule(threshold=0.5), "priority": LabelRule(threshold=0.99)}
    connector = MaildirConnector(MaildirConfig(path=root))
    pipeline = Pipeline(
        "mail", connector, state, lambda: model, rules, entry_factory=LedgerEntry, row_factory=TrainingRow
    )
    try:
        tracemalloc.start()
        with capture_logs() as logs:
            assert asyncio.run(pipeline.poll()) == 1
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        (entry,) = state.ledger_entries()
    finally:
        state.close()
    # The model saw exactly the documented text.
    (text,) = model.texts
    if "prefix" in case.expect:
        assert len(text) == MAX_TEXT_CHARS and text.startswith(case.expect["prefix"])
        assert peak < 64 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB for a 1 MB ticket"
    else:
        assert text == case.expect["text"]
    # The ledger holds what was decided, and the mailbox shows it.
    assert entry.predictions == model.classifier.predict_texts([text])[0]
    assert entry.state == case.expect["state"]
    assert _folders(root) == {case.expect["folder"]: 1}
    if case.expect["state"] == "skipped":
        assert all(p["confidence"] == 0.0 for p in entry.predictions.values())
        assert entry.detail == "below threshold everywhere: left as is"
        assert entry.decision["reasons"] == {
            "queue": "no text to classify: left as is",
            "priority": "no text to classify: left as is",
        }
        assert any(e["event"] == "ticket left as is" and e["ticket_id"] == entry.ticket_id for e in logs)
    else:
        assert entry.decision["queue"] == case.expect["folder"].removeprefix("Queues/")
        assert any(e["event"] == "ticket routed" and e["ticket_id"] == entry.ticket_id for e in logs)
    # Ticket text never reaches the log (log.include_ticket_text is off by default).
    words = [w for w in re.findall(r"[A-Za-z]{5,}", text)[:5] if w not in {"Queues", "Support"}]
    logged = json.dumps(logs, default=str)
    assert not [w for w in words if w in logged], words


def run_znuny(case: Case, **_: Any) -> None:
    raw = {
        "TicketID": "7",
        "TicketNumber": "2024070100007",
        "Title": "",
        "Queue": "Raw",
        "Created": "2024-07-01 09:00:00",
    }
    ticket = to_ticket(raw, ZoneInfo("UTC"), article=case.data)
    assert ticket.body == case.expect["body"]


RUNNERS: dict[str, Callable[..., None]] = {
    "data": run_data,
    "train-cli": run_train_cli,
    "config": run_config,
    "check": run_check,
    "api": run_api,
    "ticket": run_ticket,
    "znuny": run_znuny,
}


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_bad_input(case: Case, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    needs = {"check": ["fast_model"], "ticket": ["fast_model"], "api": ["api_client"]}.get(case.surface, [])
    fixtures = {name: request.getfixturevalue(name) for name in needs}
    RUNNERS[case.surface](case, tmp_path=tmp_path, **fixtures)


def test_catalogue_covers_the_issue() -> None:
    """At least 24 cases, unique ids, and every item the issue lists at least once."""
    assert len(CASES) >= 24
    assert len(set(IDS)) == len(IDS)
    required = [
        "csv-wrong-delimiter", "csv-missing-text-column", "csv-missing-label-column", "csv-bom", "csv-latin1",
        "csv-empty-file", "csv-single-class", "csv-50mb-body", "json-malformed", "jsonl-malformed",
        "config-unknown-key", "config-wrong-type", "config-missing-secret", "config-unreachable-url",
        "api-classify-wrong-content-type", "api-train-data-wrong-content-type", "api-classify-missing-ticket-data",
        "api-classify-non-string", "api-classify-huge-body", "ticket-empty-body", "ticket-only-html",
        "ticket-only-attachment", "ticket-1mb-text",
    ]  # fmt: skip
    assert not [r for r in required if r not in IDS]
    assert {c.surface for c in CASES} == set(RUNNERS)


def _doc_ids() -> list[str]:
    rows = [line for line in DOC.read_text(encoding="utf-8").splitlines() if line.startswith("| `")]
    return [re.match(r"\| `([^`]+)`", line).group(1) for line in rows]  # type: ignore[union-attr]


def test_docs_list_the_same_cases() -> None:
    """docs/bad-inputs.md and this table name the same cases in the same order, so neither drifts."""
    assert _doc_ids() == IDS
