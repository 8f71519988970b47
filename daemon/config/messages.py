"""Validation failures as `file:line: yaml.path: message`: pydantic's errors translated, never echoing a value."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel

from daemon.config.schema import StateSection
from daemon.config.yaml_lines import Loc, dotted, line_of
from daemon.errors import ConfigError


@dataclass(frozen=True)
class Problem:
    """One validation failure, located by its path through the YAML document."""

    loc: Loc
    message: str
    line: int | None = None  # when the path alone cannot tell (the second of two equal keys)


_MESSAGES = {
    "missing": "required key is missing",
    "model_type": "expected a mapping of keys",
    "model_attributes_type": "expected a mapping of keys",
    "dict_type": "expected a mapping",
    "list_type": "expected a list",
}


def from_pydantic(
    err: Any, prefix: Loc, known_keys: Callable[[Loc], list[str] | None], raw: dict[Any, Any] | None = None
) -> Problem:
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
    return Problem(loc, message)


def model_keys(model: type[BaseModel], loc: Loc, extra: tuple[str, ...] = ()) -> list[str] | None:
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


def config_error(problems: list[Problem], source: str, root: yaml.Node | None) -> ConfigError:
    """All problems, one per line, sorted by line: `config.yaml:14: connectors[0].routing...: message`."""
    located: dict[tuple[int, str, str], None] = {}
    for problem in problems:
        line = problem.line if problem.line is not None else line_of(root, problem.loc)
        where = f"{source}:{line}" if line is not None else source
        path = dotted(problem.loc)
        located[(line or 0, f"{where}: {path}: " if path else f"{where}: ", problem.message)] = None
    texts = tuple(f"{prefix}{message}" for _, prefix, message in sorted(located))
    return ConfigError("\n".join(texts), problems=texts)
