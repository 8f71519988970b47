"""Every model records the ticketd that trained it; one trained by a newer ticketd is refused wherever a model is
loaded (classify, promote, start, check, hot reload), with one line, and the loaded model keeps serving."""

from __future__ import annotations

import json
import shutil
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from packaging.version import Version
from pydantic import SecretStr
from structlog.testing import capture_logs

from daemon.cli import main
from daemon.config import ApiSection
from daemon.errors import ModelError
from daemon.metrics import Metrics
from daemon.ml.classifier import Classifier
from daemon.ml.serving import Follower, ModelHolder
from daemon.ml.store import ModelStore
from daemon.web import Services, create_app
from tests.support.paths import STARTER
from tests.support.web import AUTH, FAST_POLICY, TOKEN

INSTALLED = metadata.version("ticketd")
NEWER = f"{Version(INSTALLED).major}.{Version(INSTALLED).minor + 1}.0"
NEWER_NOT_AS_TEXT = f"{Version(INSTALLED).major}.{Version(INSTALLED).minor + 8}.0"  # 0.10.0 < 0.2.0 as strings
ABSENT = object()  # metadata.json without the field: a model trained before ticketd recorded itself


@pytest.fixture(scope="module")
def fast_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TF-IDF-only model on the bundled starter tickets (seconds, not the session's transformer minute)."""
    from daemon.ml.train import TrainOptions, train

    out = tmp_path_factory.mktemp("trained-by") / "model"
    train(STARTER, out, TrainOptions(tfidf_weights=(1.0,), seed=3))
    return out


def _trained_by(model: Path, to: Path, version: object) -> Path:
    """A copy of `model` whose metadata.json says it was trained by ticketd `version` (ABSENT: says nothing)."""
    shutil.copytree(model, to)
    meta = json.loads((to / "metadata.json").read_text(encoding="utf-8"))
    meta.pop("ticketd_version", None)
    if version is not ABSENT:
        meta["ticketd_version"] = version
    (to / "metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    return to


def _refusal(model_dir: Path, trained: str = NEWER) -> str:
    """The one line naming both versions, so an operator knows which side to move."""
    return (
        f"{model_dir}: trained by ticketd {trained}, newer than this ticketd {INSTALLED}: "
        "upgrade ticketd or promote an older model"
    )


def _store(fast_model: Path, tmp_path: Path, *trained_by: object) -> ModelStore:
    """A version per `trained_by` entry, v1 current, promoted unchecked as the newer ticketd that trained it would."""
    store = ModelStore(tmp_path / "models")
    for i, version in enumerate(trained_by, 1):
        store.add(_trained_by(fast_model, tmp_path / f"incoming-{i}", version))
    store.promote("v1", check=False)
    return store


def test_a_trained_model_records_the_ticketd_that_trained_it(fast_model: Path) -> None:
    meta = json.loads((fast_model / "metadata.json").read_text(encoding="utf-8"))
    assert meta["ticketd_version"] == INSTALLED
    assert Classifier.load(fast_model).metadata["ticketd_version"] == INSTALLED


@pytest.mark.parametrize("version", [NEWER, NEWER_NOT_AS_TEXT, f"{INSTALLED}.post1"])
def test_a_model_from_a_newer_ticketd_is_refused_at_load(fast_model: Path, tmp_path: Path, version: str) -> None:
    newer = _trained_by(fast_model, tmp_path / "newer", version)
    with pytest.raises(ModelError) as refused:
        Classifier.load(newer)
    assert str(refused.value) == _refusal(newer, version)


@pytest.mark.parametrize(
    "version", ["0.0.1", INSTALLED, f"{INSTALLED}.dev1", ABSENT, None], ids=["older", "this", "dev", "absent", "null"]
)
def test_a_model_from_this_an_older_or_an_unrecorded_ticketd_loads(
    fast_model: Path, tmp_path: Path, version: object
) -> None:
    model = _trained_by(fast_model, tmp_path / "model", version)
    assert Classifier.load(model).classify("We were charged twice", subject="Invoice")["queue"]["label"] == "Billing"


@pytest.mark.parametrize("version", ["next week", 3, ["0.2.0"]], ids=repr)
def test_a_recorded_ticketd_version_that_is_no_version_is_refused_naming_it(
    fast_model: Path, tmp_path: Path, version: object
) -> None:
    model = _trained_by(fast_model, tmp_path / "model", version)
    with pytest.raises(ModelError) as refused:
        Classifier.load(model)
    assert str(refused.value) == f"{model / 'metadata.json'}: ticketd_version {version!r} is not a version"


def test_classify_refuses_it_with_one_line(
    fast_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    newer = _trained_by(fast_model, tmp_path / "newer", NEWER)
    assert main(["classify", "--model", str(newer), "the printer is jammed"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == f"ticketd: error: {_refusal(newer)}\n"


def test_promote_refuses_it_with_one_line_and_current_stays(
    fast_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = _store(fast_model, tmp_path, INSTALLED, NEWER)
    assert main(["models", "--root", str(store.root), "promote", "v2"]) == 2
    out, err = capsys.readouterr()
    v2 = store.versions_dir / "v2"
    assert out == "" and err == f"ticketd: error: v2 cannot serve, `current` unchanged: {_refusal(v2)}\n"
    assert store.current() == "v1"


def test_a_hot_reload_keeps_serving_the_loaded_model(fast_model: Path, tmp_path: Path) -> None:
    store = _store(fast_model, tmp_path, INSTALLED, NEWER)
    holder = ModelHolder(store.root, threads=1)
    assert holder.load() and holder.get().version == "v1"
    store.promote("v2", check=False)  # switched by a newer ticketd (or a replica running one)
    with pytest.raises(ModelError) as refused:
        holder.load()  # what SIGHUP's reload runs
    assert str(refused.value) == (
        f"current model version v2 cannot be loaded: {_refusal(store.versions_dir / 'v2')} "
        "(`ticketd models rollback`, or `ticketd models promote` a version that loads)"
    )
    assert holder.get().version == "v1"
    with capture_logs() as logs:
        assert not Follower(holder).tick()  # replicas follow the shared `current` the same way
    failed = [e for e in logs if e["event"] == "model reload failed; keeping the loaded model"]
    assert len(failed) == 1 and _refusal(store.versions_dir / "v2") in failed[0]["error"]
    assert holder.get().version == "v1"


def test_the_api_refuses_to_promote_it_and_keeps_serving(fast_model: Path, tmp_path: Path) -> None:
    store = _store(fast_model, tmp_path, INSTALLED, NEWER)
    holder = ModelHolder(store.root, threads=1)
    holder.load()
    services = Services(
        api=ApiSection(tokens=[SecretStr(TOKEN)]),
        model=holder,
        datasets_dir=tmp_path / "datasets",
        workdir=tmp_path / "work",
        metrics=Metrics(),
        policy=FAST_POLICY,
    )
    with TestClient(create_app(services), base_url="http://localhost") as client:
        answer = client.post("/api/v1/models/v2/promote", headers=AUTH)
    assert answer.status_code == 422
    error: dict[str, Any] = answer.json()["error"]
    assert error["code"] == "model_not_servable"
    # The API names no directory of the host.
    assert error["message"] == f"v2 cannot serve, `current` unchanged: {_refusal(Path('the model store/versions/v2'))}"
    assert store.current() == "v1" and holder.get().version == "v1"


def _maildir_config(tmp_path: Path, store: ModelStore) -> Path:
    mail = tmp_path / "mail"
    for sub in ("cur", "new", "tmp"):
        (mail / sub).mkdir(parents=True, exist_ok=True)
    config = {
        "model": {"store": str(store.root)},
        "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
        "retrain": {"enabled": False},
        "api": {"enabled": False},
        "log": {"level": "warning", "json": True},
        "connectors": [{"type": "maildir", "name": "local", "path": str(mail)}],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_run_refuses_to_start_on_it_with_one_line(
    fast_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = _store(fast_model, tmp_path, NEWER)
    assert main(["run", "--once", "--config", str(_maildir_config(tmp_path, store))]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"ticketd: error: current model version v1 cannot be loaded: {_refusal(store.versions_dir / 'v1')} "
        "(`ticketd models rollback`, or `ticketd models promote` a version that loads)\n"
    )
    assert store.current() == "v1"


def test_check_names_it(fast_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = _store(fast_model, tmp_path, NEWER)
    assert main(["check", "--config", str(_maildir_config(tmp_path, store))]) == 1
    out = capsys.readouterr().out
    assert f"model: current model version v1 cannot be loaded: {_refusal(store.versions_dir / 'v1')} " in out
