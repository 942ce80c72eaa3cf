"""The task's data at a glance: the first rows, each split's size, the label balance, and a warning
when the dev set is too small to tell variants apart (core.tasks.preview says which rule).

Read off the GUI thread (a user's file may take a moment) and only while the tab is shown.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.recipe import Recipe
from workbench.background import run_in_background
from workbench.recipe_panel import secondary

PREVIEW_ROWS = 50


def _balance(counts: dict[str, int]) -> str:
    total = sum(counts.values()) or 1
    return ", ".join(f"{name} {100 * n / total:.1f} % ({n:,})" for name, n in counts.items())


class DataPreviewPanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel()
        self.title.setObjectName("previewTitle")
        self.title.setStyleSheet("font-weight: bold;")
        self.title.setWordWrap(True)
        self.note = secondary(QLabel())
        self.note.setWordWrap(True)
        self.sizes = QLabel()
        self.sizes.setObjectName("previewSizes")
        self.sizes.setWordWrap(True)
        self.warning = QLabel()
        self.warning.setObjectName("previewWarning")
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet("color: #b8600b; font-weight: bold;")
        self.warning.hide()
        self.split_combo = QComboBox()
        self.split_combo.addItem("train split", "train")
        self.split_combo.addItem("dev split (what variants are scored on)", "dev")
        self.split_combo.currentIndexChanged.connect(lambda _i: self._reload())
        self.table = QTableWidget()
        self.table.setObjectName("previewTable")
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setWordWrap(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        top = QHBoxLayout()
        top.addWidget(QLabel("First rows of the"))
        top.addWidget(self.split_combo)
        top.addStretch(1)
        layout = QVBoxLayout(self)
        for w in (self.title, self.note, self.sizes, self.warning):
            layout.addWidget(w)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        self.recipe: Recipe | None = None
        self.loaded_key: Any = None
        self.loading_key: Any = None
        self.preview: Any = None

    def _key(self) -> Any:
        r = self.recipe
        return None if r is None else (r.task, r.data, r.measure.eval_limit, self.split_combo.currentData())

    def show_recipe(self, recipe: Recipe) -> None:
        """Follow the recipe's task or data file; read only while visible."""
        self.recipe = recipe
        if self.isVisible():
            self._reload()

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        self._reload()

    def _reload(self) -> None:
        key = self._key()
        if key is None or key in (self.loaded_key, self.loading_key):
            return
        self.loading_key = key
        recipe = self.recipe
        assert recipe is not None
        split = self.split_combo.currentData()
        self.title.setText(f"Reading {recipe.data.path if recipe.data else recipe.task}…")

        def read() -> Any:
            from core.tasks.preview import preview

            return preview(recipe.data if recipe.data is not None else recipe.task, rows=PREVIEW_ROWS, split=split,
                           eval_limit=recipe.measure.eval_limit)

        run_in_background(self, read, lambda p, k=key: self._show(k, p), lambda e, k=key: self._error(k, e))

    def wait_loaded(self, timeout_ms: int = 30_000) -> bool:
        """Process events until the preview in flight has landed (scripts and tests)."""
        from PySide6.QtCore import QCoreApplication, QElapsedTimer, QThread

        clock = QElapsedTimer()
        clock.start()
        while self.loading_key is not None and clock.elapsed() < timeout_ms:
            QCoreApplication.processEvents()
            QThread.msleep(5)
        return self.loading_key is None

    def _error(self, key: Any, error: str) -> None:
        if key != self.loading_key:
            return
        self.loading_key = None
        self.loaded_key = key
        self.preview = None
        self.title.setText(f"Cannot read the task's data: {error}")
        for w in (self.note, self.sizes, self.warning):
            w.clear()
        self.warning.hide()
        self.table.clear()
        self.table.setRowCount(0)
        self.table.setColumnCount(0)

    def _show(self, key: Any, p: Any) -> None:
        if key != self.loading_key:
            return  # an older read: the recipe changed meanwhile
        self.loading_key = None
        self.loaded_key = key
        self.preview = p
        self.title.setText(f"{p.title} — {p.head} task")
        self.note.setText(p.note)
        self.note.setVisible(bool(p.note))
        sizes = ", ".join(f"{name} {n:,} rows" for name, n in p.sizes.items())
        evaluated = (f"; each variant is scored on {p.evaluated:,} dev examples"
                     + (f" (the recipe's 'Dev examples' = {p.evaluated:,} of {p.sizes.get('dev', 0):,})"
                        if p.evaluated < p.sizes.get("dev", 0) else ""))
        lines = [sizes + evaluated]
        for split, counts in p.labels.items():
            lines.append(f"Labels in {split}: {_balance(counts)}")
        if p.noise is not None and not p.noise.too_small:
            lines.append(f"Precision: {p.noise.rule}")
        self.sizes.setText("\n".join(lines))
        self.warning.setText("⚠ " + p.warning if p.warning else "")
        self.warning.setVisible(bool(p.warning))
        self.table.clear()
        self.table.setColumnCount(len(p.columns))
        self.table.setHorizontalHeaderLabels(list(p.columns))
        self.table.setRowCount(len(p.rows))
        for i, row in enumerate(p.rows):
            for j, column in enumerate(p.columns):
                text = str(row.get(column, ""))
                item = QTableWidgetItem(text if len(text) <= 300 else text[:299] + "…")
                item.setToolTip(text[:2000])
                if column == "label":
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                self.table.setItem(i, j, item)
        self.table.resizeColumnsToContents()
        for j in range(self.table.columnCount()):
            self.table.setColumnWidth(j, min(self.table.columnWidth(j), 420))
