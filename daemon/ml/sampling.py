"""Capped, stratified, recency-weighted samples: fine-tuning cost stays bounded however large the store grows."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from daemon.config.schema import DEFAULT_FINETUNE_CAP as DEFAULT_FINETUNE_CAP  # the config's default

if TYPE_CHECKING:  # numpy is imported when sampling, so the command line can read the defaults cheaply
    import numpy as np
    import numpy.typing as npt

# The defaults of `ticketd train` and of the retrain (chosen by bench/retrain.py; see the README).
DEFAULT_TFIDF_CV_CAP = 5000  # training tickets the TF-IDF settings are cross-validated on (plus validation)
DEFAULT_VALIDATION_MAX = 2000  # validation tickets, at most: each costs a forward pass per epoch
DEFAULT_HALF_LIFE_DAYS = 180.0  # a ticket this much older is half as likely in the fine-tuning sample
MIN_PER_CLASS = 20  # every class keeps at least this many rows (or all it has), however small its share


def quotas(counts: dict[str, int], cap: int, min_per_class: int = MIN_PER_CLASS) -> dict[str, int]:
    """Rows per class, `cap` in all: a floor for every class, the rest in proportion to the class's size.

    Proportional, not balanced: the transformer keeps the store's class priors (its loss already weights
    small classes up), and the floor keeps a rare class from vanishing from the sample.
    """
    total = sum(counts.values())
    if total <= cap:
        return dict(counts)
    if cap < len(counts):
        raise ValueError(f"a cap of {cap} tickets cannot hold one of each of {len(counts)} classes")
    # A cap too small for the floor of every class lowers the floor, never the cap.
    per_class = min(min_per_class, cap // len(counts))
    floor = {c: min(n, per_class) for c, n in counts.items()}
    room = cap - sum(floor.values())
    share = {c: min(n - floor[c], room * n / total) for c, n in counts.items()}
    out = {c: floor[c] + int(share[c]) for c in counts}
    # The rows that rounding down left over go to the classes with the largest remainders (and room).
    # (Several rounds when small classes, full already, cannot take theirs.)
    left = cap - sum(out.values())
    order = sorted(counts, key=lambda c: (share[c] - int(share[c]), counts[c], c), reverse=True)
    while left > 0:
        for c in order:
            if left > 0 and out[c] < counts[c]:
                out[c] += 1
                left -= 1
    return out


def recency_weights(closed_at: Sequence[float | None], half_life_days: float | None) -> npt.NDArray[np.float64]:
    """Weight 1 for the newest ticket, halving every `half_life_days` of age; 1 everywhere without dates."""
    import numpy as np

    known = [t for t in closed_at if t is not None]
    if half_life_days is None or not known:
        return np.ones(len(closed_at))
    newest = max(known)
    # A ticket without a date counts as the newest: it is never sampled less for lacking one.
    age_days = np.array([(newest - (t if t is not None else newest)) / 86400.0 for t in closed_at])
    return np.maximum(0.5 ** (age_days / half_life_days), 1e-12)


def capped_sample(
    labels: Sequence[str],
    cap: int | None,
    *,
    closed_at: Sequence[float | None] | None = None,
    half_life_days: float | None = None,
    seed: int = 0,
    min_per_class: int = MIN_PER_CLASS,
) -> list[int]:
    """Indices (ascending) of at most `cap` rows: per-class quotas, drawn without replacement by recency weight."""
    import numpy as np

    if cap is None or len(labels) <= cap:
        return list(range(len(labels)))
    by_class: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_class[label].append(i)
    weights = recency_weights(closed_at if closed_at is not None else [None] * len(labels), half_life_days)
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for label, k in sorted(quotas({c: len(v) for c, v in by_class.items()}, cap, min_per_class).items()):
        rows = np.array(by_class[label])
        if k >= len(rows):
            chosen.extend(rows.tolist())
            continue
        p = weights[rows] / weights[rows].sum()
        chosen.extend(rng.choice(rows, size=k, replace=False, p=p).tolist())
    return sorted(chosen)
