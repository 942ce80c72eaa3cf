"""pyqtgraph charts of the variants: metric vs size with the Pareto front, latency bars,
a per-step waterfall for one run, and sweep curves. Items are created once and fed with
``setData`` so a redraw with 1,000 variants stays cheap."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6.QtWidgets import QGridLayout, QWidget

# Antialiasing off: with 1,000 points it costs more than it shows; lines stay 2 px wide.
pg.setConfigOptions(antialias=False, background="w", foreground="#333")

_BLUE = "#3b7dd8"
_ORANGE = "#d9822b"
_GREEN = "#2f9e5b"
_RED = "#c0392b"
_PURPLE = "#8a4fd1"


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats (size at most as large and metric at least as high).

    Sorted by size; ties in size keep only the best metric. O(n log n).
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def _plot(title: str, x: str, y: str) -> pg.PlotWidget:
    w = pg.PlotWidget()
    item = w.getPlotItem()
    item.setTitle(title, size="10pt")
    item.setLabel("bottom", x)
    item.setLabel("left", y)
    item.showGrid(x=True, y=True, alpha=0.2)
    for side in ("left", "bottom"):
        item.getAxis(side).enableAutoSIPrefix(False)  # "accuracy (x0.001)" reads worse than 0.55
    w.setMinimumSize(200, 160)
    return w


class Charts(QWidget):
    """Four charts in a grid; ``update_rows`` redraws them from normalized result rows."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.scatter_plot = _plot("Metric vs size (Pareto front)", "MB on disk", "metric")
        self.latency_plot = _plot("Latency p50 / p90", "variant", "ms")
        self.waterfall_plot = _plot("After each step (% of baseline)", "step", "% of baseline")
        self.sweep_plot = _plot("Sweeps: metric vs swept value", "value", "metric")
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(self.scatter_plot, 0, 0)
        grid.addWidget(self.latency_plot, 0, 1)
        grid.addWidget(self.waterfall_plot, 1, 0)
        grid.addWidget(self.sweep_plot, 1, 1)

        sp = self.scatter_plot.getPlotItem()
        sp.addLegend(offset=(-10, 10))
        self.points = pg.ScatterPlotItem(size=8, pen=pg.mkPen(None), brush=pg.mkBrush(59, 125, 216, 150),
                                         name="variants", hoverable=True, tip=self._tip)
        self.front = pg.PlotDataItem(pen=pg.mkPen(_ORANGE, width=2), symbol="o", symbolSize=6,
                                     symbolBrush=_ORANGE, name="Pareto front")
        self.baseline = pg.ScatterPlotItem(size=16, symbol="star", pen=pg.mkPen("k"), brush=pg.mkBrush(_RED),
                                           name="baseline")
        self.selected = pg.ScatterPlotItem(size=14, symbol="o", pen=pg.mkPen(_GREEN, width=2),
                                           brush=pg.mkBrush(None), name="selected")
        for item in (self.points, self.front, self.baseline, self.selected):
            sp.addItem(item)

        lp = self.latency_plot.getPlotItem()
        lp.addLegend(offset=(-10, 10))
        self.p90_bars = pg.BarGraphItem(x=[], height=[], width=0.6, brush=pg.mkBrush(217, 130, 43, 120), name="p90")
        self.p50_bars = pg.BarGraphItem(x=[], height=[], width=0.6, brush=pg.mkBrush(_BLUE), name="p50")
        lp.addItem(self.p90_bars)
        lp.addItem(self.p50_bars)

        wp = self.waterfall_plot.getPlotItem()
        wp.addLegend(offset=(-10, 10))
        self.wf_metric = pg.PlotDataItem(pen=pg.mkPen(_BLUE, width=2), symbol="o", symbolBrush=_BLUE, name="metric")
        self.wf_size = pg.PlotDataItem(pen=pg.mkPen(_GREEN, width=2), symbol="s", symbolBrush=_GREEN, name="size")
        self.wf_latency = pg.PlotDataItem(pen=pg.mkPen(_PURPLE, width=2), symbol="t", symbolBrush=_PURPLE,
                                          name="latency p50")
        for item in (self.wf_metric, self.wf_size, self.wf_latency):
            wp.addItem(item)
        wp.addLine(y=100, pen=pg.mkPen("#999", style=pg.QtCore.Qt.PenStyle.DashLine))

        self.sweep_legend = self.sweep_plot.getPlotItem().addLegend(offset=(-10, 10))
        self._sweep_items: dict[str, pg.PlotDataItem] = {}
        self._rows: list[dict[str, Any]] = []
        self._scatter_rows: list[dict[str, Any]] = []

    def _tip(self, x: float, y: float, data: Any) -> str:
        return f"{data}\n{x:.2f} MB, metric {y:.4f}" if data else f"{x:.2f} MB, metric {y:.4f}"

    def plots(self) -> dict[str, pg.PlotWidget]:
        return {"scatter": self.scatter_plot, "latency": self.latency_plot,
                "waterfall": self.waterfall_plot, "sweep": self.sweep_plot}

    # --- redraw -------------------------------------------------------------------------------
    def update_rows(self, rows: list[dict[str, Any]], run_id: int | None = None,
                    selected: list[dict[str, Any]] | None = None) -> None:
        self._rows = rows
        self._update_scatter(rows, selected or [])
        run_rows = [r for r in rows if run_id is None or r.get("run") == run_id]
        if run_id is None and rows:
            last = max(r["run"] for r in rows)
            run_rows = [r for r in rows if r["run"] == last]
        self._update_latency(run_rows)
        ends = [r for r in (selected or []) if r in run_rows]
        self._update_waterfall(run_rows, ends[-1] if ends else None)
        self._update_sweeps(rows)

    def _update_scatter(self, rows: list[dict[str, Any]], selected: list[dict[str, Any]]) -> None:
        pts = [r for r in rows if r.get("size_mb") is not None and r.get("metric") is not None]
        self._scatter_rows = pts
        xs = [float(r["size_mb"]) for r in pts]
        ys = [float(r["metric"]) for r in pts]
        self.points.setData(x=xs, y=ys, data=[f"run {r.get('run')}: {r.get('label')}" for r in pts])
        front = pareto_front(list(zip(xs, ys, strict=True)))
        self.front.setData([xs[i] for i in front], [ys[i] for i in front])
        base = [r for r in pts if r.get("step") == 0]
        self.baseline.setData(x=[float(r["size_mb"]) for r in base], y=[float(r["metric"]) for r in base])
        self.mark_selected(selected)
        metric = next((r.get("metric_name") for r in pts if r.get("metric_name")), None)
        self.scatter_plot.getPlotItem().setLabel("left", metric or "metric")

    def mark_selected(self, selected: list[dict[str, Any]]) -> None:
        sel = [r for r in selected if r.get("size_mb") is not None and r.get("metric") is not None]
        self.selected.setData(x=[float(r["size_mb"]) for r in sel], y=[float(r["metric"]) for r in sel])

    def _update_latency(self, rows: list[dict[str, Any]]) -> None:
        rows = [r for r in rows if r.get("latency_p50_ms") is not None]
        xs = list(range(len(rows)))
        self.p50_bars.setOpts(x=xs, height=[float(r["latency_p50_ms"]) for r in rows], width=0.6)
        self.p90_bars.setOpts(x=xs, height=[float(r.get("latency_p90_ms") or r["latency_p50_ms"]) for r in rows], width=0.6)
        axis = self.latency_plot.getPlotItem().getAxis("bottom")
        # Variant ids (as in the table): step labels overlap as soon as there are a few bars.
        axis.setTicks([[(i, str(r.get("variant"))) for i, r in enumerate(rows)]] if len(rows) <= 30 else None)
        self.latency_plot.getPlotItem().setLabel("bottom", "variant id")
        self.latency_plot.getPlotItem().setTitle(
            f"Latency p50 / p90 (run {rows[0].get('run')})" if rows else "Latency p50 / p90", size="10pt")
        self.latency_plot.getPlotItem().enableAutoRange()

    def _update_waterfall(self, rows: list[dict[str, Any]], end: dict[str, Any] | None = None) -> None:
        rows = path_to(rows, end)
        xs = list(range(len(rows)))

        def series(key: str, ratio_key: str | None = None) -> tuple[list[int], list[float]]:
            base = next((r for r in rows if r.get("step") == 0), rows[0] if rows else None)
            out_x, out_y = [], []
            for i, r in zip(xs, rows, strict=True):
                if ratio_key and r.get(ratio_key) is not None:
                    out_x.append(i)
                    out_y.append(float(r[ratio_key]))
                elif base and r.get(key) is not None and base.get(key):
                    out_x.append(i)
                    out_y.append(100.0 * float(r[key]) / float(base[key]))
            return out_x, out_y

        self.wf_metric.setData(*series("metric", "pct_baseline"))
        self.wf_size.setData(*series("size_mb"))
        self.wf_latency.setData(*series("latency_p50_ms"))
        axis = self.waterfall_plot.getPlotItem().getAxis("bottom")
        axis.setTicks([[(i, _short(_step_name(r), 12)) for i, r in enumerate(rows)]] if len(rows) <= 12 else None)
        self.waterfall_plot.getPlotItem().setTitle(
            f"After each step, run {rows[0].get('run')} (% of baseline)" if rows else
            "After each step (% of baseline)", size="10pt")

    def _update_sweeps(self, rows: list[dict[str, Any]]) -> None:
        curves: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for r in rows:
            sweep = r.get("swept")
            if isinstance(sweep, dict) and r.get("metric") is not None:
                for name, value in sweep.items():
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        curves[f"{r.get('step_id') or ''} {name}".strip()].append((float(value), float(r["metric"])))
        colors = [_BLUE, _ORANGE, _GREEN, _PURPLE, _RED]
        plot = self.sweep_plot.getPlotItem()
        for name in [n for n in self._sweep_items if n not in curves]:  # drop curves that vanished
            plot.removeItem(self._sweep_items.pop(name))
            self.sweep_legend.removeItem(name)
        for k, (name, pts) in enumerate(sorted(curves.items())):
            pts.sort()
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            item = self._sweep_items.get(name)
            if item is None:  # created once per curve, then fed with setData
                color = colors[k % len(colors)]
                item = pg.PlotDataItem(pen=pg.mkPen(color, width=2), symbol="o", symbolBrush=color, name=name)
                plot.addItem(item)
                self._sweep_items[name] = item
            item.setData(xs, ys)
        if not curves:
            self.sweep_plot.getPlotItem().setTitle("Sweeps: metric vs swept value (no sweep yet)", size="10pt")
        else:
            self.sweep_plot.getPlotItem().setTitle("Sweeps: metric vs swept value", size="10pt")

    # --- export -------------------------------------------------------------------------------
    def export(self, name: str, path: Path) -> None:
        """PNG or SVG by the file suffix, through pyqtgraph's exporters."""
        from pyqtgraph import exporters

        widget = self.plots()[name]
        item = widget.getPlotItem()
        if path.suffix.lower() == ".svg":
            try:
                exporters.SVGExporter(item).export(str(path))
            except ValueError:
                # pyqtgraph 0.14's SVG post-processing cannot parse the path syntax Qt 6.12 writes
                # ("x y" instead of "x,y"); Qt's own SVG generator renders the same scene.
                _render_svg(widget, path)
        else:
            exporter = exporters.ImageExporter(item)
            exporter.parameters()["width"] = max(800, int(item.width()))
            exporter.export(str(path))


def path_to(rows: list[dict[str, Any]], end: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The variants from the baseline to ``end`` (default: the run's last variant), following parents.

    A sweep makes the run a tree; the waterfall shows one branch of it, in chain order.
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


def _step_name(row: dict[str, Any]) -> str:
    """'prune 0.1' for a swept pruning step: the step's family and its swept values."""
    family = str(row.get("step_id") or row.get("label") or "").split(".")[0]
    values = " ".join(str(v) for v in (row.get("swept") or {}).values())
    return f"{family} {values}".strip()


def _short(label: Any, n: int = 14) -> str:
    text = str(label or "")
    return text if len(text) <= n else text[: n - 1] + "…"


def _render_svg(widget: pg.PlotWidget, path: Path) -> None:
    from PySide6.QtCore import QRect, QSize
    from PySide6.QtGui import QPainter
    from PySide6.QtSvg import QSvgGenerator

    generator = QSvgGenerator()
    generator.setFileName(str(path))
    size = widget.size()
    generator.setSize(QSize(size.width(), size.height()))
    generator.setViewBox(QRect(0, 0, size.width(), size.height()))
    generator.setTitle(widget.getPlotItem().titleLabel.text)
    painter = QPainter(generator)
    try:
        widget.render(painter)
    finally:
        painter.end()
