"""ticketd's version comes from one place, pyproject.toml's [project] version through the installed metadata,
and is what `ticketd --version`, /healthz and the dashboard's footer show."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from pydantic import SecretStr

import daemon
from daemon.cli import main
from daemon.config import ApiSection
from daemon.metrics import Metrics
from daemon.ml.serving import ModelHolder
from daemon.web import Services
from tests.support.paths import ROOT
from tests.support.web import FAST_POLICY, TOKEN, client_of

INSTALLED = metadata.version("ticketd")


def test_the_version_is_pyprojects_as_installed() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert declared == INSTALLED, "the installed metadata is stale: run `make install` (or pip install -e .)"
    assert daemon.__version__ == INSTALLED


def test_dash_dash_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"ticketd {INSTALLED}\n"


def _services(tmp_path: Path) -> Services:
    """An API with no model (none is needed for either page): no training, so no tiny model."""
    return Services(
        api=ApiSection(tokens=[SecretStr(TOKEN)]),
        model=ModelHolder(tmp_path / "models", threads=1),
        datasets_dir=tmp_path / "datasets",
        workdir=tmp_path / "work",
        metrics=Metrics(),
        policy=FAST_POLICY,
    )


def test_healthz_and_the_openapi_document_carry_the_version(tmp_path: Path) -> None:
    with client_of(_services(tmp_path)) as client:
        answer = client.get("/healthz")
        assert answer.status_code == 200
        assert answer.json() == {"status": "ok", "version": INSTALLED}
        assert client.get("/openapi.json").json()["info"]["version"] == INSTALLED


def test_the_dashboard_footer_shows_the_version(tmp_path: Path) -> None:
    with client_of(_services(tmp_path)) as client:
        page = client.get("/ui/login")
    assert page.status_code == 200
    footer = re.search(r"<footer>(.*?)</footer>", page.text, re.S)
    assert footer is not None and footer.group(1).startswith(f"ticketd {INSTALLED} ·")
