"""Variant rows as a Qt table model, sortable and filterable through a QSortFilterProxyModel.

Rows are :class:`core.store.ResultRow` dicts: from :func:`workbench.store_client.results`, or
from a running worker's events (the same rows the CLI exports).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Qt


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    fmt: str = ""  # format spec for numbers
    tip: str = ""


COLUMNS: tuple[Column, ...] = (
    Column("run", "Run", "d"),
    Column("label", "Variant", tip="The step after which this variant was measured"),
    Column("metric", "Metric", ".4f", "Task metric (primary) on the evaluation split"),
    Column("pct_baseline", "% of baseline", ".1f", "Metric as a percentage of the run's baseline"),
    Column("params", "Params", ",d", "Parameters, shared tensors counted once"),
    Column("nonzero_params", "Non-zeros", ",d"),
    Column("size_mb", "MB on disk", ".2f", "Bytes of the reloadable artifact folder, in MB (10^6)"),
    Column("pct_smaller", "% smaller", ".1f", "Size saved against the run's baseline"),
    Column("latency_p50_ms", "p50 ms", ".2f", "Median latency"),
    Column("latency_p90_ms", "p90 ms", ".2f"),
    Column("speedup", "Speed-up", ".2f", "Baseline p50 / this p50, measured in the same run"),
)

class ResultsModel(QAbstractTableModel):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.rows: list[dict[str, Any]] = []

    def set_rows(self, rows: list[dict[str, Any]]) -> None:
        self.beginResetModel()
        self.rows = rows
        self.endResetModel()

    def add_row(self, row: dict[str, Any]) -> None:
        """One variant a running worker has just committed."""
        self.beginInsertRows(QModelIndex(), len(self.rows), len(self.rows))
        self.rows.append(row)
        self.endInsertRows()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal:
            if role == Qt.ItemDataRole.DisplayRole:
                return COLUMNS[section].title
            if role == Qt.ItemDataRole.ToolTipRole:
                return COLUMNS[section].tip or None
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        col = COLUMNS[index.column()]
        value = row.get(col.key)
        if role == Qt.ItemDataRole.DisplayRole:
            if value is None:
                return "—"
            if col.key == "label" and row.get("flag"):
                return f"{value} ⚑"
            if col.key == "metric" and row.get("metric_name"):
                return f"{value:{col.fmt}}"
            try:
                return format(value, col.fmt) if col.fmt else str(value)
            except (TypeError, ValueError):
                return str(value)
        if role == Qt.ItemDataRole.UserRole:  # sort key
            return value if value is not None else float("-inf")
        if role == Qt.ItemDataRole.ToolTipRole:
            if col.key == "label" and row.get("flag"):
                return f"Not smaller on disk: {row['flag']}"
            if col.key == "metric" and row.get("metric_name"):
                return str(row["metric_name"])
        if role == Qt.ItemDataRole.TextAlignmentRole and col.fmt:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.FontRole and row.get("step") == 0:
            from PySide6.QtGui import QFont

            font = QFont()
            font.setBold(True)
            return font
        return None


class ResultsFilter(QSortFilterProxyModel):
    """Sorts on the raw numbers; filters on the variant label, step id, model and task."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.setSortRole(Qt.ItemDataRole.UserRole)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.run_filter: int | None = None

    def set_run(self, run_id: int | None) -> None:
        self.beginFilterChange()
        self.run_filter = run_id
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex) -> bool:
        model = self.sourceModel()
        assert isinstance(model, ResultsModel)
        row = model.rows[source_row]
        if self.run_filter is not None and row.get("run") != self.run_filter:
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
