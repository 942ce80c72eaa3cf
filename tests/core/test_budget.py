"""An accuracy budget on a chain (recipe ``budget:``): a variant that breaks it is flagged "over budget"
and recorded, nothing after it runs, a sweep stops at its first value over budget, cached variants are
judged by the current run's budget; from the recipe file to the CLI's output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core import protocol as p
from core.errors import ConfigError
from core.measure.evaluation import subset_indices
from core.recipe import Budget, Recipe, dumps_recipe, loads_recipe
from core.run.runner import run_recipe
from core.store import open_store, result_rows, run_variants
from core.tasks import get_task
from tests.core.fakes import tiny_recipe

LIMIT = 41  # an odd number of evaluated rows: the two classes never tie


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers import tiny_bert_folder

    return tiny_bert_folder(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def shares() -> tuple[int, int, float]:
    """(majority label, minority label, accuracy lost going from the first to the second) on the rows evaluated."""
    labels = get_task("sst2").load("dev")["label"]
    picked = [labels[i] for i in subset_indices(len(labels), LIMIT, 0)]
    ones = sum(picked) / LIMIT
    major = 1 if ones > 0.5 else 0
    return major, 1 - major, abs(2 * ones - 1)


def _recipe(tiny: Path, major: int, minor: int, budget: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    recipe = tiny_recipe(tiny, [
        {"step": "test.constant", "config": {"label": major}},  # the first trained variant: the reference
        {"step": "test.constant", "config": {"label": [major, minor, major]}},  # a sweep, in the order written
        {"step": "test.scale", "config": {"factor": 1.0}},
    ], **extra)
    recipe["measure"]["eval_limit"] = LIMIT
    if budget is not None:
        recipe["budget"] = budget
    return recipe


def test_budget_round_trips_and_bad_budgets_name_the_field() -> None:
    recipe = Recipe.from_dict({"model": "m", "task": "sst2", "budget": {"metric_drop": 1.0}})
    assert recipe.budget == Budget(metric_drop=1.0) and loads_recipe(dumps_recipe(recipe)) == recipe
    assert "budget" not in Recipe(model="m", task="sst2").to_dict()  # recipes without one are unchanged
    assert Budget(metric_drop_pct=2.0).allowed(0.8, 100.0) == pytest.approx(0.016)
    assert Budget(metric_drop=1.0).allowed(0.8, 100.0) == pytest.approx(0.01)
    assert Budget(metric_drop=1.0).allowed(70.0, 1.0) == pytest.approx(1.0)  # SQuAD F1 is already in points
    for bad, field in [({}, "budget"), ({"metric_drop": 1, "metric_drop_pct": 2}, "budget"),
                       ({"metric_drop": -1}, "budget.metric_drop"), ({"metric_drop_pct": 150}, "budget.metric_drop_pct"),
                       ({"drop": 1}, "budget.drop"), ({"metric_drop": "1"}, "budget.metric_drop")]:
        with pytest.raises(ConfigError) as info:
            Recipe.from_dict({"model": "m", "task": "sst2", "budget": bad})
        assert info.value.field == field, bad


def test_a_variant_over_budget_is_flagged_and_its_subtree_and_later_sweep_values_do_not_run(
        tiny: Path, shares: tuple[int, int, float], tmp_path: Path) -> None:
    major, minor, lost = shares
    events: list[Any] = []
    terminal = run_recipe(_recipe(tiny, major, minor, {"metric_drop": 0.0}), db_url_or_path=tmp_path / "w.sqlite",
                          artifacts_dir=tmp_path / "a", emit=events.append)
    assert isinstance(terminal, p.RunFinished)
    store = open_store(tmp_path / "w.sqlite")
    labels = [(v.label, [f["code"] for f in v.flags]) for v in run_variants(store, 1)]
    assert [label for label, _ in labels] == ["baseline", "test.constant", f"test.constant(label={major})",
                                              "test.scale", f"test.constant(label={minor})"]
    over = [label for label, codes in labels if "over_budget" in codes]
    assert over == [f"test.constant(label={minor})"]
    (row,) = [r for r in result_rows(store) if r.label == f"test.constant(label={minor})"]
    (flag,) = [f for f in row.flags if f["code"] == "over_budget"]
    assert f"{lost * 100:.1f} points below the reference" in flag["text"] and "allows 0.0" in flag["text"]
    skipped = [e for e in events if isinstance(e, p.StepSkipped)]
    # minor's test.scale child, then the sweep's third value and its child
    assert [(e.label, e.index) for e in skipped] == [("test.scale", 3), (f"test.constant(label={major})", 2),
                                                     ("test.scale", 3)]
    assert "over the accuracy budget" in skipped[0].reason and "earlier value of this sweep" in skipped[1].reason
    started = {e.node for e in events if isinstance(e, p.StepStarted)}
    planned = next(e for e in events if isinstance(e, p.RunStarted)).steps
    assert started | {e.node for e in skipped} == {s.node for s in planned} and not started & {e.node for e in skipped}


def test_a_looser_budget_runs_everything_and_rejudges_cached_variants(tiny: Path, shares: tuple[int, int, float],
                                                                       tmp_path: Path) -> None:
    major, minor, lost = shares
    db = tmp_path / "w.sqlite"
    run_recipe(_recipe(tiny, major, minor, {"metric_drop": 0.0}), db_url_or_path=db, artifacts_dir=tmp_path / "a")
    reference = (1 + lost) / 2  # the majority's share
    loose = _recipe(tiny, major, minor, {"metric_drop_pct": 100.0 * lost / reference + 1.0})
    assert isinstance(run_recipe(loose, db_url_or_path=db, artifacts_dir=tmp_path / "a"), p.RunFinished)
    variants = run_variants(open_store(db), 2)
    assert len(variants) == 8  # baseline, reference, three sweep values each with its child
    assert not any(f["code"] == "over_budget" for v in variants for f in v.flags)
    assert sum(v.cached for v in variants) >= 4  # what the first run made was reused, and judged again


def test_without_a_budget_nothing_is_flagged_or_skipped(tiny: Path, shares: tuple[int, int, float], tmp_path: Path) -> None:
    major, minor, _lost = shares
    events: list[Any] = []
    run_recipe(_recipe(tiny, major, minor, None), db_url_or_path=tmp_path / "w.sqlite", artifacts_dir=tmp_path / "a",
               emit=events.append)
    assert not [e for e in events if isinstance(e, p.StepSkipped)]
    assert len(run_variants(open_store(tmp_path / "w.sqlite"), 1)) == 8


def test_the_cli_reports_what_was_not_run(tiny: Path, shares: tuple[int, int, float], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from core.cli import main
    from core.recipe import save_recipe
    from core.run import session
    from tests.core.fakes import WORKER_COMMAND

    major, minor, _lost = shares
    save_recipe(Recipe.from_dict(_recipe(tiny, major, minor, {"metric_drop": 0.0})), tmp_path / "r.yaml")
    mp = pytest.MonkeyPatch()
    mp.setattr(session, "worker_command", lambda: WORKER_COMMAND)
    try:
        assert main(["run", str(tmp_path / "r.yaml"), "--db", str(tmp_path / "w.sqlite")]) == 0
    finally:
        mp.undo()
    err = capsys.readouterr().err
    assert err.count(": not run (") == 3 and "[8/8]" in err
    assert main(["show", "1", "--db", str(tmp_path / "w.sqlite")]) == 0
    out = capsys.readouterr().out
    assert "over budget" in out and "points below the reference" in out
