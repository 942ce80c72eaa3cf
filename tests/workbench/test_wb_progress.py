"""The run panel on a scripted event stream and a clock the test moves: honest, monotone progress
and time left, a cancelled row without a stale estimate, no progress bars in the log, live curves."""

from __future__ import annotations

import re

import pytest

from core import protocol as p
from core.run.session import Outcome
from workbench.run_panel import RunPanel


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _seconds(text: str) -> float | None:
    """Seconds in '0:35 · ~25 s left' / '… · ~1:20 left'; None when no time left is shown."""
    m = re.search(r"~(?:(\d+):(\d\d)|(\d+) s) left", text)
    if m is None:
        return None
    return int(m[1]) * 60 + int(m[2]) if m[1] is not None else float(m[3])


def _panel(qtbot) -> tuple[RunPanel, Clock]:  # type: ignore[no-untyped-def]
    clock = Clock()
    panel = RunPanel(clock=clock)
    qtbot.addWidget(panel)
    panel.show()
    steps = [p.PlannedStep(node=0, index=0, step="baseline", label="baseline"),
             p.PlannedStep(node=1, index=1, step="prune.global_magnitude", label="prune.global_magnitude(amount=0.1)"),
             p.PlannedStep(node=2, index=1, step="prune.global_magnitude", label="prune.global_magnitude(amount=0.3)")]
    panel.on_event(p.RunStarted(run_id=7, variants=3, steps=steps))
    return panel, clock


def _advance(panel: RunPanel, clock: Clock, seconds: float, step: float = 0.5) -> list[str]:
    """Let time pass with the panel's ticker firing; the time texts shown meanwhile."""
    shown = []
    end = clock.now + seconds
    while clock.now < end:
        clock.now += step
        panel._tick()
        shown.append(panel.rows[panel._current].time.text() if panel._current is not None else "")
    return shown


def test_time_left_counts_down_between_reports_and_never_sits_still(qtbot) -> None:
    """Major 6: '91 % · evaluated 64/500, ~0:02 left' stayed for over a minute; the step then
    took 67 s more. Between reports time left now counts down, and when the estimate runs out the
    row says so instead of repeating it."""
    panel, clock = _panel(qtbot)
    panel.on_event(p.StepStarted(node=0, index=0, step="baseline", label="baseline", title="Baseline"))
    row = panel.rows[0]
    fractions = [0.1, 0.3, 0.5, 0.2, 0.7, 0.91]  # one report going back (0.2) must not move the bar back
    shown_bars = []
    for f in fractions:
        clock.now += 5
        panel.on_event(p.Progress(node=0, index=0, fraction=f, message="evaluated"))
        shown_bars.append(row.bar.value())
    assert shown_bars == sorted(shown_bars) and row.bar.value() == 910
    left = _seconds(row.time.text())
    assert left is not None and left <= 5  # 30 s for 91 %: about 3 s left
    texts = _advance(panel, clock, 60)  # then nothing reports for a minute (latency is timed)
    lefts = [_seconds(t) for t in texts]
    known = [x for x in lefts if x is not None]
    assert known == sorted(known, reverse=True)  # counts down, never up, while nothing reports
    assert "longer than estimated" in texts[-1] and _seconds(texts[-1]) is None
    assert sum("longer than estimated" in t for t in texts) >= len(texts) - 12  # said within ~6 s
    # A new report that shows the step is far slower raises the estimate, honestly.
    clock.now += 1
    panel.on_event(p.Progress(node=0, index=0, fraction=0.95, message="measuring latency"))
    assert _seconds(row.time.text()) is not None and _seconds(row.time.text()) > 3


def test_a_quick_step_still_has_its_measuring_to_come(qtbot) -> None:
    """Newcomer walk: int8 quantized in 2 s, the bar reached 17 %, and '~15 s left' was shown for
    a step whose measuring then took over two minutes, as the baseline's had."""
    panel, clock = _panel(qtbot)
    panel.on_event(p.StepStarted(node=0, index=0, step="baseline", label="baseline", title="Baseline"))
    clock.now += 144
    panel.on_event(p.StepFinished(node=0, index=0, variant_id=1, cached=False, seconds=144.0, row={}))
    panel.on_event(p.StepStarted(node=1, index=1, step="quantize.dynamic_int8", label="quantize.dynamic_int8",
                                 title="Dynamic int8 quantization"))
    clock.now += 4
    panel.on_event(p.Progress(node=1, index=1, fraction=0.17, message="saving the artifact"))
    left = _seconds(panel.rows[1].time.text())
    assert left is not None and left >= 130, panel.rows[1].time.text()
    # A slower step than the earlier ones is estimated from its own rate.
    clock.now += 100
    panel.on_event(p.Progress(node=1, index=1, fraction=0.4, message="evaluated 100/500"))
    assert panel.rows[1].left() == pytest.approx(104 * 0.6 / 0.4)


def test_a_long_training_step_does_not_inflate_the_others(qtbot) -> None:
    clock = Clock()
    panel = RunPanel(clock=clock)
    qtbot.addWidget(panel)
    steps = [p.PlannedStep(node=0, index=0, step="baseline", label="baseline"),
             p.PlannedStep(node=1, index=1, step="finetune", label="finetune"),
             p.PlannedStep(node=2, index=2, step="prune.global_magnitude", label="prune.global_magnitude(amount=0.1)"),
             p.PlannedStep(node=3, index=2, step="prune.global_magnitude", label="prune.global_magnitude(amount=0.3)")]
    panel.on_event(p.RunStarted(run_id=1, variants=4, steps=steps))
    for node, step, seconds in ((0, "baseline", 60.0), (1, "finetune", 1800.0)):
        panel.on_event(p.StepStarted(node=node, index=node, step=step, label=step, title=step))
        clock.now += seconds
        panel.on_event(p.StepFinished(node=node, index=node, variant_id=node + 1, cached=False, seconds=seconds,
                                      row={}))
    panel.on_event(p.StepStarted(node=2, index=2, step="prune.global_magnitude",
                                 label="prune.global_magnitude(amount=0.1)", title="prune"))
    assert panel.rows[2].prior == 60.0  # the least a variant took, not the fine-tune's half hour
    clock.now += 10
    panel.on_event(p.Progress(node=2, index=2, fraction=0.2))
    assert panel.rows[2].left() == 50.0  # 40 s by the rate, 50 s by the floor
    assert panel.run_left() == 50.0 + 60.0  # the other pruning branch: at least 60 s


def test_estimates_do_not_jitter_and_the_run_has_a_time_left(qtbot) -> None:
    panel, clock = _panel(qtbot)
    panel.on_event(p.StepStarted(node=0, index=0, step="baseline", label="baseline", title="Baseline"))
    clock.now += 10
    panel.on_event(p.Progress(node=0, index=0, fraction=0.5))
    first = panel.rows[0].left()
    assert first == 10
    clock.now += 2  # a little slower than the estimate (10 % more): the countdown is kept
    panel.on_event(p.Progress(node=0, index=0, fraction=0.55))
    assert panel.rows[0].left() == 8
    clock.now += 8
    panel.on_event(p.StepFinished(node=0, index=0, variant_id=1, cached=False, seconds=20.0, row={}))
    panel.on_event(p.StepStarted(node=1, index=1, step="prune.global_magnitude",
                                 label="prune.global_magnitude(amount=0.1)", title="Global magnitude pruning"))
    clock.now += 5
    panel.on_event(p.Progress(node=1, index=1, fraction=0.25))
    # 15 s left in this step, and one more step at the 20 s the computed one took.
    assert panel.run_left() == 35
    assert panel.status.text() == ("Run 7: Global magnitude pruning · amount=0.1 · 1 of 3 variants done · "
                                   "about 35 s left in the run")


def test_a_cancelled_step_shows_no_time_left(qtbot) -> None:
    panel, clock = _panel(qtbot)
    panel.on_event(p.StepStarted(node=0, index=0, step="baseline", label="baseline", title="Baseline"))
    clock.now += 10
    panel.on_event(p.Progress(node=0, index=0, fraction=0.2, message="evaluated 100/500"))
    assert "left" in panel.rows[0].time.text()
    clock.now += 3
    panel.on_event(p.RunCancelled(run_id=7))
    panel.on_finished(Outcome("cancelled", 7))
    texts = [r.time.text() + r.bar.format() for r in panel.rows.values()]
    assert all("left" not in t for t in texts), texts
    assert panel.rows[0].bar.format() == "20% · cancelled" and panel.rows[0].time.text() == "0:13"
    assert panel.rows[1].bar.format() == "cancelled"
    _advance(panel, clock, 5)
    assert "left" not in panel.rows[0].time.text()


def test_library_progress_bars_stay_out_of_the_log(qtbot) -> None:
    panel, _clock = _panel(qtbot)
    panel.client.stderrLine.emit("Loading weights:   0%|          | 0/39 [00:00<?, ?it/s]")
    panel.client.stderrLine.emit("Writing model shards: 100%|██████████| 1/1 [00:00<00:00, 50.14it/s]")
    panel.client.stderrLine.emit("UserWarning: something worth reading")
    log = panel.log.toPlainText()
    assert "Loading weights" not in log and "Writing model shards" not in log
    assert "something worth reading" in log


def test_training_curves_are_drawn_live(qtbot) -> None:
    panel, _clock = _panel(qtbot)
    panel.on_event(p.StepStarted(node=1, index=1, step="finetune", label="finetune", title="Fine-tune"))
    for step, (loss, lr) in enumerate([(0.7, 1e-5), (0.6, 5e-5), (0.4, 3e-5)], start=1):
        panel.on_event(p.Curve(node=1, index=1, phase="Training", series="loss", step=step, value=loss))
        panel.on_event(p.Curve(node=1, index=1, phase="Training", series="lr", step=step, value=lr))
    curves = panel.curves
    assert curves.data == {"Training": {"loss": [[1, 0.7], [2, 0.6], [3, 0.4]],
                                        "lr": [[1, 1e-5], [2, 5e-5], [3, 3e-5]]}}
    assert "Fine-tune" in curves.subject
    _xs, ys = curves._items[("Training", "loss")].getData()
    assert list(ys) == [0.7, 0.6, 0.4]
    # Three steps: pyqtgraph alone ticks 0.5, 1.0, 1.5, ...; optimizer steps are whole.
    axis = curves.plot.getAxis("bottom")
    ticks = [v for _spacing, values in axis.tickValues(1.0, 3.0, 400) for v in values]
    assert ticks and all(float(v).is_integer() for v in ticks)
    # The next training step starts its own curves.
    panel.on_event(p.StepStarted(node=2, index=2, step="distill", label="distill", title="Knowledge distillation"))
    panel.on_event(p.Curve(node=2, index=2, phase="Stage 1", series="loss", step=1, value=2.0))
    assert list(curves.data) == ["Stage 1"]


def test_a_narrow_bar_ends_its_text_in_an_ellipsis_and_keeps_it_whole_in_the_tooltip(qtbot) -> None:
    panel, _ = _panel(qtbot)
    panel.on_event(p.StepStarted(node=0, index=0, step="baseline", label="baseline", title="Baseline"))
    message = "Training: step 59/495, loss 2.7032"
    panel.on_event(p.Progress(node=0, index=0, fraction=0.115, message=message))
    bar = panel.rows[0].bar
    bar.setFixedWidth(120)
    shown = bar.text()
    assert shown.endswith("…") and shown.startswith("12%")
    assert bar.fontMetrics().horizontalAdvance(shown) <= 120
    assert bar.toolTip() == f"12% · {message}"
    bar.setFixedWidth(1000)
    assert bar.text() == f"12% · {message}"


def _after_a_60_s_baseline(qtbot) -> tuple[RunPanel, Clock]:  # type: ignore[no-untyped-def]
    """A panel (and its clock) whose run has measured its baseline in 60 s."""
    panel, clock = _panel(qtbot)
    panel.on_event(p.StepStarted(node=0, index=0, step="baseline", label="baseline", title="Baseline"))
    clock.now += 60
    panel.on_event(p.StepFinished(node=0, index=0, variant_id=1, cached=False, seconds=60.0, row={}))
    return panel, clock


def test_the_runner_s_estimates_drive_the_floor_and_the_run_s_time_left(qtbot) -> None:
    """When the runner says what the variant's measuring and every later variant should take (from its
    measured phases), those replace the panel's own guesses: the newcomer test's run showed about twice
    its real time left, the fp32 baseline's whole time standing in for each faster int8 variant."""
    panel, clock = _after_a_60_s_baseline(qtbot)
    panel.on_event(p.StepStarted(node=1, index=1, step="prune.global_magnitude", label="prune(0.1)", title="prune",
                                 measure_seconds=12.0, later_seconds=25.0))
    assert panel.rows[1].prior == 12.0  # not the baseline's 60 s
    clock.now += 4
    panel.on_event(p.Progress(node=1, index=1, fraction=0.5))
    assert panel.rows[1].left() == 8.0  # the floor: 12 s of measuring, 4 s gone
    assert panel.run_left() == 8.0 + 25.0
    assert "about 35 s left in the run" in panel.status.text()  # 33 s shown in 5 s steps


def test_the_run_s_time_left_holds_while_a_new_variant_has_no_estimate_yet(qtbot) -> None:
    """The newcomer test saw the run's time left vanish mid-run: each new variant has no estimate of its own
    until its progress moves, and the run's figure went with it. The last one now counts down meanwhile."""
    panel, clock = _after_a_60_s_baseline(qtbot)
    panel.on_event(p.StepStarted(node=1, index=1, step="finetune", label="finetune", title="Fine-tune",
                                 measure_seconds=12.0, later_seconds=40.0))
    clock.now += 10
    panel.on_event(p.Progress(node=1, index=1, fraction=0.5))
    assert panel.run_left() == 10.0 + 40.0
    clock.now += 10
    panel.on_event(p.StepFinished(node=1, index=1, variant_id=2, cached=False, seconds=20.0, row={}))
    panel.on_event(p.StepStarted(node=2, index=2, step="prune.global_magnitude", label="prune", title="Prune",
                                 measure_seconds=12.0, later_seconds=20.0))
    assert panel.rows[2].left() is None  # nothing to go on yet
    assert panel.run_left() == 50.0 - 10.0  # the last estimate, 10 s later
    assert "left in the run" in panel.status.text()
    clock.now += 100
    assert panel.run_left() is None  # run out: no figure rather than a negative one
