"""The task registry: what data a task reads, which head it needs, and how it is scored.

Task *declarations* are torch-free (the GUI lists them); loading data imports ``datasets``.
Modules in this package register their tasks on import and are discovered automatically.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import DataError

SPLITS = ("train", "dev")


def datasets_dir() -> Path:
    """The bundled benchmark files (``resources/datasets``), in a checkout or an installed wheel."""
    import resources

    return Path(next(iter(resources.__path__))) / "datasets"


@dataclass(frozen=True)
class Task:
    """One task. ``loader(split)`` returns a ``datasets.Dataset`` with the normalised columns:

    classification/regression: ``text`` (and ``text_pair`` for pair tasks), ``label``
    (int class or float score); QA: ``id``, ``question``, ``context``, ``answers`` (SQuAD form).
    """

    id: str
    title: str
    family: str  # "glue" | "squad" | "custom"
    head: str  # "classification" | "regression" | "qa"
    num_labels: int
    metrics: tuple[str, ...]
    primary_metric: str
    loader: Callable[[str], Any] = field(repr=False, compare=False)
    scorer: Callable[[Any, Any], dict[str, float]] = field(repr=False, compare=False)
    pair: bool = False
    splits: tuple[str, ...] = SPLITS
    note: str = ""  # shown beside every result, e.g. "eval = article split of the dev file"
    label_names: tuple[str, ...] = ()
    data_files: tuple[Path, ...] = ()  # what the loader reads: the cache key hashes their content
    # The loader's columns as plain lists, read without ``datasets`` (the window's data preview).
    columns: Callable[[str], dict[str, list[Any]]] | None = field(default=None, repr=False, compare=False)
    # (predictions, references, index matrix) -> metric -> its value on each resample, for fast bootstraps
    resample: Callable[[Any, Any, Any], dict[str, Any]] | None = field(default=None, repr=False, compare=False)

    @property
    def points(self) -> float:
        """Points per metric unit, the unit users read differences in: 100 for 0-1 metrics (accuracy,
        MCC, Pearson), 1 for metrics already on 0-100 (SQuAD's EM and F1)."""
        return 1.0 if self.head == "qa" else 100.0

    def load(self, split: str) -> Any:
        if split not in self.splits:
            raise DataError(f"Task {self.title} has no '{split}' split; it has {', '.join(self.splits)}")
        return self.loader(split)

    def score(self, predictions: Any, references: Any) -> dict[str, float]:
        return self.scorer(predictions, references)


_TASKS: dict[str, Task] = {}
_discovered = False


def register_task(task: Task, *, replace: bool = False) -> Task:
    """Add ``task`` to the registry. ``replace`` lets a user's custom task be re-defined."""
    if task.id in _TASKS and not replace:
        raise RuntimeError(f"task id '{task.id}' registered twice")
    _TASKS[task.id] = task
    return task


def discover() -> None:
    global _discovered
    if _discovered:
        return
    import core.tasks as package

    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_") and info.name != "base":
            importlib.import_module(f"core.tasks.{info.name}")
    _discovered = True


def all_tasks() -> list[Task]:
    discover()
    return list(_TASKS.values())


def is_task_registered(task_id: str) -> bool:
    discover()
    return task_id in _TASKS


def get_task(task_id: str) -> Task:
    discover()
    try:
        return _TASKS[task_id]
    except KeyError:
        raise DataError(f"Unknown task '{task_id}'. Known tasks: {', '.join(_TASKS)}") from None


def head_carry_over_problem(made_for: str, labels: int | None, task: Task) -> str | None:
    """Why a classification head trained for task ``made_for`` (with ``labels`` outputs) cannot answer
    ``task``, or None. The label count must match (also for the same task id: a custom task's id is its
    name, which another file may share). Label names are compared between bundled tasks only (an SST-2
    head is not RTE's; QNLI's is): a custom file spells its own, so a custom side is judged on its count."""
    if task.head != "classification":
        return None  # regression and QA heads have no labels to mismatch; the head check covers them
    if labels is not None and labels != task.num_labels:
        return f"a head for task {made_for} has {labels} labels; task {task.id} has {task.num_labels}"
    if made_for == task.id or task.family == "custom" or not is_task_registered(made_for):
        return None
    made = get_task(made_for)
    if made.family != "custom" and list(made.label_names) != list(task.label_names):
        return (f"task {made_for}'s labels ({', '.join(made.label_names)}) are not task {task.id}'s "
                f"({', '.join(task.label_names)}), so its head would answer another question")
    return None
