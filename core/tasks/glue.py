"""GLUE tasks read from the bundled TSV files (never ``load_dataset("glue")``, which needs the hub)."""

from __future__ import annotations

import csv
from typing import Any

from core.errors import DataError
from core.tasks.base import Task, datasets_dir, register_task


def _read_tsv(relpath: str, header: bool = True, names: list[str] | None = None) -> list[dict[str, str]]:
    path = datasets_dir() / relpath
    if not path.is_file():
        raise DataError(f"Bundled data file {path} is missing; reinstall the workbench")
    # QUOTE_NONE: some rows hold stray '"' characters (RTE train idx 2164, STS-B).
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        rows = list(reader)
    if header:
        names, rows = rows[0], rows[1:]
    assert names is not None
    return [dict(zip(names, r, strict=False)) for r in rows if r]


def _dataset(columns: dict[str, list[Any]]) -> Any:
    import datasets

    return datasets.Dataset.from_dict(columns)


def _accuracy(predictions: Any, references: Any) -> dict[str, float]:
    from sklearn.metrics import accuracy_score

    return {"accuracy": float(accuracy_score(references, predictions))}


def _load_sst2(split: str) -> Any:
    rows = _read_tsv(f"sst2/{split}.tsv")
    return _dataset({"text": [r["sentence"] for r in rows], "label": [int(r["label"]) for r in rows]})


SST2 = register_task(
    Task(
        id="sst2",
        title="SST-2 (sentiment)",
        family="glue",
        head="classification",
        num_labels=2,
        metrics=("accuracy",),
        primary_metric="accuracy",
        loader=_load_sst2,
        scorer=_accuracy,
        label_names=("negative", "positive"),
    )
)
