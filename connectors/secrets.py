"""Secrets from outside the config file: the one resolver every part of ticketd's YAML goes through.

- `${NAME}` anywhere in a string value becomes the environment variable's value
  (`url: https://${ZNUNY_HOST}/`); a variable that is not set is an error naming the key.
- `<key>_file: PATH` reads `key` from a file (systemd credentials, Kubernetes secret volumes);
  giving both is an error, and so is an unreadable or empty file. Some keys take one value per
  line (API tokens); `#` lines are comments there.

Environment references are resolved first, so a `*_file` path may itself use `${CREDENTIALS_DIRECTORY}`.
Messages name the key, never the value.

Inside `structure_only()` (`ticketd check-config --no-secrets`: a CI job checking a shipped config where
the secrets do not exist), what cannot be resolved becomes a placeholder and is listed, not an error.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

Loc = tuple[str | int, ...]
PLACEHOLDER = "unresolved-secret-stands-in-here"  # as long as a token must be (api.tokens)


@dataclass(frozen=True)
class Problem:
    """What could not be resolved, and where (keys below the resolved mapping)."""

    loc: Loc
    message: str

    def __str__(self) -> str:
        where = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in self.loc).replace(".[", "[")
        return f"{where}: {self.message}" if where else self.message


_unresolved: contextvars.ContextVar[list[Problem] | None] = contextvars.ContextVar("unresolved", default=None)


@contextlib.contextmanager
def structure_only() -> Iterator[list[Problem]]:
    """Within: unresolvable secrets become placeholders, collected in the yielded list instead of failing."""
    found: list[Problem] = []
    token = _unresolved.set(found)
    try:
        yield found
    finally:
        _unresolved.reset(token)


_within: contextvars.ContextVar[Loc] = contextvars.ContextVar("within", default=())


@contextlib.contextmanager
def within(loc: Loc) -> Iterator[None]:
    """Collected problems are reported under `loc` (a connector entry resolves its keys relative to itself)."""
    token = _within.set(loc)
    try:
        yield
    finally:
        _within.reset(token)


def _cannot(problems: list[Problem], problem: Problem) -> bool:
    """Record a secret that cannot be resolved; True when structure_only() lets a placeholder stand in."""
    collecting = _unresolved.get()
    if collecting is None:
        problems.append(problem)
        return False
    collecting.append(Problem((*_within.get(), *problem.loc), problem.message))
    return True


def substitute_env(value: Any, loc: Loc = ()) -> tuple[Any, list[Problem]]:
    """`value` with every `${NAME}` in its strings replaced, recursively through mappings and lists."""
    problems: list[Problem] = []

    def walk(v: Any, at: Loc) -> Any:
        if isinstance(v, str):
            missing = [name for name in ENV_REF.findall(v) if name not in os.environ]
            if missing:
                if _cannot(problems, Problem(at, f"environment variable {missing[0]} is not set")):
                    return ENV_REF.sub(lambda m: os.environ.get(m.group(1), PLACEHOLDER), v)
                return v
            return ENV_REF.sub(lambda m: os.environ[m.group(1)], v)
        if isinstance(v, dict):
            return {k: walk(x, (*at, k)) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x, (*at, i)) for i, x in enumerate(v)]
        return v

    return walk(value, loc), problems


def resolve(data: Mapping[Any, Any], files: Mapping[str, bool], loc: Loc = ()) -> tuple[dict[Any, Any], list[Problem]]:
    """`data` with environment references and secret files resolved; `files` maps key -> one value per line?"""
    resolved, problems = substitute_env(dict(data), loc)
    for key, per_line in files.items():
        file_key = f"{key}_file"
        if file_key not in resolved:
            continue
        filename = resolved.pop(file_key)
        at: Loc = (*loc, file_key)
        if key in resolved and resolved[key] is not None:
            problems.append(Problem(at, f"give either {key!r} or {file_key!r}, not both"))
            continue
        if not isinstance(filename, str) or not filename:
            problems.append(Problem(at, "expected a file path"))
            continue
        try:
            text = Path(filename).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            if _cannot(problems, Problem(at, f"cannot read secret file {filename!r}: {reason}")):
                resolved[key] = [PLACEHOLDER] if per_line else PLACEHOLDER
            continue
        if per_line:
            values = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
            empty = Problem(at, f"secret file {filename!r} holds no {key} (one per line)")
            if not values and _cannot(problems, empty):
                values = [PLACEHOLDER]
            resolved[key] = values
        elif not text.strip():
            if _cannot(problems, Problem(at, f"secret file {filename!r} is empty")):
                resolved[key] = PLACEHOLDER
        else:
            resolved[key] = text.strip()
    return resolved, problems


def url_password(url: str) -> str | None:
    """The password in a URL's userinfo (so the log can be told never to show it), else None."""
    _, sep, rest = url.partition("://")
    cut = min((i for i in (rest.find("?"), rest.find("#")) if i != -1), default=len(rest))
    at = rest[:cut].rfind("@")
    if not sep or at == -1:
        return None
    return rest[:at].partition(":")[2] or None


def redact_url(url: str, *, user: bool = True) -> str:
    """A URL for messages and logs: the password masked (`user=False`: all credentials cut), query and fragment cut.

    The query and fragment may carry a token.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    cut = min((i for i in (rest.find("?"), rest.find("#")) if i != -1), default=len(rest))
    head = rest[:cut]
    at = head.rfind("@")  # a password may hold "/" (unencoded); the host part never holds "@"
    slash = head.find("/", at + 1)
    netloc, path = (head, "") if slash == -1 else (head[:slash], head[slash:])
    if at != -1:
        name, colon, _ = netloc[:at].partition(":")
        netloc = f"{name}{':***' if colon else ''}@{netloc[at + 1 :]}" if user else netloc[at + 1 :]
    return f"{scheme}{sep}{netloc}{path}"
