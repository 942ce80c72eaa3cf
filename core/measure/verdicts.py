"""What a measured variant's numbers mean: intervals on its task metrics and the flags a user must
not miss.

- ``untrained head``: the task head was never trained (a packaged encoder's fresh head): its metric
  is chance, not a result.
- ``did not learn``: trained, but not better than the trivial predictor (the train split's majority
  class, its mean score, or "no answer" everywhere) beyond the paired 95 % interval.
- ``within noise``: the change against the parent lies inside the paired 95 % interval.
- ``not smaller on disk``: a compression step whose artifact did not shrink (core.measure.size).
- ``still improving``: a training step's held-out score still rose beyond noise over the second half
  of its budget (core.steps.training.convergence): a larger budget may buy more.
- ``over budget``: the primary metric fell further below the reference than the recipe's accuracy
  budget allows (the point estimate decides; the text gives the numbers).
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from core.measure.intervals import Interval, metric_interval, paired_delta_interval
from core.store.rows import (
    DID_NOT_LEARN,
    NOT_SMALLER,
    OVER_BUDGET,
    STILL_IMPROVING,
    UNTRAINED_HEAD,
    WITHIN_NOISE,
    flag_title,
)


@dataclass(frozen=True)
class Flag:
    code: str  # one of TITLES
    text: str  # the reason, with the numbers

    @property
    def title(self) -> str:
        return flag_title(self.code)

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def interval_metrics(task: Any) -> list[str]:
    """The task metrics that get an interval: every declared metric but thresholds, and for QA only
    EM and F1 (the official scorer is too slow to rerun a thousand times for the others)."""
    names = [m for m in task.metrics if not m.endswith(("_thresh", "_total"))]
    if task.head == "qa":
        return [m for m in names if m in ("exact", "f1")]
    return names


def intervals(task: Any, predictions: list[Any], references: list[Any], *, seed: int) -> dict[str, Interval]:
    """A bootstrap interval for each of :func:`interval_metrics` (seeded: the same data gives the same interval)."""
    return {m: metric_interval(m, predictions, references, task.score, task.resample, seed=seed)
            for m in interval_metrics(task)}


def trivial_predictions(task: Any, n: int) -> list[Any]:
    """What a model that learned nothing would answer for each of ``n`` dev examples."""
    if task.head == "qa":
        return [{"text": "", "null_odds": float("inf"), "span_text": ""} for _ in range(n)]
    labels = list(task.load("train")["label"]) if "train" in task.splits else []
    if task.head == "regression":
        return [float(statistics.fmean(labels)) if labels else 0.0] * n
    majority = Counter(labels).most_common(1)[0][0] if labels else 0
    return [majority] * n


def learned(task: Any, predictions: list[Any], references: list[Any], *, seed: int) -> Interval:
    """The primary metric's margin over the trivial predictor, with its paired interval. For
    regression the trivial (constant) predictor has no correlation: the margin is the metric itself."""
    metric = task.primary_metric
    if task.head == "regression":
        return metric_interval(metric, predictions, references, task.score, task.resample, seed=seed)
    trivial = trivial_predictions(task, len(references))
    return paired_delta_interval(metric, predictions, trivial, references, task.score, task.resample, seed=seed)


def versus_parent(task: Any, predictions: list[Any], parent: list[Any], references: list[Any], *,
                  seed: int) -> Interval:
    """The change of the primary metric against the parent, on the same examples, with its paired interval."""
    return paired_delta_interval(task.primary_metric, predictions, parent, references, task.score, task.resample,
                                 seed=seed)


def _points(task: Any, value: float) -> str:
    """A metric difference in the unit users read: points for 0-1 metrics, as is for 0-100 ones."""
    return f"{value * task.points:+.1f}"


def flags(task: Any, *, head_trained: bool, learned_margin: Interval | None, delta: Interval | None,
          size_reason: str | None, convergence: dict[str, Any] | None = None) -> list[Flag]:
    """``convergence``: the training step's record (core.steps.training.convergence), if it trained."""
    out = []
    if not head_trained:
        out.append(Flag(UNTRAINED_HEAD, "the task head was never trained (a fresh head predicts at chance); "
                        "add a finetune step before comparing metrics"))
    elif learned_margin is not None and not learned_margin.low > 0:
        what = "0 correlation" if task.head == "regression" else "the trivial predictor"
        out.append(Flag(DID_NOT_LEARN, f"{task.primary_metric} is not above {what} beyond noise: margin "
                        f"{_points(task, learned_margin.value)} [{_points(task, learned_margin.low)}, "
                        f"{_points(task, learned_margin.high)}] points (95 %); train longer or on more data"))
    if delta is not None and delta.contains(0.0):
        out.append(Flag(WITHIN_NOISE, f"{task.primary_metric} change vs parent {_points(task, delta.value)} points, "
                        f"95 % interval [{_points(task, delta.low)}, {_points(task, delta.high)}] includes 0"))
    if convergence is not None and convergence.get("verdict") == "improving":
        out.append(Flag(STILL_IMPROVING, f"held-out {convergence['metric']} still rose "
                        f"{_points(task, convergence['change'])} [{_points(task, convergence['change_low'])}, "
                        f"{_points(task, convergence['change_high'])}] points (95 %) from step "
                        f"{convergence['from_step']} to {convergence['to_step']}, the second half of training: "
                        "the budget ran out before it converged; raise the step budget or epochs"))
    if size_reason:
        out.append(Flag(NOT_SMALLER, size_reason.removeprefix("not smaller on disk: ")))
    return out


def over_budget(task: Any, value: float | None, reference: float | None, reference_id: int, budget: Any) -> Flag | None:
    """The "over budget" flag when ``value`` lies more than ``budget.allowed`` below ``reference``
    (``budget``: a core.recipe.Budget); None within budget or when either metric is missing."""
    if budget is None or value is None or reference is None:
        return None
    points = task.points
    allowed = budget.allowed(reference, points)
    drop = reference - value
    if drop <= allowed + 1e-12:
        return None
    return Flag(OVER_BUDGET, f"{task.primary_metric} {value * points:.1f} is {drop * points:.1f} points below the "
                f"reference (variant {reference_id}: {reference * points:.1f}); the budget allows {allowed * points:.1f} "
                f"({budget.describe()}), so nothing after this variant runs, nor later values of its sweep")
