"""Training-data import: CSV (RFC 4180) and JSON/JSONL, validated so every error names its culprit."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from connectors import _json as safe_json
from connectors.base import WRITABLE
from daemon.errors import DatasetError
from daemon.ml.text import MAX_TEXT_CHARS, compose

T = TypeVar("T")
DEFAULT_LABELS: tuple[str, ...] = WRITABLE  # the label columns a dataset has unless told otherwise
LABEL_ALIASES: dict[str, tuple[str, ...]] = {"queue": ("queue", "label"), "priority": ("priority",)}


@dataclass(frozen=True)
class Columns:
    """Which source columns hold what; every name can be overridden from the command line."""

    text: str = "text"
    subject: str = "subject"
    body: str = "body"
    id: str = "id"
    language: str = "language"
    closed_at: str = "closed_at"
    labels: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, overrides: Iterable[str]) -> Columns:
        """Build from `key=column` pairs such as `queue=category` or `text=message`."""
        base: dict[str, str] = {}
        labels: dict[str, str] = {}
        for item in overrides:
            key, sep, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if not sep or not key or not value:
                raise DatasetError(f"column override {item!r} must look like KEY=COLUMN")
            if key in {"text", "subject", "body", "id", "language", "closed_at"}:
                base[key] = value
            else:
                labels[key] = value
        return cls(**base, labels=labels)

    def label_candidates(self, label: str) -> tuple[str, ...]:
        """Source column names that may hold `label`, override first."""
        if label in self.labels:
            return (self.labels[label],)
        return LABEL_ALIASES.get(label, (label,))


@dataclass(frozen=True)
class Example:
    """One training ticket after normalisation."""

    id: str
    text: str
    labels: Mapping[str, str]
    language: str
    line: int
    closed_at: float | None = None  # POSIX seconds; recency weights the fine-tuning sample when known


@dataclass(frozen=True)
class Dataset:
    """A validated dataset: examples plus the provenance the model metadata records."""

    path: str
    sha256: str
    label_names: tuple[str, ...]
    examples: tuple[Example, ...]
    label_columns: Mapping[str, str] = field(default_factory=dict)  # label -> the source column it came from

    def __len__(self) -> int:
        return len(self.examples)

    def texts(self) -> list[str]:
        """Normalised texts, in order."""
        return [e.text for e in self.examples]

    def labels(self, name: str) -> list[str]:
        """Values of one label, in order."""
        return [e.labels[name] for e in self.examples]

    def languages(self) -> list[str]:
        """Language codes ('' where unknown), in order."""
        return [e.language for e in self.examples]

    def closed_at(self) -> list[float | None]:
        """When each ticket was closed (POSIX seconds, None where unknown), in order."""
        return [e.closed_at for e in self.examples]

    def subset(self, indices: Sequence[int]) -> Dataset:
        """A view holding only the given rows (provenance unchanged)."""
        return Dataset(
            self.path, self.sha256, self.label_names, tuple(self.examples[i] for i in indices), self.label_columns
        )


def _decode(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DatasetError(
            f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); re-save the file as UTF-8",
            file=str(path),
            line=line,
        ) from None


_OTHER_DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe"}


def _csv_error(path: Path, line: int, exc: csv.Error) -> DatasetError:
    if "field larger than field limit" in str(exc):
        # Raising the limit instead costs ~16x the file in memory (791 MiB for one 50 MB body), for text that
        # `compose` cuts to MAX_TEXT_CHARS anyway: a field this long is an export error, not a ticket.
        return DatasetError(
            f"a field is longer than {csv.field_size_limit()} characters (CSV reader limit); ticketd uses only "
            f"the first {MAX_TEXT_CHARS} characters of a ticket, so shorten that field",
            file=str(path),
            line=line,
        )
    return DatasetError(f"malformed CSV: {exc}", file=str(path), line=line)


def _csv_records(path: Path, text: str) -> Iterator[tuple[int, dict[str, str]]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise DatasetError("file is empty", file=str(path), line=1) from None
    except csv.Error as exc:
        raise _csv_error(path, 1, exc) from None
    header = [h.strip() for h in header]
    if len(header) == 1:
        found = next((name for sep, name in _OTHER_DELIMITERS.items() if sep in header[0]), None)
        if found is not None:
            raise DatasetError(
                f"the header is one column, {header[0][:80]!r}: the file looks {found}-separated; "
                "ticketd reads comma-separated CSV (RFC 4180), so export it with ',' as the delimiter",
                file=str(path),
                line=1,
            )
    dupes = [h for h, n in Counter(header).items() if n > 1 and h]
    if dupes:
        raise DatasetError("header repeats a column name", file=str(path), line=1, column=dupes[0])
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise _csv_error(path, start, exc) from None
        if row and any(cell.strip() for cell in row):
            if len(row) != len(header):
                raise DatasetError(
                    f"expected {len(header)} fields as in the header, found {len(row)}",
                    file=str(path),
                    line=start,
                )
            yield start, dict(zip(header, row, strict=True))
        start = reader.line_num + 1


def _json_records(path: Path, text: str) -> Iterator[tuple[int, dict[str, str]]]:
    stripped = text.lstrip()
    if path.suffix.lower() == ".jsonl" or not stripped.startswith("["):
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = safe_json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"invalid JSON: {exc.msg}", file=str(path), line=lineno) from None
            yield lineno, _json_object(path, lineno, obj)
        return
    try:
        items = safe_json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"invalid JSON: {exc.msg}", file=str(path), line=exc.lineno) from None
    # json gives no per-item positions: locate each object by where its opening brace starts.
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    for item in items:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        lineno = text.count("\n", 0, pos) + 1
        _, pos = decoder.raw_decode(text, pos)
        yield lineno, _json_object(path, lineno, item)


def _json_object(path: Path, lineno: int, obj: Any) -> dict[str, str]:
    if not isinstance(obj, dict):
        raise DatasetError(f"expected a JSON object, found {type(obj).__name__}", file=str(path), line=lineno)
    return {str(k): "" if v is None else str(v) for k, v in obj.items()}


def _records(path: Path) -> tuple[str, list[tuple[int, dict[str, str]]]]:
    if not path.is_file():
        raise DatasetError("no such file", file=str(path))
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    text = _decode(path, raw)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return digest, list(_csv_records(path, text))
    if suffix in {".json", ".jsonl"}:
        return digest, list(_json_records(path, text))
    raise DatasetError("unsupported file type (use .csv, .json or .jsonl)", file=str(path))


def load_dataset(
    path: str | Path,
    *,
    labels: Sequence[str] | None = None,
    columns: Columns | None = None,
    min_examples: int = 2,
) -> Dataset:
    """Read and validate a dataset; `labels=None` takes every default label the file has."""
    path = Path(path)
    cols = columns or Columns()
    digest, records = _records(path)
    if not records:
        raise DatasetError("no data rows", file=str(path), line=2)
    fields = set().union(*(r.keys() for _, r in records))
    first_line = records[0][0]

    if cols.text in fields:
        text_cols: tuple[str, ...] = (cols.text,)
    elif cols.subject in fields or cols.body in fields:
        text_cols = tuple(c for c in (cols.subject, cols.body) if c in fields)
    else:
        raise DatasetError(
            f"missing text column: need {cols.text!r} or {cols.subject!r}/{cols.body!r} "
            f"(found {', '.join(sorted(fields))})",
            file=str(path),
            line=1,
            column=cols.text,
        )

    wanted = tuple(labels) if labels else DEFAULT_LABELS
    label_cols: dict[str, str] = {}
    for name in wanted:
        found = next((c for c in cols.label_candidates(name) if c in fields), None)
        has_values = found is not None and any(r.get(found, "").strip() for _, r in records)
        if found is None or not has_values:
            if labels:
                what = "missing label column" if found is None else "label column is empty in every row"
                raise DatasetError(what, file=str(path), line=1, column=cols.label_candidates(name)[0])
            continue
        label_cols[name] = found
    if not label_cols:
        raise DatasetError(
            f"no label column: need one of {', '.join(sorted(LABEL_ALIASES))} (or --column LABEL=COLUMN)",
            file=str(path),
            line=first_line,
        )

    examples: list[Example] = []
    seen_ids: dict[str, int] = {}
    for lineno, rec in records:
        if len(text_cols) == 1:
            text = compose(None, rec.get(text_cols[0], ""))
        else:
            text = compose(rec.get(cols.subject, ""), rec.get(cols.body, ""))
        if not text:
            raise DatasetError("empty ticket text", file=str(path), line=lineno, column="+".join(text_cols))
        values: dict[str, str] = {}
        for name, col in label_cols.items():
            value = rec.get(col, "").strip()
            if not value:
                raise DatasetError(f"empty {name} label", file=str(path), line=lineno, column=col)
            values[name] = value
        ticket_id = rec.get(cols.id, "").strip() or f"line-{lineno}"
        if ticket_id in seen_ids:
            raise DatasetError(
                f"duplicate id {ticket_id!r} (first on line {seen_ids[ticket_id]})",
                file=str(path),
                line=lineno,
                column=cols.id,
            )
        seen_ids[ticket_id] = lineno
        language = rec.get(cols.language, "").strip().lower()
        examples.append(Example(ticket_id, text, values, language, lineno, _closed_at(rec, cols, path, lineno)))

    for name, col in label_cols.items():
        counts = Counter(e.labels[name] for e in examples)
        for value, n in sorted(counts.items()):
            if n < min_examples:
                line = next(e.line for e in examples if e.labels[name] == value)
                raise DatasetError(
                    f"{name} label {value!r} has {n} example(s); at least {min_examples} are needed "
                    "to train and validate it (merge it into another label, add tickets, or leave such "
                    "classes out with --min-examples N)",
                    file=str(path),
                    line=line,
                    column=col,
                )
    return Dataset(str(path), digest, tuple(label_cols), tuple(examples), label_cols)


def _closed_at(rec: Mapping[str, str], cols: Columns, path: Path, lineno: int) -> float | None:
    """The optional close time, ISO 8601 (a zone-less time is taken as UTC)."""
    raw = str(rec.get(cols.closed_at) or "").strip()
    if not raw:
        return None
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise DatasetError(
            f"{raw[:40]!r} is not an ISO 8601 time (such as 2026-11-30T14:05:00Z)",
            file=str(path),
            line=lineno,
            column=cols.closed_at,
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def keep_common(
    items: Sequence[T], labels: Sequence[str], value: Any, min_examples: int
) -> tuple[list[T], dict[str, dict[str, int]]]:
    """Leave out items of classes rarer than `min_examples`, until stable: one rule for train and retrain.

    `value(item, label)` reads a label; returns the kept items and, per label, the classes left out with their counts.
    """
    kept = list(items)
    dropped: dict[str, dict[str, int]] = {name: {} for name in labels}
    while True:
        rare = {
            name: {v: n for v, n in Counter(value(i, name) for i in kept).items() if n < min_examples}
            for name in labels
        }
        if not any(rare.values()):
            return kept, {name: classes for name, classes in dropped.items() if classes}
        for name, classes in rare.items():
            for v, n in classes.items():
                dropped[name][v] = dropped[name].get(v, 0) + n
        kept = [i for i in kept if not any(value(i, name) in rare[name] for name in labels)]


def drop_rare(dataset: Dataset, min_examples: int) -> tuple[Dataset, dict[str, dict[str, int]]]:
    """The dataset without classes rarer than `min_examples` (see `keep_common`)."""
    rows = range(len(dataset))
    kept, dropped = keep_common(
        rows, dataset.label_names, lambda i, name: dataset.examples[i].labels[name], min_examples
    )
    return dataset.subset(kept), dropped


def require_classes(dataset: Dataset) -> None:
    """Training needs two classes per label at least; evaluation data may hold one (so `load_dataset` allows it)."""
    for name in dataset.label_names:
        classes = Counter(dataset.labels(name))
        if len(classes) < 2:
            value = next(iter(classes), "")
            raise DatasetError(
                f"{name} label has one class only ({value!r} in all {len(dataset)} rows); a classifier needs "
                "at least 2 (add tickets of another class, or leave this label out with --label)",
                file=dataset.path,
                line=dataset.examples[0].line if dataset.examples else None,
                column=dataset.label_columns.get(name, name),
            )


def stratified_split(
    dataset: Dataset, *, test_size: float, seed: int, stratify: str | None = None
) -> tuple[Dataset, Dataset]:
    """Split keeping label proportions; classes too small for both sides go to the training side."""
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_size < 1.0:
        raise DatasetError(f"test size must be between 0 and 1, got {test_size}")
    key = stratify or dataset.label_names[0]
    y = dataset.labels(key)
    counts = Counter(y)
    rare = [i for i, v in enumerate(y) if counts[v] < 2]  # one ticket cannot be on both sides: it trains
    common = [i for i, v in enumerate(y) if counts[v] >= 2]
    n_test = max(1, round(len(y) * test_size))
    n_classes = len({y[i] for i in common})
    if n_test < n_classes or len(common) - n_test < n_classes:
        raise DatasetError(
            f"{len(y)} tickets are too few to split {test_size:.0%} off while keeping all "
            f"{n_classes} {key} labels on both sides",
            file=dataset.path,
        )
    train_idx, test_idx = train_test_split(common, test_size=n_test, random_state=seed, stratify=[y[i] for i in common])
    return dataset.subset(sorted(train_idx + rare)), dataset.subset(sorted(test_idx))


def write_csv(dataset: Dataset, path: str | Path) -> None:
    """Write normalised examples as CSV (id, text, labels, language, closed_at) that `load_dataset` reads back."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text", *dataset.label_names, "language", "closed_at"])
        for e in dataset.examples:
            when = "" if e.closed_at is None else datetime.fromtimestamp(e.closed_at, UTC).isoformat()
            writer.writerow([e.id, e.text, *(e.labels[n] for n in dataset.label_names), e.language, when])
