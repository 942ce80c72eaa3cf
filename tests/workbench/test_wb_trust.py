"""Numbers a user can trust, in the window (issues 14 and 16): every metric with its 95 % interval
(or mean ± sd over seeds), a change within noise greyed and marked "≈", flags as badges with their
reasons, the measurement settings beside the numbers with a warning when variants in view were
timed differently, error bars on the charts, and a large run confirmed before it starts."""

from __future__ import annotations

import dataclasses

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication, QMessageBox

from core.recipe import Chain, ChainEntry
from tests.workbench.results_data import METRIC_HALF
from workbench.results_model import NOISE_COLOR, FlagsDelegate


def _cell(view, variant: int, key: str, role=Qt.ItemDataRole.DisplayRole):  # type: ignore[no-untyped-def]
    column = [c.key for c in view.model.columns].index(key)
    for i in range(view.proxy.rowCount()):
        index = view.proxy.index(i, column)
        if view.model.rows[view.proxy.mapToSource(index).row()]["variant"] == variant:
            return index.data(role)
    raise AssertionError(f"variant {variant} not shown")


def test_the_metric_carries_its_interval_and_a_change_within_noise_looks_like_one(results) -> None:
    view = results
    ids = view.ids
    prune_01, prune_03 = ids[1][1], ids[1][2]
    assert _cell(view, prune_01, "metric") == f"0.860 [{0.86 - METRIC_HALF:.3f}, {0.86 + METRIC_HALF:.3f}]"
    assert "95 % interval" in _cell(view, prune_01, "metric", Qt.ItemDataRole.ToolTipRole)
    # prune 0.1 changed the metric by 0.000 +- 0.015: not a difference, and it must not look like one.
    assert _cell(view, prune_01, "delta_vs_parent") == "≈ +0.0000"
    assert _cell(view, prune_01, "delta_vs_parent", Qt.ItemDataRole.ForegroundRole) == QColor(NOISE_COLOR)
    assert _cell(view, prune_01, "delta_vs_parent", Qt.ItemDataRole.FontRole).italic()
    assert "within noise" in _cell(view, prune_01, "delta_vs_parent", Qt.ItemDataRole.ToolTipRole)
    # prune 0.3 lost 6 points, well outside its interval: a fact, shown as one.
    assert _cell(view, prune_03, "delta_vs_parent") == "-0.0600"
    assert _cell(view, prune_03, "delta_vs_parent", Qt.ItemDataRole.ForegroundRole) is None
    tip = _cell(view, prune_03, "delta_vs_parent", Qt.ItemDataRole.ToolTipRole)
    assert "excludes 0" in tip
    assert "-0.0600 (-6.0 points)" in tip  # in the unit the flags' reasons speak
    assert _cell(view, ids[1][0], "delta_vs_parent") == "—"  # the baseline has no parent
    # The comparison pane shows the same text and greys the same cells.
    from workbench.results import ResultsView

    assert isinstance(view, ResultsView)
    view.select_variants({prune_01, prune_03})
    keys = [c.key for c in view.model.columns if c.key not in ("label", "run", "variant")]
    row = keys.index("delta_vs_parent")
    texts = {view.compare.item(row, j).text() for j in range(view.compare.columnCount())}
    assert texts == {"≈ +0.0000", "-0.0600"}


def test_a_speed_up_inside_the_timing_noise_looks_like_one(results) -> None:
    """prune 0.1 (160 ms +- 5 %) against the baseline (170 ms +- 5 %): 1.06x, bounds 0.96-1.17, not a speed-up."""
    view = results
    base, prune_01, int8 = view.ids[1][0], view.ids[1][1], view.ids[1][3]
    assert _cell(view, prune_01, "speedup") == "≈ 1.06"
    assert _cell(view, prune_01, "speedup", Qt.ItemDataRole.ForegroundRole) == QColor(NOISE_COLOR)
    assert _cell(view, prune_01, "speedup", Qt.ItemDataRole.FontRole).italic()
    assert "within the timing noise" in _cell(view, prune_01, "speedup", Qt.ItemDataRole.ToolTipRole)
    assert _cell(view, int8, "speedup") == f"{170 / 94:.2f}"  # bounds 1.64-2.00: a speed-up
    assert "between 1.64× and 2.00×" in _cell(view, int8, "speedup", Qt.ItemDataRole.ToolTipRole)
    assert _cell(view, base, "speedup") == "1.00"  # the reference itself


def test_flags_are_badges_with_their_reasons_and_no_result_is_best_or_on_a_front(results, qtbot) -> None:
    view = results
    base2 = view.ids[2][0]
    assert _cell(view, base2, "flags") == "untrained head"
    tip = _cell(view, base2, "flags", Qt.ItemDataRole.ToolTipRole)
    assert tip.startswith("⚑ Untrained head: the task head was never trained")
    assert tip.lower().count("untrained head") == 1
    assert _cell(view, base2, "metric", Qt.ItemDataRole.ForegroundRole) == QColor(NOISE_COLOR)
    assert _cell(view, view.ids[1][1], "flags") == "within noise"
    assert _cell(view, view.ids[2][1], "flags") == "not smaller on disk"
    # Badges: the flags column is painted by the delegate, in the flag's colour.
    column = [c.key for c in view.model.columns].index("flags")
    assert isinstance(view.table.itemDelegateForColumn(column), FlagsDelegate)
    view.table.resizeColumnToContents(column)
    row = next(i for i, r in enumerate(view.visible_rows()) if r["variant"] == base2)
    rect = view.table.visualRect(view.proxy.index(row, column))
    view.table.scrollTo(view.proxy.index(row, column))
    qtbot.wait(50)
    rect = view.table.visualRect(view.proxy.index(row, column))
    image = view.table.viewport().grab(rect).toImage()
    reds = sum(1 for x in range(image.width()) for y in range(image.height())
               if (c := image.pixelColor(x, y)).red() > 170 and c.green() < 90 and c.blue() < 80)
    assert reds > 50, "no red badge painted"
    # The reviews baseline (untrained head) is crossed out on the chart and on no front.
    scatter = view.charts.scatter
    assert (90.9, 0.70) in {(float(p["x"]), float(p["y"])) for p in scatter.untrusted.data}
    _points, front = scatter._groups[("custom:reviews", "accuracy")]
    xs, _ys = front.getData()
    assert 90.9 not in [float(x) for x in xs]
    # Its ratios use the fine-tuned variant: int8 keeps 0.915 / 0.92 of it.
    int8 = next(r for r in view.rows if r["variant"] == view.ids[2][2])
    assert int8["pct_baseline"] == pytest.approx(100 * 0.915 / 0.92)
    # the reference is named on the line, why it is not the baseline in the tip: one short line per task
    assert f"of #{view.ids[2][1]}'s accuracy" in view.best_label.text()
    assert "the baseline's head is untrained, so #" in view.best_label.toolTip()


def test_measurement_settings_are_shown_and_mixed_latency_settings_warn(results, qtbot) -> None:
    view = results
    int8 = view.ids[1][3]
    assert _cell(view, int8, "settings") == "872 ex · 8×128 · 2 thr · 20 rep"
    tip = _cell(view, int8, "settings", Qt.ItemDataRole.ToolTipRole)
    assert "872 dev examples" in tip and "batch 8 × sequence 128, 2 threads, 20 repeats" in tip
    assert "Machine load while timing: 1.25" in tip
    p50_tip = _cell(view, int8, "latency_p50_ms", Qt.ItemDataRole.ToolTipRole)
    assert f"95 % interval {94.0 * 0.95:.2f} – {94.0 * 1.05:.2f} ms" in p50_tip
    # All runs: run 3's int8 was timed with batch 1 x 64 on 1 thread.
    warning = view.settings_warning
    assert warning.isVisible() and "different settings" in warning.text()
    assert "batch 1 × sequence 64, 1 thread, 10 repeats (1 variant)" in warning.text()
    view.charts.setCurrentWidget(view.charts.latency)
    assert "different settings" in view.charts.latency.plot.titleLabel.text
    # One run: like with like, no warning.
    view.run_combo.setCurrentIndex(view.run_combo.findData(1))
    assert not warning.isVisible() and "different settings" not in view.charts.latency.plot.titleLabel.text


def test_charts_draw_error_bars(results, qtbot) -> None:
    view = results
    view.run_combo.setCurrentIndex(view.run_combo.findData(1))
    scatter = view.charts.scatter
    view.charts.setCurrentWidget(scatter)
    bars = scatter.errors[("sst2", "accuracy")].opts
    shown = sorted(zip(map(float, bars["x"]), map(float, bars["y"]), strict=True))
    assert shown == sorted((r["size_mb"], r["metric"]) for r in view.visible_rows())
    assert list(bars["top"]) == pytest.approx([METRIC_HALF] * 4) and list(bars["bottom"]) == pytest.approx([METRIC_HALF] * 4)
    assert scatter.errors[("sst2", "accuracy")].boundingRect().height() == pytest.approx(0.86 + 0.03 - (0.80 - 0.03))
    latency = view.charts.latency
    view.charts.setCurrentWidget(latency)
    opts = latency.errors.opts
    p50 = [r["latency_p50_ms"] for r in latency.rows]
    assert list(opts["y"]) == pytest.approx(p50) and list(opts["top"]) == pytest.approx([0.05 * p for p in p50])
    text, _vid = latency.hit(latency.tips.scene_pos(0, p50[0] / 2))
    assert "[161.50, 178.50]" in text and "measured with 872 ex" in text


def test_several_seeds_show_mean_and_sd(results) -> None:
    view = results
    rows = [dict(r) for r in view.rows]
    merged = next(r for r in rows if r["variant"] == view.ids[1][2])
    merged.update(seeds=3, metric_sd=0.012, metric_ci_low=None, metric_ci_high=None)
    view.set_rows(rows)
    assert _cell(view, merged["variant"], "metric") == "0.800 ± 0.012 (3 seeds)"
    assert "mean over 3 seeds" in _cell(view, merged["variant"], "metric", Qt.ItemDataRole.ToolTipRole)
    bars = view.charts.scatter.errors[("sst2", "accuracy")].opts
    i = [float(y) for y in bars["y"]].index(0.80)
    assert float(bars["top"][i]) == pytest.approx(0.012)


def _answer_box(qtbot, button_text: str, seen: list[str]) -> None:  # type: ignore[no-untyped-def]
    def answer() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, answer)
            return
        seen.append(box.text() + "\n" + box.informativeText())
        (button,) = [b for b in box.buttons() if b.text().replace("&", "") == button_text]
        button.click()

    QTimer.singleShot(0, answer)


def _sweep_recipe(window, values: int):  # type: ignore[no-untyped-def]
    amounts = [round(0.05 * i, 2) for i in range(1, values + 1)]
    chain = Chain((ChainEntry("wbtest.scale", {"amount": amounts}), ChainEntry("wbtest.scale", {"amount": amounts})))
    return dataclasses.replace(window.document.recipe, chain=chain)


def test_a_large_run_is_confirmed_before_it_starts(window, qtbot, monkeypatch) -> None:
    started = []
    monkeypatch.setattr(window.run_panel, "start", lambda request: started.append(request))
    window.set_document(_sweep_recipe(window, 15))  # 1 + 15 + 225 = 241 variants
    assert window.validate() == []
    seen: list[str] = []
    _answer_box(qtbot, "Cancel", seen)
    window.run()
    assert started == [] and "241 variants is more than 200" in seen[0]
    assert "Run not started" in window.run_panel.status.text()
    _answer_box(qtbot, "Run anyway", seen)
    window.run()
    assert len(started) == 1 and started[0].recipe["chain"][0]["config"]["amount"][0] == 0.05
    # A small sweep starts without a question (a dialog would block this call).
    window.set_document(_sweep_recipe(window, 3))
    window.run()
    assert len(started) == 2 and len(seen) == 2


def test_a_run_that_would_fill_the_disk_is_confirmed(window, qtbot, monkeypatch) -> None:
    from core.recipe import estimate

    started = []
    monkeypatch.setattr(window.run_panel, "start", lambda request: started.append(request))
    monkeypatch.setattr(estimate, "free_bytes", lambda folder: 10**9)  # 1 GB free: under the 2 GB margin
    window.set_document(_sweep_recipe(window, 2))
    seen: list[str] = []
    _answer_box(qtbot, "Cancel", seen)
    window.run()
    assert started == [] and "free on the drive of" in seen[0] and "1.0 GB free" in seen[0]


def test_several_seeds_are_set_in_the_recipe_tab_and_refused_ones_block_the_run(window, qtbot, monkeypatch) -> None:
    started = []
    monkeypatch.setattr(window.run_panel, "start", lambda request: started.append(request))
    window.set_document(_sweep_recipe(window, 2))
    panel = window.recipe_panel
    window.side_tabs.setCurrentWidget(panel)
    edit = panel.seeds_edit
    edit.setFocus()
    qtbot.keyClicks(edit, "1 2, 3")
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    assert window.document.recipe.seeds == (1, 2, 3) and edit.text() == "1, 2, 3"
    assert window.document.recipe.to_dict()["seeds"] == [1, 2, 3]
    assert window.undo.text(window.undo.index() - 1) == "Change seeds"
    # A refused list stays as typed, is explained, keeps the recipe's seeds and blocks the run.
    edit.selectAll()
    qtbot.keyClicks(edit, "1, 1")
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    assert "listed twice" in panel.seeds_error.text() and edit.text() == "1, 1"
    assert window.document.recipe.seeds == (1, 2, 3)
    window.run()
    assert started == [] and "Seeds" in window.run_panel.status.text()
    edit.selectAll()
    qtbot.keyClicks(edit, "4, x")
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    assert "'x' is not a seed" in panel.seeds_error.text()
    # One seed is the seed; the undo stack takes the list back.
    edit.selectAll()
    qtbot.keyClicks(edit, "7")
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    assert (window.document.recipe.seed, window.document.recipe.seeds) == (7, ())
    assert panel.seeds_error.isHidden() and window.validate() == []
    window.undo.undo()
    assert window.document.recipe.seeds == (1, 2, 3) and edit.text() == "1, 2, 3"
    window.run()
    assert len(started) == 1 and started[0].recipe["seeds"] == [1, 2, 3]


def test_two_compared_variants_offer_their_difference_with_its_interval(results, qtbot) -> None:
    """The comparison pane leads to B - A with its paired interval (the disagreement report): its
    right-click entry asks for exactly the two variants side by side; with three there is none."""
    view = results
    ids = view.ids
    view.select_variants({ids[1][1], ids[1][2]})
    entry = view.compare_entry()
    assert entry is not None and entry[0].startswith("Difference and disagreements of #")
    with qtbot.waitSignal(view.disagreementsRequested) as signal:
        entry[1]()
    assert {r["variant"] for r in signal.args[0]} == {ids[1][1], ids[1][2]}
    # and a button under the comparison, which a user finds without right-clicking
    button = view.difference_button
    assert button.isVisibleTo(view) and button.text() == entry[0]
    with qtbot.waitSignal(view.disagreementsRequested) as clicked:
        button.click()
    assert {r["variant"] for r in clicked.args[0]} == {ids[1][1], ids[1][2]}
    view.select_variants({ids[1][0], ids[1][1], ids[1][2]})
    assert view.compare_entry() is None and not button.isVisibleTo(view)
