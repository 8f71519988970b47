from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest

from daemon.errors import ModelError, ModelStoreError
from daemon.ml.layout import resolve_model_dir
from daemon.ml.store import ModelStore


def fake_model(path: Path, tag: str) -> Path:
    path.mkdir(parents=True)
    (path / "metadata.json").write_text(json.dumps({"tag": tag, "created_at": tag, "heads": {}}))
    return path


def test_add_promote_rollback(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    v1 = store.add(fake_model(tmp_path / "a", "a"))
    v2 = store.add(fake_model(tmp_path / "b", "b"))
    assert (v1, v2) == ("v1", "v2")
    assert store.current() is None
    with pytest.raises(ModelError):
        resolve_model_dir(store.root)
    store.promote(v1, check=False)
    store.promote(v2, check=False)
    assert store.current() == "v2"
    assert json.loads((resolve_model_dir(store.root) / "metadata.json").read_text())["tag"] == "b"
    assert [(v.version, v.current) for v in store.list()] == [("v1", False), ("v2", True)]
    assert store.rollback(check=False) == "v1"
    assert store.current() == "v1"
    with pytest.raises(ModelStoreError, match="nothing to roll back"):
        store.rollback(check=False)


def test_staged_model_is_moved_not_copied(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    staging = store.staging_dir()
    fake_model(staging / "m", "x")
    version = store.add(staging / "m")
    assert (tmp_path / "versions" / version / "metadata.json").is_file()
    assert not (staging / "m").exists()


def test_failed_staging_leaves_no_store_behind(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "new" / "store")
    with pytest.raises(RuntimeError), store.staging() as staging:
        assert staging.parent == store.versions_dir
        raise RuntimeError("training failed")
    assert not (tmp_path / "new").exists()  # every directory it created is gone again
    with store.staging() as staging:
        version = store.add(fake_model(staging / "m", "m"))
    assert [p.name for p in store.versions_dir.iterdir()] == [version]  # kept once it holds a version
    with pytest.raises(RuntimeError), store.staging():
        raise RuntimeError("second run failed")
    assert [p.name for p in store.versions_dir.iterdir()] == [version]


def test_errors_name_the_version(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    store.add(fake_model(tmp_path / "a", "a"))
    with pytest.raises(ModelStoreError, match=r"no model version 'v9'.*known: v1"):
        store.promote("v9", check=False)
    with pytest.raises(ModelStoreError, match="not a complete model"):
        store.add(tmp_path / "missing")


def test_current_is_never_missing_while_switching(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    for tag in "ab":
        store.promote(store.add(fake_model(tmp_path / tag, tag)), check=False)
    stop = threading.Event()
    failures: list[BaseException] = []
    seen: set[str] = set()

    def reader() -> None:
        while not stop.is_set():
            try:
                seen.add(json.loads((resolve_model_dir(tmp_path) / "metadata.json").read_text())["tag"])
            except BaseException as exc:  # any failure to resolve is a broken switch
                failures.append(exc)
                return

    thread = threading.Thread(target=reader)
    thread.start()
    for i in range(300):
        store.promote("v1" if i % 2 else "v2", check=False)
    stop.set()
    thread.join()
    assert failures == []
    assert seen == {"a", "b"}


def test_sweep_removes_only_stale_staging_left_by_a_killed_trainer(tmp_path: Path) -> None:
    import os
    import time

    store = ModelStore(tmp_path / "store")
    stale, live = store.staging_dir(), store.staging_dir()
    (stale / "model").mkdir()
    (stale / "model" / "weights.onnx").write_bytes(b"half written")
    (live / "model").mkdir()
    day_ago = time.time() - 25 * 3600
    for path in (stale / "model" / "weights.onnx", stale / "model", stale):
        os.utime(path, (day_ago, day_ago))
    (store.versions_dir / "v1").mkdir()
    os.utime(store.versions_dir / "v1", (day_ago, day_ago))
    assert store.sweep_staging() == [stale.name]
    assert not stale.exists() and live.is_dir() and (store.versions_dir / "v1").is_dir()


def _copy(model: Path, to: Path) -> Path:
    """A trained model without its PyTorch weights (serving never reads them)."""
    shutil.copytree(model, to, ignore=shutil.ignore_patterns("torch"))
    return to


def _damaged(tiny_model: Path, tmp_path: Path, how: str) -> tuple[ModelStore, Path]:
    """A store with v1 (good, current) and v2, damaged `how`; returns the store and the damaged file."""
    store = ModelStore(tmp_path / "store")
    store.promote(store.add(_copy(tiny_model, tmp_path / "good")))
    bad = _copy(tiny_model, tmp_path / "bad")
    if how == "truncated npz":
        target = next(bad.glob("*/tfidf/arrays.npz"))
        target.write_bytes(target.read_bytes()[:100])
    elif how == "truncated onnx":
        spec = json.loads((bad / "priority" / "head.json").read_text())
        target = bad / "priority" / spec["onnx_files"][spec["serving_precision"]]  # the file that serves
        target.write_bytes(target.read_bytes()[:1000])
    elif how == "labels disagree":
        target = bad / "queue" / "labels.json"
        target.write_text(json.dumps([*json.loads(target.read_text()), "Extra queue"]))
    elif how == "no head":
        target = bad / "priority" / "head.json"
        target.unlink()
    else:
        raise AssertionError(how)
    assert store.add(bad) == "v2"
    return store, store.versions_dir / "v2" / target.relative_to(bad)  # where it lies once stored


@pytest.mark.parametrize("how", ["truncated npz", "truncated onnx", "labels disagree", "no head"])
def test_a_version_that_cannot_serve_is_never_made_current(tiny_model: Path, tmp_path: Path, how: str) -> None:
    from daemon.errors import UnservableModelError

    store, damaged = _damaged(tiny_model, tmp_path, how)
    with pytest.raises(UnservableModelError) as exc:
        store.promote("v2")
    assert str(damaged) in str(exc.value) and "`current` unchanged" in str(exc.value)
    assert store.current() == "v1" and json.loads(store.history_file.read_text())["stack"] == ["v1"]
    with pytest.raises(ModelError, match=str(damaged)):  # loading it directly names the file too
        from daemon.ml.classifier import Classifier

        Classifier.load(store.versions_dir / "v2")


def test_rollback_to_a_version_damaged_since_is_refused(tiny_model: Path, tmp_path: Path) -> None:
    from daemon.errors import UnservableModelError

    store = ModelStore(tmp_path / "store")
    store.promote(store.add(_copy(tiny_model, tmp_path / "one")))
    store.promote(store.add(_copy(tiny_model, tmp_path / "two")))
    arrays = next((store.versions_dir / "v1").glob("*/tfidf/arrays.npz"))
    arrays.write_bytes(b"")
    with pytest.raises(UnservableModelError, match=str(arrays)):
        store.rollback()
    assert store.current() == "v2"


def test_promote_creates_a_current_that_was_deleted(tiny_model: Path, tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    store.promote(store.add(_copy(tiny_model, tmp_path / "one")))
    (store.root / "current").unlink()
    assert store.current() is None
    store.promote("v1")
    assert store.current() == "v1" and json.loads(store.history_file.read_text())["stack"] == ["v1"]
