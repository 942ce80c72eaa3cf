"""Fronts and the best variant: one front per task and metric, checked against brute force; the
best variant is the smallest within the budget, a near-tie in size going to the higher metric."""

from __future__ import annotations

import random

import pytest

from core.store.pareto import SIZE_TIE, best_within_budget, group_rows, pareto_front


def _row(task: str, size: float, metric: float, pct: float, vid: int) -> dict:
    return {"task": task, "metric_name": "accuracy", "size_mb": size, "metric": metric, "pct_baseline": pct,
            "variant": vid}


@pytest.mark.parametrize("seed", range(3))
def test_the_best_variant_is_the_smallest_within_the_budget(seed: int) -> None:
    rng = random.Random(seed)
    rows = [_row("sst2", rng.uniform(10, 100), rng.uniform(0.5, 0.9), rng.uniform(80, 101), i) for i in range(60)]
    best = best_within_budget(rows, 95.0)[("sst2", "accuracy")]
    kept = [r for r in rows if r["pct_baseline"] >= 95.0]
    smallest = min(r["size_mb"] for r in kept)
    near = [r for r in kept if r["size_mb"] <= smallest * (1 + SIZE_TIE)]
    assert best["metric"] == max(r["metric"] for r in near)
    # It is on the front, up to the size tie: nothing clearly smaller is at least as good.
    assert not any(r["size_mb"] < best["size_mb"] / (1 + SIZE_TIE) and r["metric"] >= best["metric"] for r in kept)


def test_a_near_tie_in_size_goes_to_the_higher_metric_and_tasks_stay_apart() -> None:
    rows = [_row("sst2", 23.79, 0.76, 148.3, 4), _row("sst2", 23.786, 0.7475, 145.9, 8),
            _row("sst2", 91.6, 0.51, 100.0, 1), _row("rte", 10.0, 0.55, 99.5, 9), _row("rte", 40.0, 0.56, 100.0, 10)]
    best = best_within_budget(rows, 99.0)
    assert {k: r["variant"] for k, r in best.items()} == {("sst2", "accuracy"): 4, ("rte", "accuracy"): 9}
    assert best_within_budget(rows, 100.0)[("rte", "accuracy")]["variant"] == 10
    assert best_within_budget([_row("sst2", 10.0, 0.5, 90.0, 1)], 99.0) == {}
    assert list(group_rows(rows)) == [("sst2", "accuracy"), ("rte", "accuracy")]
    assert pareto_front([(1.0, 0.5), (1.0, 0.6), (2.0, 0.55)]) == [1]


def test_a_variant_whose_metric_is_no_result_is_never_best() -> None:
    """A fresh head at chance, or a model that did not learn, may keep 100 % of a chance-level
    reference at the smallest size: it is still not the variant to ship."""
    untrained = {**_row("sst2", 5.0, 0.51, 100.0, 1), "flags": [{"code": "untrained_head", "text": "never trained"}]}
    chance = {**_row("sst2", 6.0, 0.50, 99.5, 2), "flags": [{"code": "did_not_learn", "text": "at chance"}]}
    noise = {**_row("sst2", 20.0, 0.85, 99.2, 3), "flags": [{"code": "within_noise", "text": "+0.1 points"}]}
    best = best_within_budget([untrained, chance, noise, _row("sst2", 90.0, 0.86, 100.0, 4)], 99.0)
    assert best[("sst2", "accuracy")]["variant"] == 3  # within noise of its parent is still a result
    assert best_within_budget([untrained, chance], 90.0) == {}
