"""Static rules of the connector layer: imports flow daemon -> connectors, and connectors never sleep."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CONNECTORS = Path(__file__).resolve().parents[2] / "connectors"
FILES = sorted(CONNECTORS.rglob("*.py"))


WAITING = {"sleep", "wait", "wait_for"}  # asyncio.sleep, time.sleep, anyio.sleep, trio.sleep, Event.wait ...


def _imports(tree: ast.AST) -> list[tuple[int, str, list[str]]]:
    """(line, module, imported names) of every import; `import a.b` is module "a.b" with no names."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, a.name, []) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            out.append((node.lineno, node.module or "", [a.name for a in node.names]))
    return out


def _package(path: Path) -> str | None:
    """The connector package a file belongs to ("imap"), or None for the shared modules."""
    parts = path.relative_to(CONNECTORS).parts
    return parts[0] if len(parts) > 1 and not parts[0].startswith("_") else None


def layering_violations(path: Path, source: str | None = None) -> list[str]:
    """What breaks the layer's rules in one file (or `source` as if it stood there), as `file:line: why`."""
    tree = ast.parse(path.read_text(encoding="utf-8") if source is None else source)
    found = []
    own = _package(path)
    for line, module, names in _imports(tree):
        if module == "daemon" or module.startswith("daemon."):
            found.append(f"{path}:{line}: imports the daemon")
        if module.split(".")[0] == "connectors" and len(module.split(".")) > 1:
            other = module.split(".")[1]
            if not other.startswith("_") and other not in {"base", "errors", "registry", own}:
                found.append(f"{path}:{line}: imports connector {other!r}; shared code goes in connectors/_*")
        if any(n in WAITING for n in names):
            found.append(f"{path}:{line}: imports {', '.join(n for n in names if n in WAITING)} from {module}")
    # A `Watch` (connectors.base) is the one place a connector waits: the daemon calls its `wait(timeout)`.
    watches = [
        range(node.lineno, (node.end_lineno or node.lineno) + 1)
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and any(isinstance(b, ast.Name) and b.id == "Watch" for b in node.bases)
    ]
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in WAITING and not any(node.lineno in w for w in watches):
            found.append(f"{path}:{node.lineno}: calls .{node.attr}: connectors leave waiting to the coordinator")
    return found


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(CONNECTORS)))
def test_connectors_do_not_import_the_daemon_each_other_or_sleep(path: Path) -> None:
    assert layering_violations(path) == []


@pytest.mark.parametrize(
    ("source", "why"),
    [
        ("import time\ntime.sleep(1)\n", "calls .sleep"),
        ("class Poller(Base):\n    async def go(self):\n        await asyncio.sleep(1)\n", "calls .sleep"),
        ("from time import sleep\nsleep(1)\n", "imports sleep from time"),
        ("from asyncio import sleep as pause\n", "imports sleep from asyncio"),
        ("import daemon.config\n", "imports the daemon"),
        ("from daemon import errors\n", "imports the daemon"),
        ("from connectors.imap import mapping\n", "imports connector 'imap'"),
    ],
)
def test_the_rule_catches_each_way_of_breaking_it(source: str, why: str) -> None:
    found = layering_violations(CONNECTORS / "maildir" / "connector.py", source)
    assert any(why in v for v in found), found


def test_the_rule_sees_files() -> None:
    assert len(FILES) >= 15  # base, registry, errors and three connector packages


def test_a_watch_may_wait_because_the_daemon_asks_it_to() -> None:
    source = (
        "class W(Watch):\n    async def wait(self, timeout):\n        await asyncio.wait_for(self.e.wait(), timeout)\n"
    )
    assert layering_violations(CONNECTORS / "maildir" / "watch.py", source) == []
