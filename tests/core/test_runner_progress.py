"""Progress that runs with the clock: each node's phases get slices of 0..1 in proportion to their
expected time (the measurement settings, then what the run measured), never go backwards, and
each phase's message reaches the client."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from core import protocol as p
from core.recipe import MeasureSettings
from core.run.runner import run_recipe
from core.run.variant import expected_seconds, measure_progress, shares
from tests.core.fakes import tiny_recipe


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers import tiny_bert_folder

    return tiny_bert_folder(tmp_path_factory.mktemp("tiny"))


def test_slices_follow_the_expected_seconds_and_what_the_run_measured() -> None:
    measure = MeasureSettings(eval_limit=500, max_length=128, latency_batch_size=8, latency_seq_len=128,
                              latency_warmup=3, latency_repeats=20)
    history: dict[str, float] = {}
    base = shares(expected_seconds(measure, history, None))
    # Before anything ran: evaluation (500 x 64 tokens) and latency (23 x 8 x 128 tokens) of the
    # same order, not the fixed 80/15 split that left latency to the last 3 % of the bar.
    eval_share = base["evaluate"][1] - base["evaluate"][0]
    latency_share = base["latency"][1] - base["latency"][0]
    assert 0.3 < eval_share < 0.7 and 0.25 < latency_share < 0.6
    assert base["apply"][0] == base["apply"][1]  # the baseline applies nothing
    assert base["latency"][1] == pytest.approx(1.0)
    # After the baseline measured 40 s of evaluation and 47 s of latency (as on this machine):
    history.update({"load": 9.7, "save": 0.2, "evaluate": 40.0, "size": 0.8, "latency": 47.0})
    prune = shares(expected_seconds(measure, history, "prune", trains=False, loads=False))
    assert prune["load"][0] == prune["load"][1] == 0.0  # the parent is still in memory
    assert prune["apply"][1] - prune["apply"][0] == pytest.approx(0.2 * 87.8 / (17.56 + 0.2 + 87.8), rel=1e-3)
    finetune = shares(expected_seconds(measure, history, "finetune", trains=True, loads=False))
    assert finetune["apply"][1] - finetune["apply"][0] == pytest.approx(3 / 4, abs=0.01)
    # A training step not timed yet costs its own work (one-row forward passes) at the evaluation's pace:
    # 1,200 distillation steps of 32 rows at 0.02 s a row take far longer than the measuring.
    history["evaluate_per_row"] = 0.02
    distill = shares(expected_seconds(measure, history, "distill", trains=True, work=2.5 * 1200 * 32, loads=False))
    assert distill["apply"][1] - distill["apply"][0] == pytest.approx(1920 / (1920 + 88.0), rel=1e-3)
    history["apply:prune"] = 5.0  # a sweep's next branch: as long as the first took
    again = shares(expected_seconds(measure, history, "prune", loads=False))
    assert again["apply"][1] - again["apply"][0] == pytest.approx(5.0 / (5.0 + 0.2 + 87.8), rel=1e-3)


def test_measuring_progress_is_rescaled_onto_its_slices() -> None:
    share = {"evaluate": (0.2, 0.5), "size": (0.5, 0.52), "latency": (0.52, 1.0)}
    seen: list[tuple[float, str]] = []
    on_progress = measure_progress(lambda f, m="": seen.append((round(f, 4), m)), share)
    for fraction, message in ((0.0, "evaluating"), (0.4, "evaluated 50/100"), (0.8, "measuring size"),
                              (0.85, "measuring latency"), (1.0, "measured")):
        on_progress(fraction, message)
    assert seen == [(0.2, "evaluating"), (0.35, "evaluated 50/100"), (0.5, "measuring size"),
                    (0.52, "measuring latency"), (1.0, "measured")]


def test_a_runs_progress_never_goes_back_and_every_phase_is_announced(tiny: Path, tmp_path: Path) -> None:
    recipe = tiny_recipe(tiny, [{"step": "test.slow", "config": {"seconds": [1.5, 1.6], "chatter": False}}])
    events: list[tuple[float, Any]] = []
    start = time.monotonic()
    terminal = run_recipe(recipe, db_url_or_path=tmp_path / "w.sqlite", artifacts_dir=tmp_path / "artifacts",
                          emit=lambda e: events.append((time.monotonic() - start, e)))
    assert isinstance(terminal, p.RunFinished)
    by_node: dict[int, list[p.Progress]] = {}
    for _t, e in events:
        if isinstance(e, p.Progress):
            by_node.setdefault(e.node, []).append(e)
    assert sorted(by_node) == [0, 1, 2]
    for node, progress in by_node.items():
        fractions = [e.fraction for e in progress]
        assert fractions == sorted(fractions), node
        messages = {e.message.split(" ")[0] for e in progress}
        # Throttling never swallows a phase's first message (it did "measuring latency").
        assert {"saving", "evaluating", "measuring", "measured"} <= messages, (node, messages)
    # The first branch's sleep got a guessed slice (0.2x the measuring); the second's is sized by what the
    # first sleep took, so it takes a larger part of its bar (not a fixed share: measuring slows with load).
    first = [e for e in by_node[1] if e.message == "sleeping"]
    second = [e for e in by_node[2] if e.message == "sleeping"]
    assert first and second and second[-1].fraction > first[-1].fraction + 0.1


class _ClockWithoutThrottling:
    """The time module with a monotonic clock that moves a second per reading, so node_progress's
    10-per-second throttle lets every message through whatever the machine's speed (which one was
    shown last depended on it)."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        self.now += 1.0
        return self.now

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def test_a_training_step_not_timed_yet_gets_the_bar_its_step_budget_needs(tiny: Path, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner sizes a fine-tune's slice from the steps it will run (Step.training_work) at the pace the
    baseline's evaluation measured, not from a fixed multiple of the measuring: 32 optimizer steps of 8 rows
    dwarf measuring 8 rows, so training fills most of the bar (the fixed guess gave it 3/4, and a
    distillation, which the guess did not count as training, a sixth)."""
    chain = [{"step": "finetune", "config": {"train_size": 256, "batch_size": 8, "epochs": 1,
                                            "early_stopping": False, "max_length": 16}}]
    import core.run.variant as variant_module

    monkeypatch.setattr(variant_module, "time", _ClockWithoutThrottling())
    events: list[Any] = []
    terminal = run_recipe(tiny_recipe(tiny, chain), db_url_or_path=tmp_path / "w.sqlite",
                          artifacts_dir=tmp_path / "artifacts", emit=events.append)
    assert isinstance(terminal, p.RunFinished)
    training = {e.message.split(",")[0]: e.fraction for e in events
                if isinstance(e, p.Progress) and e.node == 1 and e.message.startswith("Training")}
    # training's slice, where its last step ends, is most of the bar (the fixed guess gave it 3/4)
    assert training["Training: step 32/32"] > 0.85, training


def test_each_started_variant_carries_the_runner_s_estimate_of_what_is_left(tiny: Path, tmp_path: Path) -> None:
    """Nothing before a variant was measured; then the variant's measuring and every later planned variant,
    the second seed's included; nothing after the last."""
    recipe = tiny_recipe(tiny, [{"step": "test.slow", "config": {"seconds": [0.2, 0.3], "chatter": False}}],
                         seeds=[1, 2])
    events: list[Any] = []
    terminal = run_recipe(recipe, db_url_or_path=tmp_path / "w.sqlite", artifacts_dir=tmp_path / "artifacts",
                          emit=events.append)
    assert isinstance(terminal, p.RunFinished)
    started = [e for e in events if isinstance(e, p.StepStarted)]
    assert [e.node for e in started] == [0, 1, 2, 3, 4, 5]
    assert (started[0].measure_seconds, started[0].later_seconds) == (None, None)
    for e in started[1:]:
        assert e.measure_seconds is not None and e.measure_seconds > 0, e
    later = [e.later_seconds for e in started[1:]]
    assert all(x is not None for x in later) and later[-1] == 0.0
    # At the first seed's last variant, the second seed's three are still to come.
    assert all(x > 0.0 for x in later[:-1]), later


def test_a_step_s_own_last_measuring_is_preferred_to_the_last_variant_s() -> None:
    """An int8 variant measures about twice as fast as its fp32 parent: once one int8 variant was measured,
    the next is expected at its pace, while other steps keep the last measured variant's."""
    measure = MeasureSettings()
    history = {"evaluate": 10.0, "latency": 20.0, "evaluate:quantize.dynamic_int8": 4.0,
               "latency:quantize.dynamic_int8": 8.0, "apply:quantize.dynamic_int8": 1.0}
    int8 = expected_seconds(measure, history, "quantize.dynamic_int8", loads=False)
    prune = expected_seconds(measure, history, "prune.global_magnitude", loads=False)
    assert (int8["evaluate"], int8["latency"]) == (4.0, 8.0)
    assert (prune["evaluate"], prune["latency"]) == (10.0, 20.0)


def test_a_huge_sweep_s_time_left_is_estimated_per_step(tiny: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Beyond OUTLOOK_KINDS distinct configs to come, one config stands for all of its step's: the same
    time left when every variant costs the same, from far fewer estimates."""
    import core.run.runner as runner_module

    recipe = tiny_recipe(tiny, [{"step": "test.slow", "config": {"seconds": [0.01, 0.02, 0.03, 0.04], "chatter": False}}])
    real = runner_module.Runner.expected_seconds
    later: dict[int, list[float | None]] = {}
    calls: dict[int, int] = {}
    for kinds in (1000, 2):
        calls[kinds] = 0

        def counted(self: Any, step: Any, *, loads: bool, kinds: int = kinds) -> dict[str, float]:
            calls[kinds] += 1
            real(self, step, loads=loads)  # the job still needs its phases' shares
            return {"load": 0.0, "apply": 0.0, "save": 0.25, "evaluate": 0.25, "size": 0.25, "latency": 0.25}

        monkeypatch.setattr(runner_module, "OUTLOOK_KINDS", kinds)
        monkeypatch.setattr(runner_module.Runner, "expected_seconds", counted)
        events: list[Any] = []
        run_recipe(recipe, db_url_or_path=tmp_path / f"{kinds}.sqlite", artifacts_dir=tmp_path / f"a{kinds}",
                   emit=events.append)
        later[kinds] = [e.later_seconds for e in events if isinstance(e, p.StepStarted)]
    # one second per variant: what is left is the count of variants still to come
    assert later[1000] == later[2] == [None, 3.0, 2.0, 1.0, 0.0]
    assert calls[2] < calls[1000]


def test_a_step_timed_in_an_earlier_run_is_expected_at_that_pace(tiny: Path, tmp_path: Path) -> None:
    """A step this run has not measured yet, but an earlier run of the same work did, is expected at that
    run's pace, its own config's work included, instead of the last variant's (an int8 variant measures
    about twice as fast as its fp32 parent): when earlier runs timed every variant a run plans, its estimate
    is there from its first variant, even when the baseline is reused; a config never timed gets none
    before this run measures something, rather than a guessed pace."""
    import sqlite3

    from core.recipe import Recipe
    from core.recipe.sweep import variant_tree
    from core.store import open_store, past_phase_seconds

    db = tmp_path / "runs.sqlite"
    quick = {"step": "test.slow", "config": {"seconds": 0.01, "chatter": False}}
    slow = {"step": "test.slow", "config": {"seconds": 0.6, "chatter": False}}
    first = tiny_recipe(tiny, [quick, slow])
    run_recipe(first, db_url_or_path=db, artifacts_dir=tmp_path / "a1", emit=lambda e: None)
    # A diverged training writes NaN into a variant's report: SQLite before 3.42 refuses it as JSON.
    with sqlite3.connect(db) as con:
        con.execute("""UPDATE variants SET info = '{"final_loss": NaN, ' || substr(info, 2) WHERE id = 1""")
    body = Recipe.from_dict(first).to_dict()
    with open_store(db) as store:
        past = past_phase_seconds(store, body)
        elsewhere = past_phase_seconds(store, {**body, "measure": {**body["measure"], "latency_repeats": 3}})
    config = variant_tree(Recipe.from_dict(first)).children[0].children[0].step.config_text
    assert past[f"apply:test.slow {config}"] >= 0.6
    assert {"evaluate:baseline", "latency:baseline", "evaluate:test.slow", "latency:test.slow"} <= set(past)
    assert elsewhere == {}  # other measurement settings: not the same work

    # The same two steps the other way round: nothing is reused but the baseline, and everything was timed.
    events: list[Any] = []
    run_recipe(tiny_recipe(tiny, [slow, quick]), db_url_or_path=db, artifacts_dir=tmp_path / "a2",
               emit=events.append)
    assert isinstance(events[-1], p.RunFinished)
    started = [e for e in events if isinstance(e, p.StepStarted)]
    assert [e.title for e in started] == ["Baseline", "Sleep (test)", "Sleep (test)"]
    assert started[0].later_seconds is not None and started[0].later_seconds >= 0.6
    assert started[1].later_seconds is not None and started[1].later_seconds < 0.6
    assert started[2].later_seconds == 0.0

    # A config never timed: no estimate until this run measures something (a guess priced a fine-tune in hours).
    events = []
    run_recipe(tiny_recipe(tiny, [{"step": "test.slow", "config": {"seconds": 0.3, "chatter": False}}]),
               db_url_or_path=db, artifacts_dir=tmp_path / "a3", emit=events.append)
    started = [e for e in events if isinstance(e, p.StepStarted)]
    assert [e.later_seconds for e in started] == [None, None]
