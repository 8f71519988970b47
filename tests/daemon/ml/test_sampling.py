"""The capped fine-tuning sample: its size, its class mix, its lean towards recent tickets, and its wiring."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from daemon.ml.sampling import capped_sample, quotas, recency_weights

DAY = 86400.0


@pytest.mark.parametrize(
    ("counts", "cap", "expected"),
    [
        ({"a": 50, "b": 30}, 100, {"a": 50, "b": 30}),  # under the cap: everything
        ({"a": 900, "b": 100}, 500, {"a": 434, "b": 66}),  # 20 each, then the other 460 by share: 414 + 46
        ({"a": 9990, "b": 10}, 1000, {"a": 990, "b": 10}),  # a class below the floor keeps all it has
        ({"a": 600, "b": 300, "c": 100}, 300, {"a": 164, "b": 92, "c": 44}),
    ],
)
def test_quotas_fill_the_cap_with_a_floor_then_by_share(
    counts: dict[str, int], cap: int, expected: dict[str, int]
) -> None:
    got = quotas(counts, cap)
    assert got == expected
    assert sum(got.values()) == min(cap, sum(counts.values()))


def test_a_cap_below_the_floors_lowers_the_floor_and_one_below_the_classes_is_refused() -> None:
    assert quotas({f"c{i}": 100 for i in range(10)}, 150) == {f"c{i}": 15 for i in range(10)}
    with pytest.raises(ValueError, match="cannot hold one of each of 10 classes"):
        quotas({f"c{i}": 100 for i in range(10)}, 9)


def test_recency_weights_halve_every_half_life_and_undated_rows_count_as_new() -> None:
    w = recency_weights([0.0, 180 * DAY, 360 * DAY, None], 180.0)
    assert w.tolist() == pytest.approx([0.25, 0.5, 1.0, 1.0])
    assert recency_weights([0.0, 360 * DAY], None).tolist() == [1.0, 1.0]
    assert recency_weights([None, None], 180.0).tolist() == [1.0, 1.0]


def test_the_sample_keeps_the_cap_the_classes_and_leans_to_recent_tickets() -> None:
    n = 6000
    labels = ["big" if i % 10 else "small" for i in range(n)]  # 10% small
    closed = [i * (730 * DAY / n) for i in range(n)]  # two years, oldest first
    picked = capped_sample(labels, 1000, closed_at=closed, half_life_days=180.0, seed=1)
    assert len(picked) == 1000 and picked == sorted(set(picked))
    mix = Counter(labels[i] for i in picked)
    assert mix == {"big": 884, "small": 116}  # 20 each, then the other 960 by share: 864 + 96
    newest_year = sum(1 for i in picked if closed[i] >= 365 * DAY)
    assert newest_year > 700  # a 180-day half-life puts 0.80 of the weight in the last year (uniform: 0.5)
    uniform = capped_sample(labels, 1000, seed=1)
    assert 400 < sum(1 for i in uniform if closed[i] >= 365 * DAY) < 600
    assert capped_sample(labels, 1000, closed_at=closed, half_life_days=180.0, seed=1) == picked  # seeded
    assert capped_sample(labels, None) == list(range(n)) and capped_sample(labels[:50], 1000) == list(range(50))


def test_closed_at_is_read_back_and_a_bad_one_names_its_line(tmp_path: Path) -> None:
    from daemon.errors import DatasetError
    from daemon.ml.dataset import load_dataset

    path = tmp_path / "t.csv"
    rows = [["id", "text", "queue", "closed_at"], ["1", "printer", "IT", "2026-11-30T14:05:00Z"]]
    rows.append(["2", "vpn", "IT", ""])
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    ds = load_dataset(path, min_examples=1)
    assert ds.closed_at() == [pytest.approx(1796047500.0), None]
    rows[2][3] = "last tuesday"
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    with pytest.raises(DatasetError) as err:
        load_dataset(path, min_examples=1)
    assert "t.csv:3 column 'closed_at': 'last tuesday' is not an ISO 8601 time" in str(err.value)


def test_a_capped_warm_started_training_records_both(tiny_model: Path, sample_csv: Path, tmp_path: Path) -> None:
    """The transformer sees the cap, TF-IDF every row; each head starts from the champion's weights."""
    from daemon.ml.train import TrainOptions, train

    opts = TrainOptions(
        epochs=1,
        max_length=48,
        seed=3,
        tfidf_weights=(0.0, 0.5),
        finetune_cap=120,
        warm_start=str(tiny_model),
    )
    meta = train(sample_csv, tmp_path / "next", opts)
    for label, head in meta["heads"].items():
        assert head["fine_tune"]["rows"] == 120 < meta["data"]["train_rows"], label
        assert head["fine_tune"]["started_from"] == "champion", label
        assert head["tfidf"]["refit_rows"] == meta["data"]["rows"], label
    assert json.loads((tmp_path / "next" / "metadata.json").read_text())["options"]["finetune_cap"] == 120


def test_warm_start_falls_back_to_the_base_when_the_classes_differ(tiny_model: Path, tmp_path: Path) -> None:
    from daemon.ml.train import _starting_point

    assert _starting_point("BASE", "queue", ["x", "y"], str(tiny_model)) == ("BASE", "base")
    classes = json.loads((tiny_model / "queue" / "labels.json").read_text())
    warm = (str(tiny_model / "queue" / "torch"), "champion")
    assert _starting_point("BASE", "queue", classes, str(tiny_model)) == warm
    assert _starting_point("BASE", "queue", classes, str(tmp_path)) == ("BASE", "base")  # no torch/ weights there
    assert _starting_point("BASE", "queue", classes, None) == ("BASE", "base")


def test_tfidf_settings_are_cross_validated_on_a_capped_sample_and_fitted_on_every_row(
    sample_csv: Path, tmp_path: Path
) -> None:
    from daemon.ml.train import TrainOptions, train

    opts = TrainOptions(tfidf_weights=(1.0,), tfidf_cv_cap=80, validation_max=25, seed=3)
    meta = train(sample_csv, tmp_path / "m", opts)
    assert meta["data"]["validation_rows"] == 25 < round(0.15 * meta["data"]["rows"])
    for label, head in meta["heads"].items():
        assert head["tfidf"]["cross_validation"]["rows"] == 80 + 25, label
        assert head["tfidf"]["refit_rows"] == meta["data"]["rows"], label
        assert head["validation"]["rows"] == 25, label
    # A TF-IDF-alone head's thresholds rest on every out-of-fold row, not the 25 of validation alone.
    from daemon.ml.classifier import Classifier

    for label, served in Classifier.load(tmp_path / "m").heads.items():
        assert served.evidence is not None and len(served.evidence.confidence) == 80 + 25, label


def test_a_cap_below_the_class_count_stops_before_any_training(sample_csv: Path, tmp_path: Path) -> None:
    from daemon.errors import TrainingError
    from daemon.ml.train import TrainOptions, train

    with pytest.raises(TrainingError, match=r"--finetune-cap 3: queue has \d+ classes"):
        train(sample_csv, tmp_path / "m", TrainOptions(finetune_cap=3))
    assert not (tmp_path / "m").exists()
