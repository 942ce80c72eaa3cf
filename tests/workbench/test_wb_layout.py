"""Layouts that fit: at 1024x700, the default 1360x860, 1600x1000 and with 150 % larger text,
nothing is cut off, Run is never in the toolbar's overflow, the palette keeps its names whole,
charts fit their pane and their legends sit beside, not over, the data."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QRect
from PySide6.QtWidgets import QApplication

from tests.workbench.results_data import fill_database


def _inside(widget, window) -> bool:  # type: ignore[no-untyped-def]
    top_left = widget.mapTo(window, QPoint(0, 0))
    return window.rect().contains(QRect(top_left, widget.size()))


def _check_window(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    # The toolbar: Run and Cancel shown in it, never hidden in its overflow menu.
    for action in (window.act_run, window.act_cancel):
        button = window.toolbar.widgetForAction(action)
        assert button is not None and button.isVisible(), action.text()
        assert window.toolbar.rect().contains(button.geometry()), action.text()
    # The palette shows every step's name whole.
    palette = window.palette
    fm = palette.fontMetrics()
    for i in range(palette.topLevelItemCount()):
        group = palette.topLevelItem(i)
        for j in range(group.childCount()):
            rect = palette.visualItemRect(group.child(j))
            text = fm.horizontalAdvance(group.child(j).text(0))
            assert rect.left() + palette.iconSize().width() + text <= palette.viewport().width(), group.child(j).text(0)
    assert window.side_tabs.width() >= 280 and _inside(window.side_tabs, window)
    # The Recipe tab fits its pane's width: no sideways scrolling to reach a field (labels wrap above instead).
    window.side_tabs.setCurrentWidget(window.recipe_panel)
    qtbot.wait(50)
    assert window.recipe_panel.horizontalScrollBar().maximum() == 0, window.recipe_panel.widget().minimumSizeHint()
    # The results: the charts' pane inside the window, each chart inside its view, legends off the data.
    window.tabs.setCurrentWidget(window.results)
    qtbot.waitUntil(lambda: window.results._charts is not None and window.results.charts.isVisible(), timeout=5000)
    qtbot.wait(300)
    charts = window.results.charts
    assert _inside(charts, window)
    table = window.results.table
    shown = [c for c in range(table.model().columnCount()) if table.columnViewportPosition(c) + 8 < table.viewport().width()]
    assert len(shown) >= 5, len(shown)
    for chart in charts.charts().values():
        charts.setCurrentWidget(chart)
        qtbot.wait(150)
        assert chart.sceneRect().width() <= chart.viewport().width() + 1, chart.title  # not cut on the right
        plot_rect = chart.plot.vb.sceneBoundingRect()
        legend_rect = chart.legend.sceneBoundingRect()
        assert not plot_rect.intersects(legend_rect), chart.title
        for _sample, label in chart.legend.items:  # every label whole (one was cut to "published (not measured her")
            drawn = chart.mapFromScene(label.item.sceneBoundingRect()).boundingRect()
            assert chart.viewport().rect().contains(drawn), (chart.title, label.text, drawn, chart.viewport().rect())


@pytest.mark.parametrize("size", [(1024, 700), (1360, 860), (1600, 1000)])
def test_nothing_is_cut_off_at_common_sizes(window, qtbot, size: tuple[int, int]) -> None:
    """Major 7: at 1360x860 the charts were cut on the right; at 1024x700 the Results tab showed
    three columns and Run sat behind the toolbar's overflow."""
    fill_database(window.settings.db_path())
    window.results.refresh()
    assert window.results.wait_loaded()
    window.resize(*size)
    qtbot.wait(100)
    assert window.size().width() == size[0]
    _check_window(window, qtbot)


def test_nothing_is_cut_off_with_150_percent_text(qtbot) -> None:
    """At 150 % the palette shrank to about 90 px ("Dist", "Prun") and legends covered the data."""
    from workbench.main_window import MainWindow

    app = QApplication.instance()
    font = app.font()
    bigger = type(font)(font)
    bigger.setPointSizeF(font.pointSizeF() * 1.5)
    app.setFont(bigger)
    try:
        window = MainWindow(load_initial=False)
        qtbot.addWidget(window, before_close_func=lambda w: w.undo.setClean())
        fill_database(window.settings.db_path())
        window.results.refresh()
        assert window.results.wait_loaded()
        window.resize(1360, 860)
        window.show()
        qtbot.waitExposed(window)
        assert window.palette.width() >= window.palette.needed_width() > 200
        _check_window(window, qtbot)
    finally:
        app.setFont(font)


def test_the_toolbar_does_not_move_as_the_undo_text_grows(window, qtbot) -> None:
    window.resize(1024, 700)
    qtbot.wait(50)
    bar = window.toolbar
    before = {a.text(): bar.widgetForAction(a).geometry() for a in (window.act_save, window.act_run)}
    window.chain.add_step("prune.global_magnitude")
    window.chain.add_step("quantize.dynamic_int8")
    window._model_chosen("/tmp/a-model-folder-with-a-rather-long-name")
    qtbot.wait(50)
    after = {a.text(): bar.widgetForAction(a).geometry() for a in (window.act_save, window.act_run)}
    assert after == before
    assert window.act_undo.toolTip() == "Undo Change model (Ctrl+Z)"


def test_the_recipe_tab_does_not_jump_when_a_refused_value_is_explained(window, qtbot) -> None:
    """Newcomer test: an error line appearing in the Recipe tab resized the description box above it."""
    from PySide6.QtCore import Qt

    window.resize(1024, 700)
    window.side_tabs.setCurrentWidget(window.recipe_panel)
    panel = window.recipe_panel
    qtbot.wait(50)
    before = panel.description_edit.geometry(), panel.seed_box.geometry()
    repeats = panel.boxes["latency_repeats"]
    repeats.setFocus()
    repeats.lineEdit().selectAll()
    qtbot.keyClicks(repeats.lineEdit(), "0")
    qtbot.keyClick(repeats.lineEdit(), Qt.Key.Key_Return)
    qtbot.wait(50)
    assert not panel.errors["latency_repeats"].isHidden()
    assert (panel.description_edit.geometry(), panel.seed_box.geometry()) == before
    assert panel.horizontalScrollBar().maximum() == 0
