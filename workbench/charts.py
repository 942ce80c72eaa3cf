"""pyqtgraph charts of the variants: metric vs size with one Pareto front per task and metric,
latency bars, a per-step chart for one run's path, sweep curves, and training curves.

Each chart is its own widget with its legend in a row beneath the plot (never over the data), whose
marks are drawn from the plotted items themselves; every point and bar has a tooltip (every layer's
element under the pointer), and clicking one emits ``variantClicked(id)`` so the results table
selects its row. Charts draw exactly the rows they are given (the results view gives the rows its
filters leave), read fields by name and skip rows lacking them, so a ResultRow that gains fields
keeps working. Items are created once per series and fed with ``setData``. A PNG export has one
size whatever the pane's; an empty chart is not exported.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from pyqtgraph.graphicsItems.ScatterPlotItem import drawSymbol
from PySide6.QtCore import QEvent, QPoint, QPointF, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QFontMetricsF, QHelpEvent, QPainter, QPalette, QTextDocument
from PySide6.QtWidgets import QApplication, QComboBox, QHBoxLayout, QLabel, QTabWidget, QToolTip, QWidget

from core.errors import ConfigError
from core.store.pareto import best_within_budget, group_rows, pareto_front, trusted
from core.store.rows import flag_title
from workbench._refcount_guard import guard_none_refcount
from workbench.chain_model import step_title
from workbench.chart_names import CHARTS
from workbench.results_model import branch_points, variant_name

# pyqtgraph items lose references to True on PySide6 6.12 + CPython 3.11 (see _refcount_guard):
# whoever builds the charts (the app, a script, a test) gets the guard.
guard_none_refcount()

# Antialiasing off: with 1,000 points it costs more than it shows; lines stay 2 px wide.
pg.setConfigOptions(antialias=False, background="w", foreground="#333")

_BLUE = "#3b7dd8"
_ORANGE = "#d9822b"
_GREEN = "#2f9e5b"
_RED = "#c0392b"
_PURPLE = "#8a4fd1"
_GOLD = "#e6b800"
_TEAL = "#1f9aa8"
SERIES_COLORS = (_BLUE, _ORANGE, _PURPLE, _TEAL, _RED, _GREEN, "#7f7f7f")


HIT_PIXELS = 10  # a point is under the pointer within this many pixels


def _fmt(value: Any, spec: str, unit: str = "") -> str:
    if value is None:
        return "—"
    try:
        return f"{format(value, spec)}{unit}"
    except (TypeError, ValueError):
        return str(value)


def branch_tick(row: dict[str, Any], branch: dict[str, Any]) -> str:
    """A tick that tells apart variants of the same step on different branches, short enough for a bar:
    'int8 (0.3)' after the pruning amount 0.3, else 'int8 (finetune)' after the parent named."""
    values = " ".join(str(v) for v in (branch.get("swept") or {}).values())
    return f"{variant_name(row).split()[-1]} ({values or variant_name(branch).split()[-1]})"


def metric_error(row: dict[str, Any]) -> tuple[float, float] | None:
    """(below, above) the metric its error bar spans: the 95 % interval, or ± the sd over seeds."""
    metric = row.get("metric")
    if metric is None:
        return None
    low, high = row.get("metric_ci_low"), row.get("metric_ci_high")
    if low is not None and high is not None:
        return max(0.0, metric - low), max(0.0, high - metric)
    sd = row.get("metric_sd")
    return (sd, sd) if sd is not None and (row.get("seeds") or 1) > 1 else None


def latency_error(row: dict[str, Any]) -> tuple[float, float] | None:
    p50, low, high = row.get("latency_p50_ms"), row.get("latency_p50_ci_low"), row.get("latency_p50_ci_high")
    if p50 is None or low is None or high is None:
        return None
    return max(0.0, p50 - low), max(0.0, high - p50)


def row_tip(row: dict[str, Any]) -> str:
    """A variant in a few lines, for any chart element that stands for it: its numbers with their
    intervals, its flags and the settings it was measured with."""
    from workbench.results_model import metric_text, settings_text, within_noise

    lines = [f"{row.get('label')} — run {row.get('run')}, variant #{row.get('variant')}"]
    if row.get("metric") is not None:
        pct = f" ({row['pct_baseline']:.1f} % of reference)" if row.get("pct_baseline") is not None else ""
        lines.append(f"{row.get('task')}: {row.get('metric_name') or 'metric'} {metric_text(row)}{pct}")
    if row.get("delta_vs_parent") is not None:
        noise = " ≈ within noise" if within_noise(row) else ""
        lines.append(f"vs parent {row['delta_vs_parent']:+.4f}{noise}")
    if row.get("size_mb") is not None:
        smaller = f" ({row['pct_smaller']:.1f} % smaller)" if row.get("pct_smaller") else ""
        lines.append(f"{row['size_mb']:.2f} MB on disk{smaller}")
    if row.get("latency_p50_ms") is not None:
        speed = f", {row['speedup']:.2f}x" if row.get("speedup") else ""
        ci = latency_error(row)
        interval = (f" [{row['latency_p50_ci_low']:.2f}, {row['latency_p50_ci_high']:.2f}]" if ci else "")
        lines.append(f"latency p50 {row['latency_p50_ms']:.2f} ms{interval}, "
                     f"p90 {_fmt(row.get('latency_p90_ms'), '.2f')} ms{speed}")
    if settings_text(row) != "—":
        lines.append(f"measured with {settings_text(row)}")
    for flag in row.get("flags") or ():
        lines.append(f"⚑ {flag_title(flag.get('code', ''))}")
    if row.get("cached"):
        lines.append("reused from the cache")
    return "\n".join(lines)


class HoverTips:
    """Tooltips and clicks for one plot: the nearest target point within HIT_PIXELS, or the bar
    under the pointer. Targets carry a text and the variant id a click selects (or None)."""

    def __init__(self, plot: pg.PlotItem | pg.ViewBox) -> None:
        self.vb = plot.vb if isinstance(plot, pg.PlotItem) else plot
        self.xs = np.zeros(0)
        self.ys = np.zeros(0)
        self.texts: list[str] = []
        self.ids: list[int | None] = []
        self.bars: list[tuple[float, float, float, float, str, int | None]] = []

    def set_points(self, points: Iterable[tuple[float, float, str, int | None]]) -> None:
        pts = list(points)
        self.xs = np.array([p[0] for p in pts], dtype=float)
        self.ys = np.array([p[1] for p in pts], dtype=float)
        self.texts = [p[2] for p in pts]
        self.ids = [p[3] for p in pts]

    def add_points(self, points: Iterable[tuple[float, float, str, int | None]]) -> None:
        pts = list(points)
        if pts:
            self.xs = np.concatenate([self.xs, [p[0] for p in pts]])
            self.ys = np.concatenate([self.ys, [p[1] for p in pts]])
            self.texts += [p[2] for p in pts]
            self.ids += [p[3] for p in pts]

    def set_bars(self, bars: Iterable[tuple[float, float, float, float, str, int | None]]) -> None:
        self.bars = list(bars)

    def hit(self, scene_pos: QPointF) -> tuple[str, int | None] | None:
        vb = self.vb
        rect = vb.sceneBoundingRect()
        if not rect.contains(scene_pos):
            return None
        view = vb.mapSceneToView(scene_pos)
        if len(self.xs):
            (x0, x1), (y0, y1) = vb.viewRange()
            sx = rect.width() / ((x1 - x0) or 1.0)
            sy = rect.height() / ((y1 - y0) or 1.0)
            d2 = ((self.xs - view.x()) * sx) ** 2 + ((self.ys - view.y()) * sy) ** 2
            i = int(np.argmin(d2))
            if d2[i] <= HIT_PIXELS**2:
                return self.texts[i], self.ids[i]
        for bx0, bx1, by0, by1, text, vid in self.bars:
            if bx0 <= view.x() <= bx1 and min(by0, by1) <= view.y() <= max(by0, by1):
                return text, vid
        return None

    def scene_pos(self, x: float, y: float) -> QPointF:
        return self.vb.mapViewToScene(QPointF(x, y))


def _ink() -> str:
    """The palette's text colour: marks that must read on a light and on a dark background."""
    return QApplication.palette().color(QPalette.ColorRole.Text).name()


class LegendSample(pg.ItemSample):
    """A legend mark drawn with the plotted item's own symbol, size, pen and brush. pyqtgraph's read a
    line's symbol style from its scatter, which keeps the defaults (7 px, grey) until it has data, so
    unplotted samples all came out as the same small grey glyph; error bars it did not draw at all."""

    def paint(self, p: QPainter, *args: Any) -> None:
        item = self.item
        if not item.isVisible():
            super().paint(p, *args)  # pyqtgraph's "hidden" eye
            return
        p.save()
        try:
            self._paint_mark(p, item)
        finally:
            p.restore()

    def _paint_mark(self, p: QPainter, item: Any) -> None:
        p.setRenderHint(QPainter.RenderHint.Antialiasing)  # as the plot's symbols (pre-rendered smooth)
        opts = item.opts
        if isinstance(item, pg.ErrorBarItem):
            p.setPen(pg.mkPen(opts.get("pen") or pg.getConfigOption("foreground")))
            p.drawLine(QPointF(10, 3), QPointF(10, 17))
            if opts.get("beam"):
                p.drawLine(QPointF(6, 3), QPointF(14, 3))
                p.drawLine(QPointF(6, 17), QPointF(14, 17))
        elif isinstance(item, pg.BarGraphItem):
            p.setPen(pg.mkPen(opts.get("pen")))
            p.setBrush(pg.mkBrush(opts.get("brush")))
            p.drawRect(QRectF(3, 3, 14, 14))
        elif isinstance(item, pg.PlotDataItem):
            if opts.get("pen") is not None:
                p.setPen(pg.mkPen(opts["pen"]))
                p.drawLine(QPointF(0, 10), QPointF(20, 10))
            if opts.get("symbol") is not None:
                p.translate(10, 10)
                drawSymbol(p, opts["symbol"], opts["symbolSize"], pg.mkPen(opts["symbolPen"]),
                           pg.mkBrush(opts["symbolBrush"]))
        elif isinstance(item, pg.ScatterPlotItem):
            p.translate(10, 10)
            drawSymbol(p, opts["symbol"], opts["size"], pg.mkPen(opts["pen"]), pg.mkBrush(opts["brush"]))
        else:
            super().paint(p)


class CategoryAxis(pg.AxisItem):
    """A bottom axis of names at 0, 1, 2, …: each name whole where it fits its slot, else on two lines,
    else cut with '…'; only when even that is unreadable every k-th name (the tips name them all).
    pyqtgraph's own ticks ran neighbours together ("finetune 300prune 0.6") and dropped the last name
    where it overhung the axis's end."""

    GAP = 6  # pixels between neighbouring names

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.names: list[str] = []
        self._names_height = 0
        self.shown: list[tuple[int, QRectF, str]] = []  # (index, where, text as drawn) at the last paint

    def set_names(self, names: list[str]) -> None:
        """Names at 0..n-1; none: pyqtgraph's numeric ticks."""
        self.names = list(names)
        self.setTicks([[(i, n) for i, n in enumerate(self.names)]] if self.names else None)

    def _fitted(self, name: str, width: float, fm: QFontMetricsF) -> list[str]:
        if fm.horizontalAdvance(name) <= width:
            return [name]
        words = name.split(" ")
        if len(words) > 1:  # two lines, broken at the space nearest the middle
            cut = min(range(1, len(words)), key=lambda k: abs(len(" ".join(words[:k])) - len(name) / 2))
            lines = [" ".join(words[:cut]), " ".join(words[cut:])]
            return [fm.elidedText(line, Qt.TextElideMode.ElideRight, width) for line in lines]
        return [fm.elidedText(name, Qt.TextElideMode.ElideRight, width)]

    def _name_specs(self, p: QPainter) -> list[tuple[QRectF, Any, str]]:
        bounds = self.mapRectFromParent(self.geometry())
        low, high = self.range
        if high == low or bounds.width() <= 0:
            return []
        fm = QFontMetricsF(p.font())
        per = bounds.width() / (high - low)  # pixels from one name to the next
        readable = fm.horizontalAdvance("abcd…") + self.GAP
        every = max(1, math.ceil(readable / per))
        width = every * per - self.GAP
        top = bounds.top() + max(0, self.style["tickLength"]) + self.style["tickTextOffset"][1]
        flags = Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop | Qt.TextFlag.TextDontClip
        specs, self.shown = [], []
        for i, name in enumerate(self.names):
            x = (i - low) * per
            if i % every or not bounds.left() <= x <= bounds.right():  # zoomed or panned off the axis
                continue
            lines = self._fitted(name, width, fm)
            left = min(max(bounds.left(), x - width / 2), bounds.right() - width)  # the ends stay on the axis
            rect = QRectF(left, top, width, fm.lineSpacing() * len(lines))
            specs.append((rect, flags, "\n".join(lines)))
            self.shown.append((i, rect, "\n".join(lines)))
        self._names_height = math.ceil(max((r.height() for r, _f, _t in specs), default=0))
        return specs

    def generateDrawSpecs(self, p: QPainter) -> Any:
        if not self.names:
            return super().generateDrawSpecs(p)
        if self.style["tickFont"] is not None:
            p.setFont(self.style["tickFont"])
        names = self._name_specs(p)
        specs = super().generateDrawSpecs(p)  # the axis line and the ticks
        return None if specs is None else (specs[0], specs[1], names)

    def _updateMaxTextSize(self, x: int) -> None:
        # Room for the names as laid out here (two lines where needed), not pyqtgraph's one line.
        super()._updateMaxTextSize(self._names_height if self.names else x)


# A legend mark's width (pyqtgraph's ItemSample draws in 20 x 20).
LEGEND_MARK = 20.0


def _packed(widths: list[float], columns: int) -> tuple[list[int], list[list[int]]]:
    """Entries in ``columns`` columns with the widest together, so the columns' widths add up to the
    least: the order to add them in (pyqtgraph fills rows left to right) and each column's entries,
    each column in the entries' own order."""
    rows = -(-len(widths) // columns)
    short = rows * columns - len(widths)  # the last columns hold one entry fewer
    by_width = sorted(range(len(widths)), key=lambda i: -widths[i])
    cells, start = [], 0
    for column in range(columns):
        take = rows - (1 if column >= columns - short else 0)
        cells.append(sorted(by_width[start:start + take]))
        start += take
    return [cells[c][r] for r in range(rows) for c in range(columns) if r < len(cells[c])], cells


class Chart(pg.GraphicsLayoutWidget):
    """One plot (or a few stacked) with a legend row beneath; hover tips and click-to-select."""

    variantClicked = Signal(int)

    x_axis_class: type[pg.AxisItem] | None = None  # None: pyqtgraph's own

    def __init__(self, title: str, x: str, y: str, legend_columns: int = 3, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self.legend_columns = legend_columns
        self.plot = self.new_plot(0, x, y)
        self.plot.setTitle(title, size="10pt")
        self.tips = HoverTips(self.plot)
        self._tips = [self.tips]
        self._legend_entries: list[tuple[Any, str]] = []
        self._legend_optional: frozenset[str] = frozenset()
        self._label_sizes: dict[tuple[str, str], tuple[float, float]] = {}
        self.legend = pg.LegendItem(colCount=legend_columns, sampleType=LegendSample)
        self.legend_row = 1
        self.addItem(self.legend, row=self.legend_row, col=0)
        self.setMinimumSize(220, 180)
        self.scene().sigMouseClicked.connect(self._clicked)
        self.restyle()

    def new_plot(self, row: int, x: str, y: str) -> pg.PlotItem:
        axes = {"bottom": self.x_axis_class(orientation="bottom")} if self.x_axis_class is not None else None
        plot = self.addPlot(row=row, col=0, axisItems=axes)
        plot.setLabel("bottom", x)
        plot.setLabel("left", y)
        plot.showGrid(x=True, y=True, alpha=0.2)
        for side in ("left", "bottom"):
            plot.getAxis(side).enableAutoSIPrefix(False)  # "accuracy (x0.001)" reads worse than 0.55
        self.ci.layout.setRowStretchFactor(row, 1)
        return plot

    def resizeEvent(self, event: Any) -> None:
        # Fewer legend columns in a narrow chart (the legend's width would otherwise widen the scene
        # beyond the view and cut the plot's right side off), fewer entries in a short one.
        # pyqtgraph resizes once before __init__ is done, and again from close() after deleting every
        # item (its new viewport's resize): a legend touched then crashed the process.
        if getattr(self, "legend", None) is not None and not getattr(self, "closed", True):
            self.fit_legend(event.size().width(), event.size().height())
        super().resizeEvent(event)

    # The height share above which the legend leaves out its optional entries (their marks' hover tips
    # still say what they are): at 1024x700 eight entries in four rows had left the plot 60 px.
    LEGEND_SHARE = 0.3

    def set_legend(self, entries: list[tuple[Any, str]], optional: Iterable[str] = ()) -> None:
        """The legend's entries (plotted item, label); labels in ``optional`` are left out when the
        whole legend would take more than LEGEND_SHARE of the chart's height."""
        self._legend_entries = list(entries)
        self._legend_optional = frozenset(optional)
        self.fit_legend(self.width(), self.height(), rebuild=True)

    def fit_legend(self, width: float, height: float, rebuild: bool = False) -> None:
        """Columns, entries and their order for a chart ``width`` x ``height``: every label whole, the
        plot most of the height."""
        entries = self._legend_entries
        order, columns, legend_height = self._legend_layout([n for _, n in entries], width)
        if self._legend_optional and legend_height > self.LEGEND_SHARE * height:
            entries = [(item, name) for item, name in entries if name not in self._legend_optional]
            order, columns, _ = self._legend_layout([n for _, n in entries], width)
        wanted = [entries[i][1] for i in order]
        if rebuild or columns != self.legend.columnCount or wanted != [label.text for _, label in self.legend.items]:
            self.legend.clear()
            self.legend.setColumnCount(columns)  # while empty: the entries below are laid out once
            for i in order:
                self.legend.addItem(*entries[i])
            self.restyle()

    def _label_size(self, name: str) -> tuple[float, float]:
        """A legend label's size before it is in the legend: the document pyqtgraph's LabelItem lays
        out in the scene's font, without a graphics item to create and throw away. Cached: every
        resize asks again."""
        font = self.scene().font()
        key = (name, font.key())
        if key not in self._label_sizes:
            doc = QTextDocument()
            doc.setDefaultFont(font)
            doc.setHtml(f"<span style='font-size: {self.legend.opts['labelTextSize']}'>{name}</span>")
            self._label_sizes[key] = (doc.size().width(), doc.size().height())
        return self._label_sizes[key]

    def _legend_layout(self, names: list[str], width: float) -> tuple[list[int], int, float]:
        """The entries' order, the columns and the height of a legend of ``names`` in ``width`` pixels:
        the most columns, up to ``legend_columns``, that fit side by side, each as wide as its widest
        entry. One column per 200 px had cut a long last label at 1024x700."""
        if not names:
            return [], self.legend.columnCount, 0.0
        sizes = [self._label_size(n) for n in names]
        layout = self.legend.layout
        left, _top, right, _bottom = layout.getContentsMargins()
        gap = max(0.0, layout.horizontalSpacing())
        widths = [w for w, _h in sizes]
        row = max(h for _w, h in sizes) + max(0.0, layout.verticalSpacing())
        for columns in range(min(self.legend_columns, len(names)), 0, -1):
            # The entries' own order when it fits, else the widest packed together.
            in_order = (list(range(len(names))), [list(range(c, len(names), columns)) for c in range(columns)])
            for order, cells in (in_order, _packed(widths, columns)):
                needed = left + right + 12  # the view's frame and the scene's margin around the legend
                needed += sum(LEGEND_MARK + max(widths[i] for i in column) + 2 * gap for column in cells)
                if needed <= width or columns == 1:
                    return order, columns, -(-len(names) // columns) * row
        raise AssertionError("unreachable: one column always returns")

    def add_tips(self, tips: HoverTips) -> None:
        self._tips.append(tips)

    def hit(self, scene_pos: QPointF) -> tuple[str, int | None] | None:
        """Every layer's element under the pointer in one tip: a published point on top of a variant
        hid the variant's tip (or the other way round). A click selects the first variant named."""
        found = [f for tips in self._tips if (f := tips.hit(scene_pos)) is not None]
        if not found:
            return None
        return "\n\n".join(dict.fromkeys(text for text, _vid in found)), next(
            (vid for _text, vid in found if vid is not None), None)

    empty_hint = "no variant among the rows shown has what it plots"

    def empty_reason(self) -> str:
        """Why there is nothing to export ('' when the chart draws something): a chart with no element
        to hover draws no data."""
        if any(len(t.xs) or t.bars for t in self._tips):
            return ""
        return f"the {self.title} chart is empty ({self.empty_hint})"

    def viewportEvent(self, event: QEvent) -> bool:
        # Qt's own tooltip event (after the hover delay): the scene would hide any tip it did not
        # set itself, so the chart answers it, and the tip goes when the pointer leaves the element.
        if event.type() == QEvent.Type.ToolTip and isinstance(event, QHelpEvent):
            found = self.hit(self.mapToScene(event.pos()))
            if found is None:
                QToolTip.hideText()
                event.ignore()
            else:
                near = QRect(event.pos() - QPoint(HIT_PIXELS, HIT_PIXELS), QSize(2 * HIT_PIXELS, 2 * HIT_PIXELS))
                QToolTip.showText(event.globalPos(), found[0], self.viewport(), near)
            return True
        return super().viewportEvent(event)

    def _clicked(self, event: Any) -> None:
        if event.button() != Qt.MouseButton.LeftButton or event.double():
            return
        found = self.hit(event.scenePos())
        if found is not None and found[1] is not None:
            event.accept()
            self.variantClicked.emit(int(found[1]))

    def restyle(self) -> None:
        """Follow the application palette (light or dark)."""
        pal = QApplication.palette()
        bg, fg = pal.color(QPalette.ColorRole.Base), pal.color(QPalette.ColorRole.Text)
        self.setBackground(bg)
        for item in self.ci.items:
            if isinstance(item, pg.PlotItem):
                for side in ("left", "bottom", "right"):
                    axis = item.getAxis(side)
                    axis.setPen(fg)
                    axis.setTextPen(fg)
                item.titleLabel.setAttr("color", fg.name())
                item.titleLabel.setText(item.titleLabel.text)
        self.legend.setLabelTextColor(fg)
        for _sample, label in self.legend.items:
            label.setAttr("color", fg.name())
            label.setText(label.text)

    def set_title(self, text: str) -> None:
        self.plot.setTitle(text, size="10pt", color=_ink())


class ScatterChart(Chart):
    """Metric vs MB on disk; one colour, one Pareto front per (task, metric) group. The best variant is
    the gold star, as the table's ★; the baseline a red square. Every legend mark is the plotted item."""

    empty_hint = "no variant among the rows shown has a size and a metric"

    def __init__(self) -> None:
        super().__init__(CHARTS["scatter"], "MB on disk", "metric")
        self._groups: dict[tuple[str, str], tuple[pg.ScatterPlotItem, pg.PlotDataItem]] = {}
        self.baseline = pg.ScatterPlotItem(size=13, symbol="s", pen=pg.mkPen("#222"), brush=pg.mkBrush(_RED))
        self.best = pg.ScatterPlotItem(size=18, symbol="star", pen=pg.mkPen("#222", width=1.5),
                                       brush=pg.mkBrush(_GOLD))
        self.selected = pg.ScatterPlotItem(size=15, symbol="o", pen=pg.mkPen(_GREEN, width=2.5), brush=pg.mkBrush(None))
        # Variants whose metric is no result (untrained head, did not learn): crossed out, off the front.
        self.untrusted = pg.ScatterPlotItem(size=13, symbol="x")  # coloured by restyle: the text colour
        self.errors: dict[tuple[str, str], pg.ErrorBarItem] = {}
        for item in (self.baseline, self.best, self.selected, self.untrusted):
            item.setZValue(10)
            self.plot.addItem(item)
        self.restyle()
        self.rows: list[dict[str, Any]] = []
        from workbench.published_overlay import PublishedLayer

        published_tips = HoverTips(self.plot)
        self.add_tips(published_tips)
        self.published = PublishedLayer(self.plot, published_tips)  # the papers' points, switchable
        self._last: tuple[list[dict[str, Any]], list[dict[str, Any]], dict[tuple[str, str], dict[str, Any]]] | None = None

    def restyle(self) -> None:
        """The crossed-out marks (and their legend sample) in the text colour: grey vanished on dark."""
        super().restyle()
        if getattr(self, "untrusted", None) is None:  # Chart.__init__ restyles before this chart's items exist
            return
        ink = _ink()
        self.untrusted.setPen(pg.mkPen(ink, width=1.5))
        self.untrusted.setBrush(pg.mkBrush(ink))
        for sample, _label in self.legend.items:  # each draws its plotted item's style as it is now
            sample.update()

    def set_published_visible(self, visible: bool) -> None:
        """Show or hide the published points (and their legend entry)."""
        self.published.set_visible(visible)
        if self._last is not None:
            self.update_rows(*self._last)

    def _group_items(self, key: tuple[str, str], color: str) -> tuple[pg.ScatterPlotItem, pg.PlotDataItem]:
        if key not in self._groups:
            c = pg.mkColor(color)
            points = pg.ScatterPlotItem(size=9, pen=pg.mkPen(None), brush=pg.mkBrush(c.red(), c.green(), c.blue(), 170))
            front = pg.PlotDataItem(pen=pg.mkPen(color, width=2), symbol="o", symbolSize=6, symbolBrush=color,
                                    symbolPen=pg.mkPen(None))
            errors = pg.ErrorBarItem(x=np.zeros(0), y=np.zeros(0), pen=pg.mkPen(color, width=1), beam=0.0)
            self.plot.addItem(errors)
            self.plot.addItem(front)
            self.plot.addItem(points)
            self._groups[key] = (points, front)
            self.errors[key] = errors
        points, front = self._groups[key]
        return points, front

    def _set_errors(self, key: tuple[str, str], group: list[dict[str, Any]]) -> None:
        """The metric's 95 % interval (or ± sd over seeds) as a vertical bar through each point."""
        spans = [(r, e) for r in group if (e := metric_error(r)) is not None]
        xs = np.array([float(r["size_mb"]) for r, _e in spans], dtype=float)
        ys = np.array([float(r["metric"]) for r, _e in spans], dtype=float)
        self.errors[key].setData(x=xs, y=ys, bottom=np.array([e[0] for _r, e in spans], dtype=float),
                                 top=np.array([e[1] for _r, e in spans], dtype=float), beam=0.0)

    def update_rows(self, rows: list[dict[str, Any]], selected: list[dict[str, Any]],
                    best: dict[tuple[str, str], dict[str, Any]]) -> None:
        self._last = (rows, selected, best)
        groups = group_rows(rows)
        self.rows = [r for g in groups.values() for r in g]
        self.published.update(self.rows)
        for key in [k for k in self._groups if k not in groups]:
            for item in (*self._groups.pop(key), self.errors.pop(key)):
                self.plot.removeItem(item)
        legend: list[tuple[Any, str]] = []
        tips: list[tuple[float, float, str, int | None]] = []
        best_ids = {r["variant"] for r in best.values()}
        for k, (key, group) in enumerate(groups.items()):
            color = SERIES_COLORS[k % len(SERIES_COLORS)]
            points, front = self._group_items(key, color)
            xs = [float(r["size_mb"]) for r in group]
            ys = [float(r["metric"]) for r in group]
            points.setData(x=xs, y=ys)
            self._set_errors(key, group)
            ok = [i for i, r in enumerate(group) if trusted(r)]  # a chance-level metric is on no front
            on_front = [ok[i] for i in pareto_front([(xs[i], ys[i]) for i in ok])]
            front.setData([xs[i] for i in on_front], [ys[i] for i in on_front])
            front_ids = {group[i]["variant"] for i in on_front}
            legend.append((points, f"{key[0]} · {key[1]}"))
            for r, x, y in zip(group, xs, ys, strict=True):
                notes = [n for n, on in (("★ best within the budget", r["variant"] in best_ids),
                                         ("on the Pareto front of its task", r["variant"] in front_ids),
                                         ("✗ no result: off every front", not trusted(r)),
                                         ("baseline", r.get("step") == 0)) if on]
                tips.append((x, y, row_tip(r) + ("\n" + "; ".join(notes) if notes else ""), r["variant"]))
        base = [r for r in self.rows if r.get("step") == 0]
        self.baseline.setData(x=[float(r["size_mb"]) for r in base], y=[float(r["metric"]) for r in base])
        bad = [r for r in self.rows if not trusted(r)]
        self.untrusted.setData(x=[float(r["size_mb"]) for r in bad], y=[float(r["metric"]) for r in bad])
        shown_best = [r for r in best.values() if r in self.rows]
        self.best.setData(x=[float(r["size_mb"]) for r in shown_best], y=[float(r["metric"]) for r in shown_best])
        self.tips.set_points(tips)
        self.mark_selected(selected)
        # The marks are the plotted items themselves, so each looks exactly as drawn; the front and the
        # interval are the first group's (the others' differ only in colour, which the label says).
        each = " (in its task's colour)" if len(groups) > 1 else ""
        # Left out of a short chart's legend: the front and the bars are read off the plot (and named in
        # the tips), the selection is the table's.
        optional = [f"Pareto front{each}", f"95 % interval{each}", "selected"]
        if groups:
            first = next(iter(groups))
            legend += [(self._groups[first][1], optional[0]), (self.errors[first], optional[1])]
        if base:
            legend.append((self.baseline, "baseline (square)"))
        if shown_best:
            legend.append((self.best, "★ best within the budget"))
        legend.append((self.selected, "selected"))
        if bad:
            legend.append((self.untrusted, "untrained head / did not learn"))
        published = self.published.legend_entry()
        if published is not None:
            legend.append(published)
        self.set_legend(legend, optional=optional)
        names = {key[1] for key in groups}
        self.plot.setLabel("left", next(iter(names)) if len(names) == 1 else
                           "metric (a front per task)" if names else "metric")
        tasks = {key[0] for key in groups}
        what = f"{len(self.rows)} variant{'s' if len(self.rows) != 1 else ''}"
        self.set_title(f"{self.title}: {what}" + (f", {len(tasks)} tasks" if len(tasks) > 1 else ""))

    def mark_selected(self, selected: list[dict[str, Any]]) -> None:
        sel = [r for r in selected if r.get("size_mb") is not None and r.get("metric") is not None]
        self.selected.setData(x=[float(r["size_mb"]) for r in sel], y=[float(r["metric"]) for r in sel])


BACKEND_COLORS = {"torch": _BLUE, "onnxruntime": _ORANGE, "openvino": _PURPLE}


def timed_backends(rows: list[dict[str, Any]]) -> list[str]:
    """The backends any row was timed on (measure.backends), in first-seen order."""
    return list(dict.fromkeys(b for r in rows for b in (r.get("backend_latency") or {})))


class LatencyChart(Chart):
    """p50 bars over p90 bars, in the table's order; selected bars outlined. Rows timed on several
    backends (measure.backends) get one p50 bar per backend, grouped by variant, with a whisker for
    the 95 % interval and the fastest backend named in the tip."""

    MAX_BARS = 60
    x_axis_class = CategoryAxis
    empty_hint = "no variant among the rows shown was timed"

    def __init__(self) -> None:
        super().__init__(CHARTS["latency"], "variant", "ms per batch")
        self.p90_bars = pg.BarGraphItem(x=[], height=[], width=0.6, brush=pg.mkBrush(217, 130, 43, 120))
        self.p50_bars = pg.BarGraphItem(x=[], height=[], width=0.6, brush=pg.mkBrush(_BLUE))
        self.selected_bars = pg.BarGraphItem(x=[], height=[], width=0.7, brush=pg.mkBrush(None),
                                             pen=pg.mkPen(_GREEN, width=2.5))
        self.errors = pg.ErrorBarItem(x=np.zeros(0), y=np.zeros(0), pen=pg.mkPen("#222", width=1.5), beam=0.25)
        for item in (self.p90_bars, self.p50_bars, self.selected_bars, self.errors):
            self.plot.addItem(item)
        self.mixed = ""  # the warning when the bars were timed with different settings
        self.backend_bars: dict[str, pg.BarGraphItem] = {}
        self.whiskers = pg.ErrorBarItem(x=np.zeros(0), y=np.zeros(0), top=np.zeros(0), bottom=np.zeros(0), beam=0.05,
                                        pen=pg.mkPen("#555555", width=1))
        self.plot.addItem(self.whiskers)
        self.rows: list[dict[str, Any]] = []
        self.backends: list[str] = []
        self.grouped: list[tuple[float, str, dict[str, Any]]] = []  # (x, backend, row) of every backend bar

    def _bars_for(self, backend: str) -> pg.BarGraphItem:
        if backend not in self.backend_bars:
            color = BACKEND_COLORS.get(backend, SERIES_COLORS[len(self.backend_bars) % len(SERIES_COLORS)])
            self.backend_bars[backend] = pg.BarGraphItem(x=[], height=[], width=0.2, brush=pg.mkBrush(color))
            self.plot.addItem(self.backend_bars[backend])
        return self.backend_bars[backend]

    def update_rows(self, rows: list[dict[str, Any]], selected: list[dict[str, Any]]) -> None:
        timed = [r for r in rows if r.get("latency_p50_ms") is not None or r.get("backend_latency")]
        self.rows = timed[: self.MAX_BARS]
        self.backends = timed_backends(self.rows)
        xs = list(range(len(self.rows)))
        if self.backends:
            self._draw_grouped()
        else:
            self._draw_p50_p90(xs)
        axis = self.plot.getAxis("bottom")
        if len(self.rows) <= 12:  # the table's names while they fit, else its ID column
            branches = branch_points(self.rows)
            axis.set_names([_short(branch_tick(r, branches[r["variant"]]) if r.get("variant") in branches
                                   else variant_name(r), 14) for r in self.rows])
            self.plot.setLabel("bottom", "variant")
        else:
            axis.set_names([f"#{r['variant']}" for r in self.rows])
            self.plot.setLabel("bottom", "variant ID (the table's ID column)")
        more = f" (first {self.MAX_BARS} of {len(timed)})" if len(timed) > self.MAX_BARS else ""
        from workbench.results_model import latency_settings

        kinds = {latency_settings(r) for r in self.rows}
        self.mixed = "⚠ timed with different settings" if len(kinds) > 1 else ""
        what = "p50 by backend, 95 % interval" if self.backends else "p50 / p90"
        self.set_title(f"{self.title} {what}{more}" + (f" — {self.mixed}" if self.mixed else ""))
        self.mark_selected(selected)
        self.plot.enableAutoRange()
        if self.rows:
            self.plot.setXRange(-0.5, len(self.rows) - 0.5, padding=0)

    def _draw_p50_p90(self, xs: list[int]) -> None:
        p50 = [float(r["latency_p50_ms"]) for r in self.rows]
        p90 = [float(r.get("latency_p90_ms") or r["latency_p50_ms"]) for r in self.rows]
        self.p50_bars.setOpts(x=xs, height=p50, width=0.6)
        self.p90_bars.setOpts(x=xs, height=p90, width=0.6)
        spans = [(i, r, e) for i, r in enumerate(self.rows) if (e := latency_error(r)) is not None]
        text = QApplication.palette().color(QPalette.ColorRole.Text)
        self.errors.setData(x=np.array([i for i, _r, _e in spans], dtype=float),
                            y=np.array([float(r["latency_p50_ms"]) for _i, r, _e in spans], dtype=float),
                            bottom=np.array([e[0] for _i, _r, e in spans], dtype=float),
                            top=np.array([e[1] for _i, _r, e in spans], dtype=float), beam=0.25,
                            pen=pg.mkPen(text, width=1.5))
        for bars in self.backend_bars.values():
            bars.setOpts(x=[], height=[])
        self.whiskers.setData(x=np.zeros(0), y=np.zeros(0), top=np.zeros(0), bottom=np.zeros(0))
        self.grouped = []
        self.set_legend([(self.p50_bars, "p50 (median)"), (self.p90_bars, "p90"),
                         (self.errors, "p50 95 % interval"), (self.selected_bars, "selected")])
        self.tips.set_bars((i - 0.3, i + 0.3, 0.0, max(a, b), row_tip(r), r["variant"])
                           for i, (r, a, b) in enumerate(zip(self.rows, p50, p90, strict=True)))

    def _draw_grouped(self) -> None:
        self.p50_bars.setOpts(x=[], height=[])
        self.p90_bars.setOpts(x=[], height=[])
        self.errors.setData(x=np.zeros(0), y=np.zeros(0), top=np.zeros(0), bottom=np.zeros(0))  # whiskers instead
        width = 0.8 / len(self.backends)
        self.grouped = []
        tips = []
        wx, wy, top, bottom = [], [], [], []
        for k, backend in enumerate(self.backends):
            offset = -0.4 + width * (k + 0.5)
            xs, heights = [], []
            for i, r in enumerate(self.rows):
                p50, low, high = ((r.get("backend_latency") or {}).get(backend) or [None, None, None])[:3]
                if p50 is None:
                    continue
                x = i + offset
                xs.append(x)
                heights.append(float(p50))
                self.grouped.append((x, backend, r))
                fastest = " (fastest)" if r.get("fastest_backend") == backend else ""
                interval = f" [{low:.2f}, {high:.2f}]" if low is not None and high is not None else ""
                tips.append((x - width / 2, x + width / 2, 0.0, float(p50),
                             f"{backend}{fastest}: p50 {p50:.2f} ms{interval}\n{row_tip(r)}", r["variant"]))
                if low is not None and high is not None:
                    wx.append(x)
                    wy.append(float(p50))
                    top.append(float(high) - float(p50))
                    bottom.append(float(p50) - float(low))
            self._bars_for(backend).setOpts(x=xs, height=heights, width=width * 0.9)
        for backend, bars in self.backend_bars.items():
            if backend not in self.backends:
                bars.setOpts(x=[], height=[])
        self.whiskers.setData(x=np.array(wx), y=np.array(wy), top=np.array(top), bottom=np.array(bottom))
        self.tips.set_bars(tips)
        self.set_legend([*((self.backend_bars[b], f"{b} p50") for b in self.backends),
                         *([(self.whiskers, "95 % interval")] if wx else []), (self.selected_bars, "selected")])

    def mark_selected(self, selected: list[dict[str, Any]]) -> None:
        ids = {r.get("variant") for r in selected}
        sel = [(i, r) for i, r in enumerate(self.rows) if r.get("variant") in ids]
        if self.backends:
            tallest = [max(v[0] for v in (r.get("backend_latency") or {}).values() if v and v[0] is not None)
                       if r.get("backend_latency") else 0.0 for _, r in sel]
            self.selected_bars.setOpts(x=[i for i, _ in sel], width=0.9, height=tallest)
            return
        self.selected_bars.setOpts(x=[i for i, _ in sel], width=0.7,
                                   height=[float(r.get("latency_p90_ms") or r["latency_p50_ms"]) for _, r in sel])


def path_to(rows: list[dict[str, Any]], end: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The variants from the baseline to ``end`` (default: the run's last variant), following parents.

    A sweep makes the run a tree; the step chart shows one branch of it, in chain order.
    """
    if not rows:
        return []
    by_id = {r["variant"]: r for r in rows}
    node: dict[str, Any] | None = end if end is not None else rows[-1]
    path = []
    while node is not None and len(path) <= len(rows):
        path.append(node)
        node = by_id.get(node.get("parent"))
    return path[::-1]


class StepsChart(Chart):
    """One branch of one run, step by step: metric, size and latency as % of its baseline."""

    SERIES = (("metric", "pct_baseline", _BLUE, "o"), ("size", "size_mb", _GREEN, "s"),
              ("latency p50", "latency_p50_ms", _PURPLE, "t"))
    x_axis_class = CategoryAxis
    empty_hint = "no run among the rows shown"

    def __init__(self) -> None:
        super().__init__(CHARTS["steps"], "step", "% of baseline")
        self.items = {}
        for name, _key, color, symbol in self.SERIES:
            self.items[name] = pg.PlotDataItem(pen=pg.mkPen(color, width=2), symbol=symbol, symbolBrush=color,
                                               symbolPen=pg.mkPen(None))
            self.plot.addItem(self.items[name])
        self.plot.addLine(y=100, pen=pg.mkPen("#999", style=Qt.PenStyle.DashLine))
        self.set_legend([(self.items[n], n) for n, *_ in self.SERIES])
        self.rows: list[dict[str, Any]] = []

    def update_rows(self, rows: list[dict[str, Any]], end: dict[str, Any] | None) -> None:
        """``rows``: one run's rows; ``end``: the variant whose branch to show (default: the last)."""
        self.rows = path = path_to(rows, end)
        base = next((r for r in path if r.get("step") == 0), path[0] if path else None)
        tips: list[tuple[float, float, str, int | None]] = []
        for name, key, _color, _symbol in self.SERIES:
            xs, ys = [], []
            for i, r in enumerate(path):
                if key == "pct_baseline":
                    value = r.get("pct_baseline")
                elif base and r.get(key) is not None and base.get(key):
                    value = 100.0 * float(r[key]) / float(base[key])
                else:
                    value = None
                if value is not None:
                    xs.append(i)
                    ys.append(float(value))
                    tips.append((i, float(value), f"after {variant_name(r)}: {name} {value:.1f} % of the baseline's"
                                 f"\n{row_tip(r)}", r["variant"]))
            self.items[name].setData(xs, ys)
        self.tips.set_points(tips)
        axis = self.plot.getAxis("bottom")
        axis.set_names([_short(variant_name(r), 16) for r in path] if len(path) <= 12 else [])
        if path:  # half a step of room at each end, so the first and last names are shown
            self.plot.setXRange(-0.5, len(path) - 0.5, padding=0)
        self.set_title(f"{self.title}, run {path[0].get('run')} (% of baseline)" if path else self.title)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def field_label(step_id: str, name: str) -> str:
    """A config field as the step editor names it ('Training subset' for finetune's train_size), with
    its unit when the label does not say it; an unknown step or field is shown as its name."""
    from core.steps import get_step

    try:
        metas = {f.name: meta for f, meta, _elem, _is_list in get_step(step_id).config_cls.fields_meta()}
    except ConfigError:
        metas = {}
    meta = metas.get(name)
    if meta is None:
        return name.replace("_", " ")
    return meta.label + (f" in {meta.unit}" if meta.unit and meta.unit.lower() not in meta.label.lower() else "")


@dataclass
class SweptParameter:
    """One step's config field that took two or more values among the rows: one x axis."""

    step_id: str
    name: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.step_id}:{self.name}"

    @property
    def values(self) -> set[float]:
        return {float(r["swept"][self.name]) for r in self.rows}

    @property
    def label(self) -> str:
        return f"{field_label(self.step_id, self.name)} ({step_title(self.step_id)[0]})"


def swept_parameters(rows: list[dict[str, Any]]) -> list[SweptParameter]:
    """The numeric fields the rows were swept over, most distinct values first (then in the rows'
    order). A field with one value (a one-value list in the recipe) is no sweep: nothing to plot."""
    found: dict[tuple[str, str], SweptParameter] = {}
    for r in rows:
        sweep = r.get("swept")
        if not isinstance(sweep, dict) or r.get("metric") is None:
            continue
        for name, value in sweep.items():
            if _number(value):
                step_id = str(r.get("step_id") or "")
                found.setdefault((step_id, name), SweptParameter(step_id, name)).rows.append(r)
    swept = [p for p in found.values() if len(p.values) > 1]
    return sorted(swept, key=lambda p: -len(p.values))  # stable: ties keep the rows' order


class SweepChart(Chart):
    """The metric against one swept parameter at a time: one x axis never holds two parameters (a
    train size of 300 and pruning amounts of 0.3 and 0.6 made the pruning sweep a vertical line at 0).
    When several were swept a chooser above the plot picks the one on x, at first the one with the
    most values; one curve per task (and run, and the values the variant's other swept fields and its
    ancestors' took), so each curve varies only the parameter on x."""

    empty_hint = "no step's setting took two or more values among the rows shown"

    def __init__(self) -> None:
        super().__init__(CHARTS["sweeps"], "swept value", "metric")
        self._items: dict[str, pg.PlotDataItem] = {}
        self.parameters: list[SweptParameter] = []
        self.parameter: SweptParameter | None = None
        self._chosen_key: str | None = None  # the user's choice, kept while it is among the sweeps
        self._rows: list[dict[str, Any]] = []
        # The chooser sits in a strip above the scene (the view's top margin): never over the data,
        # and not in an export, whose x axis names the parameter anyway.
        self.chooser_bar = QWidget(self)
        bar = QHBoxLayout(self.chooser_bar)
        bar.setContentsMargins(6, 3, 6, 0)
        bar.addWidget(QLabel("x axis:"))
        self.chooser = QComboBox()
        self.chooser.setObjectName("sweepParameter")
        # As wide as its longest entry, narrower (cut) in a narrow pane rather than wider than the chart.
        self.chooser.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.chooser.setMinimumContentsLength(12)
        self.chooser.setToolTip("Which swept setting to plot on x: the chart plots one at a time, "
                                "so values of different settings never share an axis")
        bar.addWidget(self.chooser, 1)
        bar.addStretch(0)
        self.chooser.currentIndexChanged.connect(self._chosen)
        self.chooser_bar.hide()

    def _chosen(self, index: int) -> None:
        if 0 <= index < len(self.parameters):
            self._chosen_key = self.parameters[index].key
            self._draw(self.parameters[index])

    def update_rows(self, rows: list[dict[str, Any]]) -> None:
        self._rows = rows
        self.parameters = swept_parameters(rows)
        keys = [p.key for p in self.parameters]
        index = keys.index(self._chosen_key) if self._chosen_key in keys else 0
        self.chooser.blockSignals(True)
        self.chooser.clear()
        entries = [f"{p.label} — {len(p.values)} values" for p in self.parameters]
        self.chooser.addItems(entries)
        fm = self.chooser.fontMetrics()
        self.chooser.setMaximumWidth(max((fm.horizontalAdvance(e) for e in entries), default=0) + 48)
        self.chooser.setCurrentIndex(index if self.parameters else -1)
        self.chooser.blockSignals(False)
        self.chooser_bar.setVisible(len(self.parameters) > 1)
        self._fit_view()
        self._draw(self.parameters[index] if self.parameters else None)

    def _context(self, row: dict[str, Any], parameter: SweptParameter, by_id: dict[Any, dict[str, Any]],
                 runs: int) -> str:
        """What else sets this variant apart: its task (and run), its step's other swept values and those
        of the variants it was made from."""
        parts = [" · ".join(str(v) for v in (row.get("task"), row.get("metric_name")) if v)]
        parts += [f"run {row.get('run')}"] if runs > 1 else []
        own = [(row, k, v) for k, v in (row.get("swept") or {}).items() if k != parameter.name]
        up, seen = by_id.get(row.get("parent")), 0
        while up is not None and seen <= len(by_id):
            own += [(up, k, v) for k, v in (up.get("swept") or {}).items()]
            up, seen = by_id.get(up.get("parent")), seen + 1
        parts += [f"{field_label(str(r.get('step_id') or ''), k)} {v}" for r, k, v in own]
        return " · ".join(parts)

    def _draw(self, parameter: SweptParameter | None) -> None:
        self.parameter = parameter
        curves: dict[str, list[tuple[float, float, dict[str, Any]]]] = defaultdict(list)
        if parameter is not None:
            by_id = {r.get("variant"): r for r in self._rows}
            runs = len({r.get("run") for r in parameter.rows})
            for r in parameter.rows:
                curves[self._context(r, parameter, by_id, runs)].append(
                    (float(r["swept"][parameter.name]), float(r["metric"]), r))
        for name in [n for n in self._items if n not in curves]:  # drop curves that vanished
            self.plot.removeItem(self._items.pop(name))
        tips: list[tuple[float, float, str, int | None]] = []
        label = field_label(parameter.step_id, parameter.name) if parameter is not None else ""
        for k, (name, pts) in enumerate(sorted(curves.items())):
            pts.sort(key=lambda p: p[0])
            item = self._items.get(name)
            if item is None:  # created once per curve, then fed with setData
                color = SERIES_COLORS[k % len(SERIES_COLORS)]
                item = pg.PlotDataItem(pen=pg.mkPen(color, width=2), symbol="o", symbolBrush=color,
                                       symbolPen=pg.mkPen(None))
                self.plot.addItem(item)
                self._items[name] = item
            item.setData([p[0] for p in pts], [p[1] for p in pts])
            tips += [(x, y, f"{label} = {x:g}: {r.get('metric_name') or 'metric'} {y:.4f}\n{row_tip(r)}",
                      r["variant"]) for x, y, r in pts]
        self.tips.set_points(tips)
        self.set_legend([(self._items[n], n) for n in sorted(self._items)])
        self.plot.setLabel("bottom", parameter.label if parameter is not None else "swept value")
        names = {r.get("metric_name") for r in parameter.rows} if parameter is not None else set()
        self.plot.setLabel("left", str(next(iter(names))) if len(names) == 1 and None not in names else "metric")
        self.plot.enableAutoRange()
        self.set_title(self.title if curves else f"{self.title} (no sweep among these variants)")

    def _fit_view(self) -> None:
        """The scene below the chooser's strip: pyqtgraph sizes it to the whole widget."""
        top = self.chooser_bar.sizeHint().height() if self.chooser_bar.isVisibleTo(self) else 0
        if self.viewportMargins().top() != top:
            self.setViewportMargins(0, top, 0, 0)
        self.chooser_bar.setGeometry(0, 0, self.width(), top)
        viewport = self.viewport().size()
        if self.range.size().toSize() != viewport:
            pg.GraphicsView.setRange(self, QRectF(0, 0, viewport.width(), viewport.height()), padding=0,
                                     disableAutoPixel=False)

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        if hasattr(self, "chooser_bar"):  # pyqtgraph resizes once before __init__ is done
            self._fit_view()


class CountAxis(pg.AxisItem):
    """An axis of counts (optimizer steps): ticks only at whole numbers, however far it is zoomed in."""

    def tickSpacing(self, minVal: float, maxVal: float, size: float) -> list[tuple[float, float]]:
        whole = [(spacing, offset) for spacing, offset in super().tickSpacing(minVal, maxVal, size) if spacing >= 1]
        return whole or [(1.0, 0.0)]


class CurvesChart(Chart):
    """Training curves of one variant in one compact plot: loss (and any evaluation, dashed with dots) on
    the left axis, the learning rate (dotted) on the right; a colour for each series of each phase. Fed
    live from Curve events, or from the curves stored with the variant."""

    x_axis_class = CountAxis

    def __init__(self) -> None:
        super().__init__(CHARTS["curves"], "optimizer step", "loss; held-out score dashed", legend_columns=4)
        self.lr_view = pg.ViewBox()
        self.plot.showAxis("right")
        self.plot.scene().addItem(self.lr_view)
        right = self.plot.getAxis("right")
        right.linkToView(self.lr_view)
        right.setLabel("lr")  # short: the SI prefix ("x1e-05") is appended and a long label was cut off
        right.enableAutoSIPrefix(True)
        self.lr_view.setXLink(self.plot)
        self.plot.vb.sigResized.connect(self._sync_views)
        self.lr_tips = HoverTips(self.lr_view)
        self.add_tips(self.lr_tips)
        self.data: dict[str, dict[str, list[list[float]]]] = {}
        self._items: dict[tuple[str, str], pg.PlotDataItem] = {}
        self.subject = ""
        self.why = ""  # why nothing is shown, as the title says
        self.reset("select one variant of a training step")

    def _sync_views(self) -> None:
        self.lr_view.setGeometry(self.plot.vb.sceneBoundingRect())
        self.lr_view.linkedViewChanged(self.plot.vb, self.lr_view.XAxis)

    def _view_for(self, series: str) -> tuple[Any, HoverTips]:
        return (self.lr_view, self.lr_tips) if series == "lr" else (self.plot, self.tips)

    def reset(self, why: str = "") -> None:
        self.data = {}
        for (_phase, series), item in self._items.items():
            self._view_for(series)[0].removeItem(item)
        self._items = {}
        for tips in (self.tips, self.lr_tips):
            tips.set_points([])
        self.set_legend([])
        self.subject = self.why = why
        self.set_title(f"{self.title}: {why}" if why else self.title)

    @property
    def empty_hint(self) -> str:  # type: ignore[override]
        return self.why or "the variant shown has no training curves"

    def set_curves(self, curves: dict[str, dict[str, list[list[float]]]], subject: str) -> None:
        """Show stored curves ({phase: {series: [[step, value], ...]}}) of ``subject``."""
        self.reset()
        self.subject = subject
        for phase, series in (curves or {}).items():
            for name, points in series.items():
                for step, value in points:
                    self._append(phase, name, step, value)
        self._redraw()

    def add_point(self, phase: str, series: str, step: int, value: float, subject: str) -> None:
        """One live point (a Curve event) of ``subject``; a new subject starts afresh."""
        if subject != self.subject:
            self.reset()
            self.subject = subject
        self._append(phase, series, step, value)
        self._redraw([(phase, series)])

    def _append(self, phase: str, series: str, step: float, value: float) -> None:
        self.data.setdefault(phase, {}).setdefault(series, []).append([float(step), float(value)])

    def _redraw(self, only: list[tuple[str, str]] | None = None) -> None:
        phases = list(self.data)
        keys = only or [(ph, s) for ph in phases for s in self.data[ph]]
        new_item = False
        for phase, series in keys:
            points = self.data[phase][series]
            item = self._items.get((phase, series))
            if item is None:
                # A colour for each series of each phase (one colour for a phase's three series read as one
                # line), a line style for each series, and dots on the few held-out scorings.
                rank = {"loss": 0, "lr": 2}.get(series, 1)
                color = SERIES_COLORS[(3 * phases.index(phase) + rank) % len(SERIES_COLORS)]
                style = {"loss": Qt.PenStyle.SolidLine, "lr": Qt.PenStyle.DotLine}.get(series, Qt.PenStyle.DashLine)
                marks = {} if rank != 1 else {"symbol": "o", "symbolSize": 6, "symbolBrush": color, "symbolPen": color}
                item = pg.PlotDataItem(pen=pg.mkPen(color, width=2, style=style), **marks)
                self._view_for(series)[0].addItem(item)
                self._items[(phase, series)] = item
                new_item = True
            item.setData([p[0] for p in points], [p[1] for p in points])
        # Tips from every point (at most a few thousand: the engine keeps 400 per series).
        for tips, lr in ((self.tips, False), (self.lr_tips, True)):
            tips.set_points([(x, y, f"{phase} · {series}\nstep {x:g}: {y:.4g}", None)
                             for phase in phases for series, points in self.data[phase].items()
                             if (series == "lr") == lr for x, y in points])
        if new_item:
            self.set_legend([(item, f"{phase} · {series}") for (phase, series), item in self._items.items()])
        self._sync_views()
        self.set_title(f"{self.title}: {self.subject}" if self.subject else self.title)


def _short(label: Any, n: int = 14) -> str:
    text = str(label or "")
    return text if len(text) <= n else text[: n - 1] + "…"


class Charts(QTabWidget):
    """The result charts as tabs (each gets the whole pane); ``update_rows`` redraws them from the
    rows the results view shows."""

    variantClicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setDocumentMode(True)
        self.scatter = ScatterChart()
        self.latency = LatencyChart()
        self.steps = StepsChart()
        self.sweeps = SweepChart()
        self.curves = CurvesChart()
        tips = {
            "scatter": "Task metric against MB on disk; each task and metric has its own Pareto front",
            "latency": "Median (p50) and 90th-percentile latency of one batch, in the table's order",
            "steps": "One run's chain, step by step, as % of its baseline",
            "sweeps": "The metric against each swept value",
            "curves": "Loss, learning rate and evaluation during training steps of the selected variant",
        }
        for name, chart in self.charts().items():
            chart.setObjectName(f"chart_{name}")
            self.addTab(chart, CHARTS[name])
            self.setTabToolTip(self.count() - 1, tips[name])
            chart.variantClicked.connect(self.variantClicked)
        self.rows: list[dict[str, Any]] = []

    def charts(self) -> dict[str, Chart]:
        return {"scatter": self.scatter, "latency": self.latency, "steps": self.steps, "sweeps": self.sweeps,
                "curves": self.curves}

    def update_rows(self, rows: list[dict[str, Any]], selected: list[dict[str, Any]] | None = None,
                    budget: float | None = None) -> dict[tuple[str, str], dict[str, Any]]:
        """Redraw every chart from ``rows``; returns the best variant of each (task, metric)."""
        self.rows = rows
        selected = selected or []
        best = best_within_budget(rows, budget) if budget is not None else {}
        self.scatter.update_rows(rows, selected, best)
        self.latency.update_rows(rows, selected)
        self.update_steps(selected)
        self.sweeps.update_rows(rows)
        return best

    def update_steps(self, selected: list[dict[str, Any]]) -> None:
        """The step chart follows the last selected variant's run and branch, else the newest run."""
        end = selected[-1] if selected else None
        run = end.get("run") if end is not None else max((r.get("run") or 0 for r in self.rows), default=None)
        if end is not None and end.get("step") == 0:
            end = None  # the baseline starts every branch: show the run's last one
        self.steps.update_rows([r for r in self.rows if r.get("run") == run], end)

    def mark_selected(self, selected: list[dict[str, Any]]) -> None:
        self.scatter.mark_selected(selected)
        self.latency.mark_selected(selected)
        self.update_steps(selected)

    def restyle(self) -> None:
        for chart in self.charts().values():
            chart.restyle()

    # --- export -------------------------------------------------------------------------------
    def export(self, name: str, path: Path) -> None:
        """PNG or SVG by the file suffix: the chart with its legend; a PNG at a fixed size (see
        :func:`export_png`), an SVG as shown. An empty chart is refused (:class:`EmptyChartError`):
        a file of axes and no data reads as a result."""
        chart = self.charts()[name]
        reason = chart.empty_reason()
        if reason:
            raise EmptyChartError(f"{reason}, so nothing was written")
        if path.suffix.lower() == ".svg":
            export_svg(chart, path)
        else:
            export_png(chart, path)


class EmptyChartError(OSError):
    """An export refused because the chart draws no data. An OSError, so the window's export (which
    warns "Cannot write <file>: <reason>" on any OSError) says why and writes nothing."""

    def __init__(self, reason: str) -> None:
        super().__init__(0, reason)


# A PNG is laid out at this size whatever the pane's, then drawn at EXPORT_PIXELS: a narrow pane made
# a 1000x1532 image of huge axis text, a small legend and a blank band. 4:3 drawing scale: text and
# marks as on a 1200-pixel screen, sharp on a 1600-pixel page.
EXPORT_LAYOUT = QSize(1200, 750)
EXPORT_PIXELS = QSize(1600, 1000)


@contextmanager
def laid_out_at(chart: Chart, size: QSize) -> Iterator[None]:
    """The chart's scene laid out at ``size`` for the length of an export, then as it was. Only the
    scene's items are resized (synchronously, with no event loop in between), so the widget on screen
    never changes."""
    ci = chart.ci
    geometry = ci.geometry()
    chart.fit_legend(size.width(), size.height())
    ci.setGeometry(QRectF(0, 0, size.width(), size.height()))
    try:
        yield
    finally:
        chart.fit_legend(chart.width(), chart.height())
        ci.setGeometry(geometry)


def export_png(chart: Chart, path: Path) -> None:
    """The chart (plot, axes, legend) as an EXPORT_PIXELS PNG laid out at EXPORT_LAYOUT, on the chart's
    background."""
    from pyqtgraph import exporters

    with laid_out_at(chart, EXPORT_LAYOUT):
        exporter = exporters.ImageExporter(chart.ci)
        exporter.parameters()["width"] = EXPORT_PIXELS.width()
        exporter.parameters()["height"] = EXPORT_PIXELS.height()
        image = exporter.export(toBytes=True)
    if not image.save(str(path)):
        raise OSError(0, "the image could not be saved there (folder missing or read-only?)")


_SVG_TOKEN = re.compile(r"[A-Za-z]|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?,[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _pairs_path(d: str) -> str:
    """Path data as pyqtgraph's SVG post-processing reads it: one 'Cx,y' or 'x,y' token per point.
    Qt 6.12 writes closing 'Z' commands it cannot parse; a closed shape here ends where it began
    (Qt's ellipses and symbols), so dropping them draws the same."""
    out, command = [], ""
    for token in _SVG_TOKEN.findall(d):
        if token[0].isalpha():
            command = "" if token in "Zz" else token
            continue
        out.append(command + token)
        command = ""
    return " ".join(out)


@contextmanager
def _qt612_svg_paths() -> Iterator[None]:
    """pyqtgraph 0.14's SVG exporter moves every point into page coordinates (so strokes and
    legends land where they are drawn, in any SVG reader) but stops at Qt 6.12's path syntax;
    feed it the syntax it reads, for the length of one export."""
    import importlib

    module = importlib.import_module("pyqtgraph.exporters.SVGExporter")
    original = module.correctCoordinates

    def correct(node: Any, defs: Any, item: Any, options: Any) -> Any:
        for rect in list(node.getElementsByTagName("rect")):  # bars: moved like any other shape
            try:
                x, y, w, h = (float(rect.getAttribute(a)) for a in ("x", "y", "width", "height"))
            except ValueError:
                continue  # a background in percent: nothing to move
            shape = rect.ownerDocument.createElement("path")
            for name, value in rect.attributes.items():
                if name not in ("x", "y", "width", "height"):
                    shape.setAttribute(name, value)
            shape.setAttribute("d", f"M{x},{y} L{x + w},{y} L{x + w},{y + h} L{x},{y + h} L{x},{y}")
            rect.parentNode.replaceChild(shape, rect)
        for element in node.getElementsByTagName("path"):
            element.setAttribute("d", _pairs_path(element.getAttribute("d")))
        return original(node, defs, item, options)

    module.correctCoordinates = correct
    try:
        yield
    finally:
        module.correctCoordinates = original


def export_svg(chart: QWidget, path: Path) -> None:
    """The chart (plot, axes, legend) as SVG through pyqtgraph's exporter; Qt's own SVG
    generator only if that fails (its strokes rely on 'non-scaling-stroke', which ImageMagick
    and librsvg ignore). Then made plain for simple readers (see :func:`_plain_svg`)."""
    from pyqtgraph import exporters

    try:
        with _qt612_svg_paths():
            exporters.SVGExporter(chart.scene()).export(str(path))
    except (ValueError, IndexError):
        _render_svg(chart, path)
        return
    # Clipping matters only when some data lies outside the visible range (the user zoomed in).
    keep_clip = any(not item.vb.viewRect().adjusted(-1e-9, -1e-9, 1e-9, 1e-9).contains(item.vb.childrenBoundingRect())
                    for item in getattr(chart, "ci", chart).items if isinstance(item, pg.PlotItem))
    background = chart.backgroundBrush().color()
    path.write_text(_plain_svg(path.read_text(encoding="utf-8"), background, keep_clip=keep_clip),
                    encoding="utf-8")


def _blend(color: str, alpha: float, background: Any) -> str:
    c = pg.mkColor(color)
    mix = [round(alpha * v + (1 - alpha) * b) for v, b in
           ((c.red(), background.red()), (c.green(), background.green()), (c.blue(), background.blue()))]
    return "#{:02x}{:02x}{:02x}".format(*mix)


def _plain_svg(text: str, background: Any, *, keep_clip: bool) -> str:
    """Translucent colours blended with the chart's background (ImageMagick's own SVG reader
    ignores stroke-opacity and draws the grid black), and, when the plot shows all its data,
    no clip paths (which that reader cannot draw at all). Browsers, librsvg and Qt draw the
    result as before."""
    import xml.dom.minidom as minidom

    doc = minidom.parseString(text)
    for element in doc.getElementsByTagName("*"):
        for paint, opacity in (("stroke", "stroke-opacity"), ("fill", "fill-opacity")):
            value = element.getAttribute(opacity)
            color = element.getAttribute(paint)
            if value and color.startswith("#"):
                alpha = float(value)
                if alpha < 1:
                    element.setAttribute(paint, _blend(color, alpha, background))
                    element.setAttribute(opacity, "1")
        if not keep_clip and element.hasAttribute("clip-path"):
            element.removeAttribute("clip-path")
    return doc.toxml()


def _render_svg(widget: QWidget, path: Path) -> None:
    """Qt's SVG generator on the widget as drawn. pyqtgraph 0.14's own SVG exporter cannot parse
    the path syntax Qt 6.12 writes; and the generator's resolution must be the widget's, or
    pyqtgraph's pixel-sized items (points, ticks) land elsewhere than the axes (issue 17)."""
    from PySide6.QtCore import QRect, QSize
    from PySide6.QtGui import QPainter
    from PySide6.QtSvg import QSvgGenerator

    generator = QSvgGenerator()
    generator.setFileName(str(path))
    size = widget.size()
    generator.setSize(QSize(size.width(), size.height()))
    generator.setViewBox(QRect(0, 0, size.width(), size.height()))
    generator.setResolution(widget.logicalDpiX())
    generator.setTitle(getattr(widget, "title", "chart"))
    painter = QPainter(generator)
    try:
        widget.render(painter)
    finally:
        painter.end()
