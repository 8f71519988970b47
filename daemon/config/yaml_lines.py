"""The config file as YAML: parsed with its node tree, so every problem can be reported at its line."""

from __future__ import annotations

from typing import Any

import yaml

from daemon.errors import ConfigError

Loc = tuple[str | int, ...]  # a path through the document: ("connectors", 0, "routing", "labels")

_MERGE_TAG = "tag:yaml.org,2002:merge"
MAX_EXPANDED_NODES = 100_000  # aliases may repeat a block; a "billion laughs" file repeats it 10^9 times


def _expanded_size(root: yaml.Node, limit: int) -> int:
    """How many nodes the document has once every alias is expanded, counted without expanding (memoised).

    PyYAML builds an alias as a shared reference, so parsing a bomb is quick; everything that walks
    the data afterwards (secrets, validation, line lookup) would visit each repetition.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()  # on the current path: meeting one again is a recursive alias
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            sizes[id(node)] = 1
            continue
        if children_done:
            open_nodes.discard(id(node))
            sizes[id(node)] = min(limit + 1, 1 + sum(sizes[id(c)] for c in children))
            continue
        if id(node) in open_nodes:
            return limit + 1  # a recursive structure expands forever
        open_nodes.add(id(node))
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def parse(text: str, source: str) -> tuple[Any, yaml.Node | None]:
    """The document's data and its node tree (for line numbers); a syntax error is one located line."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is not None and _expanded_size(root, MAX_EXPANDED_NODES) > MAX_EXPANDED_NODES:
            raise ConfigError(
                f"{source}: YAML aliases expand to more than {MAX_EXPANDED_NODES} values; "
                "refusing a document this large (a config needs a few hundred)"
            )
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
