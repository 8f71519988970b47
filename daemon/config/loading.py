"""Reading a config: YAML, then secrets, then each connector's own model, then the daemon's schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml
from pydantic import BaseModel, SecretStr, ValidationError

from connectors import secrets
from connectors.base import ConnectorConfig
from connectors.errors import ConnectorConfigError
from connectors.registry import connector_class
from daemon.config.messages import Problem, config_error, from_pydantic, model_keys
from daemon.config.schema import Config, state_dir
from daemon.config.yaml_lines import Loc, parse, repeats
from daemon.errors import ConfigError
from daemon.logging import hide

# The daemon's own secrets that may come from a file instead: section -> {key: one value per line?}.
_SECRET_FILES: dict[str, dict[str, bool]] = {"state": {"url": False}, "api": {"tokens": True, "read_tokens": True}}
_SECTIONS = ("model", "state", "retrain", "api", "log")
MAX_CONFIG_BYTES = 1 << 20  # a config with hundreds of connectors is a few tens of KiB


def load_config(path: Path) -> Config:
    """Read and validate a YAML file; raises ConfigError listing every problem as `file:line: path: message`."""
    source = str(path)
    if path.is_dir():
        raise ConfigError(f"{source}: is a directory, not a config file")
    if not path.exists():
        raise ConfigError(f"{source}: no such config file")
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{source}: {path.stat().st_size} bytes; a config file is at most {MAX_CONFIG_BYTES}")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the configuration: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    data, root = parse(text, source)
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
    problems = [Problem(loc, "key given twice; YAML would keep only the last", line) for loc, line in repeats(root)]
    return _build(data, source, root, problems)


def load_structure(path: Path) -> tuple[Config, list[str]]:
    """Validate a config whose secrets may be absent (a CI job); returns it and each secret not resolved."""
    with secrets.structure_only() as unresolved:
        config = load_config(path)
    return config, [str(p) for p in unresolved]


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


def _build(data: dict[Any, Any], source: str, root: yaml.Node | None, problems: list[Problem]) -> Config:
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
        problems.extend(from_pydantic(err, (), lambda loc: model_keys(Config, loc)) for err in exc.errors())
    if problems or config is None:
        raise config_error(problems, source, root)
    hide(secret_values(config))
    return config


def secret_values(value: Any) -> list[str]:
    """Every secret a config holds (SecretStr fields, passwords in URLs): what no log line may ever show."""
    if isinstance(value, SecretStr):
        return [value.get_secret_value()]
    if isinstance(value, str):
        password = secrets.url_password(value)
        return [password, unquote(password)] if password else []
    if isinstance(value, BaseModel):
        return [s for name in type(value).model_fields for s in secret_values(getattr(value, name))]
    if isinstance(value, dict):
        return [s for item in value.values() for s in secret_values(item)]
    if isinstance(value, list | tuple):
        return [s for item in value for s in secret_values(item)]
    return []


def _resolve_env(value: Any, loc: Loc, problems: list[Problem]) -> Any:
    """`${NAME}` anywhere in a string becomes the variable's value (`connectors.secrets`, one rule for all)."""
    resolved, found = secrets.substitute_env(value, loc)
    problems.extend(Problem(p.loc, p.message) for p in found)
    return resolved


def _resolve_section(section: str, raw: dict[Any, Any], problems: list[Problem]) -> dict[Any, Any]:
    """A daemon section's `${ENV}` references and secret files, by the resolver connectors use too."""
    resolved, found = secrets.resolve(raw, _SECRET_FILES.get(section, {}), (section,))
    problems.extend(Problem(p.loc, p.message) for p in found)
    return resolved


def _split_entry(entry: Any, i: int, problems: list[Problem]) -> Any:
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
        problems.append(Problem(loc, "each connector needs a 'type' (znuny, zammad, imap, maildir, ...)"))
    else:
        try:
            model = connector_class(type_name).config_model
        except ConnectorConfigError as exc:
            problems.append(Problem((*prefix, "type"), str(exc)))
        except ImportError as exc:
            problems.append(Problem((*prefix, "type"), f"connector type {type_name!r} cannot be loaded: {exc}"))
        else:
            try:
                with secrets.within(prefix):
                    connection = model.model_validate(raw)
            except ValidationError as exc:

                def known(loc: Loc, model: type[BaseModel] = model) -> list[str] | None:
                    return model_keys(model, loc, extra=("routing",))

                problems.extend(from_pydantic(err, prefix, known, raw) for err in exc.errors())
    if connection is None:  # keep validating routing and the rest; the result is discarded
        name = raw.get("name") if isinstance(raw.get("name"), str) else f"connectors[{i}]"
        connection = ConnectorConfig.model_construct(type=str(type_name), name=name)
    return {
        "name": connection.name or connection.type,
        "type": connection.type,
        "connection": connection,
        "routing": routing,
    }
