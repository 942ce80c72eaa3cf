"""The disagreement explorer: for two variants evaluated on the same dev examples, the examples where
their predictions differ (text, gold label, both predictions and confidences), sortable and
filterable, with a confusion matrix per variant and exports (CSV, Markdown, JSON: the CLI's).

Opened from Analysis > Disagreements… with two variants selected in the results table. The report is
computed by ``python -m core.analysis.disagreements`` in a child process (the dev texts need the
datasets library, which the window never imports); this module only shows and exports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSize,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QSizePolicy,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.analysis.client import disagreements_command
from core.analysis.disagreements import DisagreementReport, export_disagreements, summary
from workbench.exports import TEXT_FORMATS, ask_save_path, export_button, write_text

COLUMNS = [("index", "Row"), ("outcome", "Outcome"), ("gold", "Gold"), ("a", "A predicts"),
           ("a_confidence", "A conf."), ("b", "B predicts"), ("b_confidence", "B conf."), ("text", "Text")]
OUTCOMES = [("all", "All disagreements"), ("A right", "A right, B wrong"), ("B right", "B right, A wrong"),
            ("both wrong", "Both wrong")]
_Index = QModelIndex | QPersistentModelIndex

PREFERRED_SIZE = QSize(1000, 720)
SCREEN_SHARE = 0.9  # of the screen's available area, at most: the window frame and the taskbar need the rest
MATRIX_ROWS_SHOWN = 8  # a custom task's larger matrix scrolls instead of pushing the examples off the dialog


def fitting_size(available: QSize, preferred: QSize = PREFERRED_SIZE) -> QSize:
    """The preferred size where it fits, else 90 % of the available area (1000x720 was off a 1024x700 screen)."""
    return QSize(min(preferred.width(), int(available.width() * SCREEN_SHARE)),
                 min(preferred.height(), int(available.height() * SCREEN_SHARE)))


class DisagreementModel(QAbstractTableModel):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.rows: list[dict[str, Any]] = []

    def set_rows(self, rows: list[dict[str, Any]]) -> None:
        self.beginResetModel()
        self.rows = rows
        self.endResetModel()

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 (Qt's signature)
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row, key = self.rows[index.row()], COLUMNS[index.column()][0]
        value = row.get(key)
        if role == Qt.ItemDataRole.DisplayRole:
            if value is None:
                return "—"
            return f"{value:.3f}" if isinstance(value, float) else str(value)
        if role == Qt.ItemDataRole.UserRole:  # what sorting compares: numbers as numbers
            return value if value is not None else -1.0
        if role == Qt.ItemDataRole.ToolTipRole and key == "text":
            return str(value)
        if role == Qt.ItemDataRole.ForegroundRole and key in ("a", "b"):
            correct = row.get(f"{key}_correct")
            if correct is not None:
                return QColor("#1e8449") if correct else QColor("#c0392b")
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section][1]
        return None


class DisagreementFilter(QSortFilterProxyModel):
    """Free text over the text and labels, and an outcome (A right / B right / both wrong)."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.text = ""
        self.outcome = "all"
        self.setSortRole(Qt.ItemDataRole.UserRole)

    def set_filter(self, text: str | None = None, outcome: str | None = None) -> None:
        self.beginFilterChange()
        if text is not None:
            self.text = text.lower()
        if outcome is not None:
            self.outcome = outcome
        self.endFilterChange()

    def filterAcceptsRow(self, source_row: int, source_parent: _Index) -> bool:
        row = self.sourceModel().rows[source_row]  # type: ignore[attr-defined]
        if self.outcome != "all" and row.get("outcome") != self.outcome:
            return False
        if self.text:
            haystack = " ".join(str(row.get(k, "")) for k in ("text", "gold", "a", "b")).lower()
            return self.text in haystack
        return True


def _matrix(title: str, tip: str, labels: list[str], matrix: list[list[int]]) -> QWidget:
    """A confusion matrix as large as its cells, not stretched over half the dialog."""
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    caption = QLabel(title)
    caption.setToolTip(tip)
    layout.addWidget(caption)
    table = QTableWidget(len(labels), len(labels))
    table.setObjectName("confusionMatrix")
    table.setHorizontalHeaderLabels([f"→ {x}" for x in labels])
    table.setVerticalHeaderLabels(labels)
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            item = QTableWidgetItem(str(value))
            item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
            if i == j:
                item.setBackground(QColor(220, 240, 220))
            table.setItem(i, j, item)
    table.resizeColumnsToContents()
    table.resizeRowsToContents()
    # Equal columns read as a matrix; each as wide as the widest count or label.
    width = max((table.columnWidth(j) for j in range(len(labels))), default=0)
    for j in range(len(labels)):
        table.setColumnWidth(j, width)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
    # Its size hint is its content, so the layout gives it no more and no less where there is room.
    table.setSizeAdjustPolicy(QAbstractScrollArea.SizeAdjustPolicy.AdjustToContents)
    table.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
    # Every row shown without a scroll bar (a 2 x 2 matrix was cut to one and a half rows), up to a limit.
    shown = min(len(labels), MATRIX_ROWS_SHOWN)
    table.setFixedHeight(table.horizontalHeader().sizeHint().height() + 2 * table.frameWidth()
                         + sum(table.rowHeight(i) for i in range(shown)))
    table.setToolTip("Rows: gold label; columns: predicted")
    layout.addWidget(table)
    return box


class DisagreementsDialog(QDialog):
    """Two variants' disagreements, loaded in a child process; ``report`` once it has arrived."""

    def __init__(self, db: Path, a: int, b: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from workbench.analysis_process import JsonProcess

        self.setWindowTitle(f"Disagreements — variants {a} and {b}")
        self.setObjectName("disagreementsDialog")
        self.db, self.a, self.b = Path(db), a, b
        self.report: DisagreementReport | None = None
        self.summary = QLabel(f"Comparing variants {a} and {b} on their dev examples…")
        self.summary.setObjectName("disagreementSummary")
        self.summary.setTextFormat(Qt.TextFormat.PlainText)  # a variant's label is never markup
        self.summary.setWordWrap(True)
        self.summary.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # Never shorter than its wrapped text (in a splitter it was cut at the top and bottom); setWordWrap
        # made the policy height-for-width, so change only its vertical part.
        policy = self.summary.sizePolicy()
        policy.setVerticalPolicy(QSizePolicy.Policy.Minimum)
        self.summary.setSizePolicy(policy)
        self.matrices = QHBoxLayout()
        self.filter_edit = QLineEdit()
        self.filter_edit.setObjectName("disagreementFilter")
        self.filter_edit.setPlaceholderText("Filter by text or label…")
        self.filter_edit.setClearButtonEnabled(True)
        self.outcome_combo = QComboBox()
        self.outcome_combo.setObjectName("outcomeFilter")
        for key, title in OUTCOMES:
            self.outcome_combo.addItem(title, key)
        self.count = QLabel()
        self.export_button = export_button(self, "Export", [(f"{name}…", lambda f=fmt: self.export_dialog(f))
                                                            for fmt, (name, _ext) in TEXT_FORMATS.items()])
        bar = QHBoxLayout()
        bar.addWidget(self.filter_edit, 1)
        bar.addWidget(self.outcome_combo)
        bar.addWidget(self.count)
        bar.addWidget(self.export_button)
        self.model = DisagreementModel(self)
        self.proxy = DisagreementFilter(self)
        self.proxy.setSourceModel(self.model)
        self.table = QTableView()
        self.table.setObjectName("disagreementTable")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.buttons.rejected.connect(self.reject)
        # Enter in the filter field must not close the dialog.
        self.buttons.button(QDialogButtonBox.StandardButton.Close).setAutoDefault(False)
        # One column, no splitter: a splitter kept the header at the height it had before the report
        # arrived; here the header and matrices take what they need and the examples the rest.
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addLayout(self.matrices)
        layout.addLayout(bar)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.buttons)
        screen = (parent or self).screen()
        self.resize(fitting_size(screen.availableGeometry().size()) if screen is not None else PREFERRED_SIZE)

        self.filter_edit.textChanged.connect(lambda t: self._filter(text=t))
        self.outcome_combo.currentIndexChanged.connect(lambda _i: self._filter(outcome=self.outcome_combo.currentData()))
        self.process = JsonProcess(self)
        self.process.done.connect(self._loaded)
        self.process.start(disagreements_command(str(self.db), a, b))

    def _loaded(self, data: Any, error: str) -> None:
        if data is None:
            self.summary.setText(f"Cannot compare variants {self.a} and {self.b}: {error}")
            self.summary.setStyleSheet("color: #c0392b;")
            return
        self.set_report(DisagreementReport.from_dict(data))

    def set_report(self, report: DisagreementReport) -> None:
        self.report = report
        self.summary.setText("\n".join(summary(report)))
        while self.matrices.count():
            item = self.matrices.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        if report.labels:
            # Short captions: the header above names A and B in full (long labels widened the dialog off-screen).
            self.matrices.addWidget(_matrix(f"Confusion matrix of A (variant {report.a})", report.a_label,
                                            report.labels, report.confusion_a))
            self.matrices.addWidget(_matrix(f"Confusion matrix of B (variant {report.b})", report.b_label,
                                            report.labels, report.confusion_b))
            self.matrices.addStretch(1)
        self.model.set_rows([r.to_dict() for r in report.rows])
        self.table.resizeColumnsToContents()
        self._update_count()

    def _filter(self, text: str | None = None, outcome: str | None = None) -> None:
        self.proxy.set_filter(text=text, outcome=outcome)
        self._update_count()

    def _update_count(self) -> None:
        self.count.setText(f"{self.proxy.rowCount()} of {self.model.rowCount()} shown")

    def visible_report(self) -> DisagreementReport | None:
        """The report with only the rows the filter shows, in the order shown."""
        if self.report is None:
            return None
        shown = [self.model.rows[self.proxy.mapToSource(self.proxy.index(i, 0)).row()]["index"]
                 for i in range(self.proxy.rowCount())]
        by_index = {r.index: r for r in self.report.rows}
        data = self.report.to_dict()
        data["rows"] = [by_index[i].to_dict() for i in shown]
        return DisagreementReport.from_dict(data)

    def export_to(self, fmt: str, path: Path) -> bool:
        report = self.visible_report()
        if report is None:
            QMessageBox.warning(self, "Export", "The comparison has not arrived yet.")
            return False
        return write_text(self, path, export_disagreements(report, fmt))

    def export_dialog(self, fmt: str) -> None:
        name, ext = TEXT_FORMATS[fmt]
        path = ask_save_path(self, f"Export disagreements as {name}", "disagreements", name, ext)
        if path is not None:
            self.export_to(fmt, path)

    def done(self, result: int) -> None:
        self.process.kill()
        super().done(result)
