"""The config file as YAML: parsed with its node tree, so every problem can be reported at its line."""

from __future__ import annotations

from typing import Any

import yaml

from daemon.errors import ConfigError

Loc = tuple[str | int, ...]  # a path through the document: ("connectors", 0, "routing", "labels")

_MERGE_TAG = "tag:yaml.org,2002:merge"


def parse(text: str, source: str) -> tuple[Any, yaml.Node | None]:
    """The document's data and its node tree (for line numbers); a syntax error is one located line."""
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
    return data, root


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


def line_of(root: yaml.Node | None, loc: Loc) -> int | None:
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


def dotted(loc: Loc) -> str:
    """`("connectors", 0, "routing")` -> `connectors[0].routing`."""
    out = ""
    for part in loc:
        if part == "[key]":
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def repeats(node: yaml.Node, loc: Loc = ()) -> list[tuple[Loc, int]]:
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
            found += repeats(value, (*loc, name) if name is not None else loc)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found += repeats(item, (*loc, i))
    return found
