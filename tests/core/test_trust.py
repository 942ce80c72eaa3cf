"""Results a user can trust (issue 14): intervals checked against scipy, the flags a user must not
miss, and the number `evaluate` gives for a shipped artifact equal to the runner's, every time."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core import protocol as p
from core.measure.intervals import median_interval, metric_interval, paired_delta_interval
from core.tasks import metrics
from core.tasks.base import get_task
from tests.core.fakes import tiny_recipe


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers import tiny_bert_folder

    return tiny_bert_folder(tmp_path_factory.mktemp("tiny"))


def _scipy_interval(statistic: Any, data: tuple[Any, ...], paired: bool = True) -> tuple[float, float]:
    from scipy.stats import bootstrap

    res = bootstrap(data, statistic, paired=paired, vectorized=False, n_resamples=4000, method="percentile",
                    confidence_level=0.95, random_state=np.random.default_rng(1))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def test_accuracy_interval_agrees_with_scipy_bootstrap() -> None:
    rng = random.Random(0)
    refs = [rng.randint(0, 1) for _ in range(400)]
    preds = [r if rng.random() < 0.8 else 1 - r for r in refs]
    ours = metric_interval("accuracy", preds, refs, metrics.accuracy, metrics.resample_accuracy, resamples=4000, seed=3)
    theirs = _scipy_interval(lambda a, b: np.mean(a == b), (preds, refs))
    assert ours.low == pytest.approx(theirs[0], abs=0.006) and ours.high == pytest.approx(theirs[1], abs=0.006)
    # ~ +-4 points at 400 examples, as the normal approximation says
    assert ours.high - ours.low == pytest.approx(2 * 1.96 * (0.8 * 0.2 / 400) ** 0.5, abs=0.01)
    # The recomputing path (no per-example scores) gives the same interval as the vectorised one.
    slow = metric_interval("accuracy", preds, refs, metrics.accuracy, None, resamples=300, seed=3)
    fast = metric_interval("accuracy", preds, refs, metrics.accuracy, metrics.resample_accuracy, resamples=300, seed=3)
    assert (slow.low, slow.high) == (fast.low, fast.high)


def _corr(a: Any, b: Any) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def test_mcc_and_pearson_intervals_agree_with_scipy_bootstrap() -> None:
    rng = np.random.default_rng(5)
    refs = rng.integers(0, 2, 300).tolist()
    preds = [r if rng.random() < 0.7 else 1 - r for r in refs]
    ours = metric_interval("matthews_correlation", preds, refs, metrics.matthews, metrics.resample_matthews,
                           resamples=4000, seed=1)
    theirs = _scipy_interval(_corr, (preds, refs))  # binary MCC is Pearson's r of the labels
    assert ours.low == pytest.approx(theirs[0], abs=0.015) and ours.high == pytest.approx(theirs[1], abs=0.015)
    x = rng.normal(size=200)
    y = (x + rng.normal(scale=1.0, size=200)).tolist()
    ours = metric_interval("pearson", x.tolist(), y, metrics.pearson_spearman, metrics.resample_pearson,
                           resamples=4000, seed=1)
    theirs = _scipy_interval(_corr, (x.tolist(), y))
    assert ours.low == pytest.approx(theirs[0], abs=0.015) and ours.high == pytest.approx(theirs[1], abs=0.015)


@pytest.mark.parametrize("classes", [2, 4])
def test_resampled_metrics_equal_the_scorers_on_every_resample(classes: int) -> None:
    from core.measure.intervals import _indices

    rng = np.random.default_rng(classes)
    refs = rng.integers(0, classes, 60).tolist()
    preds = [r if rng.random() < 0.6 else int(rng.integers(0, classes)) for r in refs]
    idx = _indices(60, 25, seed=0)
    fast = (metrics.resample_binary if classes == 2 else metrics.resample_multiclass)(preds, refs, idx)
    scorer = metrics.accuracy_f1 if classes == 2 else metrics.accuracy_macro_f1
    for k, row in enumerate(idx):
        p, r = [preds[i] for i in row], [refs[i] for i in row]
        expected = scorer(p, r) | metrics.matthews(p, r)
        for name in ("accuracy", "f1", "matthews_correlation"):
            assert fast[name][k] == pytest.approx(expected[name], abs=1e-12), (name, k)
    x, y = rng.normal(size=60).tolist(), rng.normal(size=60).tolist()
    pearson = metrics.resample_pearson(x, y, idx)["pearson"]
    for k, row in enumerate(idx):
        assert pearson[k] == pytest.approx(metrics.pearson_spearman([x[i] for i in row], [y[i] for i in row])["pearson"])


def test_paired_delta_interval_agrees_with_scipy_and_cancels_shared_noise() -> None:
    rng = random.Random(2)
    refs = [rng.randint(0, 1) for _ in range(500)]
    a = [r if rng.random() < 0.85 else 1 - r for r in refs]
    b = [x if rng.random() < 0.97 else 1 - x for x in a]  # b mostly agrees with a
    ours = paired_delta_interval("accuracy", b, a, refs, metrics.accuracy, metrics.resample_accuracy, resamples=4000,
                                 seed=0)
    theirs = _scipy_interval(lambda x, y, r: np.mean(np.array(x) == np.array(r)) - np.mean(np.array(y) == np.array(r)),
                             (b, a, refs))
    assert ours.low == pytest.approx(theirs[0], abs=0.004) and ours.high == pytest.approx(theirs[1], abs=0.004)
    unpaired = metric_interval("accuracy", b, refs, metrics.accuracy, metrics.resample_accuracy, resamples=4000, seed=0)
    assert ours.high - ours.low < (unpaired.high - unpaired.low) / 2  # pairing removes the shared noise


def test_latency_median_interval_agrees_with_scipy() -> None:
    times = np.random.default_rng(0).lognormal(3, 0.1, 40).tolist()
    ours = median_interval(times, resamples=4000, seed=0)
    theirs = _scipy_interval(np.median, (times,), paired=False)
    assert ours.value == pytest.approx(float(np.median(times)))
    assert ours.low == pytest.approx(theirs[0], rel=0.01) and ours.high == pytest.approx(theirs[1], rel=0.01)


def test_squad_per_question_scores_average_to_the_official_metrics() -> None:
    squad = get_task("squad_v2")
    refs = [{"text": ["Paris"]}, {"text": []}, {"text": ["the red car", "red car"]}]
    preds = [{"id": "a", "text": "paris", "null_odds": 0.0}, {"id": "b", "text": "", "null_odds": 5.0},
             {"id": "c", "text": "a red car", "null_odds": 0.0}]
    official = squad.score(preds, refs)
    everything = np.array([[0, 1, 2]])
    each = squad.resample(preds, refs, everything)
    assert each["exact"][0] == pytest.approx(official["exact"]) and each["f1"][0] == pytest.approx(official["f1"])


def _run(tiny: Path, tmp_path: Path, chain: list[dict[str, Any]], **extra: Any) -> tuple[Any, list[Any]]:
    from core.run.runner import run_recipe

    events: list[Any] = []
    recipe = tiny_recipe(tiny, chain, **extra)
    terminal = run_recipe(recipe, db_url_or_path=tmp_path / "w.sqlite", artifacts_dir=tmp_path / "a", emit=events.append)
    assert isinstance(terminal, p.RunFinished), terminal
    return terminal, events


def _rows(tmp_path: Path, run_id: int, **kw: Any) -> list[Any]:
    from core.store import open_store, result_rows

    return result_rows(open_store(tmp_path / "w.sqlite"), run_ids=[run_id], **kw)


def test_a_random_head_baseline_is_flagged_and_is_no_reference(tiny: Path, tmp_path: Path) -> None:
    terminal, _ = _run(tiny, tmp_path, [{"step": "prune.global_magnitude", "config": {"amount": 0.3}}],
                       measure={**tiny_recipe(tiny, [])["measure"], "eval_limit": 64})
    base, pruned = _rows(tmp_path, terminal.run_id)
    assert base.flag_codes == ["untrained_head"] and pruned.flag_codes[0] == "untrained_head"
    assert "never trained" in base.flags[0]["text"]
    assert base.pct_baseline is None and pruned.pct_baseline is None  # no trained variant to compare with ...
    assert pruned.reference == base.variant and pruned.pct_smaller is not None  # ... but sizes still are
    assert base.metric_ci_low <= base.metric <= base.metric_ci_high and base.eval_examples == 64


def _unlearnable_csv(folder: Path) -> Path:
    """Labels drawn independently of the text: no model can do better than the majority class."""
    rng = random.Random(0)
    words = ["good", "bad", "movie", "film", "the", "a", "very", "not"]
    rows = [f"{' '.join(rng.choice(words) for _ in range(5))},{rng.choice(['yes', 'no'])}" for _ in range(240)]
    path = folder / "noise.csv"
    path.write_text("text,label\n" + "\n".join(rows) + "\n")
    return path


def test_a_task_that_cannot_be_learned_is_flagged_did_not_learn(tiny: Path, tmp_path: Path) -> None:
    from core.run.runner import run_recipe

    data = {"path": str(_unlearnable_csv(tmp_path)), "text": "text", "label": "label", "dev_fraction": 0.5}
    recipe = tiny_recipe(tiny, [{"step": "finetune", "config": {"epochs": 2.0, "batch_size": 8, "max_length": 16,
                                                                "lr": 1e-3}}])
    recipe = {**recipe, "data": data, "task": "custom:noise", "measure": {**recipe["measure"], "eval_limit": None}}
    terminal = run_recipe(recipe, db_url_or_path=tmp_path / "w.sqlite", artifacts_dir=tmp_path / "a")
    assert isinstance(terminal, p.RunFinished), terminal
    base, tuned = _rows(tmp_path, terminal.run_id)
    assert base.flag_codes == ["untrained_head"]
    assert "did_not_learn" in tuned.flag_codes and "untrained_head" not in tuned.flag_codes
    assert "trivial predictor" in next(f["text"] for f in tuned.flags if f["code"] == "did_not_learn")
    assert tuned.reference == tuned.variant  # the first trained variant is the yardstick


def test_a_change_inside_the_paired_interval_is_within_noise(tiny: Path, tmp_path: Path) -> None:
    terminal, events = _run(tiny, tmp_path, [{"step": "finetune", "config": {"epochs": 1.0, "batch_size": 8,
                                                                              "max_length": 16, "train_size": 64}},
                                             {"step": "prune.global_magnitude", "config": {"amount": 0.01}}],
                            measure={**tiny_recipe(tiny, [])["measure"], "eval_limit": 100})
    base, tuned, pruned = _rows(tmp_path, terminal.run_id)
    assert "within_noise" in pruned.flag_codes and pruned.delta_ci_low <= 0 <= pruned.delta_ci_high
    assert pruned.delta_vs_parent == pytest.approx(pruned.metric - tuned.metric)
    assert "not_smaller" not in tuned.flag_codes  # fine-tuning only trains: no size verdict
    # Events carry the same rows, flags and intervals included.
    live = [e.row for e in events if isinstance(e, p.StepFinished)]
    assert [r["flags"] for r in live] == [r.flags for r in (base, tuned, pruned)]


def test_exports_carry_intervals_flags_and_settings(tiny: Path, tmp_path: Path) -> None:
    import csv
    import io

    from core.store import export_table, open_store, results_table

    terminal, _ = _run(tiny, tmp_path, [{"step": "prune.global_magnitude", "config": {"amount": 0.3}}])
    table = results_table(open_store(tmp_path / "w.sqlite"), run_ids=[terminal.run_id])
    rows = list(csv.DictReader(io.StringIO(export_table(table, "csv"))))
    for column in ("accuracy_ci95_low", "accuracy_ci95_high", "metric_ci_low", "delta_ci_low", "flags",
                   "flag_reasons", "eval_examples", "latency_batch", "latency_seq_len", "latency_threads",
                   "latency_repeats", "latency_p50_ci_low", "load_avg_1m"):
        assert column in rows[0], column
    assert rows[0]["flags"] == "untrained head" and rows[0]["eval_examples"] == "8"
    assert rows[1]["latency_batch"] == "2" and rows[1]["latency_seq_len"] == "8" and rows[1]["latency_threads"] == "1"


def test_evaluate_on_an_int8_artifact_equals_the_runners_metric_every_time(tiny: Path, tmp_path: Path,
                                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from core.cli import main

    measure = {**tiny_recipe(tiny, [])["measure"], "eval_limit": None, "eval_batch_size": 32, "max_length": 128}
    terminal, _ = _run(tiny, tmp_path, [{"step": "quantize.dynamic_int8"}], measure=measure)
    _, int8 = _rows(tmp_path, terminal.run_id)
    scores = []
    for _ in range(2):
        assert main(["evaluate", int8.artifact_path, "--task", "sst2"]) == 0
        scores.append(json.loads(capsys.readouterr().out)["accuracy"])
    assert scores == [int8.metric, int8.metric]


def test_several_seeds_give_one_row_per_variant_with_mean_and_sd(tiny: Path, tmp_path: Path) -> None:
    terminal, events = _run(tiny, tmp_path, [{"step": "finetune", "config": {"epochs": 1.0, "batch_size": 8,
                                                                              "max_length": 16, "train_size": 32}}],
                            seeds=[1, 2, 3])
    started = next(e for e in events if isinstance(e, p.RunStarted))
    assert started.variants == 6 and started.steps[2].label == "baseline [seed 2]"
    per_seed = _rows(tmp_path, terminal.run_id, merge_seeds=False)
    assert [r.seed for r in per_seed] == [1, 1, 2, 2, 3, 3]
    merged = _rows(tmp_path, terminal.run_id)
    assert [r.seeds for r in merged] == [3, 3]
    tuned = [r.metric for r in per_seed[1::2]]
    assert merged[1].metric == pytest.approx(np.mean(tuned))
    assert merged[1].metric_sd == pytest.approx(np.std(tuned, ddof=1))


def test_a_training_step_still_improving_when_its_budget_ran_out_is_flagged(tiny: Path, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The fine-tuned variant carries the flag, with the numbers; its pruned child, which did not train, does not."""
    import core.steps.training as training

    def improving(ctx: Any, scores: list[list[float]], history: list[Any]) -> dict[str, Any]:
        return {"verdict": training.IMPROVING, "metric": ctx.task.primary_metric, "from_step": 4, "to_step": 8,
                "from_value": 0.6, "to_value": 0.8, "change": 0.2, "change_low": 0.05, "change_high": 0.35,
                "examples": 10, "summary": "still improving"}

    monkeypatch.setattr(training, "convergence", improving)
    terminal, _ = _run(tiny, tmp_path, [{"step": "finetune", "config": {"epochs": 1.0, "batch_size": 8,
                                                                         "max_length": 16, "train_size": 64}},
                                        {"step": "prune.global_magnitude", "config": {"amount": 0.01}}],
                       measure={**tiny_recipe(tiny, [])["measure"], "eval_limit": 32})
    base, tuned, pruned = _rows(tmp_path, terminal.run_id)
    flag = next(f for f in tuned.flags if f["code"] == "still_improving")
    assert "+20.0 [+5.0, +35.0] points" in flag["text"] and "from step 4 to 8" in flag["text"]
    assert "raise the step budget" in flag["text"]
    assert "still_improving" not in pruned.flag_codes and "still_improving" not in base.flag_codes


@pytest.mark.parametrize("verdict", ["plateau", "declining"])
def test_a_converged_training_step_is_not_flagged(verdict: str) -> None:
    from core.measure.verdicts import flags

    task = get_task("sst2")
    record = {"verdict": verdict, "metric": "accuracy", "from_step": 4, "to_step": 8, "change": 0.0,
              "change_low": -0.1, "change_high": 0.1}
    assert flags(task, head_trained=True, learned_margin=None, delta=None, size_reason=None,
                 convergence=record) == []
