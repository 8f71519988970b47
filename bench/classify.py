"""Serving benchmark: transformers pipeline (PyTorch) vs ONNX fp32 vs ONNX int8 on the same tickets.

Needs a model trained with `--keep-torch` (the PyTorch weights are the pipeline's side of the
comparison). Prints a table, then one JSON line. Without --model it trains a small model first.

Then the stack a user would otherwise run (Open Ticket AI serves German BERT-base models through the
transformers `pipeline`, one model per label): a BERT-base-sized model (12 layers, 768 hidden, random
weights: timing only) per head, at the head's own token limit and tokenizer, against ticketd's served
heads (ONNX + TF-IDF, exactly as the daemon loads them), on the same tickets.

    python bench/classify.py --model DIR --data tickets.csv [--n 500] [--peer-n 200] [--threads 2]
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


def _cpu_timed(fn: Any, batches: list[list[str]]) -> tuple[float, float]:
    """Wall and CPU seconds (all of this process's threads) for running `fn` over every batch."""
    fn(batches[0])  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    for batch in batches:
        fn(batch)
    return time.perf_counter() - wall, time.process_time() - cpu


def bench_peer(model: Path, texts: list[str], threads: int, layers: int = 12) -> list[dict[str, Any]]:
    """The peer's stack (a BERT-base `pipeline` per head) against ticketd's served heads, batch 1 and 32."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, pipeline

    from daemon.ml.classifier import Head
    from daemon.ml.train import default_base_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    names = json.loads((model / "metadata.json").read_text())["label_names"]
    peers: dict[str, Any] = {}
    ours: dict[str, Any] = {}
    for name in names:
        head = Head.load(model / name, threads=threads)
        spec = json.loads((model / name / "head.json").read_text())
        max_length = int(spec.get("max_length") or 256)  # a TF-IDF-only head: the peer still reads 256 tokens
        tokenizer_dir = model / name / "torch" if (model / name / "torch").is_dir() else Path(default_base_model())
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
        config = BertConfig(
            vocab_size=tokenizer.vocab_size,
            hidden_size=768,
            num_hidden_layers=layers,
            num_attention_heads=12,
            intermediate_size=3072,
            num_labels=len(head.classes),
        )
        pipe = pipeline("text-classification", model=BertForSequenceClassification(config).eval(), tokenizer=tokenizer)
        peers[name] = lambda b, p=pipe, n=max_length: p(b, batch_size=len(b), truncation=True, max_length=n)
        ours[name] = lambda b, h=head: h.predict(b, batch_size=len(b))
    stacks = {"peer: BERT-base pipeline": peers, "ticketd: served heads": ours}
    rows = []
    for batch_size in (1, 32):
        batches = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
        for stack, fns in stacks.items():  # one stack after the other: thread pools spin after each call
            per_head = {name: _cpu_timed(fn, batches) for name, fn in fns.items()}
            # Every ticket goes through every head: the stack's cost per ticket is the heads' sum.
            both = (sum(w for w, _ in per_head.values()), sum(c for _, c in per_head.values()))
            for name, (wall, cpu) in [*per_head.items(), ("all heads", both)]:
                rows.append(
                    {
                        "stack": stack,
                        "head": name,
                        "batch": batch_size,
                        "texts_per_s": round(len(texts) / wall, 1),
                        "cpu_ms_per_ticket": round(cpu * 1000 / len(texts), 2),
                    }
                )
            print(f"  {stack:<25} batch {batch_size:<3} done", file=sys.stderr)
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
    parser.add_argument("--peer-n", type=int, default=200, help="tickets for the peer-stack comparison")
    parser.add_argument("--peer-layers", type=int, default=12, help="the peer model's layers (12: BERT-base)")
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
    peer_rows = bench_peer(model, texts[: args.peer_n], args.threads, args.peer_layers)

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

    peer_n = min(args.peer_n, len(texts))
    print(f"\nthe peer's stack, {peer_n} tickets: {args.peer_layers}-layer 768-hidden BERT `pipeline` per head")
    print(f"{'stack':<27}{'head':<11}{'batch':>6}{'texts/s':>10}{'CPU ms/ticket':>15}{'speedup':>9}")
    peer_of = {(r["head"], r["batch"]): r for r in peer_rows if r["stack"].startswith("peer")}
    for r in peer_rows:
        ratio = r["texts_per_s"] / peer_of[(r["head"], r["batch"])]["texts_per_s"]
        print(
            f"{r['stack']:<27}{r['head']:<11}{r['batch']:>6}{r['texts_per_s']:>10.1f}"
            f"{r['cpu_ms_per_ticket']:>15.2f}{ratio:>9.2f}"
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
    for batch, suffix in ((1, ""), (32, "_batch32")):
        ours = next(
            r
            for r in peer_rows
            if r["stack"].startswith("ticketd") and r["head"] == "all heads" and r["batch"] == batch
        )
        peer = peer_of[("all heads", batch)]
        summary[f"vs_peer_stack_speedup{suffix}"] = round(ours["texts_per_s"] / peer["texts_per_s"], 2)
        summary[f"vs_peer_stack_cpu_ratio{suffix}"] = round(peer["cpu_ms_per_ticket"] / ours["cpu_ms_per_ticket"], 2)
        summary[f"peer_cpu_ms_per_ticket{suffix}"] = peer["cpu_ms_per_ticket"]
        summary[f"ticketd_cpu_ms_per_ticket{suffix}"] = ours["cpu_ms_per_ticket"]
    summary["peer_layers"] = args.peer_layers
    summary["serving_peak_rss_mib"] = round(rss["peak_rss_mib"], 1)
    summary["serving_imports_torch"] = bool(rss["heavy"])
    summary["bench_peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(summary))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
