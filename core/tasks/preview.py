"""A look at a task's data before anything runs: the first rows, the label balance, the size of
each split, and whether the dev set is big enough to tell variants apart.

Reads the bundled files or the user's file directly (``Task.columns``), never through
``datasets``, so the window can call it (off its GUI thread: a custom file may take a moment).

The warning rule (:func:`dev_noise`): with ``n`` dev examples evaluated, the 95 % interval of a
proportion (accuracy, exact match) is at widest, at 50 %, ``±1.96·√(0.25/n)``; of a correlation
(Pearson, Spearman) near r = 0.8 it is ``tanh(atanh 0.8 ± 1.96/√(n−3)) − 0.8``. When that half-width
is wider than 5 points (0.05), two variants closer than that cannot be told apart on this dev set;
for a proportion that means fewer than 385 examples.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from core.errors import DataError
from core.tasks.base import Task, get_task

NOISE_LIMIT = 0.05  # half-width of the 95 % interval beyond which the preview warns
Z95 = 1.959963984540054  # scipy.stats.norm.ppf(0.975)
REFERENCE_R = 0.8  # a typical correlation of a trained STS model, where the interval is judged


@dataclass(frozen=True)
class Noise:
    """How precisely ``n`` dev examples measure the task's metric."""

    examples: int
    half_width: float  # of the 95 % interval, in metric units (0.05 = 5 points)
    rule: str  # the rule, in words, with its numbers

    @property
    def too_small(self) -> bool:
        return self.half_width > NOISE_LIMIT


def dev_noise(examples: int, head: str) -> Noise:
    """The half-width of the 95 % interval of the task metric measured on ``examples`` dev rows."""
    n = max(0, int(examples))
    if head == "regression":
        if n <= 3:
            return Noise(n, math.inf, f"a correlation needs more than 3 examples; the dev set has {n}")
        z, dz = math.atanh(REFERENCE_R), Z95 / math.sqrt(n - 3)
        half = max(math.tanh(z + dz) - REFERENCE_R, REFERENCE_R - math.tanh(z - dz))
        rule = (f"95 % interval of a correlation near r = {REFERENCE_R} on {n:,} examples (Fisher z): "
                f"±{half:.3f}")
        return Noise(n, half, rule)
    if n == 0:
        return Noise(0, math.inf, "no dev examples")
    half = Z95 * math.sqrt(0.25 / n)
    rule = f"95 % interval of an accuracy near 50 % on {n:,} examples: ±{100 * half:.1f} points (1.96·√(0.25/n))"
    return Noise(n, half, rule)


@dataclass(frozen=True)
class DataPreview:
    task_id: str
    title: str
    head: str
    note: str
    columns: tuple[str, ...]  # of ``rows``, in display order
    rows: tuple[dict[str, Any], ...]  # the first rows of ``split``
    split: str
    sizes: dict[str, int]  # rows per split
    labels: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> label -> count
    evaluated: int = 0  # dev rows each variant is measured on (the recipe's eval_limit applied)
    noise: Noise | None = None

    @property
    def warning(self) -> str:
        """A sentence for the user when the dev set is too small to tell variants apart, else ''."""
        if self.noise is None or not self.noise.too_small:
            return ""
        half = self.noise.half_width
        width = "" if math.isinf(half) else (f"{100 * half:.1f} points" if self.head != "regression" else f"{half:.3f}")
        limit = f"{100 * NOISE_LIMIT:.0f} points" if self.head != "regression" else f"{NOISE_LIMIT}"
        if not width:
            return f"Each variant is measured on {self.evaluated:,} dev examples: too few to tell variants apart ({self.noise.rule})."
        return (f"Each variant is measured on {self.evaluated:,} dev examples: variants closer than about "
                f"{width} cannot be told apart, more than the {limit} this warning allows ({self.noise.rule}).")


def _label_text(task: Task, value: Any) -> str:
    if task.label_names and isinstance(value, int) and 0 <= value < len(task.label_names):
        return task.label_names[value]
    return str(value)


def _cell(value: Any) -> Any:
    """A QA answer dict as its first answer's text; everything else as it is."""
    if isinstance(value, dict) and "text" in value:
        texts = value.get("text") or []
        return texts[0] if texts else "(no answer)"
    return value


def preview(task: str | Task | Any, *, rows: int = 20, split: str = "train",
            eval_limit: int | None = None) -> DataPreview:
    """The first ``rows`` of ``split`` (dev when the task has no such split), every split's size,
    the label counts of each split (classification) and the dev noise at ``eval_limit``.

    ``task`` is a task id, a Task, or a recipe's DataSpec (the user's file, read as the runner will).
    """
    if isinstance(task, str):
        task = get_task(task)
    elif not isinstance(task, Task):
        from core.tasks.custom import task_from_spec

        task = task_from_spec(task)
    if task.columns is None:
        raise DataError(f"Task {task.title} cannot be previewed (its data is only readable by its loader)")
    split = split if split in task.splits else "dev"
    sizes: dict[str, int] = {}
    labels: dict[str, dict[str, int]] = {}
    shown: tuple[dict[str, Any], ...] = ()
    columns: tuple[str, ...] = ()
    for name in [s for s in task.splits if s in ("train", "dev")]:
        data = task.columns(name)
        n = len(next(iter(data.values()), []))
        sizes[name] = n
        if task.head == "classification" and "label" in data:
            counts = Counter(_label_text(task, v) for v in data["label"])
            labels[name] = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        if name == split:
            columns = tuple(c for c in data if c not in ("id",))
            shown = tuple({c: _cell(_label_text(task, data[c][i]) if c == "label" else data[c][i]) for c in columns}
                          for i in range(min(rows, n)))
    dev = sizes.get("dev", 0)
    evaluated = dev if eval_limit is None else min(dev, int(eval_limit))
    return DataPreview(task_id=task.id, title=task.title, head=task.head, note=task.note, columns=columns,
                       rows=shown, split=split, sizes=sizes, labels=labels, evaluated=evaluated,
                       noise=dev_noise(evaluated, task.head))
