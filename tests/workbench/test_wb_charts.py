"""The result charts on rows built here (newcomer test): one x axis per swept parameter, legend marks
that look like what they name, a tip for a published point on a variant, and exports at a fixed size
with every category named and no empty chart written."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPointF, QRect, QSize
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QMessageBox

from tests.workbench.results_data import CURVES


def _row(variant: int, parent: int | None, step_id: str, metric: float, size: float,
         swept: dict[str, Any] | None = None, task: str = "sst2", **extra: Any) -> dict[str, Any]:
    swept = swept or {}
    label = "baseline" if parent is None else (
        f"{step_id}({', '.join(f'{k}={v}' for k, v in swept.items())})" if swept else step_id)
    return {"run": 1, "variant": variant, "parent": parent, "step": 0 if parent is None else extra.pop("step", 1),
            "step_id": "baseline" if parent is None else step_id, "label": label, "task": task,
            "metric_name": "accuracy", "metric": metric, "size_mb": size, "swept": swept, "flags": [],
            "reference": 1, "latency_p50_ms": size * 2, **extra}


def _chain_rows() -> list[dict[str, Any]]:
    """A fine-tune whose training subset was swept (300, 600), then pruning amounts 0.3, 0.6, 0.9 after each."""
    rows = [_row(1, None, "baseline", 0.86, 90.9),
            _row(2, 1, "finetune", 0.88, 90.9, {"train_size": 300}),
            _row(3, 1, "finetune", 0.90, 90.9, {"train_size": 600})]
    for parent, start in ((2, 4), (3, 7)):
        for k, amount in enumerate((0.3, 0.6, 0.9)):
            rows.append(_row(start + k, parent, "prune.global_magnitude", 0.85 - amount / 4, 90.9, {"amount": amount},
                             step=2))
    return rows


def _xs(chart) -> dict[str, list[float]]:  # type: ignore[no-untyped-def]
    return {name: [float(x) for x in item.getData()[0]] for name, item in chart._items.items()}


def test_two_swept_parameters_never_share_an_x_axis(qtbot) -> None:
    """Defect: train_size=300 and amounts 0.3/0.6 on one 'swept value' axis made the pruning sweep
    a vertical line at 0."""
    from workbench.charts import SweepChart

    chart = SweepChart()
    qtbot.addWidget(chart)
    chart.resize(700, 450)
    chart.show()
    qtbot.waitExposed(chart)
    chart.update_rows(_chain_rows())
    # A chooser of the parameter on x, at first the one with the most values; the axis says which.
    assert chart.chooser.isVisible() and chart.chooser.count() == 2
    assert [p.key for p in chart.parameters] == ["prune.global_magnitude:amount", "finetune:train_size"]
    assert chart.chooser.currentText().startswith("Amount (Global magnitude pruning)")
    assert chart.plot.getAxis("bottom").labelText == "Amount (Global magnitude pruning)"
    # One curve per fine-tuned parent, each over the amounts only.
    assert _xs(chart) == {"sst2 · accuracy · Training subset 300": [0.3, 0.6, 0.9],
                          "sst2 · accuracy · Training subset 600": [0.3, 0.6, 0.9]}
    # No training subset stretches the axis: the amounts span it.
    qtbot.waitUntil(lambda: chart.plot.vb.viewRange()[0][0] > 0.2, timeout=5000)
    assert chart.plot.vb.viewRange()[0][1] < 1.0
    # The chooser sits above the plot, never over it.
    plot_top = chart.mapFromScene(chart.plot.sceneBoundingRect().topLeft()).y() + chart.viewport().y()
    assert chart.chooser_bar.geometry().bottom() < plot_top
    # Choosing the training subset plots it alone, labelled as the step editor names it.
    chart.chooser.setCurrentIndex(1)
    assert chart.plot.getAxis("bottom").labelText == "Training subset (Fine-tune)"
    assert _xs(chart) == {"sst2 · accuracy": [300.0, 600.0]}
    qtbot.waitUntil(lambda: chart.hit(chart.tips.scene_pos(600.0, 0.90)) is not None, timeout=5000)  # auto-range
    tip, vid = chart.hit(chart.tips.scene_pos(600.0, 0.90))
    assert vid == 3 and tip.startswith("Training subset = 600: accuracy 0.9000")
    chart.update_rows(_chain_rows())  # new rows keep the user's choice
    assert chart.parameter is not None and chart.parameter.key == "finetune:train_size"


def test_a_parameter_with_one_value_is_no_sweep(qtbot) -> None:
    """The newcomer's chain: a training subset of 300 only, pruning amounts 0.3 and 0.6."""
    from workbench.charts import SweepChart

    rows = [r for r in _chain_rows() if r["variant"] not in (3, 6, 7, 8, 9)]
    chart = SweepChart()
    qtbot.addWidget(chart)
    chart.resize(600, 400)
    chart.show()
    chart.update_rows(rows)
    assert [p.key for p in chart.parameters] == ["prune.global_magnitude:amount"]
    assert chart.chooser_bar.isHidden() and chart.viewportMargins().top() == 0
    assert _xs(chart) == {"sst2 · accuracy · Training subset 300": [0.3, 0.6]}
    assert chart.plot.getAxis("bottom").labelText == "Amount (Global magnitude pruning)"
    assert chart.sceneRect().height() == chart.viewport().height()  # no strip left where the chooser was
    chart.update_rows([r for r in rows if r["variant"] != 5])  # one amount left: nothing is a sweep
    assert chart.parameters == [] and chart._items == {} and "no sweep" in chart.plot.titleLabel.text


def _dominant(image: QImage, background: QColor) -> QColor:
    counts: dict[int, int] = {}
    for y in range(image.height()):
        for x in range(image.width()):
            c = image.pixelColor(x, y)
            if abs(c.red() - background.red()) + abs(c.green() - background.green()) + abs(c.blue() - background.blue()) > 60:
                counts[c.rgb()] = counts.get(c.rgb(), 0) + 1
    assert counts, "nothing drawn"
    return QColor.fromRgb(max(counts, key=counts.__getitem__))


def _count(image: QImage, color: QColor, tolerance: int = 60) -> int:
    return sum(1 for y in range(image.height()) for x in range(image.width())
               if abs((c := image.pixelColor(x, y)).red() - color.red()) + abs(c.green() - color.green())
               + abs(c.blue() - color.blue()) < tolerance)


def _shown_scatter(qtbot, rows, selected, best):  # type: ignore[no-untyped-def]
    from workbench.charts import ScatterChart

    chart = ScatterChart()
    qtbot.addWidget(chart)
    chart.resize(900, 650)
    chart.show()
    qtbot.waitExposed(chart)
    chart.update_rows(rows, selected, best)
    qtbot.wait(200)
    return chart


def test_every_legend_mark_looks_like_the_mark_it_names(qtbot) -> None:
    """Defect: the legend's marks were small grey glyphs, 'best' and 'published' looked the same and
    neither like the gold mark on the plot."""
    rows = [_row(1, None, "baseline", 0.80, 90.0, task="mrpc"),
            _row(2, 1, "prune.global_magnitude", 0.79, 30.0, {"amount": 0.6}, task="mrpc"),
            _row(3, 1, "prune.global_magnitude", 0.70, 60.0, {"amount": 0.3}, task="mrpc"),
            _row(4, 1, "prune.global_magnitude", 0.50, 45.0, {"amount": 0.9}, task="mrpc",
                 flags=[{"code": "did_not_learn", "text": "x"}])]
    chart = _shown_scatter(qtbot, rows, [rows[2]], {("mrpc", "accuracy"): rows[1]})
    named = {"baseline (square)": (chart.baseline, rows[0]), "★ best within the budget": (chart.best, rows[1]),
             "selected": (chart.selected, rows[2]), "untrained head / did not learn": (chart.untrusted, rows[3]),
             "mrpc · accuracy": (chart._groups[("mrpc", "accuracy")][0], rows[2])}
    screen = chart.grab().toImage()
    background = chart.backgroundBrush().color()
    samples = {label.text: sample for sample, label in chart.legend.items}
    assert set(named) <= set(samples)
    crops: dict[str, bytes] = {}
    for text, sample in samples.items():
        rect = chart.mapFromScene(sample.sceneBoundingRect()).boundingRect()
        crop = screen.copy(rect)
        crops[text] = bytes(crop.constBits())
        if text not in named:
            continue
        item, row = named[text]
        assert sample.item is item, text  # the plotted item itself, so the same symbol, size, pen and brush
        colour = _dominant(crop, background)
        at = chart.mapFromScene(chart.tips.scene_pos(row["size_mb"], row["metric"]))
        plotted = screen.copy(QRect(at.x() - 11, at.y() - 11, 22, 22))
        in_legend, in_plot = _count(crop, colour), _count(plotted, colour)
        assert in_legend >= 8 and 0.6 < in_plot / in_legend < 1.7, (text, colour.name(), in_legend, in_plot)
    assert len(set(crops.values())) == len(crops), "two legend marks look the same"


def test_a_published_point_on_a_variant_hides_neither(qtbot) -> None:
    """Defect: the published diamond drawn on a variant hid it, and the tip named only one of them."""
    from core.published import LABEL

    rows = [_row(1, None, "baseline", 0.86, 90.9),
            _row(2, 1, "prune.global_magnitude", 0.80, 45.0, {"amount": 0.5})]
    chart = _shown_scatter(qtbot, rows, [], {})
    (point,) = chart.published.points  # the TinyBERT study's pruning on SST-2 lands on the baseline
    assert (point.x_mb, point.y_metric) == (90.9, 0.86)
    tip, vid = chart.hit(chart.tips.scene_pos(90.9, 0.86))
    assert tip.startswith("baseline — run 1, variant #1") and LABEL in tip and vid == 1
    # Both marks show: the baseline's red square inside the hollow diamond drawn over it.
    at = chart.mapFromScene(chart.tips.scene_pos(90.9, 0.86))
    crop = chart.grab().toImage().copy(QRect(at.x() - 11, at.y() - 11, 22, 22))
    assert _count(crop, QColor("#c0392b")) > 20 and _count(crop, QColor("#7f6a93")) > 20
    # And the legend's diamond is the plotted one.
    sample = next(s for s, label in chart.legend.items if label.text == LABEL)
    assert sample.item is chart.published.item


def _path_rows() -> list[dict[str, Any]]:
    return [_row(1, None, "baseline", 0.86, 90.9),
            _row(2, 1, "finetune", 0.90, 90.9, {"train_size": 300}),
            _row(3, 2, "prune.global_magnitude", 0.88, 60.0, {"amount": 0.6}, step=2),
            _row(4, 3, "quantize.dynamic_int8", 0.87, 23.0, step=3)]


@pytest.mark.parametrize("size", [(380, 900), (1500, 800)])
def test_png_exports_have_one_size_whatever_the_pane(qtbot, tmp_path: Path, size: tuple[int, int]) -> None:
    """Defect: a narrow pane gave a 1000x1532 PNG (huge text, blank band); 'After each step' ran two
    names together and lost the fourth."""
    from workbench.charts import EXPORT_PIXELS, Charts

    charts = Charts()
    qtbot.addWidget(charts)
    charts.resize(*size)
    charts.show()
    qtbot.waitExposed(charts)
    rows = [*_path_rows(), _row(5, 2, "prune.global_magnitude", 0.89, 75.0, {"amount": 0.3}, step=2)]
    charts.update_rows(rows, [rows[3]], 95.0)  # the steps chart shows the int8's branch
    charts.curves.set_curves(CURVES, "finetune")
    for name, chart in charts.charts().items():
        charts.setCurrentWidget(chart)
        qtbot.wait(50)
        before = chart.plot.sceneBoundingRect()
        path = tmp_path / f"{name}.png"
        charts.export(name, path)
        assert QImage(str(path)).size() == EXPORT_PIXELS == QSize(1600, 1000), name
        if name == "steps":  # as the export drew it: every name, none over another
            shown = chart.plot.getAxis("bottom").shown
            assert [i for i, _r, _t in shown] == [0, 1, 2, 3]
            assert all(not a.intersects(b) for (_i, a, _t), (_j, b, _u) in pairwise(shown))
            assert [t.replace("\n", " ") for _i, _r, t in shown] == [
                "baseline", "finetune 300", "prune 0.6", "dynamic int8"]
        assert chart.plot.sceneBoundingRect() == before, name  # the chart on screen is as it was


def test_category_names_never_run_together_on_screen(qtbot) -> None:
    from workbench.charts import StepsChart

    chart = StepsChart()
    qtbot.addWidget(chart)
    chart.show()
    chart.update_rows(_path_rows(), None)
    axis = chart.plot.getAxis("bottom")
    for width in (300, 900):
        chart.resize(width, 400)
        qtbot.wait(50)
        chart.grab()  # a paint lays the names out
        shown = axis.shown
        assert [i for i, _r, _t in shown] == [0, 1, 2, 3], width
        assert all(a.right() <= b.left() for (_i, a, _t), (_j, b, _u) in pairwise(shown)), width
        assert all(r.left() >= 0 and r.right() <= axis.width() + 0.5 for _i, r, _t in shown), width
    assert [t for _i, _r, t in shown] == ["baseline", "finetune 300", "prune 0.6", "dynamic int8"]  # whole when wide


def test_an_empty_chart_is_not_exported(results, tmp_path: Path, monkeypatch) -> None:
    """Defect: 'Training curves' with no variant selected was written as an empty chart."""
    warned: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: warned.append(str(a[2])))
    view = results
    for ext in ("png", "svg"):
        path = tmp_path / f"curves.{ext}"
        assert not view.export_chart_to("curves", path)
        assert not path.exists()
        assert "Training curves chart is empty" in warned[-1] and "select one variant" in warned[-1]
    view.run_combo.setCurrentIndex(view.run_combo.findData(2))  # a run without a sweep
    assert not view.export_chart_to("sweeps", tmp_path / "sweeps.png") and not (tmp_path / "sweeps.png").exists()
    assert "Sweeps chart is empty" in warned[-1]
    assert view.export_chart_to("scatter", tmp_path / "scatter.png")  # a chart with data still exports
    assert QImage(str(tmp_path / "scatter.png")).size() == QSize(1600, 1000)


def test_the_tip_of_two_layers_at_one_point_names_both(qtbot) -> None:
    """A hit in two layers of one chart (loss and learning rate at the same step) says both."""
    from workbench.charts import Chart, HoverTips

    chart = Chart("t", "x", "y")
    qtbot.addWidget(chart)
    chart.resize(400, 300)
    chart.show()
    qtbot.waitExposed(chart)
    other = HoverTips(chart.plot)
    chart.add_tips(other)
    chart.tips.set_points([(1.0, 1.0, "variant", 7)])
    other.set_points([(1.0, 1.0, "published", None)])
    chart.plot.setRange(xRange=(0, 2), yRange=(0, 2), padding=0)
    assert chart.hit(chart.tips.scene_pos(1.0, 1.0)) == ("variant\n\npublished", 7)
    assert chart.hit(chart.tips.scene_pos(QPointF(0.1, 0.1).x(), 0.1)) is None


def test_a_phase_s_training_curves_are_told_apart_by_colour_and_marks(qtbot) -> None:
    """A fine-tune's loss, learning rate and held-out score were drawn in one colour, the lr and held-out
    lines both broken: each series of each phase now has its own colour, and the held-out scorings dots."""
    from workbench.charts import CurvesChart

    chart = CurvesChart()
    qtbot.addWidget(chart)
    stage = {"loss": [[1, 0.69], [2, 0.5]], "lr": [[1, 1e-4], [2, 5e-5]], "held_out": [[2, 0.8]]}
    chart.set_curves({"Stage 1": stage, "Stage 2": stage}, "distill")
    colours = {key: item.opts["pen"].color().name() for key, item in chart._items.items()}
    assert len(set(colours.values())) == 6, colours
    assert chart._items[("Stage 1", "held_out")].opts["symbol"] == "o"
    assert chart._items[("Stage 1", "loss")].opts["symbol"] is None


@pytest.mark.parametrize("width", [300, 360, 420, 480, 560, 700, 900, 1300])
def test_every_legend_label_is_whole_at_any_width(qtbot, width: int) -> None:
    """Defect (newcomer test, 1024x700): the legend's last label was cut to 'published (not measured
    her': its columns came from the chart's width alone, not from the labels' widths."""
    from core.published import LABEL

    rows = [_row(1, None, "baseline", 0.86, 90.9),
            _row(2, 1, "prune.global_magnitude", 0.80, 45.0, {"amount": 0.5}),
            _row(3, 1, "prune.global_magnitude", 0.50, 30.0, {"amount": 0.9},
                 flags=[{"code": "did_not_learn", "text": "x"}])]
    chart = _shown_scatter(qtbot, rows, [rows[1]], {("sst2", "accuracy"): rows[1]})
    chart.resize(width, 500)
    qtbot.wait(100)
    labels = {label.text: label for _sample, label in chart.legend.items}
    assert LABEL in labels and "untrained head / did not learn" in labels
    # A narrow chart leaves out the optional three when their rows would take the height (where the
    # line falls depends on the font); a wide one shows all.
    assert len(labels) in (5, 8) and (width < 700 or len(labels) == 8), sorted(labels)
    view = chart.viewport().rect()
    for text, label in labels.items():
        drawn = chart.mapFromScene(label.item.sceneBoundingRect()).boundingRect()  # the text itself
        assert view.contains(drawn), (text, drawn, view)
    # And the plot keeps most of the height: the legend takes the rows its columns need, no more.
    assert chart.plot.sceneBoundingRect().height() > 0.5 * chart.height()


def test_a_short_chart_leaves_out_the_optional_legend_entries(qtbot) -> None:
    """Defect (1024x700, a short results pane): eight entries in four rows pushed the last label below
    the view and left the plot 60 px. A short chart names only what its tips do not explain; an
    export, laid out at its own size, names everything."""
    from workbench.charts import EXPORT_LAYOUT, laid_out_at

    rows = [_row(1, None, "baseline", 0.86, 90.9),
            _row(2, 1, "prune.global_magnitude", 0.80, 45.0, {"amount": 0.5}),
            _row(3, 1, "prune.global_magnitude", 0.50, 30.0, {"amount": 0.9},
                 flags=[{"code": "did_not_learn", "text": "x"}])]
    chart = _shown_scatter(qtbot, rows, [rows[1]], {("sst2", "accuracy"): rows[1]})
    every = [label.text for _sample, label in chart.legend.items]
    assert len(every) == 8
    chart.resize(440, 240)
    qtbot.wait(100)
    shown = [label.text for _sample, label in chart.legend.items]
    assert set(shown) == set(every) - {"Pareto front", "95 % interval", "selected"}
    for _sample, label in chart.legend.items:
        assert chart.viewport().rect().contains(chart.mapFromScene(label.item.sceneBoundingRect()).boundingRect())
    assert chart.plot.vb.sceneBoundingRect().height() > 0.25 * chart.height()  # title and axes take the rest
    with laid_out_at(chart, EXPORT_LAYOUT):
        assert sorted(label.text for _sample, label in chart.legend.items) == sorted(every)
    assert [label.text for _sample, label in chart.legend.items] == shown
    chart.resize(900, 650)  # room again: every entry back
    qtbot.wait(100)
    assert sorted(label.text for _sample, label in chart.legend.items) == sorted(every)


def test_a_chart_closes_after_its_legend_was_refitted(qtbot) -> None:
    """Defect: pyqtgraph's close() deletes every item, then resizes a new viewport; refitting the
    deleted legend on that resize crashed the process (a segmentation fault)."""
    rows = [_row(1, None, "baseline", 0.86, 90.9), _row(2, 1, "prune.global_magnitude", 0.80, 45.0, {"amount": 0.5})]
    chart = _shown_scatter(qtbot, rows, [rows[1]], {("sst2", "accuracy"): rows[1]})
    for size in ((300, 200), (900, 650)):
        chart.resize(*size)
        qtbot.wait(50)
    chart.close()
    assert chart.closed


def test_legend_entries_keep_their_order_when_it_fits(qtbot) -> None:
    """Review: packing the widest labels together scrambled a training-curves legend that fitted
    in its own order; the packed order is only for a legend that does not fit otherwise."""
    from workbench.charts import _packed

    rows = [_row(1, None, "baseline", 0.86, 90.9), _row(2, 1, "prune.global_magnitude", 0.80, 45.0, {"amount": 0.5})]
    chart = _shown_scatter(qtbot, rows, [rows[1]], {("sst2", "accuracy"): rows[1]})
    chart.resize(1300, 650)
    qtbot.wait(100)
    assert chart.legend.columnCount == 3
    assert [label.text for _s, label in chart.legend.items] == [name for _item, name in chart._legend_entries]

    order, cells = _packed([50, 190, 60, 180, 55], 2)
    assert cells == [[1, 2, 3], [0, 4]] and order == [1, 0, 2, 4, 3]  # the widest three in one column
    assert _packed([10, 20, 30], 1) == ([0, 1, 2], [[0, 1, 2]])
