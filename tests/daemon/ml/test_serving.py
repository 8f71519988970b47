"""The daemon's model holder: ONNX Runtime threads per head, explicit or the daemon's default."""

from __future__ import annotations

from pathlib import Path

from daemon.ml.serving import DEFAULT_THREADS, ModelHolder


def _intra_op_threads(holder: ModelHolder) -> set[int]:
    heads = holder.get().classifier.heads.values()
    return {
        h.transformer.session.get_session_options().intra_op_num_threads for h in heads if h.transformer is not None
    }


def test_unset_threads_load_every_head_single_threaded(store: Path) -> None:
    holder = ModelHolder(store)
    assert holder.load()
    assert DEFAULT_THREADS == 1
    assert _intra_op_threads(holder) == {1}


def test_configured_threads_are_used_as_given(store: Path) -> None:
    holder = ModelHolder(store, threads=2)
    assert holder.load()
    assert _intra_op_threads(holder) == {2}
