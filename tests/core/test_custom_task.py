"""Custom tasks read the user's files in every format, map labels deterministically, and name bad columns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import DataError
from core.tasks import get_task
from core.tasks.custom import custom_task, label_vocabulary

ROWS = [
    {"s1": f"sentence {i}", "s2": f"other {i}", "y": ["pos", "neg", "neutral"][i % 3], "score": i / 10}
    for i in range(20)
]


def _write(path: Path, rows: list[dict]) -> Path:
    import pandas as pd

    frame = pd.DataFrame(rows)
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    elif path.suffix == ".json":
        path.write_text(json.dumps(rows), encoding="utf-8")
    else:
        frame.to_parquet(path)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".json", ".jsonl", ".parquet"])
def test_every_format_loads_the_same_task(tmp_path: Path, suffix: str) -> None:
    path = _write(tmp_path / f"data{suffix}", ROWS)
    task = custom_task(path, text="s1", text_pair="s2", label="y", name=f"t{suffix[1:]}")
    assert task.id == f"custom:t{suffix[1:]}" and task.pair and task.num_labels == 3
    assert task.label_names == ("neg", "neutral", "pos")  # sorted, deterministic
    train, dev = task.load("train"), task.load("dev")
    assert train.num_rows == 16 and dev.num_rows == 4
    assert set(train["text"]).isdisjoint(dev["text"])
    first = next(r for r in list(train) + list(dev) if r["text"] == "sentence 0")
    assert first["label"] == task.label_names.index("pos") and first["text_pair"] == "other 0"
    assert get_task(task.id) is task


def test_split_is_seeded_and_reproducible(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.csv", ROWS)
    a = custom_task(path, text="s1", label="y", seed=1, register=False)
    b = custom_task(path, text="s1", label="y", seed=1, register=False)
    c = custom_task(path, text="s1", label="y", seed=2, register=False)
    assert list(a.load("dev")["text"]) == list(b.load("dev")["text"])
    assert list(a.load("dev")["text"]) != list(c.load("dev")["text"])


def test_missing_column_lists_the_columns_found(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.csv", ROWS)
    with pytest.raises(DataError, match=r"no column 'sentence'.*columns found: s1, s2, y, score"):
        custom_task(path, text="sentence", label="y")
    with pytest.raises(DataError, match=r"no column 'label' for the label.*s1, s2, y, score"):
        custom_task(path, text="s1", label="label")
    with pytest.raises(DataError, match=r"no column 'b'.*second text"):
        custom_task(path, text="s1", text_pair="b", label="y")


def test_bad_values_and_files_are_reported(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.csv", ROWS)
    with pytest.raises(DataError, match="row 1 of column 'y' is not a number"):
        custom_task(path, text="s1", label="y", kind="regression")
    with pytest.raises(DataError, match="does not exist"):
        custom_task(tmp_path / "nope.csv", text="s1", label="y")
    (tmp_path / "d.xlsx").write_text("x")
    with pytest.raises(DataError, match="unsupported file type"):
        custom_task(tmp_path / "d.xlsx", text="s1", label="y")
    one = _write(tmp_path / "one.csv", [{"s1": "a", "y": "pos"}, {"s1": "b", "y": "pos"}])
    with pytest.raises(DataError, match="single label"):
        custom_task(one, text="s1", label="y")


def test_two_files_and_regression(tmp_path: Path) -> None:
    train = _write(tmp_path / "train.jsonl", ROWS[:15])
    dev = _write(tmp_path / "dev.jsonl", ROWS[15:])
    task = custom_task(train, dev_path=dev, text="s1", text_pair="s2", label="score", kind="regression")
    assert task.head == "regression" and task.primary_metric == "pearson"
    assert task.load("dev").num_rows == 5 and task.load("dev")["label"][0] == pytest.approx(1.5)
    assert "dev.jsonl" in task.note


def test_binary_pair_task_is_scored_mrpc_style(tmp_path: Path) -> None:
    rows = [{"a": f"x{i}", "b": f"y{i}", "same": i % 2} for i in range(10)]
    task = custom_task(_write(tmp_path / "p.csv", rows), text="a", text_pair="b", label="same")
    assert task.label_names == ("0", "1")
    scores = task.score([1, 1, 0, 0], [1, 0, 1, 0])
    assert scores["accuracy"] == 0.5 and scores["f1"] == 0.5 and "matthews_correlation" in scores


def test_label_vocabulary_orders_numbers_numerically() -> None:
    assert label_vocabulary(["10", "2", "1"]) == ["1", "2", "10"]
    assert label_vocabulary(["b", "a", "B"]) == ["B", "a", "b"]
    assert label_vocabulary([1, 1.0, "1", 0]) == ["0", "1"]
