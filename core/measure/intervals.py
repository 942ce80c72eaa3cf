"""Uncertainty of a task metric: seeded percentile bootstrap over dev examples.

``metric_interval`` resamples the evaluated examples with replacement and recomputes the metric on
each resample; ``paired_delta_interval`` resamples the *same* examples for two variants (so the
noise they share cancels) and gives the interval of their difference. A task's ``resample``
computes its metrics on every resample at once (numpy, core.tasks.metrics); a metric it does not
cover (Spearman, SQuAD's best-threshold scores) is recomputed by the task's own scorer per resample.

The result is checked against ``scipy.stats.bootstrap`` (percentile method) in the tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

RESAMPLES = 1000
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A point estimate with its percentile-bootstrap interval and how it was computed."""

    value: float
    low: float
    high: float
    resamples: int
    level: float = LEVEL

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _indices(n: int, resamples: int, seed: int) -> Any:
    import numpy as np

    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def _bounds(samples: Any, level: float) -> tuple[float, float]:
    import numpy as np

    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return math.nan, math.nan
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


Resample = Callable[[Any, Any, Any], dict[str, Any]]


def _resampled(metric: str, predictions: Sequence[Any], references: Sequence[Any], idx: Any,
               score: Callable[[Any, Any], dict[str, float]], resample: Resample | None) -> Any:
    """The metric on each row of ``idx`` (a resamples x n matrix of example indices)."""
    import numpy as np

    if resample is not None:
        values = resample(predictions, references, idx).get(metric)
        if values is not None:
            return np.asarray(values, dtype=float)
    preds, refs = list(predictions), list(references)
    return np.array([score([preds[i] for i in row], [refs[i] for i in row])[metric] for row in idx], dtype=float)


def metric_interval(metric: str, predictions: Sequence[Any], references: Sequence[Any],
                    score: Callable[[Any, Any], dict[str, float]],
                    resample: Resample | None = None, *,
                    resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL) -> Interval:
    """``metric`` of the predictions with its bootstrap interval over examples."""
    value = float(score(list(predictions), list(references))[metric])
    idx = _indices(len(references), resamples, seed)
    low, high = _bounds(_resampled(metric, predictions, references, idx, score, resample), level)
    return Interval(value, low, high, resamples, level)


def paired_delta_interval(metric: str, predictions: Sequence[Any], baseline: Sequence[Any],
                          references: Sequence[Any], score: Callable[[Any, Any], dict[str, float]],
                          resample: Resample | None = None, *,
                          resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL) -> Interval:
    """``metric(predictions) - metric(baseline)`` on the same examples, with its paired interval."""
    value = float(score(list(predictions), list(references))[metric] - score(list(baseline), list(references))[metric])
    idx = _indices(len(references), resamples, seed)
    a = _resampled(metric, predictions, references, idx, score, resample)
    b = _resampled(metric, baseline, references, idx, score, resample)
    low, high = _bounds(a - b, level)
    return Interval(value, low, high, resamples, level)


def median_interval(times: Sequence[float], *, resamples: int = RESAMPLES, seed: int = 0,
                    level: float = LEVEL) -> Interval:
    """The median of timed repeats with its bootstrap interval (for latency p50)."""
    import numpy as np

    arr = np.asarray(times, dtype=float)
    medians = np.median(arr[_indices(len(arr), resamples, seed)], axis=1)
    low, high = _bounds(medians, level)
    return Interval(float(np.median(arr)), low, high, resamples, level)
