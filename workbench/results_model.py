"""Variant rows as a Qt table model, sortable and filterable through a QSortFilterProxyModel.

Rows are :class:`core.store.ResultRow` dicts: from :func:`workbench.store_client.results`, or
from a running worker's events (the same rows the CLI exports). Columns are read by name; a row
lacking one shows "—", and fields the table does not know are left alone. Task metrics besides
each row's headline metric (F1, Matthews, Spearman, ...) get columns of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtGui import QColor, QFont

from core.store.rows import OVER_BUDGET, flag_title


@dataclass(frozen=True)
class Column:
    key: str  # a ResultRow field, or "task_metrics.<name>"
    title: str
    fmt: str = ""  # format spec for numbers
    tip: str = ""

    def value(self, row: dict[str, Any]) -> Any:
        if self.key.startswith("task_metrics."):
            return (row.get("task_metrics") or {}).get(self.key.split(".", 1)[1])
        if self.key.startswith("backend_latency."):
            return (self.interval(row) or [None])[0]
        return row.get(self.key)

    def interval(self, row: dict[str, Any]) -> list[float | None] | None:
        """[p50, 95 % low, 95 % high] of a per-backend latency column; None for other columns."""
        if not self.key.startswith("backend_latency."):
            return None
        return (row.get("backend_latency") or {}).get(self.key.split(".", 1)[1])


COLUMNS: tuple[Column, ...] = (
    Column("run", "Run", "d", "The run that produced the variant"),
    Column("variant", "ID", "d", "Variant id: the charts' ticks, 'workbench-cli compare' and the folder names use it"),
    Column("label", "Variant", tip="The step after which this variant was measured (★ best within the budget, "
                                   "⚑ a warning, ↺ reused from the cache)"),
    Column("metric", "Metric", ".4f", "Task metric (primary) on the evaluation split"),
    Column("pct_baseline", "% of baseline", ".1f", "Metric as a percentage of the run's baseline"),
    Column("params", "Params", ",d", "Parameters, shared tensors counted once"),
    Column("nonzero_params", "Non-zeros", ",d", "Parameters that are not zero"),
    Column("size_mb", "MB on disk", ".2f", "Bytes of the reloadable artifact folder, in MB (10^6)"),
    Column("pct_smaller", "% smaller", ".1f", "Size saved against the run's baseline"),
    Column("latency_p50_ms", "p50 ms", ".2f", "Median latency of one batch"),
    Column("latency_p90_ms", "p90 ms", ".2f", "90th-percentile latency of one batch"),
    Column("speedup", "Speed-up", ".2f", "Baseline p50 / this p50, measured in the same run"),
)


def extra_metric_columns(rows: list[dict[str, Any]]) -> list[Column]:
    """A column per task metric that is not some row's headline metric, in first-seen order."""
    headline = {r.get("metric_name") for r in rows}
    names: list[str] = []
    for r in rows:
        for name in r.get("task_metrics") or {}:
            if name not in headline and name not in names:
                names.append(name)
    return [Column(f"task_metrics.{n}", n.replace("_", " "), ".4f", f"Task metric '{n}'") for n in names]


OVER_BUDGET_BACKGROUND = "#f6d5d1"  # light red, with dark text in both themes


def over_budget(row: dict[str, Any]) -> bool:
    """The recipe's accuracy budget flagged this variant: nothing after it ran."""
    return any(f.get("code") == OVER_BUDGET for f in row.get("flags") or ())


def backend_columns(rows: list[dict[str, Any]]) -> list[Column]:
    """With measure.backends: a p50 column per backend any row was timed on, then the fastest backend."""
    backends = list(dict.fromkeys(b for r in rows for b in (r.get("backend_latency") or {})))
    if not backends:
        return []
    return [*(Column(f"backend_latency.{b}", f"p50 ms {b}", ".2f",
                     f"Median latency of one batch on {b}, timed side by side with the other backends "
                     "(interleaved rounds, same threads and inputs); the tip shows its 95 % interval")
              for b in backends),
            Column("fastest_backend", "Fastest backend", tip="The backend with the lowest p50 for this variant")]


def columns_for(rows: list[dict[str, Any]]) -> list[Column]:
    return [*COLUMNS, *backend_columns(rows), *extra_metric_columns(rows)]


class ResultsModel(QAbstractTableModel):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.rows: list[dict[str, Any]] = []
        self.columns: list[Column] = list(COLUMNS)
        self.best_ids: set[int] = set()

    def set_rows(self, rows: list[dict[str, Any]]) -> None:
        self.beginResetModel()
        self.rows = list(rows)  # its own list: the view appends live rows to its list separately
        self.columns = columns_for(rows)
        self.endResetModel()

    def add_row(self, row: dict[str, Any]) -> None:
        """One variant a running worker has just committed."""
        columns = columns_for([*self.rows, row])
        if columns != self.columns:
            self.set_rows([*self.rows, row])
            return
        self.beginInsertRows(QModelIndex(), len(self.rows), len(self.rows))
        self.rows.append(row)
        self.endInsertRows()

    def set_best(self, ids: set[int]) -> None:
        if ids != self.best_ids:
            self.best_ids = ids
            if self.rows:
                self.dataChanged.emit(self.index(0, 0), self.index(len(self.rows) - 1, len(self.columns) - 1))

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and 0 <= section < len(self.columns):
            if role == Qt.ItemDataRole.DisplayRole:
                return self.columns[section].title
            if role == Qt.ItemDataRole.ToolTipRole:
                return self.columns[section].tip or None
        return None

    def _label(self, row: dict[str, Any], value: Any) -> str:
        marks = "".join(m for m, on in (("★ ", row.get("variant") in self.best_ids),) if on)
        tail = "".join(m for m, on in ((" ⚑", bool(row.get("flags"))), (" over budget", over_budget(row)),
                                       (" ↺", bool(row.get("cached")))) if on)
        return f"{marks}{value}{tail}"

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        col = self.columns[index.column()]
        value = col.value(row)
        if role == Qt.ItemDataRole.DisplayRole:
            if value is None:
                return "—"
            if col.key == "label":
                return self._label(row, value)
            try:
                return format(value, col.fmt) if col.fmt else str(value)
            except (TypeError, ValueError):
                return str(value)
        if role == Qt.ItemDataRole.UserRole:  # sort key
            return value if value is not None else float("-inf")
        if role == Qt.ItemDataRole.ToolTipRole:
            if col.key == "label":
                notes = [str(row.get("label"))]
                if row.get("variant") in self.best_ids:
                    notes.append("★ Best within the budget: the smallest variant keeping the chosen share "
                                 "of its baseline's metric")
                for flag in row.get("flags") or ():
                    title = flag_title(flag.get("code", ""))
                    notes.append(f"⚑ {title[:1].upper()}{title[1:]}: {flag.get('text', '')}")
                if row.get("cached"):
                    notes.append("↺ Reused from the cache: the same numbers as the variant it copies")
                return "\n".join(notes)
            if col.key == "metric" and row.get("metric_name"):
                return f"{row['metric_name']} on {row.get('task')}"
            interval = col.interval(row)
            if interval and interval[1] is not None and interval[2] is not None:
                return f"p50 {interval[0]:.2f} ms, 95 % interval [{interval[1]:.2f}, {interval[2]:.2f}] ms"
            if col.tip:
                return col.tip
        if role == Qt.ItemDataRole.TextAlignmentRole and col.fmt:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.FontRole and (row.get("step") == 0 or row.get("variant") in self.best_ids):
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.ForegroundRole and over_budget(row):
            return QColor("#5a1a12")  # dark on the light red, whatever the theme
        if role == Qt.ItemDataRole.ForegroundRole and row.get("cached"):
            return QColor("#8a8f98")
        if role == Qt.ItemDataRole.BackgroundRole and over_budget(row):
            return QColor(OVER_BUDGET_BACKGROUND)
        return None


class ResultsFilter(QSortFilterProxyModel):
    """Sorts on the raw numbers; filters by run, task, text (label, step id, model, task, run) and
    hides cached copies in the all-runs view (a rerun from the cache repeats another run's rows)."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.setSortRole(Qt.ItemDataRole.UserRole)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.run_filter: int | None = None
        self.task_filter: str | None = None
        self.show_cached = False

    def _changed(self, **values: Any) -> None:
        self.beginFilterChange()
        for name, value in values.items():
            setattr(self, name, value)
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def set_run(self, run_id: int | None) -> None:
        self._changed(run_filter=run_id)

    def set_task(self, task: str | None) -> None:
        self._changed(task_filter=task)

    def set_show_cached(self, show: bool) -> None:
        self._changed(show_cached=show)

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex) -> bool:
        model = self.sourceModel()
        assert isinstance(model, ResultsModel)
        row = model.rows[source_row]
        if self.run_filter is not None and row.get("run") != self.run_filter:
            return False
        if self.task_filter is not None and row.get("task") != self.task_filter:
            return False
        if self.run_filter is None and row.get("cached") and not self.show_cached:
            return False
        pattern = self.filterRegularExpression()
        if not pattern.pattern():
            return True
        hay = " ".join(str(row.get(k) or "") for k in ("label", "step_id", "model", "task", "run"))
        return pattern.match(hay).hasMatch()

    def lessThan(self, left: QModelIndex | QPersistentModelIndex, right: QModelIndex | QPersistentModelIndex) -> bool:
        a, b = left.data(Qt.ItemDataRole.UserRole), right.data(Qt.ItemDataRole.UserRole)
        try:
            return a < b
        except TypeError:
            return str(a) < str(b)
