from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from daemon.errors import DatasetError
from daemon.ml.dataset import Columns, load_dataset, require_classes, stratified_split, write_csv

HEADER = "id,subject,body,queue,priority\n"
ROWS = [
    "1,VPN,VPN is down,IT,high\n",
    "2,Invoice,Wrong amount,Billing,low\n",
    "3,Printer,Printer jam,IT,low\n",
    "4,Refund,Where is my refund,Billing,high\n",
]


def write(tmp_path: Path, text: str | bytes, name: str = "data.csv") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


def error_of(path: Path, **kwargs: object) -> DatasetError:
    with pytest.raises(DatasetError) as info:
        load_dataset(path, **kwargs)  # type: ignore[arg-type]
    return info.value


def test_loads_subject_and_body(tmp_path: Path) -> None:
    ds = load_dataset(write(tmp_path, HEADER + "".join(ROWS)))
    assert ds.label_names == ("queue", "priority")
    assert ds.texts()[0] == "VPN. VPN is down"
    assert ds.labels("queue") == ["IT", "Billing", "IT", "Billing"]
    assert [e.line for e in ds.examples] == [2, 3, 4, 5]
    assert len(ds.sha256) == 64


def test_bom_and_crlf_are_tolerated(tmp_path: Path) -> None:
    raw = ("\ufeff" + HEADER + "".join(ROWS)).replace("\n", "\r\n").encode("utf-8")
    ds = load_dataset(write(tmp_path, raw))
    assert ds.examples[0].id == "1"
    assert len(ds) == 4


def test_quoted_multiline_field_reports_the_record_start_line(tmp_path: Path) -> None:
    text = HEADER + '1,VPN,"line one\nline two",IT,high\n' + "".join(ROWS[1:]) + "5,,,IT,low\n"
    err = error_of(write(tmp_path, text))
    assert err.line == 7
    assert "empty ticket text" in str(err)


def test_text_column_and_label_alias(tmp_path: Path) -> None:
    path = write(tmp_path, "text,label\nfoo bar,A\nbaz,A\nqux,B\nquux,B\n")
    ds = load_dataset(path)
    assert ds.label_names == ("queue",)
    assert ds.labels("queue") == ["A", "A", "B", "B"]


def test_column_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "message,category\nfoo,A\nbar,A\nbaz,B\nqux,B\n")
    ds = load_dataset(path, columns=Columns.parse(["text=message", "queue=category"]))
    assert ds.texts() == ["foo", "bar", "baz", "qux"]
    assert ds.labels("queue") == ["A", "A", "B", "B"]


def test_bad_override_syntax() -> None:
    with pytest.raises(DatasetError, match="KEY=COLUMN"):
        Columns.parse(["queue"])


def test_missing_text_column(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, "id,title,queue\n1,a,X\n"))
    assert (err.line, err.column) == (1, "text")
    assert "data.csv:1" in str(err) and "missing text column" in str(err)


def test_missing_requested_label_column(tmp_path: Path) -> None:
    err = error_of(
        write(tmp_path, HEADER.replace(",priority", "") + "1,a,b,IT\n2,a,b,IT\n"), labels=["queue", "priority"]
    )
    assert err.column == "priority" and err.line == 1


def test_no_label_column_at_all(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, "subject,body\na,b\n"))
    assert "no label column" in str(err)


def test_empty_text(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, HEADER + ROWS[0] + "2,,  ,IT,low\n"))
    assert (err.line, err.column) == (3, "subject+body")


def test_empty_label_value(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, HEADER + "".join(ROWS) + "5,a,b,,low\n"))
    assert (err.line, err.column) == (6, "queue")


def test_label_with_too_few_examples(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, HEADER + "".join(ROWS) + "5,a,b,HR,low\n"))
    assert (err.line, err.column) == (6, "queue")
    assert "'HR' has 1 example(s)" in str(err)


def test_duplicate_ids(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, HEADER + "".join(ROWS) + ROWS[2]))
    assert (err.line, err.column) == (6, "id")
    assert "duplicate id '3' (first on line 4)" in str(err)


def test_bad_encoding_names_the_line(tmp_path: Path) -> None:
    raw = (HEADER + "".join(ROWS[:2])).encode() + "3,Gr\xfc\xdfe,x,IT,low\n".encode("latin-1")
    err = error_of(write(tmp_path, raw))
    assert err.line == 4
    assert "not valid UTF-8" in str(err)


def test_wrong_field_count(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, HEADER + ROWS[0] + "2,a,b,IT\n"))
    assert err.line == 3 and "expected 5 fields" in str(err)


def test_unterminated_quote(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, HEADER + "".join(ROWS) + '5,"open,b,IT,low\n'))
    assert err.line == 6


def test_other_delimiter_is_named(tmp_path: Path) -> None:
    for sep, name in ((";", "semicolon"), ("\t", "tab")):
        err = error_of(write(tmp_path, (HEADER + "".join(ROWS)).replace(",", sep)))
        assert err.line == 1 and f"looks {name}-separated" in str(err) and "comma-separated" in str(err)


def test_field_over_the_csv_limit_names_the_line(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, HEADER + "".join(ROWS) + f"5,Log,{'x' * 200_000},IT,low\n"))
    assert err.line == 6
    assert "longer than 131072 characters" in str(err) and "malformed" not in str(err)


def test_single_class_label_loads_but_cannot_train(tmp_path: Path) -> None:
    rows = [r.replace(",Billing,", ",IT,") for r in ROWS]
    dataset = load_dataset(write(tmp_path, HEADER + "".join(rows)))  # evaluation data may hold one class
    with pytest.raises(DatasetError) as info:
        require_classes(dataset)
    assert (info.value.line, info.value.column) == (2, "queue")
    assert "queue label has one class only ('IT' in all 4 rows)" in str(info.value)
    aliased = load_dataset(write(tmp_path, HEADER.replace("queue", "label") + "".join(rows), "aliased.csv"))
    with pytest.raises(DatasetError, match="column 'label'"):
        require_classes(aliased)
    require_classes(load_dataset(write(tmp_path, HEADER + "".join(ROWS), "fine.csv")))


def test_missing_file_and_bad_suffix(tmp_path: Path) -> None:
    assert "no such file" in str(error_of(tmp_path / "nope.csv"))
    assert "unsupported file type" in str(error_of(write(tmp_path, "x", "data.xlsx")))


def test_jsonl(tmp_path: Path) -> None:
    lines = [json.dumps({"id": i, "subject": "s", "body": f"b{i}", "queue": q}) for i, q in enumerate("AABB")]
    ds = load_dataset(write(tmp_path, "\n".join(lines) + "\n", "d.jsonl"))
    assert ds.labels("queue") == list("AABB")
    err = error_of(write(tmp_path, lines[0] + "\n{broken\n", "e.jsonl"))
    assert err.line == 2 and "invalid JSON" in str(err)


def test_json_array_line_numbers(tmp_path: Path) -> None:
    items = [
        {"id": 1, "text": "a", "queue": "A"},
        {"id": 2, "text": "b", "queue": "A"},
        {"id": 3, "text": "", "queue": "A"},
    ]
    err = error_of(write(tmp_path, json.dumps(items, indent=2), "d.json"))
    assert err.line == 12 and "empty ticket text" in str(err)


def test_json_non_object(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, '["just a string"]', "d.json"))
    assert "expected a JSON object" in str(err)


def test_stratified_split_is_seeded_and_stratified(sample_csv: Path) -> None:
    ds = load_dataset(sample_csv)
    train, test = stratified_split(ds, test_size=0.2, seed=7)
    again, _ = stratified_split(ds, test_size=0.2, seed=7)
    other, _ = stratified_split(ds, test_size=0.2, seed=8)
    assert [e.id for e in train.examples] == [e.id for e in again.examples]
    assert [e.id for e in train.examples] != [e.id for e in other.examples]
    assert not {e.id for e in train.examples} & {e.id for e in test.examples}
    assert len(train) + len(test) == len(ds)
    full, part = Counter(ds.labels("queue")), Counter(test.labels("queue"))
    for label, n in full.items():
        assert abs(part[label] - 0.2 * n) <= 1.0


def test_split_refuses_too_few_rows(tmp_path: Path) -> None:
    ds = load_dataset(write(tmp_path, HEADER + "".join(ROWS)))
    with pytest.raises(DatasetError, match="too few"):
        stratified_split(ds, test_size=0.2, seed=1)


def test_write_csv_round_trip(tmp_path: Path, sample_csv: Path) -> None:
    ds = load_dataset(sample_csv)
    write_csv(ds, tmp_path / "out.csv")
    back = load_dataset(tmp_path / "out.csv")
    assert back.texts() == ds.texts()
    assert back.labels("priority") == ds.labels("priority")
    assert back.languages() == ds.languages()


def test_rare_classes_are_left_out_until_stable_and_reported(tmp_path: Path) -> None:
    from daemon.ml.dataset import drop_rare

    rows = ["id,text,queue,priority"]
    rows += [f"a{i},text {i},A,low" for i in range(4)] + [f"e{i},text e{i},E,high" for i in range(2)]
    rows += ["b0,text b,B,low", "d0,text d,B,urgent", "c0,text c,C,low"]
    path = tmp_path / "rare.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    ds = load_dataset(path, min_examples=1)
    kept, dropped = drop_rare(ds, 2)  # C and 'urgent' go; that leaves B with one ticket, so it goes next
    assert dropped == {"queue": {"C": 1, "B": 1}, "priority": {"urgent": 1}}
    assert sorted(e.id for e in kept.examples) == ["a0", "a1", "a2", "a3", "e0", "e1"]
    kept3, dropped3 = drop_rare(ds, 3)
    assert {e.labels["queue"] for e in kept3.examples} == {"A"} and dropped3["priority"] == {"high": 2, "urgent": 1}
    assert drop_rare(ds, 1) == (ds, {})


def test_split_keeps_a_single_ticket_class_on_the_training_side(tmp_path: Path) -> None:
    from daemon.ml.dataset import stratified_split

    rows = ["id,text,queue"] + [f"a{i},alpha {i},A" for i in range(10)] + [f"b{i},beta {i},B" for i in range(10)]
    rows.append("z0,zeta,Z")
    path = tmp_path / "one.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    train, test = stratified_split(load_dataset(path, min_examples=1), test_size=0.2, seed=1)
    assert "Z" in train.labels("queue") and "Z" not in test.labels("queue")
    assert Counter(test.labels("queue")) == {"A": 2, "B": 2} and len(train) == 17
