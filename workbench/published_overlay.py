"""The published systems' reported results on the metric-vs-size chart: a layer the user can switch
off, labelled "published (not measured here)". Data and sources: core.published.

The papers give a size ratio against their start and a metric change; only the points reported on
the run's task are drawn (SQuAD 2.0's on SQuAD, the TinyBERT study's on its GLUE tasks), each placed against
the reference variant of the run shown (the latest run when all are shown): x = its MB x the ratio,
y = its metric + the change. Results the papers give without a metric change are listed in the
check box's tooltip, not drawn.
"""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg

from core.published import LABEL, OverlayPoint, overlay_points

_COLOUR = "#7f6a93"


def anchor(rows: list[dict[str, Any]], run_id: int | None = None) -> dict[str, Any] | None:
    """The row the points are placed against: the run's reference (or its baseline) with a size and a metric."""
    if not rows:
        return None
    run = run_id if run_id is not None else max(r["run"] for r in rows)
    mine = [r for r in rows if r.get("run") == run]
    reference = next((r.get("reference") for r in mine if r.get("reference") is not None), None)
    row = next((r for r in mine if r.get("variant") == reference), None) or next(
        (r for r in mine if r.get("step") == 0), None)
    if row is None or row.get("size_mb") is None or row.get("metric") is None:
        return None
    return row


def overlay_for(rows: list[dict[str, Any]], run_id: int | None = None) -> list[OverlayPoint]:
    """The points to draw for these result rows (dicts of core.store.ResultRow); [] without an anchor."""
    row = anchor(rows, run_id)
    if row is None:
        return []
    return overlay_points(float(row["size_mb"]), float(row["metric"]), str(row.get("task")))


class PublishedLayer:
    """Hollow diamonds on the metric-vs-size plot, with hover tips (through the chart's ``HoverTips``)
    naming the system, the result, what it is relative to and the source; ``set_visible`` switches
    the layer (points, tips and legend entry) off and on. The diamonds are drawn over the variants
    and wide enough to frame one: hollow, they hide no variant they land on (the chart's tip then
    names both)."""

    def __init__(self, plot: pg.PlotItem, tips: Any) -> None:
        self.points: list[OverlayPoint] = []
        self.visible = True
        self.tips = tips
        self.item = pg.ScatterPlotItem(size=18, symbol="d", pen=pg.mkPen(_COLOUR, width=2), brush=pg.mkBrush(None))
        self.item.setZValue(11)  # over every variant mark (10 and below), outline only
        self.plot = plot  # the item is in the plot only while it shows: an empty one upsets auto-range

    def update(self, rows: list[dict[str, Any]], run_id: int | None = None) -> None:
        self.points = overlay_for(rows, run_id)
        self._show()

    def set_visible(self, visible: bool) -> None:
        self.visible = visible
        self._show()

    @property
    def shown(self) -> bool:
        return self.visible and bool(self.points)

    def _show(self) -> None:
        # Hidden means gone from the axes' range too, not just undrawn.
        shown = self.points if self.shown else []
        self.item.setData(x=[p.x_mb for p in shown], y=[p.y_metric for p in shown])
        in_plot = self.item.scene() is not None
        if self.shown and not in_plot:
            self.plot.addItem(self.item)
        elif not self.shown and in_plot:
            self.plot.removeItem(self.item)
        self.item.setVisible(self.shown)
        self.tips.set_points([(p.x_mb, p.y_metric, p.tip, None) for p in self.points] if self.shown else [])

    def legend_entry(self) -> tuple[Any, str] | None:
        """The legend's sample (the plotted item: the same mark) and label while the layer shows; what
        is not drawn is said in its tip."""
        if not self.shown:
            return None
        return self.item, LABEL
