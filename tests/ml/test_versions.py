from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from daemon.errors import ModelError, ModelStoreError
from daemon.ml.versions import ModelStore, resolve_model_dir


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
    store.promote(v1)
    store.promote(v2)
    assert store.current() == "v2"
    assert json.loads((resolve_model_dir(store.root) / "metadata.json").read_text())["tag"] == "b"
    assert [(v.version, v.current) for v in store.list()] == [("v1", False), ("v2", True)]
    assert store.rollback() == "v1"
    assert store.current() == "v1"
    with pytest.raises(ModelStoreError, match="nothing to roll back"):
        store.rollback()


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
        store.promote("v9")
    with pytest.raises(ModelStoreError, match="not a complete model"):
        store.add(tmp_path / "missing")


def test_current_is_never_missing_while_switching(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    for tag in "ab":
        store.promote(store.add(fake_model(tmp_path / tag, tag)))
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
        store.promote("v1" if i % 2 else "v2")
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
