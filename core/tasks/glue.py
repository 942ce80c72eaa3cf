"""GLUE tasks read from the bundled TSV files (never ``load_dataset("glue")``, which needs the hub).

SST-2, CoLA, RTE, STS-B and QNLI are registered here. MRPC-style pair classification (accuracy
+ F1) has no bundled data; ``core.tasks.custom`` builds such tasks from the user's own files with
the same scorer (``metrics.accuracy_f1``).
"""

from __future__ import annotations

import csv
import functools
import random
from typing import Any

from core.errors import DataError
from core.tasks import metrics
from core.tasks.base import Task, datasets_dir, register_task

# GLUE's label order for the entailment tasks (as in the GLUE baselines and HF glue processors).
ENTAILMENT_LABELS = ("entailment", "not_entailment")


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


def _label_id(value: str, names: tuple[str, ...], where: str) -> int:
    try:
        return names.index(value)
    except ValueError:
        raise DataError(f"{where}: unexpected label '{value}', expected one of {', '.join(names)}") from None


# Kept for callers of the foundation module.
_accuracy = metrics.accuracy


def _sst2_columns(split: str) -> dict[str, list[Any]]:
    rows = _read_tsv(f"sst2/{split}.tsv")
    return {"text": [r["sentence"] for r in rows], "label": [int(r["label"]) for r in rows]}


def _cola_columns(split: str) -> dict[str, list[Any]]:
    rows = _read_tsv(f"cola/{split}.tsv", header=False, names=["source", "label", "original", "sentence"])
    return {"text": [r["sentence"] for r in rows], "label": [int(r["label"]) for r in rows]}


def _rte_columns(split: str) -> dict[str, list[Any]]:
    rows = _read_tsv(f"rte/{split}.tsv")
    where = f"rte/{split}.tsv"
    return {
        "text": [r["sentence1"] for r in rows],
        "text_pair": [r["sentence2"] for r in rows],
        "label": [_label_id(r["label"], ENTAILMENT_LABELS, where) for r in rows],
    }


def _stsb_columns(split: str) -> dict[str, list[Any]]:
    rows = _read_tsv(f"stsb/{split}.tsv")
    return {
        "text": [r["sentence1"] for r in rows],
        "text_pair": [r["sentence2"] for r in rows],
        "label": [float(r["score"]) for r in rows],
    }


@functools.lru_cache(maxsize=8)
def _load_sst2(split: str) -> Any:
    return _dataset(_sst2_columns(split))


@functools.lru_cache(maxsize=8)
def _load_cola(split: str) -> Any:
    return _dataset(_cola_columns(split))


@functools.lru_cache(maxsize=8)
def _load_rte(split: str) -> Any:
    return _dataset(_rte_columns(split))


@functools.lru_cache(maxsize=8)
def _load_stsb(split: str) -> Any:
    return _dataset(_stsb_columns(split))


QNLI_SPLIT_SEED = 0
QNLI_TRAIN_FRACTION = 0.8


def qnli_split_indices() -> tuple[list[int], list[int]]:
    """Rows of the official QNLI dev file going to our train / dev parts.

    Grouped by question (a question's candidate sentences all land on one side), the unique
    questions shuffled with a fixed seed, the first 80 % of them to train. Deterministic.
    """
    rows = _read_tsv("qnli/dev.tsv")
    questions = sorted({r["question"] for r in rows})
    random.Random(QNLI_SPLIT_SEED).shuffle(questions)
    train_q = set(questions[: round(len(questions) * QNLI_TRAIN_FRACTION)])
    train = [i for i, r in enumerate(rows) if r["question"] in train_q]
    dev = [i for i, r in enumerate(rows) if r["question"] not in train_q]
    return train, dev


def _qnli_columns(split: str) -> dict[str, list[Any]]:
    rows = _read_tsv("qnli/dev.tsv")
    if split != "dev_full":
        train, dev = qnli_split_indices()
        rows = [rows[i] for i in (train if split == "train" else dev)]
    return {
        "text": [r["question"] for r in rows],
        "text_pair": [r["sentence"] for r in rows],
        "label": [_label_id(r["label"], ENTAILMENT_LABELS, "qnli/dev.tsv") for r in rows],
    }


@functools.lru_cache(maxsize=8)
def _load_qnli(split: str) -> Any:
    return _dataset(_qnli_columns(split))


SST2 = register_task(
    Task(
        id="sst2",
        data_files=(datasets_dir() / "sst2",),
        title="SST-2 (sentiment)",
        family="glue",
        head="classification",
        num_labels=2,
        metrics=("accuracy",),
        primary_metric="accuracy",
        loader=_load_sst2,
        columns=_sst2_columns,
        scorer=metrics.accuracy,
        resample=metrics.resample_accuracy,
        label_names=("negative", "positive"),
    )
)

COLA = register_task(
    Task(
        id="cola",
        data_files=(datasets_dir() / "cola",),
        title="CoLA (acceptability)",
        family="glue",
        head="classification",
        num_labels=2,
        metrics=("matthews_correlation",),
        primary_metric="matthews_correlation",
        loader=_load_cola,
        columns=_cola_columns,
        scorer=metrics.matthews,
        resample=metrics.resample_matthews,
        label_names=("unacceptable", "acceptable"),
    )
)

RTE = register_task(
    Task(
        id="rte",
        data_files=(datasets_dir() / "rte",),
        title="RTE (entailment)",
        family="glue",
        head="classification",
        num_labels=2,
        metrics=("accuracy",),
        primary_metric="accuracy",
        loader=_load_rte,
        columns=_rte_columns,
        scorer=metrics.accuracy,
        resample=metrics.resample_accuracy,
        pair=True,
        label_names=ENTAILMENT_LABELS,
    )
)

STSB = register_task(
    Task(
        id="stsb",
        data_files=(datasets_dir() / "stsb",),
        title="STS-B (similarity)",
        family="glue",
        head="regression",
        num_labels=1,
        metrics=("pearson", "spearman", "pearson_spearman_mean"),
        primary_metric="pearson",
        loader=_load_stsb,
        columns=_stsb_columns,
        scorer=metrics.pearson_spearman,
        resample=metrics.resample_pearson,
        pair=True,
        note="primary metric = Pearson correlation (Spearman and their mean also reported)",
    )
)

QNLI = register_task(
    Task(
        id="qnli",
        data_files=(datasets_dir() / "qnli",),
        title="QNLI (question entailment)",
        family="glue",
        head="classification",
        num_labels=2,
        metrics=("accuracy",),
        primary_metric="accuracy",
        loader=_load_qnli,
        columns=_qnli_columns,
        scorer=metrics.accuracy,
        resample=metrics.resample_accuracy,
        pair=True,
        splits=("train", "dev", "dev_full"),
        label_names=ENTAILMENT_LABELS,
        note=(
            "QNLI train is not bundled: train/dev here are an 80/20 split of the official dev file "
            "by question (seed 0); 'dev_full' is the whole official dev file"
        ),
    )
)
