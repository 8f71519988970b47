"""Static rules of the connector layer: imports flow daemon -> connectors, and connectors never sleep."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CONNECTORS = Path(__file__).resolve().parents[2] / "connectors"
FILES = sorted(CONNECTORS.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(CONNECTORS)))
def test_connectors_do_not_import_the_daemon_or_sleep(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            names = []
        assert not [n for n in names if n == "daemon" or n.startswith("daemon.")], f"{path} imports the daemon"
        if isinstance(node, ast.Attribute) and node.attr == "sleep":
            pytest.fail(f"{path}:{node.lineno}: connectors leave waiting to the coordinator")


def test_the_rule_sees_files() -> None:
    assert len(FILES) >= 15  # base, registry, errors and three connector packages
