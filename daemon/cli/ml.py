"""`ticketd train`, `classify`, `evaluate`, `models` and `split`: the model's commands, usable without a daemon."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from connectors import _json as safe_json
from daemon.errors import TicketdError, TrainingError
from daemon.ml.sampling import (
    DEFAULT_FINETUNE_CAP,
    DEFAULT_HALF_LIFE_DAYS,
    DEFAULT_TFIDF_CV_CAP,
    DEFAULT_VALIDATION_MAX,
)
from daemon.ml.thresholds import DEFAULT_TARGET


def _add_train(sub: Any) -> None:
    p = sub.add_parser("train", help="fine-tune and export a classifier from labelled tickets")
    p.add_argument("data", help="CSV, JSON or JSONL file of closed tickets")
    dest = p.add_mutually_exclusive_group(required=True)
    dest.add_argument("--out", help="directory to write the model to (must not exist)")
    dest.add_argument("--store", help="model store root: add the model as a new version")
    p.add_argument("--promote", action="store_true", help="with --store: make the new version current")
    p.add_argument(
        "--label", action="append", dest="labels", help="label to train (repeatable; default: queue, priority)"
    )
    p.add_argument("--column", action="append", default=[], help="column override KEY=COLUMN, e.g. queue=category")
    p.add_argument("--base", help="base model: local Hugging Face directory (default: bundled MiniLM)")
    p.add_argument("--allow-download", action="store_true", help="allow --base to be a hub id (downloads)")
    p.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs, at most (default: 3)")
    p.add_argument("--max-length", type=int, default=256, help="tokens per ticket, at most (default: 256)")
    p.add_argument("--learning-rate", type=float, default=1.5e-4, help="fine-tuning learning rate (default: 1.5e-4)")
    p.add_argument("--batch-size", type=int, default=16, help="tickets per training step (default: 16)")
    p.add_argument(
        "--class-weights",
        choices=["none", "sqrt", "balanced"],
        default="sqrt",
        help="weight small classes up in the transformer's loss (default: sqrt)",
    )
    p.add_argument(
        "--validation-size", type=float, default=0.15, help="share of tickets held out for choices (default: 0.15)"
    )
    p.add_argument("--seed", type=int, default=13, help="random seed of splits and training (default: 13)")
    p.add_argument("--train-embeddings", action="store_true", help="also fine-tune the word embeddings (slower)")
    p.add_argument("--bf16", choices=["auto", "on", "off"], default="auto", help="bf16 autocast while training")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: all cores)")
    p.add_argument("--keep-torch", action="store_true", help="also keep the PyTorch weights (for bench/)")
    p.add_argument("--tfidf-only", action="store_true", help="skip the transformer (fast, for tiny datasets)")
    p.add_argument(
        "--budget",
        type=float,
        metavar="MINUTES",
        help="fit the whole training into about this many minutes: epochs and ticket length shrink to fit",
    )
    p.add_argument(
        "--min-examples",
        type=int,
        metavar="N",
        help="leave out classes with fewer than N tickets (and say which) instead of stopping",
    )
    p.add_argument(
        "--finetune-cap",
        type=_cap,
        default=DEFAULT_FINETUNE_CAP,
        metavar="N",
        help="fine-tune each transformer on at most N tickets: stratified, recent ones likelier; "
        f"TF-IDF still learns from all (default: {DEFAULT_FINETUNE_CAP}; 0: no cap)",
    )
    p.add_argument(
        "--half-life-days",
        type=float,
        default=DEFAULT_HALF_LIFE_DAYS,
        help="with a closed_at column: a ticket this many days older is half as likely in that sample "
        f"(default: {DEFAULT_HALF_LIFE_DAYS:g})",
    )
    p.add_argument(
        "--tfidf-cv-cap",
        type=_cap,
        default=DEFAULT_TFIDF_CV_CAP,
        metavar="N",
        help="cross-validate TF-IDF settings on the validation tickets and at most N others "
        f"(default: {DEFAULT_TFIDF_CV_CAP}; 0: no cap)",
    )
    p.add_argument(
        "--validation-max",
        type=_cap,
        default=DEFAULT_VALIDATION_MAX,
        metavar="N",
        help=f"at most N validation tickets (default: {DEFAULT_VALIDATION_MAX}; 0: no cap)",
    )
    p.add_argument(
        "--target-precision",
        type=float,
        default=DEFAULT_TARGET,
        metavar="P",
        help="fit each class's routing threshold so its precision on unseen tickets reaches P by a conservative "
        f"bound; a class that cannot is never routed automatically (default: {DEFAULT_TARGET:g})",
    )
    p.add_argument(
        "--warm-start",
        metavar="MODEL",
        help="fine-tune each head from MODEL's head (trained with --keep-torch) when its classes match",
    )


def _cap(value: str) -> int | None:
    """A row cap from the command line; 0 means none."""
    n = int(value)
    if n < 0:
        raise argparse.ArgumentTypeError(f"{value}: must be 0 (no cap) or a positive number of tickets")
    return n or None


def _add_classify(sub: Any) -> None:
    p = sub.add_parser("classify", help="classify tickets with a trained model (no torch needed)")
    p.add_argument("--model", required=True, help="model directory or model store root")
    p.add_argument("text", nargs="?", help="ticket text (HTML allowed)")
    p.add_argument("--subject", help="ticket subject, kept ahead of the body")
    p.add_argument("--jsonl", action="store_true", help='read {"text"} or {"subject","body"} lines from stdin')
    p.add_argument("--precision", choices=["fp32", "int8"], help="override the exported precision")


def _add_evaluate(sub: Any) -> None:
    p = sub.add_parser("evaluate", help="measure a model on labelled tickets against baselines")
    p.add_argument("--model", required=True, help="model directory or model store root")
    p.add_argument("data", help="held-out labelled tickets")
    p.add_argument("--report", required=True, help="where to write report.json")
    p.add_argument("--train", help="training data for the baselines (default: the model's recorded data)")
    p.add_argument("--plots", help="directory for confusion-matrix PNGs (default: next to the report)")
    p.add_argument("--column", action="append", default=[], help="column override KEY=COLUMN")


def _add_models(sub: Any) -> None:
    p = sub.add_parser("models", help="add, list, promote or roll back stored model versions")
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--root", help="a model store directory, used as it is (default: the store of --config or of the defaults)"
    )
    where.add_argument(
        "--config",
        type=Path,
        help="config file whose model store to use (in its database when state.url is PostgreSQL)",
    )
    msub = p.add_subparsers(dest="models_command", required=True)
    msub.add_parser("list", help="show stored versions")
    pa = msub.add_parser("add", help="store a model directory trained elsewhere as the next version")
    pa.add_argument("model_dir", type=Path, help="a model directory (with metadata.json), e.g. `ticketd train --out`")
    pa.add_argument("--promote", action="store_true", help="and make it current")
    pp = msub.add_parser("promote", help="make a version current (after loading it and classifying a probe ticket)")
    pp.add_argument("version", help="a stored version such as v3")
    msub.add_parser("rollback", help="return to the version promoted before the current one")


def _add_split(sub: Any) -> None:
    p = sub.add_parser("split", help="stratified train/test split of a dataset")
    p.add_argument("data", help="CSV, JSON or JSONL file of labelled tickets")
    p.add_argument("--test-size", type=float, default=0.2, help="share of tickets in the test file (default: 0.2)")
    p.add_argument("--seed", type=int, default=13, help="random seed (default: 13)")
    p.add_argument("--train-out", required=True, help="where to write the training tickets (CSV)")
    p.add_argument("--test-out", required=True, help="where to write the test tickets (CSV)")
    p.add_argument("--column", action="append", default=[], help="column override KEY=COLUMN")


def add_commands(sub: Any) -> None:
    """The model's subcommands on `ticketd`'s parser."""
    for add in (_add_train, _add_classify, _add_evaluate, _add_models, _add_split):
        add(sub)


def _cmd_train(args: argparse.Namespace) -> int:
    from daemon.ml.dataset import Columns

    try:
        from daemon.ml.train import DEFAULT_TFIDF_WEIGHTS, TrainOptions, train
    except ImportError as exc:
        raise TrainingError(f"training needs the `train` extra (pip install 'ticketd[train]'): {exc}") from exc
    opts = TrainOptions(
        labels=tuple(args.labels) if args.labels else None,
        base=args.base,
        allow_download=args.allow_download,
        epochs=args.epochs,
        max_length=args.max_length,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        class_weights=args.class_weights,
        validation_size=args.validation_size,
        seed=args.seed,
        threads=args.threads,
        keep_torch=args.keep_torch,
        bf16=args.bf16,
        freeze_embeddings=not args.train_embeddings,
        tfidf_weights=(1.0,) if args.tfidf_only else DEFAULT_TFIDF_WEIGHTS,
        columns=Columns.parse(args.column),
        budget_minutes=args.budget,
        min_examples=args.min_examples,
        finetune_cap=args.finetune_cap,
        recency_half_life_days=args.half_life_days,
        tfidf_cv_cap=args.tfidf_cv_cap,
        validation_max=args.validation_max,
        warm_start=args.warm_start,
        target_precision=args.target_precision,
    )
    if not 0.5 <= args.target_precision < 1.0:
        raise TrainingError(f"--target-precision {args.target_precision:g}: must be at least 0.5 and below 1")
    if args.budget is not None and args.budget <= 0:
        raise TrainingError(f"--budget {args.budget:g}: must be a positive number of minutes")
    if args.min_examples is not None and args.min_examples < 1:
        raise TrainingError(f"--min-examples {args.min_examples}: must be at least 1")
    version: str | None = None
    if args.store:
        from daemon.ml.store import ModelStore

        store = ModelStore(args.store)
        with store.staging() as staging:  # a failed run leaves no version and no directories behind
            metadata = train(args.data, staging / "model", opts)
            version = store.add(staging / "model")
        if args.promote:
            store.promote(version)
        where = f"{args.store} as {version}" + (" (current)" if args.promote else "")
    else:
        metadata = train(args.data, args.out, opts)
        where = args.out
    if sys.stdout.isatty():
        print(f"model written to {where} in {metadata['training_seconds']:.0f}s")
        print(training_summary(metadata))
        return 0
    # For machines (a retrain's relay, a script): one JSON object a line, and nothing else on stdout.
    written = {
        "event": "model written",
        "path": args.store or args.out,
        "version": version,
        "current": bool(args.store and args.promote),
        "seconds": metadata["training_seconds"],
    }
    print(json.dumps(written, ensure_ascii=False))
    print(json.dumps({"event": "training summary", **training_facts(metadata)}, ensure_ascii=False), flush=True)
    return 0


def training_facts(metadata: dict[str, Any]) -> dict[str, Any]:
    """`training_summary`'s facts as data, for a reader that is not a person (stdout off a terminal)."""
    data = metadata["data"]
    left = data.get("left_out") or {}
    heads = {}
    for label, head in metadata["heads"].items():
        fine = head.get("fine_tune") or {}
        added = head.get("transformer_added")
        cmap = head.get("confidence_map") or {}
        heads[label] = {
            "chosen": head["chosen"],
            "tfidf_weight": head["tfidf_weight"],
            "validation": head["validation"],
            "serving_precision": head["export"].get("serving_precision"),
            "confidence_map_kept": cmap.get("kept"),
            "tfidf": {k: (head.get("tfidf") or {}).get(k) for k in ("features", "C")},
            "transformer_kept": None if added is None else added["kept"],
            "transformer_skipped": fine.get("skipped"),
        }
    return {
        "rows": data["rows"],
        "validation_rows": data.get("validation_rows"),
        "left_out": left.get("classes") or {},
        "languages": data.get("languages") or {},
        "languages_from": data.get("languages_from"),
        "language_warning": metadata.get("language_warning"),
        "heads": heads,
    }


def training_summary(metadata: dict[str, Any]) -> str:
    """What an admin needs after `train`: what was left out, the language fit, each head's choice and what it cost."""
    data = metadata["data"]
    lines = []
    left = data.get("left_out") or {}
    for name, classes in (left.get("classes") or {}).items():
        listed = ", ".join(f"{v!r} ({n})" for v, n in sorted(classes.items(), key=lambda kv: kv[1]))
        lines.append(
            f"  left out {sum(classes.values())} tickets of {len(classes)} {name} classes with fewer than "
            f"{left['min_examples']} examples: {listed}"
        )
    mix = data.get("languages") or {}
    total = sum(mix.values()) or 1
    if mix:
        shares = ", ".join(f"{lang} {n / total:.0%}" for lang, n in list(mix.items())[:6])
        lines.append(f"  languages ({data.get('languages_from', 'column')}): {shares}")
    if metadata.get("language_warning"):
        lines.append(f"  warning: {metadata['language_warning']}")
    for label, head in metadata["heads"].items():
        val = head["validation"]
        precision = head["export"].get("serving_precision", "n/a")
        lines.append(
            f"  {label}: {head['chosen']} (tfidf weight {head['tfidf_weight']}), validation accuracy "
            f"{val['accuracy']:.3f} ± {val.get('accuracy_se', 0):.3f}, macro-F1 {val['macro_f1']:.3f} ± "
            f"{val.get('macro_f1_se', 0):.3f}, ECE {val['ece']:.3f}, serving {precision}"
        )
        cmap = head.get("confidence_map") or {}
        if cmap:
            kept = "kept" if cmap["kept"] else "not kept"
            lines.append(f"    confidence map {kept}: {cmap['reason']}")
        tf = head.get("tfidf", {})
        if "cross_validation" in tf:
            lines.append(f"    tfidf: {tf['features']} C={tf['C']:g} ({tf['cross_validation']['reason']})")
        added = head.get("transformer_added")
        fine = head.get("fine_tune") or {}
        if added:
            minutes = (added.get("fine_tune_seconds") or 0) / 60
            lines.append(
                f"    transformer ({minutes:.1f} min, {fine.get('epochs')} epochs at {fine.get('max_length')} tokens) "
                f"added accuracy {added['accuracy']:+.3f} ± {added['accuracy_se']:.3f}, macro-F1 "
                f"{added['macro_f1']:+.3f} ± {added['macro_f1_se']:.3f} ({added['best_with_transformer']}); "
                + ("kept" if added["kept"] else "not kept")
            )
        elif "skipped" in fine:
            lines.append(f"    transformer skipped: {fine['skipped']}")
        for lang, scores in (head.get("per_language") or {}).items():
            chosen = scores["chosen"]
            lines.append(
                f"    {lang:<8} n={scores['n']:<5} accuracy {chosen['accuracy']:.3f}, macro-F1 {chosen['macro_f1']:.3f}"
            )
    return "\n".join(lines)


def _jsonl_inputs(stream: TextIO) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    for lineno, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            obj = safe_json.loads(line)
        except json.JSONDecodeError as exc:
            yield lineno, None, f"line {lineno}: invalid JSON ({exc.msg})"
            continue
        if isinstance(obj, str):
            obj = {"text": obj}
        if not isinstance(obj, dict) or not any(isinstance(obj.get(k), str) for k in ("text", "body", "subject")):
            yield lineno, None, f'line {lineno}: expected a string or an object with "text" or "subject"/"body"'
            continue
        yield lineno, obj, None


def _cmd_classify(args: argparse.Namespace) -> int:
    from daemon.ml.classifier import Classifier
    from daemon.ml.text import compose

    clf = Classifier.load(args.model, precision=args.precision)
    if not args.jsonl:
        if args.text is None and args.subject is None:
            raise TicketdError("classify needs TEXT, --subject, or --jsonl")
        print(json.dumps(clf.classify(args.text or "", subject=args.subject), ensure_ascii=False))
        return 0
    failures = 0
    batch: list[tuple[int, dict[str, Any]]] = []

    def flush() -> None:
        texts = [compose(o.get("subject"), o.get("text") or o.get("body")) for _, o in batch]
        for (_, obj), result in zip(batch, clf.predict_texts(texts), strict=True):
            out = {"id": obj["id"]} if "id" in obj else {}
            print(json.dumps({**out, **result}, ensure_ascii=False), flush=False)
        sys.stdout.flush()
        batch.clear()

    for lineno, obj, error in _jsonl_inputs(sys.stdin):
        if error is not None or obj is None:
            flush()
            failures += 1
            print(json.dumps({"line": lineno, "error": error}), flush=True)
            print(f"ticketd: {error}", file=sys.stderr)
            continue
        batch.append((lineno, obj))
        if len(batch) >= 32:
            flush()
    flush()
    return 1 if failures else 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from daemon.ml.dataset import Columns
    from daemon.ml.evaluate import evaluate, summary

    report = evaluate(
        args.model,
        args.data,
        report_path=args.report,
        train_path=args.train,
        plots_dir=args.plots,
        columns=Columns.parse(args.column),
    )
    print(summary(report))
    print(f"report written to {args.report}")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from daemon.ml.serving import configured_store
    from daemon.ml.store import ModelStore

    if args.root is not None:
        return _models(ModelStore(args.root), args)
    from daemon.runtime.daemon import load_or_default

    with configured_store(load_or_default(args.config), who=f"ticketd models {args.models_command}") as store:
        return _models(store, args)


def _models(store: Any, args: argparse.Namespace) -> int:
    if args.models_command == "list":
        versions = store.list()
        if not versions:
            print(f"no model versions in {store.where}")
        for v in versions:
            heads = v.metadata.get("heads", {})
            scores = ", ".join(f"{k} {h['chosen']} F1 {h['validation']['macro_f1']:.3f}" for k, h in heads.items())
            mark = "*" if v.current else " "
            print(f"{mark} {v.version:<6} {v.metadata.get('created_at', '?'):<26} {scores}")
    elif args.models_command == "add":
        version = store.add(args.model_dir)  # copied in: the directory given stays as it is
        if args.promote:
            store.promote(version)
        print(f"added {version} to {store.where}" + (" (current)" if args.promote else ""))
    elif args.models_command == "promote":
        store.promote(args.version)
        print(f"current -> {args.version}")
    else:
        print(f"current -> {store.rollback()}")
    return 0


def _cmd_split(args: argparse.Namespace) -> int:
    from daemon.ml.dataset import Columns, load_dataset, stratified_split, write_csv

    ds = load_dataset(args.data, columns=Columns.parse(args.column), min_examples=1)  # the split keeps rare ones
    train, test = stratified_split(ds, test_size=args.test_size, seed=args.seed)
    write_csv(train, args.train_out)
    write_csv(test, args.test_out)
    print(f"{len(train)} training and {len(test)} test tickets written")
    return 0


COMMANDS = {
    "train": _cmd_train,
    "classify": _cmd_classify,
    "evaluate": _cmd_evaluate,
    "models": _cmd_models,
    "split": _cmd_split,
}
