"""Evaluation on held-out tickets, always next to baselines trained in the same run."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from daemon.errors import DatasetError, TicketdError
from daemon.ml.calibration import coverage_at, expected_calibration_error
from daemon.ml.classifier import Classifier, Head
from daemon.ml.dataset import Columns, load_dataset
from daemon.ml.thresholds import routed

MIN_LANGUAGE_ROWS = 1


def label_metrics(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    classes: Sequence[str],
    probs: npt.NDArray[Any] | None,
    confidence: npt.NDArray[Any] | None = None,
) -> dict[str, Any]:
    """Accuracy, F1s, per-class scores and confusion; ECE and coverage of the served confidence when known."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    present = sorted(set(y_true) | set(y_pred))  # a class absent from both sides is not a zero-F1 class
    out: dict[str, Any] = {
        "n": len(y_true),
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 4),
        "macro_f1": round(float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)), 4),
        "weighted_f1": round(float(f1_score(y_true, y_pred, labels=present, average="weighted", zero_division=0)), 4),
    }
    if probs is not None:
        index = {c: i for i, c in enumerate(classes)}
        y = np.array([index.get(v, -1) for v in y_true])
        coverage, threshold = coverage_at(probs, y, 0.9, confidence=confidence)
        out["ece"] = round(expected_calibration_error(probs, y, 15, confidence=confidence), 4)
        out["coverage_at_90"] = round(coverage, 4)
        out["threshold_at_90"] = None if threshold is None else round(threshold, 4)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=list(classes), zero_division=0)
    out["per_class"] = {
        c: {
            "precision": round(float(p[i]), 4),
            "recall": round(float(r[i]), 4),
            "f1": round(float(f[i]), 4),
            "support": int(s[i]),
        }
        for i, c in enumerate(classes)
    }
    out["confusion"] = {
        "labels": list(classes),
        "matrix": confusion_matrix(y_true, y_pred, labels=list(classes)).tolist(),
    }
    return out


def routing_metrics(
    head: Head, y_true: Sequence[str], probs: npt.NDArray[Any], top: npt.NDArray[Any]
) -> dict[str, Any]:
    """Routed share and precision under the model's per-class thresholds and under one global threshold.

    Both are fitted on the model's evidence for the training's target precision (daemon.ml.thresholds), so
    this is what live routing with `target_precision` would do on these tickets; per class, the fit's
    estimate on the evidence (threshold, estimated precision with its bounds, coverage, marks) beside what
    these tickets measured.
    """
    fitted = head.routing
    if fitted is None:
        return {}
    index = {c: i for i, c in enumerate(head.classes)}
    predicted = probs.argmax(axis=1)
    correct = predicted == np.array([index.get(v, -1) for v in y_true])
    per_class = routed(head.classes, predicted, top, correct, fitted.per_class, fitted.target)
    single = dict.fromkeys(head.classes, fitted.global_threshold)
    overall = routed(head.classes, predicted, top, correct, single, fitted.target)
    pooled = fitted.pooled.estimate if fitted.pooled is not None else None
    classes = {
        name: {
            **fit.to_json(),
            "marks": fit.marks(pooled),
            "held_out": per_class["per_class"][name],
        }
        for name, fit in fitted.classes.items()
    }
    return {
        "target_precision": fitted.target,
        "routed_share": per_class["routed_share"],
        "routed_precision": per_class["routed_precision"],
        "global_routed_share": overall["routed_share"],
        "global_routed_precision": overall["routed_precision"],
        "classes_below_target": per_class["classes_below_target"],
        "global_classes_below_target": overall["classes_below_target"],
        "global_threshold": fitted.global_threshold,
        "class_thresholds": fitted.per_class,
        "evidence": {
            "pooled": None if fitted.pooled is None else fitted.pooled.to_json(),
            "global": None if fitted.global_pooled is None else fitted.global_pooled.to_json(),
            "classes": classes,
        },
    }


def _baselines(
    train_texts: list[str], train_y: list[str], test_texts: list[str], test_y: list[str], classes: list[str]
) -> dict[str, Any]:
    from collections import Counter

    from daemon.ml.tfidf import baseline_tfidf_lr

    majority = Counter(train_y).most_common(1)[0][0]
    tfidf = baseline_tfidf_lr(train_texts, train_y, seed=0)
    proba = tfidf.predict_proba(test_texts)
    # Reorder columns to `classes`; classes unseen by the baseline get probability 0.
    cols = list(tfidf.classes_)
    aligned = np.zeros((len(test_texts), len(classes)))
    for j, c in enumerate(classes):
        if c in cols:
            aligned[:, j] = proba[:, cols.index(c)]
    preds = [classes[i] for i in aligned.argmax(axis=1)]
    majority_probs = np.zeros((len(test_texts), len(classes)))
    if majority in classes:
        majority_probs[:, classes.index(majority)] = 1.0
    return {
        "majority": {
            "label": majority,
            **_headline(label_metrics(test_y, [majority] * len(test_y), classes, majority_probs)),
        },
        "tfidf_lr": {
            "description": "word 1-2-gram TF-IDF + logistic regression (C=10, balanced)",
            **_headline(label_metrics(test_y, preds, classes, aligned)),
        },
    }


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: metrics[k] for k in ("accuracy", "macro_f1", "weighted_f1", "ece", "coverage_at_90") if k in metrics}


def confusion_png(metrics: dict[str, Any], title: str, path: Path) -> None:
    """Render a confusion matrix as a PNG admins can look at."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = metrics["confusion"]["labels"]
    matrix = np.array(metrics["confusion"]["matrix"])
    size = max(5.0, 0.7 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    threshold = matrix.max() / 2 if matrix.size else 0
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(
                j,
                i,
                str(matrix[i, j]),
                ha="center",
                va="center",
                color="white" if matrix[i, j] > threshold else "black",
                fontsize=8,
            )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def evaluate(
    model: str | Path,
    data: str | Path,
    *,
    report_path: str | Path,
    train_path: str | Path | None = None,
    plots_dir: str | Path | None = None,
    columns: Columns | None = None,
) -> dict[str, Any]:
    """Score every head on `data`, train baselines on the model's training data, write the report."""
    clf = Classifier.load(model)
    train_source = train_path or clf.metadata.get("data", {}).get("path")
    if not train_source or not Path(train_source).is_file():
        raise TicketdError(
            f"baselines need the model's training data: pass --train (recorded path {train_source!r} is missing)"
        )
    labels = list(clf.heads)
    test = load_dataset(data, labels=labels, columns=columns, min_examples=1)
    train = load_dataset(train_source, labels=labels, columns=columns, min_examples=1)
    texts = test.texts()
    languages = test.languages()
    report: dict[str, Any] = {
        "model": str(clf.model_dir),
        "data": {"path": str(Path(data).resolve()), "sha256": test.sha256, "rows": len(test)},
        "train_data": {"path": str(Path(train_source).resolve()), "sha256": train.sha256, "rows": len(train)},
        "labels": {},
    }
    if train.sha256 != clf.metadata.get("data", {}).get("sha256"):
        report["train_data"]["warning"] = "differs from the data the model was trained on"
    plots = Path(plots_dir) if plots_dir else Path(report_path).parent
    for name, head in clf.heads.items():
        y_true = test.labels(name)
        unknown = sorted(set(y_true) - set(head.classes))
        if unknown:
            raise DatasetError(f"{name} labels the model never saw: {', '.join(unknown)}", file=str(data))
        probs, top = head.predict(texts)
        preds = [head.classes[i] for i in probs.argmax(axis=1)]
        metrics = label_metrics(y_true, preds, head.classes, probs, top)
        metrics.update(routing_metrics(head, y_true, probs, top))
        if any(languages):
            per_lang = {}
            for lang in sorted(set(languages)):
                idx = [i for i, v in enumerate(languages) if v == lang]
                if len(idx) >= MIN_LANGUAGE_ROWS:
                    sub = label_metrics(
                        [y_true[i] for i in idx], [preds[i] for i in idx], head.classes, probs[idx], top[idx]
                    )
                    per_lang[lang or "unknown"] = _headline(sub) | {"n": len(idx)}
            metrics["per_language"] = per_lang
        metrics["baselines"] = _baselines(train.texts(), train.labels(name), texts, y_true, head.classes)
        png = plots / f"confusion-{name}.png"
        confusion_png(metrics, f"{name}: accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}", png)
        metrics["confusion_png"] = str(png)
        report["labels"][name] = metrics
    Path(report_path).parent.mkdir(parents=True, exist_ok=True)
    Path(report_path).write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    return report


def summary(report: dict[str, Any]) -> str:
    """A short human-readable table: model against baselines, per label and per language."""
    lines = [f"{report['data']['rows']} tickets from {report['data']['path']}"]
    for name, m in report["labels"].items():
        b = m["baselines"]
        lines.append(f"\n{name}")
        lines.append(f"  {'':<22}{'accuracy':>9}{'macro-F1':>10}{'ECE':>8}{'cov@90':>8}")
        rows = [("ticketd", m), ("baseline tfidf_lr", b["tfidf_lr"]), ("baseline majority", b["majority"])]
        for title, r in rows:
            lines.append(
                f"  {title:<22}{r['accuracy']:>9.3f}{r['macro_f1']:>10.3f}{r.get('ece', float('nan')):>8.3f}"
                f"{r.get('coverage_at_90', float('nan')):>8.3f}"
            )
        if "routed_share" in m:
            lines += _routing_lines(m)
        for lang, r in m.get("per_language", {}).items():
            lines.append(f"  lang {lang:<17}{r['accuracy']:>9.3f}{r['macro_f1']:>10.3f}{r['ece']:>8.3f}  n={r['n']}")
    return "\n".join(lines)


def _routing_lines(m: dict[str, Any]) -> list[str]:
    """The label's pooled figures against the target, then per class: the fit on the evidence and these tickets."""
    target, evidence = m["target_precision"], m.get("evidence") or {}
    pooled, single = evidence.get("pooled") or {}, evidence.get("global") or {}
    lines = [
        f"  routed at pooled precision target {target:g}: per-class thresholds "
        f"{_pct(m['routed_share'])} of these tickets at precision {_pct(m['routed_precision'])}; "
        f"one global threshold {_pct(m['global_routed_share'])} at {_pct(m['global_routed_precision'])}",
        f"  on the model's evidence ({pooled.get('tickets', 0)} unseen tickets): per-class "
        f"{_pct(pooled.get('coverage'))} routed at {_interval(pooled)}, global {_pct(single.get('coverage'))} "
        f"at {_interval(single)} (estimate, one-sided 95% bounds; the lower bound must reach {_pct(target)})",
        f"  {'class':<24}{'threshold':>10}{'evidence':>9}{'coverage':>9}  {'estimated precision':<24}"
        f"{'held-out':>9}{'prec':>8}  marks",
    ]
    for name, c in (evidence.get("classes") or {}).items():
        held = c.get("held_out") or {}
        threshold = "-" if c["threshold"] is None else f"{c['threshold']:.3f}"
        lines.append(
            f"  {name[:23]:<24}{threshold:>10}{c['tickets']:>9}{_pct(c['coverage']):>9}  {_interval(c):<24}"
            f"{held.get('routed', 0):>9}{_pct(held.get('precision')):>8}  {'; '.join(c.get('marks') or [])}"
        )
    return lines


def _interval(figure: dict[str, Any]) -> str:
    if figure.get("estimate") is None:
        return "-"
    return f"{_pct(figure['estimate'])} ({_pct(figure['lower'])}-{_pct(figure['upper'])})"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"
