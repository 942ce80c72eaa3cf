"""Issue 18 in the window, on the real widgets: the sensitivity heatmap measured in the analysis process
(progress, cancel) and read back from the database, one-click mixed precision as an undoable chain edit,
the disagreement explorer (sorting, filtering, confusion matrices, export), the accuracy budget field,
and the published points on the metric-vs-size chart (switchable)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

TIMEOUT_MS = 900_000  # the analysis process imports torch: minutes on a busy 2-core machine


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A tiny model's baseline run through the runner (in this test process, not the GUI's)."""
    from core.run.runner import run_recipe
    from core.store import open_store, run_variants
    from tests.core.fakes import tiny_recipe
    from tests.helpers import tiny_bert_folder

    folder = tmp_path_factory.mktemp("wb-analysis")
    recipe = tiny_recipe(tiny_bert_folder(folder / "model", layers=2, hidden=32), [])
    assert run_recipe(recipe, db_url_or_path=folder / "w.sqlite", artifacts_dir=folder / "a").type == "run_finished"
    with open_store(folder / "w.sqlite") as store:
        (baseline,) = run_variants(store, 1)
    return folder / "w.sqlite", baseline.id


def _row(db: Path, variant: int) -> dict[str, Any]:
    from core.store import open_store, result_rows

    with open_store(db) as store:
        return next(r.to_dict() for r in result_rows(store) if r.variant == variant)


def _type_goal(view, qtbot, text: str) -> None:  # type: ignore[no-untyped-def]
    """As a user sets the goal: select the field's text, type, press Enter."""
    box = view.budget_spin
    box.setFocus()
    box.lineEdit().selectAll()
    qtbot.keyClicks(box.lineEdit(), text)
    qtbot.keyClick(box.lineEdit(), Qt.Key.Key_Return)


def _map_with_cells(db: Path, variant: int) -> int:
    """A stored map with chosen numbers (what the engine writes), for the view's drawing and planning."""
    from core.store import open_store
    from core.store.analysis import FINISHED, SensitivityCell, add_sensitivity_cell, create_sensitivity_map
    from core.store.analysis import finish_sensitivity_map as finish

    parts = ["embeddings", "layer 0", "layer 1", "head"]
    sizes = {p: {"params": 20_000, "float_bytes": 80_000, "tensors": 4, "linear_params": 19_000, "linear_rows": 200,
                 "linear_biases": 6, "embedding_params": 19_000 if p == "embeddings" else 0,
                 "embedding_rows": 100 if p == "embeddings" else 0} for p in parts}
    with open_store(db) as store:
        map_id = create_sensitivity_map(store, variant_id=variant, metric="accuracy", base_metric=0.8, examples=50,
                                        seed=0, grouping="layer", transforms=["nbit:4", "nbit:8"],
                                        body={"parts": parts, "sizes": sizes, "points": 100.0,
                                              "artifact_bytes": 400_000})
        drops = {("layer 0", "nbit:4"): -0.12, ("layer 1", "nbit:4"): -0.02}
        for pos, part in enumerate(parts):
            for t in ("nbit:4", "nbit:8"):
                d = drops.get((part, t), 0.0)
                add_sensitivity_cell(store, map_id, SensitivityCell(t, part, pos, 0.8 + d, d, d - 0.03, d + 0.03, 50, 0))
        finish(store, map_id, FINISHED, 12.0)
    return map_id


def test_the_heatmap_shows_a_stored_map_with_colours_and_intervals(window, qtbot, stored, tmp_path) -> None:
    from workbench.sensitivity_view import SensitivityView

    db, variant = stored
    map_id = _map_with_cells(db, variant)
    view = SensitivityView(db, _row(db, variant))
    qtbot.addWidget(view)
    assert view.map_combo.currentData() == map_id and view.model.rowCount() == 4 and view.model.columnCount() == 2
    model = view.model
    worst = model.index(1, 0)  # layer 0 x nbit:4
    assert model.data(worst) == "-12.0"
    assert "[-15.0, -9.0] points of accuracy" in model.data(worst, Qt.ItemDataRole.ToolTipRole)
    assert "50 dev examples" in model.data(worst, Qt.ItemDataRole.ToolTipRole)
    red = model.data(worst, Qt.ItemDataRole.BackgroundRole)
    mild = model.data(model.index(2, 0), Qt.ItemDataRole.BackgroundRole)
    flat = model.data(model.index(0, 1), Qt.ItemDataRole.BackgroundRole)
    assert red.green() < mild.green() < flat.green() == 255  # deeper red for a bigger drop
    assert model.headerData(1, Qt.Orientation.Vertical) == "layer 0"
    assert f"Sensitivity map {map_id}" in view.caption.text()
    assert view.export_to("csv", tmp_path / "map.csv")
    assert len(list(csv.DictReader(io.StringIO((tmp_path / "map.csv").read_text())))) == 8


def test_mixed_precision_from_the_heatmap_is_one_undoable_chain_edit(window, qtbot, stored) -> None:
    db, variant = stored
    _map_with_cells(db, variant)
    window.settings.set_db_path(db)
    dialog = window.open_sensitivity(_row(db, variant))
    view = dialog.view
    view.objective_combo.setCurrentIndex(view.objective_combo.findData("max_drop"))
    # The default reads each cell at the low end of its interval (every cell here is +-3 points wide).
    assert view.estimate_combo.currentData() == "interval"
    _type_goal(view, qtbot, "6.5")
    assert [c.name for c in view.plan.choices] == ["nbit:4", "float", "float", "nbit:4"]
    assert view.plan.predicted_drop == pytest.approx(6.0)
    assert "pessimistic end of its paired 95 % interval" in view.plan_label.text()
    # Widths come from the map; nothing wider than 8 bits cannot fit 6.5 points at 3 per part.
    assert [view.max_bits_combo.itemText(i) for i in range(view.max_bits_combo.count())] == ["float", "4 bits", "8 bits"]
    view.max_bits_combo.setCurrentIndex(view.max_bits_combo.findData(8))
    assert view.plan is None and "the least predicted drop with these widths is 12.00" in view.plan_label.text()
    view.max_bits_combo.setCurrentIndex(0)
    view.estimate_combo.setCurrentIndex(view.estimate_combo.findData("point"))  # the measured changes themselves
    _type_goal(view, qtbot, "2.5")
    assert view.plan is not None and view.add_button.isEnabled()
    assert "smallest predicted artifact within a drop of 2.5 points" in view.plan_label.text()
    assert "the measured change, gains read as 0" in view.plan_label.text()
    assert [c.name for c in view.plan.choices] == ["nbit:4", "nbit:8", "nbit:4", "nbit:4"]
    before = len(window.document.recipe.chain)
    qtbot.mouseClick(view.add_button, Qt.MouseButton.LeftButton)
    chain = window.document.recipe.chain
    assert len(chain) == before + 1 and chain[len(chain) - 1].step == "quantize.linear_nbit"
    assert chain[len(chain) - 1].config["layer_bits"] == [8, 4] and chain[len(chain) - 1].config["embedding_bits"] == 4
    assert not [p for p in window.validate() if p.index == len(chain) - 1]  # the added step validates
    window.undo.undo()
    assert len(window.document.recipe.chain) == before
    # A size goal the map cannot reach says so instead of planning.
    view.objective_combo.setCurrentIndex(view.objective_combo.findData("target_mb"))
    assert view.budget_unit.text() == "MB"
    # The new objective planned with its own default goal, in MB (not the 1.0 points left in the field).
    assert f"{view.budget_spin.value():.2f} MB" in view.plan_label.text() and view.budget_spin.value() != 1.0
    _type_goal(view, qtbot, "0.015")  # kept as typed: a spin box showed 0.01 (or 0.02)
    assert view.budget_spin.text() == "0.015"
    assert view.plan is None and not view.add_button.isEnabled() and "the smallest is" in view.plan_label.text()
    _type_goal(view, qtbot, "-1")
    assert view.budget_spin.text() == "-1" and view.plan is None and "above 0" in view.plan_label.text()
    _type_goal(view, qtbot, "abc")
    assert view.plan is None and "'abc' is not a number: give a size in MB" in view.plan_label.text()
    dialog.done(0)


def test_measure_runs_the_analysis_process_and_cancel_keeps_what_it_measured(window, qtbot, stored) -> None:
    from core.store import open_store, sensitivity_maps
    from workbench.sensitivity_view import SensitivityView

    db, variant = stored
    view = SensitivityView(db, _row(db, variant))
    qtbot.addWidget(view)
    view.show()
    qtbot.waitExposed(view)
    view.transforms_edit.setText("int8, nbit:4")
    view.examples_spin.setValue(16)
    with qtbot.waitSignal(view.analysisFinished, timeout=TIMEOUT_MS) as done:
        qtbot.mouseClick(view.run_button, Qt.MouseButton.LeftButton)
        assert view.process.is_running() and view.progress.isVisible() and view.cancel_button.isEnabled()
    assert done.args == ["finished"], view.status.text()
    with open_store(db) as store:
        newest = sensitivity_maps(store, variant)[0]
    assert newest.status == "finished" and newest.transforms == ["int8", "nbit:4"] and len(newest.cells) == 8
    assert view.map_combo.currentData() == newest.id and view.model.columnCount() == 2
    assert view.status.text() == f"Map {newest.id} measured." and not view.progress.isVisible()
    # Cancel as soon as the map exists: the cells measured so far stay, marked cancelled.
    # Enough work (4 parts x 20 transforms on 400 examples) that a fast machine cannot measure every cell
    # between the map appearing and the click (24 cells on 16 examples finished first on a quiet machine).
    many = [f"nbit:{b}" for b in range(2, 17) if b != 4] + [f"prune:{a}" for a in (0.1, 0.3, 0.5, 0.7, 0.9, 0.95)]
    view.transforms_edit.setText(", ".join(many))
    view.examples_spin.setValue(400)
    # The module's database holds the earlier tests' maps too: wait for one more, not for a count of 2.
    maps_before = view.map_combo.count()
    with qtbot.waitSignal(view.analysisFinished, timeout=TIMEOUT_MS) as done:
        view.measure()
        qtbot.waitUntil(lambda: view.map_combo.count() == maps_before + 1 or not view.process.is_running(),
                        timeout=TIMEOUT_MS)
        qtbot.mouseClick(view.cancel_button, Qt.MouseButton.LeftButton)
    assert done.args == ["cancelled"]
    with open_store(db) as store:
        cancelled = sensitivity_maps(store, variant)[0]
    assert cancelled.status == "cancelled" and len(cancelled.cells) < 4 * len(many)
    assert "cells measured so far are kept" in view.status.text()
    view.close_store()


@pytest.fixture
def disagreeing(tmp_path: Path) -> tuple[Path, int, int]:
    from core.store import open_store
    from core.tasks import get_task
    from tests.core.test_disagreements import INDICES, _run

    gold = [get_task("sst2").load("dev")[i]["label"] for i in INDICES]
    with open_store(tmp_path / "w.sqlite") as store:
        a, b = _run(store, tmp_path, "sst2", [
            {"indices": INDICES, "predictions": gold, "confidences": [0.9, 0.8, 0.7, 0.6, 0.95, 0.55]},
            {"indices": INDICES, "predictions": [1 - g for g in gold[:3]] + gold[3:5] + [1 - gold[5]],
             "confidences": [0.6, 0.7, 0.8, 0.9, 0.65, 0.99]}])
    return tmp_path / "w.sqlite", a, b


def test_disagreements_dialog_sorts_filters_shows_matrices_and_exports(window, qtbot, disagreeing, tmp_path) -> None:
    db, a, b = disagreeing
    window.settings.set_db_path(db)
    dialog = window.open_disagreements([{"variant": a}, {"variant": b}])
    qtbot.waitUntil(lambda: dialog.report is not None or "Cannot" in dialog.summary.text(), timeout=TIMEOUT_MS)
    assert dialog.report is not None, dialog.summary.text()
    assert "4 of 6 sst2 dev examples get different predictions" in dialog.summary.text()
    assert dialog.proxy.rowCount() == 4
    matrices = [w for w in dialog.findChildren(object) if getattr(w, "objectName", lambda: "")() == "confusionMatrix"]
    assert len(matrices) == 2 and matrices[0].rowCount() == 2
    assert sum(int(matrices[0].item(i, i).text()) for i in range(2)) == 6  # A is right everywhere
    # Sort by B's confidence, descending: the 0.99 row first.
    dialog.table.sortByColumn(6, Qt.SortOrder.DescendingOrder)
    assert dialog.proxy.index(0, 6).data() == "0.990"
    dialog.outcome_combo.setCurrentIndex(dialog.outcome_combo.findData("B right"))
    assert dialog.proxy.rowCount() == 0 and dialog.count.text() == "0 of 4 shown"
    dialog.outcome_combo.setCurrentIndex(dialog.outcome_combo.findData("all"))
    word = dialog.report.rows[0].text.split()[0]
    dialog.filter_edit.setText(word)
    shown = dialog.proxy.rowCount()
    assert 1 <= shown <= 4
    assert dialog.export_to("json", tmp_path / "d.json")
    assert len(json.loads((tmp_path / "d.json").read_text())["rows"]) == shown  # the filtered rows
    dialog.done(0)


def test_disagreements_of_incomparable_variants_say_why(window, qtbot, disagreeing) -> None:
    db, a, _b = disagreeing
    window.settings.set_db_path(db)
    dialog = window.open_disagreements([{"variant": a}, {"variant": a}])
    qtbot.waitUntil(lambda: "Cannot" in dialog.summary.text(), timeout=TIMEOUT_MS)
    assert "two different variants" in dialog.summary.text() and dialog.report is None
    dialog.done(0)


@pytest.fixture
def serve_report(monkeypatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Makes the dialog's child process print a given report at once (the real one imports datasets: minutes)."""
    import sys

    import workbench.disagreements as explorer

    def serve(report):  # type: ignore[no-untyped-def]
        printed = tmp_path / "report.json"
        printed.write_text(json.dumps(report.to_dict()))
        monkeypatch.setattr(explorer, "disagreements_command", lambda db, a, b: [
            sys.executable, "-c", "import sys; print(open(sys.argv[1]).read())", str(printed)])
        return report

    return serve


def _open_served(window, qtbot, report):  # type: ignore[no-untyped-def]
    dialog = window.open_disagreements([{"variant": report.a}, {"variant": report.b}])
    qtbot.waitExposed(dialog)
    return dialog


def _inside(widget, dialog) -> bool:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import QPoint, QRect

    return dialog.rect().contains(QRect(widget.mapTo(dialog, QPoint(0, 0)), widget.size()))


@pytest.mark.parametrize("names", ["long", "short"])
@pytest.mark.parametrize("screen", [(1024, 700), (1600, 1000)])
def test_the_disagreements_dialog_fits_the_screen_and_cuts_nothing(window, qtbot, serve_report, screen, names) -> None:
    """The newcomer's dialog was 1000x720 on any screen (wider still with long variant names), its header cut
    at the top and bottom (a splitter kept the height it had before the report arrived), its matrices
    stretched over half the width, and it had no Close button."""
    from dataclasses import replace

    from PySide6.QtCore import QSize
    from PySide6.QtWidgets import QDialogButtonBox, QTableWidget

    from tests.core.test_disagreements import hand_report
    from workbench.disagreements import fitting_size

    report = hand_report()
    if names == "short":
        report = replace(report, a_label="variant 3: v0", b_label="variant 7: v1")
    dialog = _open_served(window, qtbot, serve_report(report))
    available = dialog.screen().availableGeometry()
    assert dialog.width() <= 0.9 * available.width() and dialog.height() <= 0.9 * available.height()
    size = fitting_size(QSize(*screen))
    assert size == (QSize(1000, 720) if screen == (1600, 1000) else QSize(921, 630))  # as large as it was, where it fits
    dialog.resize(size)
    qtbot.waitUntil(lambda: dialog.report is not None, timeout=60_000)
    qtbot.waitUntil(lambda: len(dialog.findChildren(QTableWidget, "confusionMatrix")) == 2)
    qtbot.wait(50)
    assert dialog.size() == size  # the report's long names did not widen it off the screen
    # The header shows all its wrapped lines, the last ("cannot tell A and B apart") included.
    header = dialog.summary
    assert "cannot tell A and B apart" in header.text() and "A = variant 3: " in header.text()
    assert header.wordWrap() and header.hasHeightForWidth()
    assert header.height() >= header.heightForWidth(header.width()) and _inside(header, dialog)
    # Each confusion matrix as large as its cells (equal columns, each as wide as its widest cell or label):
    # every row shown, no scroll bar, not stretched.
    for matrix in dialog.findChildren(QTableWidget, "confusionMatrix"):
        columns, frames = matrix.horizontalHeader(), 2 * matrix.frameWidth()
        cell = max(max(matrix.sizeHintForColumn(j), columns.sectionSizeHint(j)) for j in range(matrix.columnCount()))
        cells_w = matrix.verticalHeader().width() + matrix.columnCount() * cell + frames
        cells_h = columns.height() + sum(matrix.rowHeight(i) for i in range(matrix.rowCount())) + frames
        assert (matrix.width(), matrix.height()) == (cells_w, cells_h)
        assert not matrix.verticalScrollBar().isVisible() and not matrix.horizontalScrollBar().isVisible()
        assert _inside(matrix, dialog)
    # The examples table takes the spare height; the header and matrices keep theirs.
    table_height, header_height = dialog.table.height(), header.height()
    dialog.resize(size.width(), size.height() + 80)
    qtbot.waitUntil(lambda: dialog.table.height() == table_height + 80)
    assert header.height() == header_height
    # A standard Close button, inside the dialog, beside the export button; a click closes the dialog.
    buttons = dialog.findChild(QDialogButtonBox)
    assert buttons is not None
    close = buttons.button(QDialogButtonBox.StandardButton.Close)
    assert close.isVisible() and _inside(close, dialog) and _inside(dialog.export_button, dialog)
    qtbot.mouseClick(close, Qt.MouseButton.LeftButton)
    assert not dialog.isVisible() and dialog.result() == dialog.DialogCode.Rejected
    assert not dialog.process.is_running()


def test_escape_closes_the_disagreements_dialog_and_enter_in_the_filter_does_not(window, qtbot, serve_report) -> None:
    from tests.core.test_disagreements import hand_report

    dialog = _open_served(window, qtbot, serve_report(hand_report()))
    qtbot.waitUntil(lambda: dialog.report is not None, timeout=60_000)
    dialog.activateWindow()
    dialog.filter_edit.setFocus()
    qtbot.keyClicks(dialog.filter_edit, "sentence 2")
    qtbot.keyClick(dialog.filter_edit, Qt.Key.Key_Return)  # the Close button is not the default button
    assert dialog.isVisible() and dialog.count.text() == "1 of 4 shown"
    qtbot.keyClick(dialog.filter_edit, Qt.Key.Key_Escape)
    assert not dialog.isVisible() and dialog.result() == dialog.DialogCode.Rejected


def _type(qtbot, box, text: str) -> None:  # type: ignore[no-untyped-def]
    box.setFocus()
    box.lineEdit().selectAll()
    qtbot.keyClicks(box.lineEdit(), text)
    qtbot.keyClick(box.lineEdit(), Qt.Key.Key_Return)


def test_the_budget_field_edits_the_recipe_undoably_and_keeps_a_refused_value(window, qtbot) -> None:
    window.side_tabs.setCurrentWidget(window.recipe_panel)
    editor = window.recipe_panel.budget_editor
    assert window.document.recipe.budget is None and not editor.value.isEnabled()
    qtbot.mouseClick(editor.check, Qt.MouseButton.LeftButton)
    assert window.document.recipe.budget.metric_drop == 1.0
    editor.unit.setCurrentIndex(editor.unit.findData("metric_drop_pct"))
    _type(qtbot, editor.value, "2.5")
    assert window.document.recipe.budget.to_dict() == {"metric_drop_pct": 2.5}
    # A percentage above 100 stays as typed, is named, keeps the recipe's budget and blocks Run.
    _type(qtbot, editor.value, "150")
    assert editor.value.text() == "150" and window.document.recipe.budget.to_dict() == {"metric_drop_pct": 2.5}
    assert "percentage (0-100), got 150" in editor.error.text() and "keeps 2.5 % of the reference" in editor.error.text()
    window.run()
    assert not window.run_panel.is_running() and "Accuracy budget" in window.run_panel.status.text()
    _type(qtbot, editor.value, "lots")
    assert "'lots' is not a number" in editor.error.text()
    _type(qtbot, editor.value, "3")
    assert not editor.error.isVisible() and window.document.recipe.budget.to_dict() == {"metric_drop_pct": 3.0}
    assert not [p for p in window.validate() if "budget" in p.message.lower()]
    window.undo.undo()
    assert window.document.recipe.budget.to_dict() == {"metric_drop_pct": 2.5} and editor.value.text() == "2.5"
    window.undo.undo()
    window.undo.undo()
    assert window.document.recipe.budget.to_dict() == {"metric_drop": 1.0} and editor.check.isChecked()
    window.undo.undo()
    assert window.document.recipe.budget is None and not editor.check.isChecked()


def test_a_skipped_step_says_not_run_and_leaves_the_time_left(window) -> None:
    from core import protocol as p

    panel = window.run_panel
    panel.on_event(p.RunStarted(run_id=7, variants=3, steps=[
        p.PlannedStep(node=0, index=0, step="baseline", label="baseline"),
        p.PlannedStep(node=1, index=1, step="prune.global_magnitude", label="prune(amount=0.9)"),
        p.PlannedStep(node=2, index=2, step="quantize.dynamic_int8", label="int8")]))
    panel.on_event(p.StepStarted(node=1, index=1, step="prune.global_magnitude", label="prune(amount=0.9)",
                                 title="prune(amount=0.9)"))
    panel.on_event(p.StepSkipped(node=2, index=2, label="int8",
                                 reason="prune(amount=0.9) is over the accuracy budget"))
    row = panel.rows[2]
    assert row.skipped and row.bar.format() == "not run" and row.time.text() == "over the accuracy budget"
    assert "prune(amount=0.9) is over the accuracy budget" in row.time.toolTip()
    assert "1 not run (over budget)" in panel.status.text()


def test_over_budget_variants_are_marked_in_the_results(window) -> None:
    from core.store.rows import OVER_BUDGET
    from workbench.results_model import OVER_BUDGET_BACKGROUND

    rows = [{"run": 1, "variant": 1, "parent": None, "step": 0, "step_id": "baseline", "label": "baseline",
             "task": "sst2", "size_mb": 90.0, "metric": 0.85, "reference": 1, "swept": {}, "flags": []},
            {"run": 1, "variant": 2, "parent": 1, "step": 1, "step_id": "prune.global_magnitude",
             "label": "prune(amount=0.9)", "task": "sst2", "size_mb": 30.0, "metric": 0.6, "reference": 1,
             "swept": {}, "flags": [{"code": OVER_BUDGET, "text": "accuracy 60.0 is 25.0 points below the reference"}]}]
    window.results.wait_loaded()  # the window's own first load of its (empty) database comes first
    window.results.set_rows(rows)
    model = window.results.model
    label = next(i for i, c in enumerate(model.columns) if c.key == "label")
    over, fine = model.index(1, label), model.index(0, label)
    assert "over budget" in model.data(over) and "over budget" not in model.data(fine)
    assert model.data(over, Qt.ItemDataRole.BackgroundRole).name() == OVER_BUDGET_BACKGROUND
    assert model.data(fine, Qt.ItemDataRole.BackgroundRole) is None
    assert "Over budget: accuracy 60.0 is 25.0 points below" in model.data(over, Qt.ItemDataRole.ToolTipRole)


def test_the_analysis_menu_asks_for_the_right_selection(window, monkeypatch) -> None:
    from PySide6.QtWidgets import QMessageBox

    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "information", lambda *a, **k: shown.append(str(a[2])))
    titles = [a.text() for a in window.menuBar().actions()]
    assert "&Analysis" in titles
    window.act_sensitivity.trigger()
    window.act_disagreements.trigger()
    assert shown == ["Select one variant in the Results table first (you selected 0).",
                     "Select 2 variants in the Results table first (you selected 0)."]


def test_published_points_are_drawn_against_the_reference_and_can_be_switched_off(window, qtbot) -> None:
    from core.published import LABEL
    from workbench.published_overlay import overlay_for

    glue = [{"run": 1, "variant": 1, "parent": None, "step": 0, "step_id": "baseline", "label": "baseline",
             "task": "sst2", "size_mb": 90.0, "metric": 0.85, "reference": 1, "swept": {}, "flags": []},
            {"run": 1, "variant": 2, "parent": 1, "step": 1, "step_id": "quantize.dynamic_int8", "label": "int8",
             "task": "sst2", "size_mb": 23.0, "metric": 0.84, "reference": 1, "swept": {}, "flags": []}]
    # Only what was reported on the run's task: the TinyBERT study's pruning on SST-2, never SQuAD's F1 points.
    assert [p.point.label for p in overlay_for(glue)] == ["pruned 10-30 %"]
    assert overlay_for([{**r, "task": "mrpc"} for r in glue]) == []  # a task neither system reported on
    rows = [{**r, "task": "squad_v2", "metric": 60.0 - r["step"]} for r in glue]
    points = overlay_for(rows)
    assert sorted(p.point.label for p in points) == ["10-bit", "16-bit", "6-bit", "8-bit"]
    eight = next(p for p in points if p.point.label == "8-bit")
    assert eight.x_mb == pytest.approx(90.0 * 8 / 32) and eight.y_metric == pytest.approx(60.0 - 0.8)  # F1 points as is
    assert all(LABEL in p.tip for p in points) and "source:" in eight.tip and "/work" not in eight.tip
    results = window.results
    window.tabs.setCurrentWidget(results)
    results.wait_loaded()  # the window's own first load of its (empty) database comes first
    results.set_rows(rows)
    scatter = results.charts.scatter
    layer = scatter.published
    assert len(layer.item.data) == 4 and layer.item.isVisible()
    assert LABEL in [label.text for _sample, label in scatter.legend.items]
    # Its tip answers at a published point: system, result, what it is relative to, the source.
    sixteen = next(p for p in points if p.point.label == "16-bit")  # no variant of ours near it
    qtbot.waitUntil(lambda: scatter.hit(layer.tips.scene_pos(sixteen.x_mb, sixteen.y_metric)) is not None, timeout=5000)
    tip = scatter.hit(layer.tips.scene_pos(sixteen.x_mb, sixteen.y_metric))
    assert tip is not None and tip[1] is None and LABEL in tip[0] and "16-bit" in tip[0] and "source:" in tip[0]
    results.published_check.setChecked(False)
    assert not layer.item.isVisible() and LABEL not in [label.text for _sample, label in scatter.legend.items]
    assert scatter.hit(layer.tips.scene_pos(sixteen.x_mb, sixteen.y_metric)) is None
    assert window.settings.value("results/published") == "false"
    results.published_check.setChecked(True)
    assert layer.item.isVisible()
