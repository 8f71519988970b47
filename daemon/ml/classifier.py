"""Torch-free serving: onnxruntime + tokenizers + numpy load a trained model directory and classify."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NotRequired, TypedDict

import numpy as np
from packaging.version import InvalidVersion, Version

from daemon import __version__
from daemon.errors import ModelError
from daemon.ml.calibration import ConfidenceMap, calibrated, combine, served_confidence
from daemon.ml.layout import METADATA, resolve_model_dir
from daemon.ml.text import compose
from daemon.ml.tfidf import FloatArray, TfidfScorer
from daemon.ml.thresholds import Evidence, Policy, Thresholds, fit

# A head's directory, written by `write_head` (training) and read by `Head.load` (serving):
HEAD_FILE = "head.json"  # HeadSpec: mixing weight, temperature, max length, ONNX files, confidence map
LABELS_FILE = "labels.json"  # the classes, in the order of the model's outputs
TOKENIZER_FILE = "tokenizer.json"  # beside the ONNX files (export.py writes both)
TFIDF_DIR = "tfidf"  # TfidfScorer.save / load
# metadata.json's record of the ticketd that trained the model (`train` writes it; absent in models from before 0.2.0)
TRAINED_BY = "ticketd_version"
_CHUNK = 64  # tickets tokenised and length-sorted together


class HeadSpec(TypedDict):
    """head.json: how a head's parts combine into one served prediction."""

    label: str
    tfidf_weight: float  # 1.0: TF-IDF alone; 0.0: transformer alone
    temperature: float
    max_length: int
    serving_precision: NotRequired[str]  # with a transformer: "fp32" or "int8"
    onnx_files: NotRequired[dict[str, str]]
    confidence_map: NotRequired[dict[str, list[float]]]  # {"x": [...], "y": [...]}, when training kept one
    routing: NotRequired[dict[str, Any]]  # Thresholds.to_json() at the training target, plus "evidence"


def write_head(directory: Path, classes: Sequence[str], spec: HeadSpec, tfidf: TfidfScorer | None) -> None:
    """Lay out a head the way `Head.load` reads it; head.json last, since it names the other files."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / LABELS_FILE).write_text(json.dumps(list(classes), ensure_ascii=False), encoding="utf-8")
    if tfidf is not None:
        tfidf.save(directory / TFIDF_DIR)
    (directory / HEAD_FILE).write_text(json.dumps(spec, indent=2), encoding="utf-8")


class TransformerHead:
    """One exported sequence-classification model, run by onnxruntime."""

    def __init__(self, onnx_path: Path, tokenizer_path: Path, max_length: int, threads: int | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        try:
            self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        except Exception as exc:  # tokenizers raises a bare Exception on unreadable files
            raise ModelError(f"{tokenizer_path}: cannot load tokenizer: {exc}") from exc
        self.tokenizer.enable_truncation(max_length=max_length)
        self.tokenizer.no_padding()  # a saved tokenizer.json may carry padding; batches are padded below
        pad_token = "[PAD]" if self.tokenizer.token_to_id("[PAD]") is not None else "<pad>"
        self.pad_id = self.tokenizer.token_to_id(pad_token) or 0
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
        opts.inter_op_num_threads = 1
        opts.enable_cpu_mem_arena = False  # return activation memory after each batch: peak RSS, not arena size
        try:
            self.session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own non-exported exception types
            raise ModelError(f"{onnx_path}: cannot load ONNX model: {exc}") from exc
        self.input_names = {i.name for i in self.session.get_inputs()}
        width = self.session.get_outputs()[0].shape[-1]
        self.n_classes = width if isinstance(width, int) else None  # a symbolic dimension says nothing

    def logits(self, texts: Sequence[str], batch_size: int = 1) -> FloatArray:
        """Raw class scores; tickets are tokenised once, then run in batches of similar length.

        Batch 1 by default: on 2 cores, batches of 2-8 gave no more tickets/s than batch 1 but each
        doubling added 35-80 MiB of activation memory (bench/classify.py).
        """
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        # Chunks bound memory: tokenizer Encodings are large, 500 of them added ~200 MiB of peak RSS.
        return np.concatenate(
            [self._sorted_logits(texts[i : i + _CHUNK], batch_size) for i in range(0, len(texts), _CHUNK)]
        )

    def _sorted_logits(self, texts: Sequence[str], batch_size: int) -> FloatArray:
        encodings = self.tokenizer.encode_batch(list(texts))
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        out: list[FloatArray] = []
        for start in range(0, len(texts), batch_size):
            batch = [encodings[i] for i in order[start : start + batch_size]]
            width = max(len(e.ids) for e in batch)
            ids = np.full((len(batch), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            types = np.zeros((len(batch), width), dtype=np.int64)
            for row, e in enumerate(batch):
                ids[row, : len(e.ids)] = e.ids
                mask[row, : len(e.ids)] = 1
                types[row, : len(e.ids)] = e.type_ids
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            feeds = {k: v for k, v in feeds.items() if k in self.input_names}
            out.append(np.asarray(self.session.run(["logits"], feeds)[0], dtype=np.float32))
        ordered = np.concatenate(out)
        result = np.empty_like(ordered)
        result[order] = ordered
        return result


@dataclass
class Head:
    """One label's classifier: optional transformer, optional TF-IDF, mixing weight and temperature."""

    name: str
    classes: list[str]
    tfidf_weight: float
    temperature: float
    transformer: TransformerHead | None
    tfidf: TfidfScorer | None

    confidence_map: ConfidenceMap | None = None
    routing: Thresholds | None = None  # for the training's target, re-fitted from the evidence at load
    evidence: Evidence | None = None  # validation tickets as served: thresholds for any other policy

    def thresholds(self, policy: Policy) -> Thresholds | None:
        """Per-class thresholds for a routing policy; None for a model trained before they existed."""
        if self.routing is not None and self.routing.policy == policy:
            return self.routing
        return None if self.evidence is None else fit(self.evidence, policy)

    def predict_proba(self, texts: Sequence[str], batch_size: int = 1) -> FloatArray:
        """Temperature-scaled class probabilities for already-normalised texts."""
        logits = self.transformer.logits(texts, batch_size) if self.transformer is not None else None
        tfidf = self.tfidf.predict_proba(texts) if self.tfidf is not None else None
        return calibrated(combine(logits, tfidf, self.tfidf_weight), self.temperature).astype(np.float32)

    def predict(self, texts: Sequence[str], batch_size: int = 1) -> tuple[FloatArray, FloatArray]:
        """Probabilities and the served top-1 confidence: the probability, through the confidence map if trained."""
        probs = self.predict_proba(texts, batch_size)
        return probs, served_confidence(probs, self.confidence_map).astype(np.float32)

    @classmethod
    def load(cls, directory: Path, *, precision: str | None = None, threads: int | None = None) -> Head:
        """Load a head directory; `precision` ('fp32'/'int8') overrides the trained choice (benchmarks)."""
        try:
            spec = json.loads((directory / HEAD_FILE).read_text(encoding="utf-8"))
            classes = json.loads((directory / LABELS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"{directory}: not a ticketd model head ({exc})") from exc
        try:
            weight = float(spec["tfidf_weight"])
            temperature = float(spec["temperature"])
            mapping = spec.get("confidence_map")
            confidence_map = (list(mapping["x"]), list(mapping["y"])) if mapping else None
            files: Mapping[str, str] = spec["onnx_files"] if weight < 1.0 else {}
            max_length = int(spec["max_length"]) if weight < 1.0 else 0
            routing, evidence = _routing(spec.get("routing"), classes)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{directory / HEAD_FILE}: incomplete head spec ({type(exc).__name__}: {exc})") from None
        if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
            raise ModelError(f"{directory / LABELS_FILE}: not a list of class names")
        transformer = None
        if weight < 1.0:
            wanted = precision or str(spec.get("serving_precision", ""))
            chosen = files.get(wanted)
            if chosen is None:
                raise ModelError(
                    f"{directory / HEAD_FILE}: no {wanted or 'serving'} ONNX file (have {', '.join(files)})"
                )
            transformer = TransformerHead(directory / chosen, directory / TOKENIZER_FILE, max_length, threads)
            if transformer.n_classes not in (None, len(classes)):
                raise ModelError(
                    f"{directory / LABELS_FILE}: {len(classes)} classes, but {directory / chosen} "
                    f"scores {transformer.n_classes}"
                )
        tfidf = TfidfScorer.load(directory / TFIDF_DIR) if weight > 0.0 else None
        if tfidf is not None and tfidf.coef.shape[0] != len(classes):
            raise ModelError(
                f"{directory / LABELS_FILE}: {len(classes)} classes, but the TF-IDF model in "
                f"{directory / TFIDF_DIR} scores {tfidf.coef.shape[0]}"
            )
        return cls(
            directory.name, list(classes), weight, temperature, transformer, tfidf, confidence_map, routing, evidence
        )


def _routing(spec: Any, classes: list[str]) -> tuple[Thresholds | None, Evidence | None]:
    """head.json's routing block, re-fitted from its evidence under today's rule (a model trained under the earlier
    every-class-alone rule routes by the pooled one); raises KeyError/TypeError/ValueError on a damaged block."""
    if spec is None:
        return None, None
    evidence = Evidence.from_json(classes, spec["evidence"])
    target = float(spec["target"])
    if not 0.5 <= target < 1.0:
        raise ValueError(f"target {target} outside [0.5, 1)")
    return fit(evidence, Policy(target)), evidence


class Classifier:
    """All heads of one model directory; the object the CLI, API and daemon classify with."""

    def __init__(self, model_dir: Path, heads: dict[str, Head], metadata: dict[str, Any]) -> None:
        self.model_dir = model_dir
        self.heads = heads
        self.metadata = metadata

    @classmethod
    def load(cls, path: str | Path, *, precision: str | None = None, threads: int | None = None) -> Classifier:
        """Load a model directory, or the `current` version of a model store root."""
        model_dir = resolve_model_dir(Path(path))
        try:
            metadata = json.loads((model_dir / METADATA).read_text(encoding="utf-8"))
            names = [str(n) for n in metadata["label_names"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"{model_dir / METADATA}: missing, unreadable or without label_names ({exc})") from None
        check_trained_by(model_dir, metadata)
        heads = {name: Head.load(model_dir / name, precision=precision, threads=threads) for name in names}
        return cls(model_dir, heads, metadata)

    def predict_texts(
        self, texts: Sequence[str], batch_size: int = 1, *, explain: bool = False
    ) -> list[dict[str, dict[str, Any]]]:
        """Classify normalised texts: per label, the top class and its calibrated confidence.

        An empty text (a ticket with no subject and no body text: only an attachment, or HTML without
        visible text) gets confidence 0: the model's prior is no evidence, so no threshold routes it.
        With `explain`, each label also gets `words`: what pushed its TF-IDF part most toward the class
        (empty for a head without one).
        """
        results: list[dict[str, dict[str, Any]]] = [{} for _ in texts]
        if not texts:
            return results
        for name, head in self.heads.items():
            probs, top = head.predict(texts, batch_size)
            best = probs.argmax(axis=1)
            for i, k in enumerate(best):
                confidence = round(float(top[i]), 4) if texts[i].strip() else 0.0
                results[i][name] = {"label": head.classes[int(k)], "confidence": confidence}
                if explain:
                    words = head.tfidf.top_words(texts[i], int(k), EXPLAIN_WORDS) if head.tfidf else []
                    results[i][name]["words"] = words
        return results

    def classify(self, text: str = "", *, subject: str | None = None) -> dict[str, dict[str, Any]]:
        """Classify one raw ticket (HTML allowed), with the words behind each label (the daemon's reason)."""
        return self.predict_texts([compose(subject, text)], explain=True)[0]


def check_trained_by(model_dir: Path, metadata: Mapping[str, Any]) -> None:
    """Refuse a model from a newer ticketd: it may need what this one cannot do, and would be served wrong silently."""
    recorded = metadata.get(TRAINED_BY)
    if recorded is None:  # trained before ticketd recorded itself: as old as this check, so accepted
        return
    try:
        trained = Version(recorded) if isinstance(recorded, str) else None
    except InvalidVersion:
        trained = None
    if trained is None:
        raise ModelError(f"{model_dir / METADATA}: {TRAINED_BY} {recorded!r} is not a version")
    if trained > Version(__version__):
        raise ModelError(
            f"{model_dir}: trained by ticketd {recorded}, newer than this ticketd {__version__}: "
            "upgrade ticketd or promote an older model"
        )


EXPLAIN_WORDS = 3  # words per label in a decision's reason: enough to see why, short enough for a note

PROBE_TICKET = ("Printer on the second floor does not print", "Since this morning every job stays in the queue.")


def check_servable(model_dir: Path) -> None:
    """Load every head and classify a probe ticket; raises ModelError naming what failed.

    Run before any switch of `current`, so a version with a truncated or inconsistent file is refused
    while the one being served keeps serving.
    """
    try:
        classifier = Classifier.load(model_dir, threads=1)
        result = classifier.classify(PROBE_TICKET[1], subject=PROBE_TICKET[0])
    except ModelError:
        raise
    except Exception as exc:  # onnxruntime, tokenizers and numpy raise their own types on damaged files
        raise ModelError(f"{model_dir}: cannot classify a probe ticket: {type(exc).__name__}: {exc}") from None
    for name, head in classifier.heads.items():
        got = result.get(name, {})
        if got.get("label") not in head.classes or not 0.0 <= float(got.get("confidence", -1.0)) <= 1.0:
            raise ModelError(f"{model_dir / name}: the probe ticket got {got!r}, not a class with a confidence")
