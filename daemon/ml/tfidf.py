"""The classic text model: fitted with scikit-learn, served from plain arrays (no pickle, no sklearn).

The analyzer is ticketd's own `text.analyze`, used by scikit-learn while fitting and by
`TfidfScorer` while serving, so both compute identical features by construction.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from daemon.errors import ModelError
from daemon.ml.text import analyze

FloatArray = npt.NDArray[np.float32]
VOCAB_FILE = "vocab.json"
ARRAYS_FILE = "arrays.npz"
CONFIG_FILE = "config.json"
FEATURE_SETS = ("word", "word+char")
TOP_WORDS_SHARE = 0.25  # a reason's word pushes at least this share of the strongest one: no filler words


def softmax(z: npt.NDArray[Any], axis: int = -1) -> FloatArray:
    """Numerically stable softmax."""
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    out: FloatArray = (e / e.sum(axis=axis, keepdims=True)).astype(np.float32)
    return out


@dataclass
class TfidfScorer:
    """Serving-side TF-IDF + logistic regression over saved arrays."""

    vocab: dict[str, int]
    idf: FloatArray
    coef: FloatArray  # (n_classes, n_features)
    intercept: FloatArray  # (n_classes,)
    features: str = "word+char"

    def logits(self, texts: Sequence[str]) -> FloatArray:
        """Class scores before softmax, matching LogisticRegression.decision_function."""
        out = np.empty((len(texts), self.coef.shape[0]), dtype=np.float32)
        chars = self.features == "word+char"
        for row, text in enumerate(texts):
            counts = Counter(self.vocab[f] for f in analyze(text, chars) if f in self.vocab)
            if not counts:
                out[row] = self.intercept
                continue
            idx = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
            tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
            vals = (np.log(tf) + 1.0) * self.idf[idx]
            vals /= np.linalg.norm(vals)
            out[row] = self.coef[:, idx] @ vals + self.intercept
        return out

    def top_words(self, text: str, class_index: int, k: int = 3) -> list[str]:
        """The words (and word pairs) of `text` that pushed this model most toward the class.

        A feature's push is its TF-IDF value times its coefficient for the class minus its mean
        coefficient over all classes (the softmax only sees differences). Character n-grams are left
        out: they are not words a person recognises. The ranking is exact without them: the vector's
        norm, which includes them, scales every feature alike. Words that push less than a quarter of the
        strongest, and a pair whose words are already listed, are left out. Cheap: no model run.
        """
        known = [f for f in analyze(text, chars=False) if f in self.vocab]
        names = {self.vocab[f]: f for f in known}
        counts = Counter(self.vocab[f] for f in known)
        if not counts or k <= 0:
            return []
        idx = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
        weights = self.coef[:, idx].astype(np.float64)
        push = (np.log(tf) + 1.0) * self.idf[idx] * (weights[class_index] - weights.mean(axis=0))
        order = np.argsort(-push, kind="stable")
        floor = TOP_WORDS_SHARE * float(push[order[0]])
        words: list[str] = []
        seen: set[str] = set()
        for j in order:
            if len(words) == k or push[j] <= 0 or push[j] < floor:
                break
            phrase = names[int(idx[j])].split(":", 1)[1]
            if seen.isdisjoint(phrase.split()):  # "the invoice" says nothing new after "invoice"
                words.append(phrase)
                seen.update(phrase.split())
        return words

    def predict_proba(self, texts: Sequence[str]) -> FloatArray:
        """Class probabilities, matching LogisticRegression.predict_proba (multinomial)."""
        return softmax(self.logits(texts))

    def save(self, directory: Path) -> None:
        """Write vocabulary as JSON and weights as a pickle-free .npz."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / VOCAB_FILE).write_text(json.dumps(self.vocab, ensure_ascii=False), encoding="utf-8")
        np.savez(directory / ARRAYS_FILE, idf=self.idf, coef=self.coef, intercept=self.intercept)
        (directory / CONFIG_FILE).write_text(json.dumps({"features": self.features}), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> TfidfScorer:
        """Load what `save` wrote; refuses pickled content. A missing or damaged file is a ModelError naming it."""
        import zipfile

        path = directory / VOCAB_FILE
        try:
            vocab = json.loads(path.read_text(encoding="utf-8"))
            path = directory / CONFIG_FILE
            features = json.loads(path.read_text(encoding="utf-8"))["features"]
            path = directory / ARRAYS_FILE
            with np.load(path, allow_pickle=False) as arrays:
                idf, coef, intercept = arrays["idf"], arrays["coef"], arrays["intercept"]
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
            raise ModelError(f"{path}: cannot load TF-IDF model: {type(exc).__name__}: {exc}") from None
        if not isinstance(vocab, dict):
            raise ModelError(f"{directory / VOCAB_FILE}: not a vocabulary (a JSON object)")
        if features not in FEATURE_SETS:
            raise ModelError(f"{directory}: unknown TF-IDF feature set {features!r}")
        if (
            coef.ndim != 2
            or intercept.shape != (coef.shape[0],)
            or coef.shape[1] != len(vocab)
            or idf.shape[0] != len(vocab)
        ):
            raise ModelError(
                f"{directory / ARRAYS_FILE}: TF-IDF arrays (coef {coef.shape}, intercept {intercept.shape}, "
                f"idf {idf.shape}) do not match each other or the vocabulary size {len(vocab)}"
            )
        return cls(vocab, idf.astype(np.float32), coef.astype(np.float32), intercept.astype(np.float32), features)


def _vectorizer(features: str) -> Any:
    """The vectorizer of a feature set; character n-grams are numerous, so those seen once are dropped.

    Word features in float64, as the baseline's: the simplest candidate is then the baseline's own model,
    prediction for prediction, so a head that keeps it ties the baseline instead of drifting off it by
    rounding (float32 changed 2-12 of ~950 held-out predictions per split, and by chance they cost a
    split 0.2-0.4 points). Character n-grams are five times as many: they stay float32.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    chars = features == "word+char"
    return TfidfVectorizer(
        analyzer=functools.partial(analyze, chars=chars),
        sublinear_tf=True,
        min_df=2 if chars else 1,
        dtype=np.float32 if chars else np.float64,
    )


def fit_tfidf(
    texts: Sequence[str],
    labels: Sequence[str],
    classes: Sequence[str],
    *,
    c: float,
    balanced: bool,
    seed: int,
    features: str = "word+char",
) -> tuple[TfidfScorer, Any]:
    """Fit the vectorizer and classifier; returns the serving scorer and the sklearn pipeline."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    vec = _vectorizer(features)
    clf = LogisticRegression(C=c, max_iter=3000, class_weight="balanced" if balanced else None, random_state=seed)
    pipe = make_pipeline(vec, clf)
    pipe.fit(list(texts), list(labels))
    if list(clf.classes_) != list(classes):
        # Reorder rows so column i always means classes[i].
        order = [list(clf.classes_).index(c) for c in classes]
        coef, intercept = clf.coef_[order], clf.intercept_[order]
    else:
        coef, intercept = clf.coef_, clf.intercept_
    if coef.shape[0] == 1:  # binary LR stores one row; expand to two-class logits
        coef = np.vstack([-coef / 2, coef / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    vocab = {str(k): int(v) for k, v in vec.vocabulary_.items()}
    scorer = TfidfScorer(
        vocab,
        vec.idf_.astype(np.float32),
        np.asarray(coef, dtype=np.float32),
        np.asarray(intercept, dtype=np.float32),
        features,
    )
    return scorer, pipe


def baseline_tfidf_lr(texts: Sequence[str], labels: Sequence[str], *, seed: int) -> Any:
    """The baseline every quality claim is measured against: word 1-2-gram TF-IDF + balanced LR.

    C=10 and balanced class weights were the strongest of the plain settings tried on the
    softoft-tickets dev file, so ticketd is compared with a hard opponent, not a weak default.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    pipe = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
        LogisticRegression(C=10.0, class_weight="balanced", max_iter=3000, random_state=seed),
    )
    pipe.fit(list(texts), list(labels))
    return pipe


def _fold_probs(
    texts: Sequence[str],
    labels: Sequence[str],
    classes: Sequence[str],
    train_idx: npt.NDArray[np.int64],
    test_idx: npt.NDArray[np.int64],
    features: Sequence[str],
    cs: Sequence[float],
    seed: int,
) -> dict[tuple[str, float], FloatArray]:
    """One fold: per feature set, vectorise once, then fit each C."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    out: dict[tuple[str, float], FloatArray] = {}
    column = {name: i for i, name in enumerate(classes)}
    y = [labels[i] for i in train_idx]
    for feature_set in features:
        vec = _vectorizer(feature_set)
        x_train = vec.fit_transform([texts[i] for i in train_idx])
        x_test = vec.transform([texts[i] for i in test_idx])
        for c in sorted(cs):
            # A fresh fit per C: warm-started lbfgs stopped at once and returned the previous C's model.
            clf = LogisticRegression(C=c, max_iter=3000, class_weight="balanced", random_state=seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                clf.fit(x_train, y)
            proba = clf.predict_proba(x_test)
            aligned = np.zeros((len(test_idx), len(classes)), dtype=np.float32)
            for j, name in enumerate(clf.classes_):
                aligned[:, column[name]] = proba[:, j]
            out[(feature_set, c)] = aligned
    return out


def cross_validated_probs(
    texts: Sequence[str],
    labels: Sequence[str],
    classes: Sequence[str],
    *,
    features: Sequence[str] = FEATURE_SETS,
    cs: Sequence[float] = (3.0, 10.0, 30.0),
    folds: int = 4,
    seed: int = 0,
    n_jobs: int = 1,
) -> tuple[dict[tuple[str, float], FloatArray], npt.NDArray[np.int64]]:
    """Out-of-fold probabilities of every (feature set, C) and each row's fold: no model scores a row it saw."""
    import warnings

    from joblib import Parallel, delayed
    from sklearn.model_selection import StratifiedKFold

    k = max(2, min(folds, len(labels) // 2))
    with warnings.catch_warnings():
        # Classes with fewer members than folds still land in every training fold but one; that is fine here.
        warnings.simplefilter("ignore", UserWarning)
        splits = list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(texts, labels))
    jobs = Parallel(n_jobs=min(n_jobs, k))(
        delayed(_fold_probs)(list(texts), list(labels), list(classes), tr, te, tuple(features), tuple(cs), seed)
        for tr, te in splits
    )
    out = {key: np.zeros((len(texts), len(classes)), dtype=np.float32) for key in jobs[0]}
    fold_of = np.zeros(len(texts), dtype=np.int64)
    for f, ((_, test_idx), fold) in enumerate(zip(splits, jobs, strict=True)):
        fold_of[test_idx] = f
        for key, probs in fold.items():
            out[key][test_idx] = probs
    return out, fold_of
