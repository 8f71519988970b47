"""The wheel, installed on its own: a fresh venv outside the source tree runs everything a server needs from it.

A file missing from the package (a template, a static file, a migration, a demo mail, the example config) goes
unnoticed in an editable install; here it fails. The base install must not pull torch.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.paths import ROOT, STARTER
from tests.support.release import Release, build, classify, wait_http
from tests.support.servers import free_port, stop

pytestmark = pytest.mark.slow
TOKEN = "release-token-0123456789-abcdef"


@pytest.fixture(scope="module")
def release() -> Release:
    return build("dist")


@pytest.fixture(scope="module")
def venv(release: Release, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv (no system site-packages, not this checkout's) with only the wheel installed, as pip resolves it."""
    root = tmp_path_factory.mktemp("wheel-venv")
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True, timeout=120)
    report = root / "install-report.json"
    done = subprocess.run(
        [str(root / "venv" / "bin" / "pip"), "install", "-q", "--report", str(report), str(release.wheel)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    yield root


def ticketd(
    venv: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The installed `ticketd`, run from the venv's folder: nothing of this checkout is importable there."""
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "STATE_DIRECTORY")}
    return subprocess.run(
        [str(venv / "venv" / "bin" / "ticketd"), *args],
        cwd=venv,
        env={**clean, "HF_HUB_OFFLINE": "1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_wheel_and_the_sdist_hold_every_file_of_the_packages(release: Release) -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "daemon", "connectors"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    in_wheel = set(zipfile.ZipFile(release.wheel).namelist())
    assert [f for f in tracked if f not in in_wheel] == []
    # Not Python, so only package-data puts them there: each kind must be in.
    for kind in ("templates/", "static/", "migrations/versions/", "demo/mails/", "ml/data/"):
        assert any(kind in name for name in in_wheel), kind
    data = f"ticketd-{release.version}.data/data/share/ticketd/"
    assert {
        data + "config.example.yaml",
        data + "systemd/ticketd.service",
        data + "systemd/ticketd.sysusers",
    } <= in_wheel
    with tarfile.open(release.sdist) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    assert [f for f in tracked if f not in names] == []
    assert {"pyproject.toml", "README.md", "config.example.yaml", "deploy/systemd/ticketd.service"} <= names


def test_installing_the_wheel_pulls_no_torch(venv: Path) -> None:
    report = json.loads((venv / "install-report.json").read_text())
    installed = {item["metadata"]["name"].lower() for item in report["install"]}
    assert "ticketd" in installed and "onnxruntime" in installed and "tokenizers" in installed
    assert not installed & {"torch", "transformers", "optimum", "scikit-learn", "nvidia-cudnn-cu12"}
    probe = subprocess.run(
        [
            str(venv / "venv" / "bin" / "python"),
            "-c",
            "import importlib.util as u, daemon; print(u.find_spec('torch') is None, daemon.__file__)",
        ],
        cwd=venv,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert probe[0] == "True"
    assert probe[1].startswith(str(venv / "venv")), probe[1]  # the installed package, not this checkout


def test_version_and_the_shipped_example_config(venv: Path, release: Release) -> None:
    version = ticketd(venv, "--version")
    assert version.stdout.strip() == f"ticketd {release.version}"
    example = venv / "venv" / "share" / "ticketd" / "config.example.yaml"
    checked = ticketd(venv, "check-config", "--no-secrets", str(example))  # as it ships: its secrets are not here
    assert checked.returncode == 0, checked.stdout + checked.stderr
    unit = (venv / "venv" / "share" / "ticketd" / "systemd" / "ticketd.service").read_text()
    assert "ExecStart=/opt/ticketd/venv/bin/ticketd run" in unit  # the path the install docs put the venv at


def test_serve_answers_health_classify_and_the_dashboard_login(venv: Path, store: Path, release: Release) -> None:
    port = free_port()
    config = venv / "serve.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": {"store": str(store)},
                "state": {"url": f"sqlite:///{venv / 'serve-state.db'}"},
                "api": {"enabled": True, "host": "127.0.0.1", "port": port, "tokens": [TOKEN]},
                "connectors": [{"type": "maildir", "name": "mail", "path": str(venv / "serve-maildir")}],
            }
        )
    )
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    log = venv / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(venv / "venv" / "bin" / "ticketd"), "serve", "--config", str(config)],
            cwd=venv,
            env={**clean, "HF_HUB_OFFLINE": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        api = f"http://127.0.0.1:{port}"
        health = wait_http(f"{api}/healthz", alive=lambda: proc.poll() is None)
        assert health.json()["version"] == release.version
        classify(api, TOKEN)
        login = httpx.get(f"{api}/ui/login", timeout=10)
        assert login.status_code == 200 and "<form" in login.text
        css = [part.split('"')[1] for part in login.text.split("href=")[1:] if "/ui/static/" in part.split('"')[1]]
        assert css and all(httpx.get(f"{api}{href}", timeout=10).status_code == 200 for href in css)
    finally:
        stop(proc)
    # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly (systemd counts that as a clean stop).
    assert proc.returncode in (0, -signal.SIGTERM), log.read_text()[-3000:]
    assert "Application shutdown complete." in log.read_text()


def test_one_cycle_on_the_demo_maildir_from_embedded_defaults(venv: Path) -> None:
    """`ticketd run --once` with no config at all, as `make run` does: the packaged demo mails and migrations."""
    state = venv / "state"
    trained = subprocess.run(  # the starter model, TF-IDF only (training is not in the base install)
        [
            sys.executable,
            "-m",
            "daemon",
            "train",
            str(STARTER),
            "--store",
            str(state / "models"),
            "--promote",
            "--tfidf-only",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    done = ticketd(venv, "run", "--once", env={"STATE_DIRECTORY": str(state)}, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    maildir = state / "demo-maildir"
    seeded = len(list((ROOT / "daemon" / "demo" / "mails").glob("*.eml")))
    mails = [m for m in maildir.rglob("*") if m.is_file() and m.parent.name in ("cur", "new")]
    routed = [m for m in mails if m.parent.parent != maildir]
    assert seeded > 0 and len(mails) == seeded  # every mail is somewhere, none doubled
    assert routed, "the starter model routed nothing"
