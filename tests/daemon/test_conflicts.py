"""ticketd stops with one line when another distribution shares its import packages (python-daemon)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import daemon
from daemon import conflicts
from tests.support.paths import ROOT


def test_the_installed_packages_are_ticketds_alone() -> None:
    assert conflicts.conflicts() == []


def test_another_distribution_claiming_daemon_is_named() -> None:
    found = conflicts.conflicts({"daemon": ["ticketd", "python-daemon"], "connectors": ["Ticketd"]})
    assert found == ["the import package 'daemon' is also installed by python-daemon"]
    assert "own virtual environment" in conflicts.message(found)


def test_a_foreign_init_is_noticed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(daemon, "__ticketd__")  # what python-daemon's daemon/__init__.py looks like to us
    found = conflicts.conflicts({})
    assert len(found) == 1 and found[0].startswith("the import package 'daemon' (") and "not ticketd's" in found[0]


def test_ticketd_refuses_to_start_beside_python_daemon(tmp_path: Path) -> None:
    dist = tmp_path / "python_daemon-3.0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: python-daemon\nVersion: 3.0.1\n")
    (dist / "RECORD").write_text("daemon/__init__.py,,\ndaemon/runner.py,,\npython_daemon-3.0.1.dist-info/RECORD,,\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    run = subprocess.run(
        [sys.executable, "-m", "daemon", "models", "list"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert "'daemon' is also installed by python-daemon" in run.stderr and "own virtual environment" in run.stderr
