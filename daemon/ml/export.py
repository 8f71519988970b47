"""ONNX export with optimum, then int8 quantisation accepted only if it agrees with PyTorch."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from daemon.logging import get_logger
from daemon.ml.classifier import TOKENIZER_FILE, TransformerHead

log = get_logger(__name__)

FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
# Tried in order, fastest first; the first whose routing agrees with PyTorch is served.
SCHEMES = ("dynamic-int8", "int8-weight-blocked", "per-channel-int8-sensitive-fp32")


def _predictions(onnx_path: Path, tokenizer: Path, texts: Sequence[str], max_length: int) -> npt.NDArray[Any]:
    return TransformerHead(onnx_path, tokenizer, max_length).logits(texts)


def _agree(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> float:
    return float((a == b).mean()) if len(a) else 1.0


def _fuse(fp32_dir: Path, out_dir: Path) -> Path:
    """Fuse attention, SkipLayerNorm and BiasGelu with optimum before quantising.

    Quantising the unfused graph blocks these fusions at load time: the int8 model then ran no
    faster than fp32. Quantised after fusion, attention becomes one QAttention kernel.
    """
    from optimum.onnxruntime import ORTOptimizer
    from optimum.onnxruntime.configuration import OptimizationConfig

    optimizer = ORTOptimizer.from_pretrained(fp32_dir, file_names=[FP32_FILE])
    optimizer.optimize(
        save_dir=out_dir, optimization_config=OptimizationConfig(optimization_level=2, enable_gelu_approximation=False)
    )
    return out_dir / "model_optimized.onnx"


def _quantize(fused: Path, out_file: Path, *, scheme: str, keep_fp32: Sequence[str]) -> Path:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source = _quantize_embeddings(fused, out_file.with_suffix(".emb.onnx"))
    if scheme == "int8-weight-blocked":
        return _quantize_blocked(source, out_file)
    if scheme == "per-channel-int8-sensitive-fp32":
        # Per-channel weights, MatMul only (fused attention stays fp32), sensitive nodes kept fp32.
        kwargs: dict[str, Any] = {
            "per_channel": True,
            "op_types_to_quantize": ["MatMul"],
            "nodes_to_exclude": keep_fp32,
        }
    else:
        kwargs = {"per_channel": False, "op_types_to_quantize": ["MatMul", "Attention"]}
    quantize_dynamic(
        source,
        out_file,
        weight_type=QuantType.QInt8,
        # Fused contrib ops defeat shape inference; their outputs are float.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        **kwargs,
    )
    return out_file


def _quantize_blocked(source: Path, out_file: Path) -> Path:
    """Weight-only int8 in blocks of 32 (MatMulNBits); activations are quantised per block at run time.

    Dynamic int8 quantises each activation tensor with one scale, and the outlier channels of this
    model's hidden states cost it 7% top-1 agreement; 32-wide blocks keep agreement near 99.5%.
    """
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    config = DefaultWeightOnlyQuantConfig(
        block_size=32, is_symmetric=True, accuracy_level=4, bits=8, op_types_to_quantize=("MatMul",)
    )
    quantizer = MatMulNBitsQuantizer(
        onnx.load(str(source)), bits=8, block_size=32, is_symmetric=True, accuracy_level=4, algo_config=config
    )
    quantizer.process()
    quantizer.model.save_model_to_file(str(out_file), False)
    return out_file


def _quantize_embeddings(source: Path, out_file: Path) -> Path:
    """Store the word-embedding table as int8 with one scale per token row.

    The table is 12M of MiniLM's 23M weights, and it is looked up, not multiplied: per-row int8
    costs no agreement and a quarter of the memory. ORT's own Gather quantiser only does 4 bits,
    which lost 1.5% agreement, so the Gather is rewritten to Gather(int8) * Gather(scale).
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    initializers = {t.name: t for t in model.graph.initializer}
    for index, node in enumerate(list(model.graph.node)):
        table = initializers.get(node.input[0]) if node.op_type == "Gather" else None
        if table is None or "word_embeddings" not in table.name or len(table.dims) != 2:
            continue
        weights = numpy_helper.to_array(table).astype(np.float32)
        scale = np.maximum(np.abs(weights).max(axis=1, keepdims=True), 1e-12) / 127.0
        quantized = np.clip(np.rint(weights / scale), -127, 127).astype(np.int8)
        name = table.name
        model.graph.initializer.remove(table)
        model.graph.initializer.extend(
            [numpy_helper.from_array(quantized, f"{name}_int8"), numpy_helper.from_array(scale, f"{name}_scale")]
        )
        out = node.output[0]
        replacement = [
            helper.make_node("Gather", [f"{name}_int8", node.input[1]], [f"{out}_q"], name=f"{node.name}_q"),
            helper.make_node("Gather", [f"{name}_scale", node.input[1]], [f"{out}_s"], name=f"{node.name}_s"),
            helper.make_node("Cast", [f"{out}_q"], [f"{out}_f"], to=onnx.TensorProto.FLOAT, name=f"{node.name}_f"),
            helper.make_node("Mul", [f"{out}_f", f"{out}_s"], [out], name=f"{node.name}_deq"),
        ]
        model.graph.node.remove(node)
        for offset, new in enumerate(replacement):
            model.graph.node.insert(index + offset, new)
        break
    onnx.save(model, str(out_file))
    return out_file


def _sensitive_nodes(onnx_file: Path) -> list[str]:
    """MatMuls that int8 hurts most: FFN output projections (their GELU inputs have outliers),
    activation-by-activation attention products, and the pooler/classifier."""
    import onnx

    model = onnx.load(str(onnx_file), load_external_data=False)
    initializers = {i.name for i in model.graph.initializer}
    keep = []
    for node in model.graph.node:
        if node.op_type not in {"MatMul", "Gemm"}:
            continue
        ffn_out = node.name.endswith("/output/dense/MatMul") and "/attention/" not in node.name
        act_by_act = not any(inp in initializers for inp in node.input)
        if ffn_out or act_by_act or "pooler" in node.name or "classifier" in node.name:
            keep.append(node.name)
    return keep


def export_head(
    model_dir: Path,
    head_dir: Path,
    *,
    texts: Sequence[str],
    torch_logits: npt.NDArray[Any],
    max_length: int,
    min_agreement: float = 0.99,
    decide: Callable[[npt.NDArray[Any]], npt.NDArray[Any]] | None = None,
) -> dict[str, Any]:
    """Export `model_dir` (a saved transformers model) into `head_dir`; returns what was chosen and why.

    `decide` maps transformer logits to the label the served head routes to (for an ensemble, after
    mixing in the TF-IDF scores); int8 is accepted when those routing decisions agree with the ones
    made with the PyTorch model on >= `min_agreement` of the validation tickets. Without it, the
    transformer's own top-1 is compared.
    """
    from optimum.onnxruntime import ORTModelForSequenceClassification

    route = decide or (lambda logits: np.asarray(logits).argmax(axis=1))
    torch_top1 = np.asarray(torch_logits).argmax(axis=1)
    torch_routes = route(torch_logits)
    head_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ticketd-export-") as tmp:
        fp32_dir = Path(tmp) / "fp32"
        ort_model = ORTModelForSequenceClassification.from_pretrained(model_dir, export=True)
        ort_model.save_pretrained(fp32_dir)
        shutil.copy(fp32_dir / "model.onnx", head_dir / FP32_FILE)
        shutil.copy(model_dir / TOKENIZER_FILE, head_dir / TOKENIZER_FILE)
        tokenizer = head_dir / TOKENIZER_FILE
        fp32_logits = _predictions(head_dir / FP32_FILE, tokenizer, texts, max_length)
        report: dict[str, Any] = {
            "fp32_agreement": round(_agree(fp32_logits.argmax(axis=1), torch_top1), 4),
            "fp32_max_abs_logit_diff": round(float(np.abs(fp32_logits - torch_logits).max()), 6) if len(texts) else 0.0,
            "attempts": [],
        }
        fused = _fuse(fp32_dir, Path(tmp) / "fused")
        chosen = "fp32"
        best_file: Path | None = None
        best_agreement = -1.0
        for name in SCHEMES:
            keep = _sensitive_nodes(fused) if name == "per-channel-int8-sensitive-fp32" else []
            qfile = _quantize(fused, Path(tmp) / f"{name}.onnx", scheme=name, keep_fp32=keep)
            logits = _predictions(qfile, tokenizer, texts, max_length)
            transformer_agreement = _agree(logits.argmax(axis=1), torch_top1)
            routing_agreement = _agree(route(logits), torch_routes)
            accepted = routing_agreement >= min_agreement
            report["attempts"].append(
                {
                    "scheme": name,
                    "routing_agreement": round(routing_agreement, 4),
                    "transformer_agreement": round(transformer_agreement, 4),
                    "accepted": accepted,
                    "fp32_nodes": len(keep),
                }
            )
            log.info(
                "quantisation tried",
                head=head_dir.name,
                scheme=name,
                routing_agreement=round(routing_agreement, 4),
                transformer_agreement=round(transformer_agreement, 4),
            )
            if routing_agreement > best_agreement:
                best_file, best_agreement = qfile, routing_agreement
            if accepted:
                chosen = "int8"
                report["int8_scheme"] = name
                report["int8_agreement"] = round(routing_agreement, 4)
                report["int8_transformer_agreement"] = round(transformer_agreement, 4)
                best_file = qfile
                break
        if best_file is not None:
            # Kept even when rejected, so benchmarks can show what int8 would have cost; never served then.
            shutil.copy(best_file, head_dir / INT8_FILE)
    report["serving_precision"] = chosen
    report["onnx_files"] = {"fp32": FP32_FILE, **({"int8": INT8_FILE} if chosen == "int8" else {})}
    report["min_agreement"] = min_agreement
    report["validation_tickets"] = len(texts)
    return report
