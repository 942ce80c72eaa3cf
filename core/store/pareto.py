"""Which variants are worth keeping: the Pareto front of metric against size, one front per task
and metric (a front across tasks or metrics compares numbers that do not compare), and the best
variant within an accuracy budget. Pure functions over result rows (ResultRow or its dict)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from core.store.rows import DID_NOT_LEARN, UNTRAINED_HEAD

UNTRUSTED = frozenset({UNTRAINED_HEAD, DID_NOT_LEARN})


def _get(row: Any, key: str) -> Any:
    return row.get(key) if isinstance(row, Mapping) else getattr(row, key, None)


def group_key(row: Any) -> tuple[str, str]:
    """(task, metric name): the rows one front, one chart series and one best variant belong to."""
    return str(_get(row, "task") or ""), str(_get(row, "metric_name") or "metric")


def group_rows(rows: Iterable[Any]) -> dict[tuple[str, str], list[Any]]:
    """Rows with both a size and a metric, grouped by :func:`group_key`, in first-seen order."""
    groups: dict[tuple[str, str], list[Any]] = {}
    for r in rows:
        if _get(r, "size_mb") is not None and _get(r, "metric") is not None:
            groups.setdefault(group_key(r), []).append(r)
    return groups


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats (size at most as large and metric at least as high).

    Sorted by size; ties in size keep only the best metric. O(n log n).
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


# Sizes this close count as the same size when picking the best variant: an int8 variant of a
# 50 % pruned model is a few kilobytes smaller than one of a 30 % pruned model, which buys nothing
# worth the lower metric.
SIZE_TIE = 0.01


def trusted(row: Any) -> bool:
    """Whether a row's metric is a result at all: not a task head that was never trained, not a
    model that did not learn (core.measure.verdicts flags both)."""
    return not any((f.get("code") if isinstance(f, Mapping) else f) in UNTRUSTED for f in _get(row, "flags") or ())


def best_within_budget(rows: Iterable[Any], budget_pct: float) -> dict[tuple[str, str], Any]:
    """Per (task, metric): the smallest trusted variant keeping at least ``budget_pct`` % of its
    run's reference metric; among variants within SIZE_TIE (1 %) of that size, the one with the
    highest metric (then the smallest). It lies on its group's Pareto front up to that 1 % of size."""
    out: dict[tuple[str, str], Any] = {}
    for key, group in group_rows(rows).items():
        kept = [r for r in group if _get(r, "pct_baseline") is not None and _get(r, "pct_baseline") >= budget_pct
                and trusted(r)]
        if kept:
            smallest = min(float(_get(r, "size_mb")) for r in kept)
            near = [r for r in kept if float(_get(r, "size_mb")) <= smallest * (1 + SIZE_TIE)]
            out[key] = min(near, key=lambda r: (-float(_get(r, "metric")), float(_get(r, "size_mb"))))
    return out
