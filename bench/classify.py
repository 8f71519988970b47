"""Serving benchmark: transformers pipeline (PyTorch) vs ONNX fp32 vs ONNX int8 on the same tickets.

Needs a model trained with `--keep-torch` (the PyTorch weights are the pipeline's side of the
comparison). Prints a table, then one JSON line. Without --model it trains a small model first.

    python bench/classify.py --model DIR --data tickets.csv [--n 500] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "softoft-tickets" / "softoft-tickets-dev.csv"

SERVE_RSS = """
import json, sys
from daemon.ml.classifier import Classifier
texts = json.load(open(sys.argv[2], encoding="utf-8"))
clf = Classifier.load(sys.argv[1], threads=int(sys.argv[3]))
clf.predict_texts(texts)  # the daemon's way: default serving batch
for t in texts[:100]:
    clf.predict_texts([t])
heavy = [m for m in ("torch", "transformers") if m in sys.modules]
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the (large) parent across fork+exec.
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"peak_rss_mib": hwm / 1024, "heavy": heavy}))
"""


def _timed(fn: Any, batches: list[list[str]]) -> tuple[list[int], list[float]]:
    preds: list[int] = []
    latencies: list[float] = []
    for batch in batches:
        start = time.perf_counter()
        preds.extend(fn(batch))
        latencies.append(time.perf_counter() - start)
    return preds, latencies


def _row(name: str, batch: int, n: int, latencies: list[float], agreement: float) -> dict[str, Any]:
    lat_ms = np.array(latencies) * 1000
    return {
        "engine": name,
        "batch": batch,
        "texts_per_s": round(n / sum(latencies), 1),
        "p50_ms": round(float(np.percentile(lat_ms, 50)), 2),
        "p99_ms": round(float(np.percentile(lat_ms, 99)), 2),
        "agreement": round(agreement, 4),
    }


def _dynamic_int8(head_dir: Path, out: Path) -> Path:
    """Plain dynamic int8 of everything: the speed ceiling, shown even though it fails the parity check."""
    import shutil

    from daemon.ml.export import FP32_FILE, _fuse, _quantize

    plain = out.parent / f"{head_dir.name}-plain"
    plain.mkdir(parents=True, exist_ok=True)
    shutil.copy(head_dir / FP32_FILE, plain / FP32_FILE)
    shutil.copy(head_dir / "torch" / "config.json", plain / "config.json")
    return _quantize(_fuse(plain, out.parent / f"{head_dir.name}-fused"), out, scheme="dynamic-int8", keep_fp32=[])


def bench_head(head_dir: Path, texts: list[str], threads: int, tmp: Path) -> list[dict[str, Any]]:
    """All engines on one head; agreement is top-1 against the PyTorch pipeline."""
    import torch
    from transformers import pipeline

    from daemon.ml.classifier import TOKENIZER_FILE, TransformerHead

    spec = json.loads((head_dir / "head.json").read_text())
    max_length = int(spec["max_length"])
    classes = json.loads((head_dir / "labels.json").read_text())
    torch.set_num_threads(threads)
    pipe = pipeline("text-classification", model=str(head_dir / "torch"), device=-1)
    index = {c: i for i, c in enumerate(classes)}

    def run_pipe(batch: list[str]) -> list[int]:
        out = pipe(batch, batch_size=len(batch), truncation=True, max_length=max_length)
        return [index[o["label"]] for o in out]

    engines: dict[str, Any] = {"pytorch-pipeline": run_pipe}
    files = {p: spec["onnx_files"].get(p) for p in ("fp32", "int8")}
    if files["int8"] is None and (head_dir / "model.int8.onnx").exists():
        files["int8"] = "model.int8.onnx"  # the best int8 attempt, kept although parity rejected it
    ceiling = tmp / f"{head_dir.name}-dynamic-int8.onnx"
    files["int8-dynamic*"] = str(_dynamic_int8(head_dir, ceiling))
    for precision, file in files.items():
        if file:
            head = TransformerHead(head_dir / file, head_dir / TOKENIZER_FILE, max_length, threads)
            engines[f"onnx-{precision}"] = lambda b, h=head: h.logits(b, batch_size=len(b)).argmax(1).tolist()
    rows = []
    reference: dict[int, list[int]] = {}
    for batch_size in (1, 32):
        batches = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
        # One engine after the other, never interleaved: torch's and onnxruntime's thread pools spin
        # after each call, and interleaving made whichever ran second up to 20x slower on 2 cores.
        for name, fn in engines.items():
            fn(batches[0])  # warm-up
            preds, lat = _timed(fn, batches)
            if name == "pytorch-pipeline":
                reference[batch_size] = preds
            agreement = float(np.mean(np.array(preds) == np.array(reference[batch_size])))
            rows.append({"head": head_dir.name, **_row(name, batch_size, len(texts), lat, agreement)})
            print(f"  {head_dir.name:<9} {name:<17} batch {batch_size:<3} done", file=sys.stderr)
    return rows


def serving_rss(model: Path, texts: list[str], threads: int) -> dict[str, Any]:
    """Peak RSS of a fresh process that serves every head the way the daemon does (no torch).

    It gets the tickets as a JSON list, so parsing the whole dataset is not counted as serving.
    """
    with tempfile.NamedTemporaryFile("w", suffix=".json", encoding="utf-8") as tickets:
        json.dump(texts, tickets)
        tickets.flush()
        out = subprocess.run(
            [sys.executable, "-c", SERVE_RSS, str(model), tickets.name, str(threads)],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="model directory trained with --keep-torch")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    from daemon.ml.dataset import load_dataset

    model = args.model
    tmp = None
    if model is None:
        from daemon.ml.train import TrainOptions, train

        tmp = tempfile.TemporaryDirectory(prefix="ticketd-bench-")
        model = Path(tmp.name) / "model"
        print("no --model: training a small one (1 epoch) first", file=sys.stderr)
        train(args.data, model, TrainOptions(epochs=1, keep_torch=True, tfidf_weights=(0.0,)))
    texts = load_dataset(args.data).texts()[: args.n]
    heads = [p for p in sorted(model.iterdir()) if (p / "torch").is_dir()]
    if not heads:
        print(f"{model}: no head has PyTorch weights; train with --keep-torch", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory(prefix="ticketd-bench-onnx-") as scratch:
        for head in heads:
            rows.extend(bench_head(head, texts, args.threads, Path(scratch)))
    rss = serving_rss(model, texts, args.threads)

    print(f"\n{len(texts)} tickets, {args.threads} threads, {os.cpu_count()} cores")
    print(f"{'head':<10}{'engine':<18}{'batch':>6}{'texts/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'agree':>8}{'x pipe':>8}")
    base = {(r["head"], r["batch"]): r["texts_per_s"] for r in rows if r["engine"] == "pytorch-pipeline"}
    for r in rows:
        ratio = r["texts_per_s"] / base[(r["head"], r["batch"])]
        print(
            f"{r['head']:<10}{r['engine']:<18}{r['batch']:>6}{r['texts_per_s']:>10.1f}{r['p50_ms']:>9.2f}"
            f"{r['p99_ms']:>9.2f}{r['agreement']:>8.3f}{ratio:>8.2f}"
        )
    print("* plain dynamic int8 of every MatMul: the speed ceiling, never served (fails the parity check)")
    print(
        f"torch-free serving of {len(heads)} heads: peak RSS {rss['peak_rss_mib']:.0f} MiB "
        f"(heavy modules loaded: {rss['heavy'] or 'none'})"
    )

    def pick(engine: str, batch: int, key: str) -> list[float]:
        return [r[key] for r in rows if r["engine"] == engine and r["batch"] == batch]

    summary: dict[str, Any] = {"tickets": len(texts), "threads": args.threads}
    for engine in ("onnx-int8", "onnx-fp32"):
        speeds = pick(engine, 1, "texts_per_s")
        if speeds:
            short = engine.split("-")[1]
            pipe_speeds = pick("pytorch-pipeline", 1, "texts_per_s")
            summary[f"{short}_vs_pipeline_speedup"] = round(float(np.mean(np.array(speeds) / np.array(pipe_speeds))), 2)
            summary[f"{short}_vs_pipeline_speedup_batch32"] = round(
                float(
                    np.mean(
                        np.array(pick(engine, 32, "texts_per_s"))
                        / np.array(pick("pytorch-pipeline", 32, "texts_per_s"))
                    )
                ),
                2,
            )
            summary[f"{short}_agreement"] = min(pick(engine, 1, "agreement"))
    ceiling = pick("onnx-int8-dynamic*", 1, "texts_per_s")
    summary["dynamic_int8_ceiling_speedup"] = round(
        float(np.mean(np.array(ceiling) / np.array(pick("pytorch-pipeline", 1, "texts_per_s")))), 2
    )
    summary["dynamic_int8_ceiling_agreement"] = min(pick("onnx-int8-dynamic*", 1, "agreement"))
    summary["serving_peak_rss_mib"] = round(rss["peak_rss_mib"], 1)
    summary["serving_imports_torch"] = bool(rss["heavy"])
    summary["bench_peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(summary))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
