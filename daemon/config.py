"""The daemon's configuration: one YAML file, validated at start, every error naming file, line and YAML path.

Each `connectors:` entry holds its connector's own keys (validated by that connector's model) plus a
`routing:` block that belongs to the daemon. Secrets follow one rule everywhere (`connectors.secrets`):
`${ENV}` inside any string value, and `<key>_file` for a connector's secret keys, `state.url_file` and
`api.tokens_file`.
"""

from __future__ import annotations

import difflib
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped, unused-ignore]
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from connectors import secrets
from connectors.base import ConnectorConfig
from connectors.errors import ConfigError as ConnectorConfigError
from connectors.registry import connector_class
from daemon.errors import ConfigError
from daemon.routing import WRITABLE

Loc = tuple[str | int, ...]

_MERGE_TAG = "tag:yaml.org,2002:merge"
# The daemon's own secrets that may come from a file instead: section -> (key, one value per line?).
_SECRET_FILES: dict[str, tuple[str, bool]] = {"state": ("url", False), "api": ("tokens", True)}
_SECTIONS = ("model", "state", "retrain", "api", "log")


def state_dir() -> Path:
    """systemd's StateDirectory= (`$STATE_DIRECTORY`) under a unit, else ./.ticketd; absolute either way."""
    first = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(first) if first else Path.cwd() / ".ticketd"


def _at(suffix: Loc, message: str) -> PydanticCustomError:
    """A validation error that points `suffix` deeper than the validator's own location (for the line number)."""
    return PydanticCustomError("ticketd", "{message}", {"message": message, "at": suffix})


class _Section(BaseModel):
    """Frozen and strict about keys: a typo is an error, never a silently ignored setting."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class LabelRouting(_Section):
    """How one label's prediction becomes a helpdesk value; below `threshold` the fallback applies."""

    map: dict[str, str] = Field(default_factory=dict)
    threshold: float = Field(default=0.6, ge=0, le=1)
    fallback: Literal["leave"] | dict[str, str] = "leave"

    @field_validator("fallback", mode="before")
    @classmethod
    def _fallback_shape(cls, value: Any) -> Any:
        if value == "leave":
            return value
        if isinstance(value, dict) and len(value) == 1:
            ((key, name),) = value.items()
            if key in WRITABLE and isinstance(name, str) and name.strip():
                return value
        raise ValueError("fallback must be 'leave', {queue: NAME} or {priority: NAME}")

    @property
    def fallback_name(self) -> str | None:
        """The fixed helpdesk value used below the threshold; None means leave the field as it is."""
        return None if isinstance(self.fallback, str) else next(iter(self.fallback.values()))


def _default_labels() -> dict[str, LabelRouting]:
    return {label: LabelRouting() for label in WRITABLE}


class RoutingSection(_Section):
    """The daemon's per-connector behaviour: which labels it writes, how often it polls, live or shadow."""

    mode: Literal["live", "shadow"] = "live"
    poll_interval: float = Field(default=60.0, gt=0)
    jitter: float = Field(default=5.0, ge=0)
    batch_limit: int = Field(default=50, ge=1)
    harvest_interval: float = Field(default=900.0, gt=0)
    timeout: float = Field(default=30.0, gt=0)  # seconds per helpdesk request (connect: at most 10)
    max_backoff: float = Field(default=900.0, gt=0)  # the longest wait between tries while failing
    recover_after: float = Field(default=180.0, ge=0)  # uninterrupted success before "recovered" is logged
    labels: dict[str, LabelRouting] = Field(default_factory=_default_labels)
    note: bool = True

    @field_validator("labels")
    @classmethod
    def _fallback_fits_label(cls, labels: dict[str, LabelRouting]) -> dict[str, LabelRouting]:
        for label, rule in labels.items():
            if label not in WRITABLE:
                raise _at((label,), f"unknown label; the daemon routes {' and '.join(WRITABLE)}")
            if isinstance(rule.fallback, dict) and label not in rule.fallback:
                raise _at((label, "fallback"), f"the {label} label's fallback must be 'leave' or {{{label}: NAME}}")
        return labels


class ConnectorEntry(_Section):
    """One helpdesk: `connection` is the connector's own validated config, `routing` the daemon's part."""

    name: str = Field(min_length=1)
    type: str
    connection: ConnectorConfig
    routing: RoutingSection = Field(default_factory=RoutingSection)


class ModelSection(_Section):
    """Where versions live (serving loads `current`) and what a retrain trains."""

    store: Path = Field(default_factory=lambda: state_dir() / "models")
    base: str | None = None
    labels: list[str] = Field(default_factory=lambda: [str(label) for label in WRITABLE], min_length=1)
    threads: int | None = Field(default=None, ge=1)

    @field_validator("labels")
    @classmethod
    def _known_and_unique(cls, labels: list[str]) -> list[str]:
        unknown = [label for label in labels if label not in WRITABLE]
        if unknown:
            raise ValueError(f"unknown label {unknown[0]!r}; the daemon routes {' and '.join(WRITABLE)}")
        if len(set(labels)) != len(labels):
            raise ValueError("labels must not repeat")
        return labels


class StateSection(_Section):
    """The ledger, cursors and training store; the URL may hold a password, so it stays out of repr."""

    url: str = Field(default_factory=lambda: f"sqlite:///{state_dir() / 'state.db'}", repr=False)

    @field_validator("url")
    @classmethod
    def _database_url(cls, url: str) -> str:
        if "://" not in url:
            raise ValueError("expected a database URL such as sqlite:///path/state.db or postgresql+psycopg://...")
        return url

    @property
    def safe_url(self) -> str:
        """The URL with any password masked, for logs and `check-config` output."""
        return secrets.redact_url(self.url)


class RetrainSection(_Section):
    """When and how the model retrains on harvested tickets, and the promotion rule."""

    enabled: bool = True
    cron: str = "0 3 * * 0"
    min_new_examples: int = Field(default=200, ge=0)
    tolerance: float = Field(default=0.0, ge=0, le=1)
    keep_versions: int = Field(default=5, ge=1)
    holdout_share: float = Field(default=0.2, gt=0, lt=1)
    epochs: int = Field(default=3, ge=1)
    max_length: int = Field(default=256, ge=8)
    # `ticketd train --budget`: epochs and ticket length shrink so a retrain fits; None trains without a limit.
    budget_minutes: float | None = Field(default=90.0, gt=0)

    @field_validator("cron")
    @classmethod
    def _crontab(cls, cron: str) -> str:
        try:
            CronTrigger.from_crontab(cron, timezone="UTC")
        except ValueError as exc:
            raise ValueError(f"not a valid crontab expression 'min hour day month weekday': {exc}") from None
        return cron


class ApiSection(_Section):
    """The HTTP API; callers authenticate with one of `tokens` (SecretStr: never printed)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    tokens: list[SecretStr] = Field(default_factory=list)
    public_classify: bool = False
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1)

    @field_validator("tokens")
    @classmethod
    def _no_blank_tokens(cls, tokens: list[SecretStr]) -> list[SecretStr]:
        if any(not t.get_secret_value().strip() for t in tokens):
            raise ValueError("an empty token would let anyone in")
        return tokens


with warnings.catch_warnings():
    # `json` is the documented key; it shadows only BaseModel.json(), pydantic v1's deprecated serialiser.
    warnings.filterwarnings("ignore", message='Field name "json"', category=UserWarning)

    class LogSection(_Section):
        """Log level and format (None: JSON lines off a terminal); ticket text is opt-in."""

        level: Literal["debug", "info", "warning", "error", "critical"] = "info"
        json: bool | None = None  # type: ignore[assignment]
        include_ticket_text: bool = False

        @field_validator("level", mode="before")
        @classmethod
        def _lower(cls, value: Any) -> Any:
            return value.lower() if isinstance(value, str) else value


class Config(_Section):
    """The whole file; `load_config` builds it so that errors carry lines, `default_config` for `make run`."""

    connectors: list[ConnectorEntry] = Field(min_length=1)
    model: ModelSection = Field(default_factory=ModelSection)
    state: StateSection = Field(default_factory=StateSection)
    retrain: RetrainSection = Field(default_factory=RetrainSection)
    api: ApiSection = Field(default_factory=ApiSection)
    log: LogSection = Field(default_factory=LogSection)

    @field_validator("connectors")
    @classmethod
    def _unique_names(cls, entries: list[ConnectorEntry]) -> list[ConnectorEntry]:
        seen: dict[str, int] = {}
        for i, entry in enumerate(entries):
            if entry.name in seen:
                raise _at(
                    (i, "name"),
                    f"duplicate connector name {entry.name!r} (connectors[{seen[entry.name]}] has it too); "
                    "the ledger keys tickets by it, so give each entry its own 'name'",
                )
            seen[entry.name] = i
        return entries

    @model_validator(mode="after")
    def _routed_labels_are_trained(self) -> Config:
        for i, entry in enumerate(self.connectors):
            if "labels" not in entry.routing.model_fields_set:
                continue  # the default routes whichever of queue/priority the model predicts
            for label in entry.routing.labels:
                if label not in self.model.labels:
                    raise _at(
                        ("connectors", i, "routing", "labels", label),
                        f"the model has no {label!r} label (model.labels: {', '.join(self.model.labels)})",
                    )
        return self


def load_config(path: Path) -> Config:
    """Read and validate a YAML file; raises ConfigError listing every problem as `file:line: path: message`."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the configuration: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        column = f" (column {mark.column + 1})" if mark is not None else ""
        problem = "; ".join(p for p in (exc.context, exc.problem) if p)
        raise ConfigError(f"{where}: YAML syntax error: {problem}{column}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: YAML syntax error: {exc}") from None
    finally:
        loader.dispose()
    if root is None:
        raise ConfigError(
            f"{source}: the file is empty; it needs at least a 'connectors:' list (see config.example.yaml)"
        )
    if not isinstance(data, dict):
        kind = "list" if isinstance(data, list) else type(data).__name__
        raise ConfigError(
            f"{source}:{root.start_mark.line + 1}: the top level must be a mapping of sections "
            f"(connectors, model, state, retrain, api, log), not a {kind}"
        )
    problems = [_Problem(loc, "key given twice; YAML would keep only the last", line) for loc, line in _repeats(root)]
    return _build(data, source, root, problems)


def default_config() -> Config:
    """The embedded defaults `make run` starts with: a demo Maildir in the state directory, SQLite, API on localhost."""
    demo = {
        "type": "maildir",
        "name": "demo",
        "path": str(state_dir() / "demo-maildir"),
        "routing": {"poll_interval": 5, "jitter": 1, "harvest_interval": 60},
    }
    # The demo listens on localhost only; classify needs no token there so a newcomer can try it with curl.
    api = {"host": "127.0.0.1", "port": 8080, "public_classify": True}
    return _build({"connectors": [demo], "api": api}, "<embedded defaults>", None, [])


@dataclass(frozen=True)
class _Problem:
    """One validation failure, located by its path through the YAML document."""

    loc: Loc
    message: str
    line: int | None = None  # when the path alone cannot tell (the second of two equal keys)


def _build(data: dict[Any, Any], source: str, root: yaml.Node | None, problems: list[_Problem]) -> Config:
    """Resolve the daemon's secrets, validate each connector with its own model, then the whole Config."""
    data = dict(data)
    for section in _SECTIONS:
        if section in data and data[section] is None:
            data[section] = {}  # a section whose keys are all commented out means defaults
        if isinstance(data.get(section), dict):
            data[section] = _resolve_section(section, data[section], problems)
    if isinstance(data.get("connectors"), list):
        data["connectors"] = [_split_entry(entry, i, problems) for i, entry in enumerate(data["connectors"])]
    config: Config | None = None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems.extend(_from_pydantic(err, (), lambda loc: _model_keys(Config, loc)) for err in exc.errors())
    if problems or config is None:
        raise _config_error(problems, source, root)
    return config


def _resolve_env(value: Any, loc: Loc, problems: list[_Problem]) -> Any:
    """`${NAME}` anywhere in a string becomes the variable's value (`connectors.secrets`, one rule for all)."""
    resolved, found = secrets.substitute_env(value, loc)
    problems.extend(_Problem(p.loc, p.message) for p in found)
    return resolved


def _resolve_section(section: str, raw: dict[Any, Any], problems: list[_Problem]) -> dict[Any, Any]:
    """A daemon section's `${ENV}` references and secret files, by the resolver connectors use too."""
    key, per_line = _SECRET_FILES.get(section, (None, False))
    resolved, found = secrets.resolve(raw, {key: per_line} if key else {}, (section,))
    problems.extend(_Problem(p.loc, p.message) for p in found)
    return resolved


def _split_entry(entry: Any, i: int, problems: list[_Problem]) -> Any:
    """Validate a connector entry's own keys with its connector's model; `routing:` stays for the daemon."""
    if not isinstance(entry, dict):
        return entry  # Config's validation reports the wrong type
    raw = dict(entry)
    routing = raw.pop("routing", None)
    routing = {} if routing is None else _resolve_env(routing, ("connectors", i, "routing"), problems)
    type_name = raw.get("type")
    prefix: Loc = ("connectors", i)
    connection: ConnectorConfig | None = None
    if not isinstance(type_name, str):
        loc = (*prefix, "type") if "type" in raw else prefix
        problems.append(_Problem(loc, "each connector needs a 'type' (znuny, zammad, imap, maildir, ...)"))
    else:
        try:
            model = connector_class(type_name).config_model
        except ConnectorConfigError as exc:
            problems.append(_Problem((*prefix, "type"), str(exc)))
        except ImportError as exc:
            problems.append(_Problem((*prefix, "type"), f"connector type {type_name!r} cannot be loaded: {exc}"))
        else:
            try:
                connection = model.model_validate(raw)
            except ValidationError as exc:

                def known(loc: Loc, model: type[BaseModel] = model) -> list[str] | None:
                    return _model_keys(model, loc, extra=("routing",))

                problems.extend(_from_pydantic(err, prefix, known, raw) for err in exc.errors())
    if connection is None:  # keep validating routing and the rest; the result is discarded
        name = raw.get("name") if isinstance(raw.get("name"), str) else f"connectors[{i}]"
        connection = ConnectorConfig.model_construct(type=str(type_name), name=name)
    return {
        "name": connection.name or connection.type,
        "type": connection.type,
        "connection": connection,
        "routing": routing,
    }


_MESSAGES = {
    "missing": "required key is missing",
    "model_type": "expected a mapping of keys",
    "model_attributes_type": "expected a mapping of keys",
    "dict_type": "expected a mapping",
    "list_type": "expected a list",
}


def _from_pydantic(
    err: Any, prefix: Loc, known_keys: Callable[[Loc], list[str] | None], raw: dict[Any, Any] | None = None
) -> _Problem:
    """One pydantic error as a located problem; never echoes the input (it may be a secret)."""
    loc: Loc = (*prefix, *err["loc"], *(err.get("ctx") or {}).get("at", ()))
    message = str(err["msg"]).removeprefix("Value error, ")
    kind = err["type"]
    if kind == "extra_forbidden":
        known = known_keys(tuple(err["loc"][:-1])) or []
        close = difflib.get_close_matches(str(err["loc"][-1]), known, n=1)
        message = "unknown key" + (f"; did you mean {close[0]!r}?" if close else "")
        if known:
            message += f" (known: {', '.join(sorted(known))})"
    elif kind in _MESSAGES:
        message = _MESSAGES[kind]
    elif not err["loc"] and raw is not None:
        # ConnectorConfig's secret resolution says "password: ..." at model level; point at that key.
        key, sep, rest = message.partition(": ")
        if sep and key in raw:
            loc, message = (*loc, key), rest
    return _Problem(loc, message)


def _model_keys(model: type[BaseModel], loc: Loc, extra: tuple[str, ...] = ()) -> list[str] | None:
    """The keys allowed at `loc` below `model` (for did-you-mean), including the `*_file` spellings."""
    annotation: Any = model
    for part in loc:
        annotation = _unwrap(annotation)
        origin = get_origin(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if not isinstance(part, str) or part not in annotation.model_fields:
                return None
            annotation = annotation.model_fields[part].annotation
        elif origin is list and isinstance(part, int):
            annotation = get_args(annotation)[0]
        elif origin is dict:
            annotation = get_args(annotation)[1]
        else:
            return None
    annotation = _unwrap(annotation)
    if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return None
    keys = [*annotation.model_fields, *(extra if not loc else ())]
    keys += [f"{k}_file" for k, info in annotation.model_fields.items() if "SecretStr" in str(info.annotation)]
    if annotation is StateSection:
        keys.append("url_file")
    return [k for k in keys if k != "connection"]


def _unwrap(annotation: Any) -> Any:
    """`X | None` -> X, so the key walk sees the model behind an optional field."""
    if get_origin(annotation) in (Union, type(int | None)):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def _child(node: yaml.Node, part: str | int) -> tuple[yaml.Node, int] | None:
    """The node under `part` and the line to report for it (a key's own line), following `<<` merges."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != _MERGE_TAG and key.value == str(part):
                return value, key.start_mark.line + 1
        for key, value in node.value:
            if key.tag == _MERGE_TAG:
                sources = value.value if isinstance(value, yaml.SequenceNode) else [value]
                for merged in sources:
                    found = _child(merged, part)
                    if found is not None:
                        return found
    elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        item = node.value[part]
        return item, item.start_mark.line + 1
    return None


def _line(root: yaml.Node | None, loc: Loc) -> int | None:
    """The line of the deepest node `loc` reaches (a missing key reports its parent's line)."""
    if root is None:
        return None
    node, line = root, root.start_mark.line + 1
    for part in loc:
        if part == "[key]":
            continue
        found = _child(node, part)
        if found is None:
            break
        node, line = found
    return line


def _dotted(loc: Loc) -> str:
    """`("connectors", 0, "routing")` -> `connectors[0].routing`."""
    out = ""
    for part in loc:
        if part == "[key]":
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _repeats(node: yaml.Node, loc: Loc = ()) -> list[tuple[Loc, int]]:
    """Keys given twice in one mapping (PyYAML keeps the last silently), with the repeat's line."""
    found: list[tuple[Loc, int]] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else None
            if name is not None and key.tag != _MERGE_TAG:
                if name in seen:
                    found.append(((*loc, name), key.start_mark.line + 1))
                seen.add(name)
            found += _repeats(value, (*loc, name) if name is not None else loc)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found += _repeats(item, (*loc, i))
    return found


def _config_error(problems: list[_Problem], source: str, root: yaml.Node | None) -> ConfigError:
    """All problems, one per line, sorted by line: `config.yaml:14: connectors[0].routing...: message`."""
    located: dict[tuple[int, str, str], None] = {}
    for problem in problems:
        line = problem.line if problem.line is not None else _line(root, problem.loc)
        where = f"{source}:{line}" if line is not None else source
        path = _dotted(problem.loc)
        located[(line or 0, f"{where}: {path}: " if path else f"{where}: ", problem.message)] = None
    texts = tuple(f"{prefix}{message}" for _, prefix, message in sorted(located))
    return ConfigError("\n".join(texts), problems=texts)
