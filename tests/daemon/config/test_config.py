"""Configuration: the example validates, defaults derive from the state directory, every error names its line."""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from daemon.config import Config, LabelRouting, default_config, load_config, state_dir
from daemon.errors import ConfigError, TicketdError
from tests.support.paths import ROOT

EXAMPLE = ROOT / "config.example.yaml"

# A minimal valid connector entry; tests append keys below it.
ZAMMAD = """\
connectors:
  - type: zammad
    url: https://zammad.example.org
    token: abc
    inbound_groups: [Users]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def error(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    return str(exc.value)


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based line of the n-th line containing `needle` (so tests do not hard-code line numbers)."""
    hits = [i for i, line in enumerate(textwrap.dedent(text).splitlines(), 1) if needle in line]
    return hits[occurrence - 1]


@pytest.fixture(autouse=True)
def _state_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    directory = tmp_path / "state"
    monkeypatch.setenv("STATE_DIRECTORY", str(directory))
    return directory


def example_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """config.example.yaml with its secret files pointing at real files and its variables set."""
    monkeypatch.setenv("ZNUNY_PASSWORD", "znuny-secret")
    monkeypatch.setenv("ZAMMAD_TOKEN", "zammad-secret")
    (tmp_path / "imap-password").write_text("imap-secret\n", encoding="utf-8")
    (tmp_path / "api-tokens").write_text(
        "# one per line\napi-secret-1-0123456789-abcdef\n\napi-secret-2-0123456789-abcdef\n", encoding="utf-8"
    )
    text = EXAMPLE.read_text(encoding="utf-8")
    text = text.replace("/etc/ticketd/imap-password", str(tmp_path / "imap-password"))
    text = text.replace("/etc/ticketd/api-tokens", str(tmp_path / "api-tokens"))
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# --- valid configurations ---------------------------------------------------------------------------------


def test_the_full_example_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(example_copy(tmp_path, monkeypatch))
    assert [(c.name, c.type) for c in config.connectors] == [
        ("znuny-main", "znuny"),
        ("zammad-support", "zammad"),
        ("mailbox", "imap"),
    ]
    znuny, zammad, imap = config.connectors
    assert znuny.connection.type == "znuny" and znuny.routing.mode == "live"
    from daemon.pipeline.routing import label_rules

    queue, rule = znuny.routing.labels["queue"], label_rules(znuny)["queue"]
    assert rule.target("IT Support") == "Technical Support" and rule.target("Unmapped") == "Unmapped"
    assert queue.threshold == 0.7 and queue.fallback_name is None
    assert znuny.routing.labels["priority"].fallback_name == "3 normal"
    assert zammad.routing.mode == "shadow" and set(zammad.routing.labels) == {"queue"}
    assert imap.routing.labels["queue"].fallback == {"queue": "Triage"} and imap.routing.note is False
    assert config.model.store == Path("/var/lib/ticketd/models")
    assert config.state.url == "sqlite:////var/lib/ticketd/state.db"
    assert config.retrain.cron == "0 3 * * 0" and config.retrain.holdout_share == 0.2
    assert [t.get_secret_value() for t in config.api.tokens] == [
        "api-secret-1-0123456789-abcdef",
        "api-secret-2-0123456789-abcdef",
    ]
    assert config.log.level == "info" and config.log.json is None


def test_defaults_derive_from_the_state_directory(tmp_path: Path, _state_directory: Path) -> None:
    config = load_config(write(tmp_path, ZAMMAD))
    entry = config.connectors[0]
    assert entry.name == "zammad"  # name defaults to the type
    assert entry.routing.mode == "live" and set(entry.routing.labels) == {"queue", "priority"}
    assert entry.routing.labels["queue"] == LabelRouting(threshold=0.6, fallback="leave")
    assert config.model.store == _state_directory / "models"
    assert config.state.url == f"sqlite:///{_state_directory / 'state.db'}"
    assert (config.api.host, config.api.port, config.api.tokens) == ("127.0.0.1", 8080, [])
    assert config.retrain.enabled and config.retrain.cron == "0 3 * * 0"


def test_without_systemd_the_state_directory_is_dot_ticketd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STATE_DIRECTORY")
    monkeypatch.chdir(tmp_path)
    assert state_dir() == tmp_path / ".ticketd"
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/ticketd:/var/lib/other")  # several StateDirectory= entries
    assert state_dir() == Path("/var/lib/ticketd")


def test_commented_out_sections_mean_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ZAMMAD + "    routing:\n    #  mode: shadow\napi:\n#  port: 9000\n"))
    assert config.api.port == 8080 and config.connectors[0].routing.mode == "live"


def test_environment_references_in_daemon_sections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", "pg-secret")
    monkeypatch.setenv("API_TOKEN", "api-secret-0123456789-abcdef")
    monkeypatch.setenv("TRIAGE", "Triage")
    config = load_config(
        write(
            tmp_path,
            ZAMMAD
            + "    routing:\n      labels:\n        queue: {fallback: {queue: '${TRIAGE}'}}\n"
            + "state:\n  url: postgresql+psycopg://ticketd:${PGPASSWORD}@db/ticketd\n"
            + "api:\n  tokens: ['${API_TOKEN}']\n",
        )
    )
    assert config.state.url == "postgresql+psycopg://ticketd:pg-secret@db/ticketd"
    assert config.state.safe_url == "postgresql+psycopg://ticketd:***@db/ticketd"
    assert config.api.tokens[0].get_secret_value() == "api-secret-0123456789-abcdef"
    assert config.connectors[0].routing.labels["queue"].fallback_name == "Triage"


def test_secret_files_for_the_daemon_sections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "db").write_text("postgresql+psycopg://u:pw@db/t\n", encoding="utf-8")
    (credentials / "tokens").write_text("one-0123456789-0123456789\n  two-0123456789-0123456789  \n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))  # systemd LoadCredential=
    config = load_config(
        write(
            tmp_path,
            ZAMMAD
            + "state:\n  url_file: ${CREDENTIALS_DIRECTORY}/db\n"
            + "api:\n  tokens_file: ${CREDENTIALS_DIRECTORY}/tokens\n",
        )
    )
    assert config.state.url == "postgresql+psycopg://u:pw@db/t"
    assert [t.get_secret_value() for t in config.api.tokens] == [
        "one-0123456789-0123456789",
        "two-0123456789-0123456789",
    ]
    (credentials / "readers").write_text("three-0123456789-0123456789\n", encoding="utf-8")
    config = load_config(write(tmp_path, ZAMMAD + "api:\n  read_tokens_file: ${CREDENTIALS_DIRECTORY}/readers\n"))
    assert [t.get_secret_value() for t in config.api.read_tokens] == ["three-0123456789-0123456789"]


def test_a_token_has_one_role(tmp_path: Path) -> None:
    message = error(
        tmp_path,
        ZAMMAD + "api:\n  tokens: [same-token-0123456789-abcdef]\n  read_tokens: [same-token-0123456789-abcdef]\n",
    )
    assert "give each token one role" in message and "same-token-0123456789" not in message


MERGED = """\
connectors:
  - type: zammad
    name: a
    url: https://a.example.org
    token: t
    inbound_groups: [Users]
    routing: &shared
      mode: shadow
      poll_interval: {interval}
  - type: zammad
    name: b
    url: https://b.example.org
    token: t
    inbound_groups: [Users]
    routing:
      <<: *shared
      note: false
"""


def test_yaml_merge_keys_share_a_routing_block(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MERGED.format(interval=30)))
    assert [c.routing.poll_interval for c in config.connectors] == [30, 30]
    assert config.connectors[1].routing.mode == "shadow" and config.connectors[1].routing.note is False
    # A bad value in the shared block is reported where it is written, for both entries.
    text = MERGED.format(interval=-1)
    message = error(tmp_path, text)
    line = line_of(text, "poll_interval")
    assert f":{line}: connectors[0].routing.poll_interval: Input should be greater than 0" in message
    assert f":{line}: connectors[1].routing.poll_interval: Input should be greater than 0" in message


def test_log_level_is_case_insensitive(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, ZAMMAD + "log: {level: DEBUG, json: true}\n")).log.level == "debug"


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ZAMMAD))
    with pytest.raises(ValidationError):
        config.api.port = 1


@pytest.mark.skipif(importlib.util.find_spec("connectors.maildir") is None, reason="connectors.maildir not built yet")
def test_default_config_validates(_state_directory: Path) -> None:
    config = default_config()
    assert isinstance(config, Config)
    (demo,) = config.connectors
    assert demo.type == "maildir" and demo.routing.mode == "live"
    assert str(getattr(demo.connection, "path", "")) == str(_state_directory / "demo-maildir")
    assert config.model.store == _state_directory / "models"
    assert config.state.url == f"sqlite:///{_state_directory / 'state.db'}"
    assert (config.api.host, config.api.port) == ("127.0.0.1", 8080)
    assert config.retrain.enabled


# --- every error names file, line and YAML path -------------------------------------------------------------

UNKNOWN_KEYS = {
    "top level": ("modle:\n  labels: [queue]\n", "modle:", "modle: unknown key; did you mean 'model'?"),
    "section": ("retrain:\n  crn: '0 3 * * *'\n", "crn:", "retrain.crn: unknown key; did you mean 'cron'?"),
    "routing label": (
        "    routing:\n      labels:\n        queue:\n          treshold: 0.9\n",
        "treshold",
        "connectors[0].routing.labels.queue.treshold: unknown key; did you mean 'threshold'?",
    ),
    "label name": (
        "    routing:\n      labels:\n        queu: {threshold: 0.9}\n",
        "queu:",
        "connectors[0].routing.labels.queu: unknown label; the daemon routes queue and priority",
    ),
    "connector key": (
        "    inbound_grups: [Other]\n",
        "inbound_grups",
        "connectors[0].inbound_grups: unknown key; did you mean 'inbound_groups'?",
    ),
    "secret file spelling": ("api:\n  token_file: /x\n", "token_file", "api.token_file: unknown key; did you mean"),
}


@pytest.mark.parametrize("case", UNKNOWN_KEYS, ids=list(UNKNOWN_KEYS))
def test_unknown_keys_name_their_line_at_every_depth(tmp_path: Path, case: str) -> None:
    extra, needle, expected = UNKNOWN_KEYS[case]
    text = ZAMMAD + extra
    message = error(tmp_path, text)
    assert f"config.yaml:{line_of(text, needle)}: {expected}" in message


def test_unknown_key_lists_the_known_ones(tmp_path: Path) -> None:
    message = error(tmp_path, ZAMMAD + "api:\n  hots: 0.0.0.0\n")
    assert "did you mean 'host'?" in message and "known: " in message and "tokens_file" in message


def test_the_issue_example_message(tmp_path: Path) -> None:
    text = ZAMMAD + "    routing:\n      labels:\n        queue:\n          threshold: 1.5\n"
    assert error(tmp_path, text) == (
        f"{tmp_path / 'config.yaml'}:{line_of(text, 'threshold')}: "
        "connectors[0].routing.labels.queue.threshold: Input should be less than or equal to 1"
    )


@pytest.mark.parametrize(
    ("extra", "needle", "expected"),
    [
        ("api:\n  port: eighty\n", "port:", "api.port: Input should be a valid integer"),
        ("api:\n  port: 70000\n", "port:", "api.port: Input should be less than or equal to 65535"),
        ("retrain: [cron]\n", "retrain:", "retrain: expected a mapping of keys"),
        ("model:\n  labels: queue\n", "labels:", "model.labels: expected a list"),
        ("model:\n  labels: [queue, queue]\n", "labels:", "model.labels: labels must not repeat"),
        ("model:\n  labels: [queue, urgency]\n", "labels:", "model.labels: unknown label 'urgency'"),
        ("log:\n  level: loud\n", "level:", "log.level: Input should be 'debug', 'info'"),
        ("    routing:\n      mode: dry\n", "mode:", "connectors[0].routing.mode: Input should be 'live' or 'shadow'"),
        ("    routing:\n      poll_interval: 0\n", "poll_interval", "poll_interval: Input should be greater than 0"),
        ("    per_page: 500\n", "per_page", "connectors[0].per_page: Input should be less than or equal to 200"),
        ("state:\n  url: /var/lib/state.db\n", "url: /var", "state.url: expected a database URL"),
    ],
)
def test_wrong_types_and_ranges_name_their_line(tmp_path: Path, extra: str, needle: str, expected: str) -> None:
    text = ZAMMAD + extra
    message = error(tmp_path, text)
    assert f"config.yaml:{line_of(text, needle)}: " in message and expected in message


@pytest.mark.parametrize(
    ("routing", "expected"),
    [
        ("queue: {fallback: somewhere}", "fallback must be 'leave', {queue: NAME} or {priority: NAME}"),
        ("queue: {fallback: {queue: A, priority: B}}", "fallback must be 'leave'"),
        ("queue: {fallback: {priority: high}}", "the queue label's fallback must be 'leave' or {queue: NAME}"),
        ("priority: {fallback: {queue: Billing}}", "the priority label's fallback must be 'leave' or {priority: NAME}"),
    ],
)
def test_fallback_shapes(tmp_path: Path, routing: str, expected: str) -> None:
    text = ZAMMAD + f"    routing:\n      labels:\n        {routing}\n"
    message = error(tmp_path, text)
    label = routing.split(":")[0]
    assert f":{line_of(text, label + ': {')}: connectors[0].routing.labels.{label}.fallback: {expected}" in message


def test_routed_label_must_be_a_model_label(tmp_path: Path) -> None:
    text = ZAMMAD + "    routing:\n      labels:\n        priority: {threshold: 0.5}\nmodel:\n  labels: [queue]\n"
    message = error(tmp_path, text)
    assert (
        f":{line_of(text, 'priority:')}: connectors[0].routing.labels.priority: the model has no 'priority'" in message
    )


def test_bad_cron_names_its_line(tmp_path: Path) -> None:
    text = ZAMMAD + "retrain:\n  enabled: true\n  cron: '0 3 * *'\n"
    message = error(tmp_path, text)
    assert f"config.yaml:{line_of(text, 'cron:')}: retrain.cron: not a valid crontab expression" in message
    text = ZAMMAD + "retrain:\n  cron: '61 3 * * 0'\n"
    assert f":{line_of(text, 'cron:')}: retrain.cron: not a valid crontab" in error(tmp_path, text)


def test_missing_environment_variable_in_a_daemon_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    text = ZAMMAD + "api:\n  port: 8080\n  tokens:\n    - fixed-0123456789-0123456789\n    - ${NOT_SET_ANYWHERE}\n"
    message = error(tmp_path, text)
    assert (
        f"config.yaml:{line_of(text, 'NOT_SET')}: api.tokens[1]: environment variable NOT_SET_ANYWHERE is not set"
        in message
    )


def test_missing_environment_variable_in_routing_and_in_a_connector_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_QUEUE", raising=False)
    monkeypatch.delenv("NO_TOKEN", raising=False)
    text = ZAMMAD.replace("token: abc", "token: ${NO_TOKEN}") + (
        "    routing:\n      labels:\n        queue:\n          map: {Billing: '${NO_QUEUE}'}\n"
    )
    message = error(tmp_path, text)
    assert f":{line_of(text, 'NO_TOKEN')}: connectors[0].token: environment variable NO_TOKEN is not set" in message
    assert (
        f":{line_of(text, 'NO_QUEUE')}: connectors[0].routing.labels.queue.map.Billing: "
        "environment variable NO_QUEUE is not set"
    ) in message


def test_unreadable_secret_files_name_key_and_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    text = ZAMMAD.replace("token: abc", f"token_file: {missing}") + f"api:\n  tokens_file: {missing}\n"
    message = error(tmp_path, text)
    assert f":{line_of(text, 'token_file')}: connectors[0].token_file: cannot read secret file" in message
    assert f":{line_of(text, 'tokens_file')}: api.tokens_file: cannot read secret file '{missing}'" in message
    assert "No such file or directory" in message


def test_secret_file_problems(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("# nothing\n\n", encoding="utf-8")
    text = ZAMMAD + f"api:\n  tokens_file: {empty}\nstate:\n  url: sqlite:///x.db\n  url_file: {empty}\n"
    message = error(tmp_path, text)
    assert f":{line_of(text, 'tokens_file')}: api.tokens_file: secret file '{empty}' holds no tokens" in message
    assert f":{line_of(text, 'url_file')}: state.url_file: give either 'url' or 'url_file', not both" in message


def test_duplicate_connector_names(tmp_path: Path) -> None:
    text = ZAMMAD + "  - type: zammad\n    url: https://b.example.org\n    token: t\n    inbound_groups: [Users]\n"
    message = error(tmp_path, text)
    # Both defaulted to the type: the second entry is the culprit.
    assert f"config.yaml:{line_of(text, 'type: zammad', 2)}: connectors[1].name: duplicate connector name 'zammad'" in (
        message
    )
    text = ZAMMAD + "    name: main\n  - type: imap\n    name: main\n    host: h\n    user: u\n    password: p\n"
    message = error(tmp_path, text)
    assert f"config.yaml:{line_of(text, 'name: main', 2)}: connectors[1].name: duplicate connector name 'main'" in (
        message
    )


def test_unknown_connector_type_keeps_the_registry_did_you_mean(tmp_path: Path) -> None:
    text = ZAMMAD + "  - type: zamad\n    url: https://b.example.org\n"
    message = error(tmp_path, text)
    assert (
        f"config.yaml:{line_of(text, 'zamad')}: connectors[1].type: unknown connector type 'zamad'. "
        "Did you mean 'zammad'?"
    ) in message
    assert "Known: " in message


def test_connector_entry_problems(tmp_path: Path) -> None:
    text = "connectors:\n  - url: https://x.example.org\n  - not a mapping\n  - type: zammad\n    token: t\n"
    message = error(tmp_path, text)
    assert "config.yaml:2: connectors[0]: each connector needs a 'type'" in message
    assert "config.yaml:3: connectors[1]: expected a mapping of keys" in message
    assert "config.yaml:4: connectors[2].url: required key is missing" in message
    assert "config.yaml:4: connectors[2].inbound_groups: required key is missing" in message


def test_connector_model_level_errors_point_at_the_entry(tmp_path: Path) -> None:
    text = ZAMMAD.replace("token: abc", "user: u")
    assert "config.yaml:2: connectors[0]: give 'token', or both 'user' and 'password'" in error(tmp_path, text)


def test_no_connectors(tmp_path: Path) -> None:
    assert "config.yaml:1: connectors: required key is missing" in error(tmp_path, "api: {port: 8080}\n")
    assert "config.yaml:1: connectors: List should have at least 1 item" in error(tmp_path, "connectors: []\n")


def test_every_problem_is_reported_in_line_order(tmp_path: Path) -> None:
    text = ZAMMAD + "api:\n  port: 0\nlog:\n  level: loud\n"
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert [p.split(": ")[1] for p in exc.value.problems] == ["api.port", "log.level"]
    assert str(exc.value).splitlines() == list(exc.value.problems)


def test_a_key_given_twice_is_an_error(tmp_path: Path) -> None:
    text = ZAMMAD + "api:\n  port: 8080\n  host: 0.0.0.0\n  port: 9090\n"
    assert f"config.yaml:{line_of(text, 'port:', 2)}: api.port: key given twice" in error(tmp_path, text)


def test_yaml_syntax_error_names_its_line(tmp_path: Path) -> None:
    text = ZAMMAD + "api:\n  host: [127.0.0.1\n  port: 8080\nlog: {}\n"
    message = error(tmp_path, text)
    assert message.startswith(f"{tmp_path / 'config.yaml'}:")
    assert "YAML syntax error" in message
    text = ZAMMAD + "api:\n  host: a: b\n"
    assert f"config.yaml:{line_of(text, 'host:')}: YAML syntax error: mapping values are not allowed" in (
        error(tmp_path, text)
    )


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    assert "config.yaml: the file is empty" in error(tmp_path, text)


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "list"), ("just text\n", "str"), ("42\n", "int")])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    assert "config.yaml:1: the top level must be a mapping of sections" in error(tmp_path, text)
    assert error(tmp_path, text).endswith(f"not a {kind}")


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.yaml: no such config file"):
        load_config(tmp_path / "missing.yaml")


def test_config_error_is_a_ticketd_error() -> None:
    assert issubclass(ConfigError, TicketdError)


# --- secrets ---------------------------------------------------------------------------------------------


def test_secrets_never_appear_in_repr_or_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZAMMAD_TOKEN", "zammad-secret")
    monkeypatch.setenv("API_TOKEN", "api-secret-0123456789-abcdef")
    monkeypatch.setenv("PGPASSWORD", "pg-secret")
    (tmp_path / "tokens").write_text("file-secret-0123456789-abcdef\n", encoding="utf-8")
    base = ZAMMAD.replace("token: abc", "token: ${ZAMMAD_TOKEN}") + (
        "state:\n  url: postgresql+psycopg://ticketd:${PGPASSWORD}@db/ticketd\n"
    )
    secrets = ("zammad-secret", "api-secret", "pg-secret", "file-secret")
    config = load_config(write(tmp_path, base + "api:\n  tokens: ['${API_TOKEN}']\n"))
    assert not [s for s in secrets if s in repr(config) or s in str(config)]
    assert config.state.url.endswith("pg-secret@db/ticketd")  # still usable by the code that connects
    config = load_config(write(tmp_path, base + f"api:\n  tokens_file: {tmp_path / 'tokens'}\n"))
    assert not [s for s in secrets if s in repr(config)]
    # Errors in and around secret values quote neither the value nor the resolved secret.
    bad = ZAMMAD.replace("token: abc", "token: ${ZAMMAD_TOKEN}\n    user: u") + (
        "state:\n  url: pg-secret\napi:\n  tokens: ['${API_TOKEN}', 7]\n  port: api-secret\n"
    )
    message = error(tmp_path, bad)
    assert message.count("\n") >= 3  # several problems were reported ...
    assert not [s for s in secrets if s in message]  # ... none of them with a secret


def test_retrain_budget_reaches_the_retrain_policy(tmp_path: Path) -> None:
    from daemon.training.champion import policy_from_config

    assert policy_from_config(load_config(write(tmp_path, ZAMMAD))).budget_minutes == 30.0
    budget = load_config(write(tmp_path, ZAMMAD + "retrain:\n  budget_minutes: 12.5\n"))
    assert policy_from_config(budget).budget_minutes == 12.5
    unlimited = load_config(write(tmp_path, ZAMMAD + "retrain:\n  budget_minutes: null\n"))
    assert policy_from_config(unlimited).budget_minutes is None
    with pytest.raises(ConfigError, match="budget_minutes"):
        load_config(write(tmp_path, ZAMMAD + "retrain:\n  budget_minutes: 0\n"))


def test_the_fine_tuning_cap_and_warm_start_reach_the_retrain_policy(tmp_path: Path) -> None:
    from daemon.ml.sampling import DEFAULT_FINETUNE_CAP
    from daemon.training.champion import policy_from_config

    default = policy_from_config(load_config(write(tmp_path, ZAMMAD)))
    assert (default.finetune_cap, default.warm_start) == (DEFAULT_FINETUNE_CAP, False)
    set_ = load_config(write(tmp_path, ZAMMAD + "retrain:\n  finetune_cap: 800\n  warm_start: true\n"))
    assert (policy_from_config(set_).finetune_cap, policy_from_config(set_).warm_start) == (800, True)
    assert (
        policy_from_config(load_config(write(tmp_path, ZAMMAD + "retrain:\n  finetune_cap: null\n"))).finetune_cap
        is None
    )
    with pytest.raises(ConfigError, match="finetune_cap"):
        load_config(write(tmp_path, ZAMMAD + "retrain:\n  finetune_cap: 5\n"))


def test_a_directory_is_not_taken_for_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory, not a config file"):
        load_config(tmp_path)
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")


def test_a_yaml_bomb_is_refused_before_anything_walks_it(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):  # 9^10 values once expanded; the file is under 1 KiB
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    path = tmp_path / "bomb.yaml"
    path.write_text(ZAMMAD + "\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="aliases expand to more than 100000 values"):
        load_config(path)  # refused while counting: walking 3.5e9 values would never end
    recursive = write(tmp_path, ZAMMAD + "loop: &loop [*loop]\n")
    with pytest.raises(ConfigError, match="aliases expand"):
        load_config(recursive)


def test_aliases_that_a_real_config_uses_still_load(tmp_path: Path) -> None:
    text = ZAMMAD + "    routing: &r {poll_interval: 20}\n  - type: zammad\n    name: second\n"
    text += "    url: https://zammad2.example.org\n    token: abc\n    inbound_groups: [Users]\n    routing: *r\n"
    config = load_config(write(tmp_path, text))
    assert [c.routing.poll_interval for c in config.connectors] == [20, 20]


def test_a_config_file_far_too_large_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(ZAMMAD + "# " + "x" * (1 << 20) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="a config file is at most"):
        load_config(path)


def test_check_config_without_secrets_checks_the_structure_and_lists_what_it_did_not_resolve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from daemon.cli import main

    monkeypatch.delenv("CI_ZAMMAD_TOKEN", raising=False)
    path = write(
        tmp_path,
        """\
        connectors:
          - type: zammad
            url: https://zammad.example.org
            token: ${CI_ZAMMAD_TOKEN}
            inbound_groups: [Users]
        api:
          tokens_file: /run/credentials/ticketd/api-tokens
        """,
    )
    assert main(["check-config", str(path)]) == 2  # a normal check needs its secrets
    assert "CI_ZAMMAD_TOKEN" in capsys.readouterr().err
    assert main(["check-config", "--no-secrets", str(path)]) == 0
    out = capsys.readouterr().out
    assert "structure ok (1 connector(s)" in out
    assert "secret not resolved: connectors[0].token: environment variable CI_ZAMMAD_TOKEN is not set" in out
    assert "secret not resolved: api.tokens_file: cannot read secret file" in out
    broken = write(tmp_path, ZAMMAD + "    routing: {poll_interval: -1}\n")
    assert main(["check-config", "--no-secrets", str(broken)]) == 2  # structure errors still fail
