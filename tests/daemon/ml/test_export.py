"""Export parity on a tiny random BERT: ONNX must reproduce PyTorch, and the int8 guard must hold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from daemon.ml.classifier import TOKENIZER_FILE, TransformerHead
from daemon.ml.export import FP32_FILE, INT8_FILE, SCHEMES, _fuse, _quantize, _sensitive_nodes, export_head
from daemon.ml.train import default_base_model

TEXTS = [
    "VPN is down since this morning",
    "Invoice shows the wrong amount",
    "Drucker im dritten Stock ist offline",
    "Please send a quote for 20 seats",
    "My payslip is missing overtime",
    "Cannot log in after password change",
] * 5


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    base = default_base_model()
    tokenizer = AutoTokenizer.from_pretrained(base)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=3,
    )
    model = BertForSequenceClassification(config).eval()
    out = tmp_path_factory.mktemp("tiny-bert")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    with torch.no_grad():
        enc = tokenizer(TEXTS, truncation=True, max_length=32, padding=True, return_tensors="pt")
        logits = model(**enc).logits.numpy()
    return out, logits


def test_onnx_fp32_reproduces_pytorch(tmp_path: Path, tiny_bert: tuple[Path, np.ndarray]) -> None:
    model_dir, torch_logits = tiny_bert
    report = export_head(model_dir, tmp_path, texts=TEXTS, torch_logits=torch_logits, max_length=32)
    assert report["fp32_agreement"] == 1.0
    onnx_logits = TransformerHead(tmp_path / FP32_FILE, tmp_path / "tokenizer.json", 32).logits(TEXTS)
    np.testing.assert_allclose(onnx_logits, torch_logits, atol=1e-4)
    # Length-sorted batching must hand each ticket its own scores back.
    head = TransformerHead(tmp_path / FP32_FILE, tmp_path / "tokenizer.json", 32)
    one_by_one = np.concatenate([head.logits([t]) for t in TEXTS[:8]])
    np.testing.assert_allclose(head.logits(TEXTS[:8], batch_size=3), one_by_one, atol=1e-5)
    assert report["fp32_max_abs_logit_diff"] < 1e-4
    assert (tmp_path / INT8_FILE).is_file()  # kept for benchmarks even when rejected
    if report["serving_precision"] == "int8":
        assert report["int8_agreement"] >= 0.99
        assert report["onnx_files"]["int8"] == INT8_FILE
    else:
        assert all(not a["accepted"] for a in report["attempts"])
        assert "int8" not in report["onnx_files"]


def test_quantisation_falls_back_to_fp32_when_parity_fails(tmp_path: Path, tiny_bert: tuple[Path, np.ndarray]) -> None:
    model_dir, torch_logits = tiny_bert
    # An impossible bar: no int8 model may be accepted, both schemes are tried and recorded.
    report = export_head(model_dir, tmp_path, texts=TEXTS, torch_logits=torch_logits, max_length=32, min_agreement=1.01)
    assert report["serving_precision"] == "fp32"
    assert report["onnx_files"] == {"fp32": FP32_FILE}
    assert [a["scheme"] for a in report["attempts"]] == list(SCHEMES)
    assert report["attempts"][-1]["fp32_nodes"] > 0
    assert all(a["routing_agreement"] == a["transformer_agreement"] for a in report["attempts"])


def test_routing_agreement_uses_the_served_decision(tmp_path: Path, tiny_bert: tuple[Path, np.ndarray]) -> None:
    model_dir, torch_logits = tiny_bert
    # A head whose routing ignores the transformer (all tickets to class 0) always agrees with itself,
    # so the first scheme is accepted even though the transformer alone may disagree.
    report = export_head(
        model_dir,
        tmp_path,
        texts=TEXTS,
        torch_logits=torch_logits,
        max_length=32,
        decide=lambda logits: np.zeros(len(logits), dtype=np.int64),
    )
    assert report["serving_precision"] == "int8"
    assert report["int8_scheme"] == "dynamic-int8"
    assert report["attempts"][0]["routing_agreement"] == 1.0


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_int8_scheme_stores_embeddings_as_int8_rows(
    tmp_path: Path, tiny_bert: tuple[Path, np.ndarray], scheme: str
) -> None:
    import onnx
    from onnx import numpy_helper

    model_dir, torch_logits = tiny_bert
    report = export_head(model_dir, tmp_path, texts=TEXTS, torch_logits=torch_logits, max_length=32, min_agreement=1.01)
    assert [a["scheme"] for a in report["attempts"]] == list(SCHEMES)
    # The best attempt is kept as model.int8.onnx; quantise once more with the scheme under test.
    fused = _fuse_for_test(model_dir, tmp_path)
    qfile = _quantize(fused, tmp_path / f"{scheme}.onnx", scheme=scheme, keep_fp32=_sensitive_nodes(fused))
    model = onnx.load(str(qfile))
    tables = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer if "word_embeddings" in t.name}
    int8 = [a for a in tables.values() if a.dtype == np.int8]
    assert len(int8) == 1 and int8[0].ndim == 2
    assert not [a for a in tables.values() if a.dtype == np.float32 and a.shape[1] > 1]  # only the row scales
    ops = {n.op_type for n in model.graph.node}
    assert ("MatMulNBits" in ops) == (scheme == "int8-weight-blocked")
    fp32 = TransformerHead(tmp_path / FP32_FILE, tmp_path / TOKENIZER_FILE, 32).logits(TEXTS)
    int8_logits = TransformerHead(qfile, tmp_path / TOKENIZER_FILE, 32).logits(TEXTS)
    assert np.abs(int8_logits - fp32).max() < 0.5  # quantised, not broken


def _fuse_for_test(model_dir: Path, tmp_path: Path) -> Path:
    import shutil

    plain = tmp_path / "plain"
    plain.mkdir(exist_ok=True)
    shutil.copy(tmp_path / FP32_FILE, plain / FP32_FILE)
    shutil.copy(model_dir / "config.json", plain / "config.json")
    return _fuse(plain, tmp_path / "fused")
