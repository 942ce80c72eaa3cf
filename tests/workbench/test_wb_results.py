"""The Results tab on a database of three runs (two tasks, a sweep, a rerun from the cache): every
filter applies to every chart, a front per task, the best variant, chart <-> table selection,
tooltips, exports, comparison, stored training curves and run management."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QItemSelectionModel, QRect, Qt
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QMessageBox

from tests.workbench.results_data import CURVES, RUNS


def _brute_front(points: list[tuple[float, float]]) -> set[tuple[float, float]]:
    return {p for p in points if not any(q != p and q[0] <= p[0] and q[1] >= p[1] for q in points)}


def _scatter_points(view) -> dict[tuple[str, str], list[tuple[float, float]]]:  # type: ignore[no-untyped-def]
    out = {}
    for key, (points, _front) in view.charts.scatter._groups.items():
        out[key] = [(float(p["x"]), float(p["y"])) for p in points.data]
    return out


def _select(view, variant_ids: list[int]) -> None:  # type: ignore[no-untyped-def]
    flags = QItemSelectionModel.SelectionFlag
    view.table.selectionModel().clearSelection()
    for source, row in enumerate(view.model.rows):
        if row["variant"] in variant_ids:
            index = view.proxy.mapFromSource(view.model.index(source, 0))
            view.table.selectionModel().select(index, flags.Select | flags.Rows)


def test_every_filter_applies_to_every_chart_and_each_task_has_its_own_front(results) -> None:
    """Major 3: the table said '3 of 8 variants' while the Pareto chart plotted all 8 with one
    front across different tasks and a custom data file."""
    view = results
    assert view.count_label.text() == "8 of 9 variants"  # the cached rerun of run 1's baseline is hidden
    groups = _scatter_points(view)
    assert set(groups) == {("sst2", "accuracy"), ("custom:reviews", "accuracy")}
    assert sum(len(p) for p in groups.values()) == 8
    for key, (_points, front) in view.charts.scatter._groups.items():
        xs, ys = front.getData()
        assert set(zip(map(float, xs), map(float, ys), strict=True)) == _brute_front(groups[key]), key
    # The run filter: the table and every chart show run 1 only.
    view.run_combo.setCurrentIndex(view.run_combo.findData(1))
    assert view.count_label.text() == "4 of 9 variants"
    assert list(_scatter_points(view)) == [("sst2", "accuracy")] and len(_scatter_points(view)[("sst2", "accuracy")]) == 4
    assert [r["variant"] for r in view.charts.latency.rows] == [r["variant"] for r in view.visible_rows()]
    assert list(view.charts.sweeps._items) == ["sst2 · accuracy"]
    assert view.charts.sweeps.parameter.key == "prune.global_magnitude:amount"
    assert {r["run"] for r in view.charts.steps.rows} == {1}
    # The task filter.
    view.run_combo.setCurrentIndex(0)
    view.task_combo.setCurrentIndex(view.task_combo.findData("custom:reviews"))
    assert view.count_label.text() == "3 of 9 variants"
    assert list(_scatter_points(view)) == [("custom:reviews", "accuracy")]
    assert len(view.charts.latency.rows) == 3 and view.charts.sweeps._items == {}
    # The text filter.
    view.task_combo.setCurrentIndex(0)
    view.filter_edit.setText("int8")
    view._apply_filter()
    assert view.count_label.text() == "3 of 9 variants"
    assert sum(len(p) for p in _scatter_points(view).values()) == 3
    assert all("int8" in r["label"] for r in view.charts.latency.rows)


def test_the_best_variant_within_the_budget_is_starred_everywhere(results, qtbot) -> None:
    view = results
    ids = view.ids
    assert view.budget() == 99.0
    best = {k: r["variant"] for k, r in view.best.items()}
    # sst2: run 1's int8 keeps 99.4 % at 23 MB (run 3's 12 MB keeps only 97.7 %); reviews: its int8.
    assert best == {("sst2", "accuracy"): ids[1][3], ("custom:reviews", "accuracy"): ids[2][2]}
    starred = [r["variant"] for i, r in enumerate(view.visible_rows())
               if view.proxy.index(i, 2).data().startswith("★")]
    assert sorted(starred) == sorted(best.values())
    assert f"#{ids[1][3]}" in view.best_label.text() and "99.4 % of the baseline's accuracy" in view.best_label.text()
    marked = {(float(p["x"]), float(p["y"])) for p in view.charts.scatter.best.data}
    assert (23.0, 0.855) in marked
    # A looser budget picks the smaller rerun; the box keeps what was typed.
    box = view.budget_box
    box.lineEdit().selectAll()
    qtbot.keyClicks(box.lineEdit(), "97")
    qtbot.keyClick(box.lineEdit(), Qt.Key.Key_Return)
    assert view.best[("sst2", "accuracy")]["variant"] == ids[3][1]
    # Not a percentage: said so, the last budget stays in force.
    box.lineEdit().selectAll()
    qtbot.keyClicks(box.lineEdit(), "150")
    qtbot.keyClick(box.lineEdit(), Qt.Key.Key_Return)
    assert "not a percentage" in view.best_label.text() and view.budget() == 97.0
    assert box.text() == "150"


def test_clicking_a_chart_element_selects_its_row_and_back(results, qtbot) -> None:
    view = results
    chart = view.charts.scatter
    view.charts.setCurrentWidget(chart)
    qtbot.waitUntil(lambda: chart.isVisible() and chart.plot.vb.sceneBoundingRect().width() > 50, timeout=5000)
    target = next(r for r in view.visible_rows() if r["label"] == "quantize.dynamic_int8" and r["run"] == 1)
    pos = chart.mapFromScene(chart.tips.scene_pos(target["size_mb"], target["metric"]))
    qtbot.mouseClick(chart.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert [r["variant"] for r in view.selected_rows()] == [target["variant"]]
    assert {(float(p["x"]), float(p["y"])) for p in chart.selected.data} == {(23.0, 0.855)}
    # A latency bar too.
    bars = view.charts.latency
    view.charts.setCurrentWidget(bars)
    qtbot.waitUntil(lambda: bars.isVisible() and bars.plot.vb.sceneBoundingRect().width() > 50, timeout=5000)
    qtbot.wait(300)  # the new tab's first layout and auto-range; and no double click with the last one
    i = next(i for i, r in enumerate(bars.rows) if r["label"] == "finetune")
    pos = bars.mapFromScene(bars.tips.scene_pos(i, 50.0))
    qtbot.mouseClick(bars.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert [r["label"] for r in view.selected_rows()] == ["finetune"]
    assert list(bars.selected_bars.opts["x"]) == [i]
    # And back: a row selected in the table is marked in the charts.
    _select(view, [view.ids[1][1]])
    assert {(float(p["x"]), float(p["y"])) for p in chart.selected.data} == {(60.0, 0.86)}


def test_every_chart_element_has_a_tooltip(results, qtbot) -> None:
    view = results
    charts = view.charts
    for chart in (charts.scatter, charts.latency, charts.steps, charts.sweeps):
        charts.setCurrentWidget(chart)
        qtbot.waitUntil(lambda c=chart: c.plot.vb.sceneBoundingRect().width() > 50, timeout=5000)
        qtbot.wait(200)  # the first layout and auto-range of a tab shown for the first time
    scatter = charts.scatter
    for r in scatter.rows:
        here = scatter.tips.scene_pos(r["size_mb"], r["metric"])
        text, vid = scatter.hit(here)
        if vid != r["variant"]:  # two points may coincide on screen: the one answering lies under the pointer
            other = next(o for o in scatter.rows if o["variant"] == vid)
            there = scatter.tips.scene_pos(other["size_mb"], other["metric"])
            assert (here - there).manhattanLength() <= 2, (r["variant"], vid)
        assert "MB on disk" in text and "accuracy" in text
    for i, r in enumerate(charts.latency.rows):
        text, vid = charts.latency.hit(charts.latency.tips.scene_pos(i, r["latency_p50_ms"] / 2))
        assert vid == r["variant"] and f"p50 {r['latency_p50_ms']:.2f} ms" in text and r["label"] in text
    xs, ys = charts.steps.items["metric"].getData()
    text, _vid = charts.steps.hit(charts.steps.tips.scene_pos(xs[-1], ys[-1]))
    assert "% of the baseline's" in text
    (item,) = charts.sweeps._items.values()
    xs, ys = item.getData()
    text, _vid = charts.sweeps.hit(charts.sweeps.tips.scene_pos(xs[0], ys[0]))
    assert "Amount = 0.1" in text
    # Hovering shows the tip: Qt's tooltip event on the chart's viewport, answered by the chart.
    from PySide6.QtCore import QEvent
    from PySide6.QtGui import QHelpEvent
    from PySide6.QtWidgets import QApplication, QToolTip

    charts.setCurrentWidget(scatter)
    qtbot.wait(200)
    r = scatter.rows[0]
    pos = scatter.mapFromScene(scatter.tips.scene_pos(r["size_mb"], r["metric"]))
    QApplication.sendEvent(scatter.viewport(), QHelpEvent(QEvent.Type.ToolTip, pos, scatter.viewport().mapToGlobal(pos)))
    assert QToolTip.isVisible() and "MB on disk" in QToolTip.text()
    QToolTip.hideText()
    # Ticks of the latency chart are the names (or IDs) the table shows, never unexplained ids.
    ticks = [t for _pos, t in charts.latency.plot.getAxis("bottom")._tickLevels[0]]
    assert ticks[0] == "baseline" and "int8" in " ".join(ticks)
    assert view.model.headerData(1, Qt.Orientation.Horizontal) == "ID"


def _centroid(image: QImage, color: QColor, tolerance: int = 40, within: QRect | None = None) -> tuple[float, float]:
    """The mean position of ``color``'s pixels (only those ``within`` a rectangle, when given)."""
    area = within if within is not None else image.rect()
    xs, ys = [], []
    for y in range(max(0, area.top()), min(image.height(), area.bottom() + 1)):
        for x in range(max(0, area.left()), min(image.width(), area.right() + 1)):
            c = image.pixelColor(x, y)
            if abs(c.red() - color.red()) + abs(c.green() - color.green()) + abs(c.blue() - color.blue()) < tolerance:
                xs.append(x)
                ys.append(y)
    assert xs, "colour not found"
    return sum(xs) / len(xs), sum(ys) / len(ys)


def test_svg_export_lines_up_with_the_chart_on_screen(results, qtbot, tmp_path: Path) -> None:
    """Major 5: in the exported SVG the points and the axes did not line up."""
    from PySide6.QtSvg import QSvgRenderer

    view = results
    view.run_combo.setCurrentIndex(view.run_combo.findData(1))
    chart = view.charts.scatter
    view.charts.setCurrentWidget(chart)
    qtbot.waitUntil(lambda: chart.plot.vb.sceneBoundingRect().width() > 50, timeout=5000)
    qtbot.wait(300)  # the first layout and auto-range
    path = tmp_path / "scatter.svg"
    assert view.export_chart_to("scatter", path)
    screen = chart.grab().toImage()
    renderer = QSvgRenderer(str(path))
    assert renderer.isValid()
    drawn = QImage(screen.size(), QImage.Format.Format_ARGB32)
    drawn.fill(QColor("white"))
    painter = QPainter(drawn)
    renderer.render(painter)
    painter.end()
    # In the plot only: the legend's marks are the plotted items' (same colours) and sit elsewhere.
    plot = chart.mapFromScene(chart.plot.vb.sceneBoundingRect()).boundingRect()
    square = QColor("#c0392b")  # the baseline's square; its place is set by the axes
    sx, sy = _centroid(screen, square, within=plot)
    dx, dy = _centroid(drawn, square, within=plot)
    assert abs(sx - dx) < 3 and abs(sy - dy) < 3, ((sx, sy), (dx, dy))
    # Readers without SVG Tiny's 'non-scaling-stroke' (ImageMagick, librsvg) draw a line kept in
    # data coordinates with its width times the axis scale: a band over the whole chart. Every
    # line is in page coordinates, and the legend's marks where they are on screen.
    import re

    text = path.read_text()
    scales = [max(abs(float(a)), abs(float(d))) for a, _b, _c, d, _e, _f in
              re.findall(r'transform="matrix\(([^,]+),([^,]+),([^,]+),([^,]+),([^,]+),([^)]+)\)"', text)]
    assert scales and max(scales) < 20, max(scales)
    sel_x, sel_y = _centroid(screen, QColor("#e6b800"), within=plot)  # the best variant's gold star
    dsel_x, dsel_y = _centroid(drawn, QColor("#e6b800"), within=plot)
    assert abs(sel_x - dsel_x) < 3 and abs(sel_y - dsel_y) < 3


def test_the_comparison_follows_the_filters_and_exports_are_confirmed(results, tmp_path: Path) -> None:
    view = results
    view.run_combo.setCurrentIndex(view.run_combo.findData(1))
    _select(view, view.ids[1][:2])
    assert not view.compare.isHidden() and view.compare.columnCount() == 2
    view.run_combo.setCurrentIndex(view.run_combo.findData(2))  # those rows are no longer shown
    assert view.compare.isHidden()
    # The export menu names the charts as their tabs do, and an export says where it went.
    from workbench.chart_names import CHARTS

    titles = [a.text() for a in view.export_chart_button.menu().actions()]
    assert titles[0] == "Metric vs size as PNG…" and all(t.split(" as ")[0] in CHARTS.values() for t in titles)
    assert [view.charts.tabText(i) for i in range(view.charts.count())] == list(CHARTS.values())
    said: list[str] = []
    view.message.connect(said.append)
    assert view.export_chart_to("latency", tmp_path / "latency.png")
    assert said == [f"Exported the Latency chart to {tmp_path / 'latency.png'}"]
    assert "latency.png" in view.export_note.text()
    assert view.export_table_to("csv", tmp_path / "t.csv")
    assert said[-1].startswith("Exported 3 variants to")
    assert len((tmp_path / "t.csv").read_text().splitlines()) == 4


def test_cached_copies_are_not_listed_twice(results) -> None:
    """A rerun from the cache repeats another run's numbers: hidden in the all-runs view."""
    view = results
    labels = [(r["run"], r["label"]) for r in view.visible_rows()]
    assert (3, "baseline") not in labels and (1, "baseline") in labels
    view.cached_check.setChecked(True)
    assert (3, "baseline") in [(r["run"], r["label"]) for r in view.visible_rows()]
    view.cached_check.setChecked(False)
    view.run_combo.setCurrentIndex(view.run_combo.findData(3))  # one run: all its rows, the copy marked
    rows = view.visible_rows()
    assert [r["label"] for r in rows] == ["baseline", "quantize.dynamic_int8"]
    assert view.proxy.index(0, 2).data().endswith("↺")
    assert "Reused from the cache" in view.proxy.index(0, 2).data(Qt.ItemDataRole.ToolTipRole)


def test_a_flag_is_said_once(results) -> None:
    view = results
    i = next(i for i, r in enumerate(view.visible_rows()) if r["label"] == "finetune")
    tip = view.proxy.index(i, 2).data(Qt.ItemDataRole.ToolTipRole)
    assert "⚑ Not smaller on disk: 91.0 MB vs its parent's 90.9 MB" in tip
    assert tip.lower().count("not smaller on disk") == 1


def test_stored_training_curves_are_shown_for_the_selected_variant(results, qtbot) -> None:
    view = results
    _select(view, [view.ids[2][1]])  # run 2's fine-tuning
    view.charts.setCurrentWidget(view.charts.curves)
    curves = view.charts.curves
    qtbot.waitUntil(lambda: curves.data == CURVES, timeout=10_000)
    assert "finetune" in curves.subject
    assert [list(map(float, v)) for v in curves._items[("Training", "loss")].getData()] == [[1, 2, 3], [0.69, 0.6, 0.45]]
    qtbot.wait(300)  # the first layout and auto-range
    text, _ = curves.hit(curves.tips.scene_pos(2, 0.6))
    assert "Training · loss" in text and "step 2: 0.6" in text
    _select(view, [view.ids[1][1]])  # pruning did not train
    qtbot.waitUntil(lambda: "did not train" in curves.subject, timeout=10_000)


def test_runs_are_named_tagged_noted_deleted_and_reopened(results, window, qtbot, monkeypatch) -> None:
    from workbench import store_client
    from workbench.runs import RunsDialog

    db = window.settings.db_path()
    dialog = window.manage_runs(1)
    assert isinstance(dialog, RunsDialog)
    assert dialog.wait_idle()
    assert [r["id"] for r in dialog.runs] == [3, 2, 1] and dialog.selected_run() == 1
    assert dialog.disk == {1: 4000, 2: 3000, 3: 1000}  # run 3's baseline is run 1's folder, counted there
    assert dialog.table.item(2, 8).text() == "0.0 MB" and "of artifacts in 3 run(s)" in dialog.total.text()
    # Name, tags and note are edited in place and stored.
    dialog.table.item(2, 1).setText("first sweep")
    assert dialog.wait_idle()
    dialog.table.item(2, 2).setText("paper, sweep")
    assert dialog.wait_idle()
    dialog.table.item(2, 3).setText("keep")
    assert dialog.wait_idle()
    (run1,) = [r for r in store_client.list_runs(db) if r["id"] == 1]
    assert (run1["name"], run1["tags"], run1["note"]) == ("first sweep", ["paper", "sweep"], "keep")
    qtbot.waitUntil(lambda: "first sweep" in results.run_combo.itemText(results.run_combo.findData(1)), timeout=10_000)
    # Open its folder.
    opened: list[str] = []
    monkeypatch.setattr("workbench.runs.QDesktopServices.openUrl", lambda url: opened.append(url.toLocalFile()) or True)
    dialog.select_run(1)
    dialog.folder_button.click()
    assert opened == [run1["artifacts_dir"]]
    # Delete run 1: run 3 reused its baseline, which the question says; the folder goes.
    asked: list[str] = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or QMessageBox.StandardButton.Yes)
    dialog.delete_button.click()
    qtbot.waitUntil(lambda: bool(asked) and not dialog.busy, timeout=10_000)
    assert "Runs 3 reused variants of this run" in asked[0]
    qtbot.waitUntil(lambda: [r["id"] for r in dialog.runs] == [3, 2], timeout=10_000)
    assert not Path(run1["artifacts_dir"]).exists()
    qtbot.waitUntil(lambda: {r["run"] for r in results.rows} == {2, 3}, timeout=10_000)
    # Load run 2's recipe into the editor.
    dialog.select_run(2)
    dialog.load_button.click()
    qtbot.waitUntil(lambda: window.document.recipe.name == "recipe of run 2", timeout=10_000)
    assert [e.step for e in window.document.recipe.chain] == ["quantize.dynamic_int8"]
    assert window.tabs.currentIndex() == 0


def test_a_variants_folder_opens_from_the_tables_menu(results, monkeypatch) -> None:
    opened: list[str] = []
    monkeypatch.setattr("workbench.results.QDesktopServices.openUrl", lambda url: opened.append(url.toLocalFile()) or True)
    row = results.visible_rows()[0]
    assert results.open_folder(row)
    assert opened == [row["artifact_path"]]
    assert RUNS[1][1][0].label == "baseline"


def test_a_running_run_cannot_be_deleted_from_the_window(window, qtbot, monkeypatch) -> None:
    import json

    from core.store import open_store
    from core.store.record import RunIdentity, create_run

    store = open_store(window.settings.db_path())
    create_run(store, RunIdentity("m", "packaged", "h", "sst2", "d", json.dumps({}), "r", 0), Path("/tmp/x"))
    store.close()  # recorded as running by this (living) process
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "information", lambda *a, **k: shown.append(a[2]))
    dialog = window.manage_runs(1)
    assert dialog.wait_idle()
    assert dialog.runs[0]["status"] == "running"
    dialog.delete_button.click()
    assert shown and "is running" in shown[0]
    assert dialog.wait_idle() and len(dialog.runs) == 1


def test_the_export_dialog_starts_at_home_then_where_the_last_export_went(results, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """It started in the working directory, which for a checkout is the source tree."""
    from PySide6.QtWidgets import QFileDialog

    from workbench import exports

    monkeypatch.setattr(exports, "_last_folder", None)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    (tmp_path / "out").mkdir()
    starts: list[str] = []

    def dialog(_parent: object, _title: str, start: str, _filter: str) -> tuple[str, str]:
        starts.append(start)
        return str(tmp_path / "out" / "mine.csv"), ""

    monkeypatch.setattr(QFileDialog, "getSaveFileName", dialog)
    assert exports.ask_save_path(results, "Export", "variants", "CSV", "csv") == tmp_path / "out" / "mine.csv"
    assert exports.ask_save_path(results, "Export", "variants", "Markdown", "md") == tmp_path / "out" / "mine.csv"
    assert starts == [str(tmp_path / "home" / "variants.csv"), str(tmp_path / "out" / "variants.md")]


def test_an_empty_chart_s_export_says_so_before_asking_for_a_file(results, monkeypatch: pytest.MonkeyPatch) -> None:
    """Exporting the training curves with no variant selected asked for a file, then warned "Cannot write
    <file>: ...": nothing is asked, and the message says what to select."""
    from PySide6.QtWidgets import QFileDialog

    asked: list[str] = []
    told: list[str] = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a: asked.append("file") or ("", ""))
    monkeypatch.setattr(QMessageBox, "information", lambda _parent, _title, text: told.append(text))
    results.table.clearSelection()
    results.export_chart_dialog("curves", "png")
    assert asked == [] and len(told) == 1
    assert told[0].startswith("Nothing to export: the Training curves chart is empty (select one variant")


def test_variants_with_the_same_step_are_told_apart_by_their_branch(qtbot) -> None:
    """Two int8 variants after two pruning amounts both read 'quantize.dynamic_int8' (newcomer test)."""
    from workbench.charts import LatencyChart
    from workbench.results_model import ResultsModel

    def row(variant: int, parent: int | None, label: str, swept: dict | None = None) -> dict:
        return {"run": 1, "variant": variant, "parent": parent, "step": 0 if parent is None else 1, "label": label,
                "step_id": label.split("(")[0], "swept": swept or {}, "flags": [], "latency_p50_ms": 10.0 + variant}

    rows = [row(1, None, "baseline"), row(2, 1, "prune.global_magnitude(amount=0.3)", {"amount": 0.3}),
            row(3, 1, "prune.global_magnitude(amount=0.6)", {"amount": 0.6}), row(4, 2, "quantize.dynamic_int8"),
            row(5, 3, "quantize.dynamic_int8")]
    model = ResultsModel()
    model.set_rows(rows[:4])
    column = [c.key for c in model.columns].index("label")
    assert model.index(3, column).data() == "quantize.dynamic_int8"  # alone in its run: nothing to tell apart
    model.add_row(rows[4])
    assert [model.index(i, column).data() for i in (3, 4)] == [
        "quantize.dynamic_int8  (after prune 0.3)", "quantize.dynamic_int8  (after prune 0.6)"]
    chart = LatencyChart()
    chart.update_rows(rows, [])
    ticks = [text for _x, text in chart.plot.getAxis("bottom")._tickLevels[0]]
    assert ticks[3:] == ["int8 (0.3)", "int8 (0.6)"] and ticks[0] == "baseline"
