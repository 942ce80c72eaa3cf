"""Managing runs: name, tag and annotate them, see their disk use, open their folders, load
their recipe back into the editor, delete them with their artifacts, and clean up files no run
refers to. Everything that touches the database or the disk runs off the GUI thread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from workbench import store_client
from workbench.background import run_in_background
from workbench.recipe_panel import secondary
from workbench.settings import Settings

COLUMNS = ("ID", "Name", "Tags", "Note", "Status", "Task", "Model", "Variants", "Disk", "Started")
EDITABLE = {1: "name", 2: "tags", 3: "note"}


def megabytes(nbytes: int | None) -> str:
    return "…" if nbytes is None else f"{nbytes / 1e6:,.1f} MB"


class RunsDialog(QDialog):
    showRun = Signal(int)
    loadRecipe = Signal(int)
    changed = Signal()  # labels changed, a run deleted, files collected: results should re-query

    def __init__(self, settings: Settings, parent: QWidget | None = None, select_run: int | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Runs")
        self.setObjectName("runsDialog")
        self.resize(960, 420)
        self.settings = settings
        self.runs: list[dict[str, Any]] = []
        self.disk: dict[int, int] = {}
        self.busy = 0
        self._select = select_run
        self._filling = False
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("runsTable")
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                   | QAbstractItemView.EditTrigger.EditKeyPressed
                                   | QAbstractItemView.EditTrigger.SelectedClicked)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemChanged.connect(self._item_changed)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.status = QLabel()
        self.status.setObjectName("runsStatus")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.total = QLabel()
        hint = secondary(QLabel("Double-click a name, tags (comma-separated) or note to edit it."))
        self.show_button = QPushButton("Show in results")
        self.load_button = QPushButton("Load its recipe")
        self.load_button.setToolTip("Open the recipe this run executed in the editor")
        self.folder_button = QPushButton("Open folder")
        self.delete_button = QPushButton("Delete…")
        self.delete_button.setObjectName("deleteRun")
        self.gc_button = QPushButton("Clean up unused files…")
        self.gc_button.setToolTip("Remove artifact folders no run refers to (killed steps, deleted runs) and empty "
                                  "folders; the folders of a running run are left alone")
        close = QPushButton("Close")
        close.clicked.connect(self.accept)
        self.show_button.clicked.connect(lambda: self._with_run(lambda r: (self.showRun.emit(r), self.accept())))
        self.load_button.clicked.connect(lambda: self._with_run(lambda r: (self.loadRecipe.emit(r), self.accept())))
        self.folder_button.clicked.connect(lambda: self._with_run(self.open_folder))
        self.delete_button.clicked.connect(lambda: self._with_run(self.delete))
        self.gc_button.clicked.connect(self.collect)
        buttons = QHBoxLayout()
        for b in (self.show_button, self.load_button, self.folder_button, self.delete_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.gc_button)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(hint)
        layout.addWidget(self.table, 1)
        row = QHBoxLayout()
        row.addWidget(self.status, 1)
        row.addWidget(self.total)
        layout.addLayout(row)
        layout.addLayout(buttons)
        self._update_buttons()
        self.reload()

    # --- loading ----------------------------------------------------------------------------------
    def _db(self) -> Path:
        return self.settings.db_path()

    def _background(self, fn: Any, done: Any) -> None:
        self.busy += 1

        def ok(result: Any) -> None:
            self.busy -= 1
            done(result)

        def failed(error: str) -> None:
            self.busy -= 1
            self.status.setText(f"⚠ {error}")
            self.status.setStyleSheet("color: #c0392b;")

        run_in_background(self, fn, ok, failed)

    def reload(self) -> None:
        db = self._db()
        self._background(lambda: store_client.list_runs(db), self._fill)
        self._background(lambda: store_client.disk_usage(db), self._fill_disk)

    def wait_idle(self, timeout_ms: int = 30_000) -> bool:
        from PySide6.QtCore import QCoreApplication, QElapsedTimer, QThread

        clock = QElapsedTimer()
        clock.start()
        while self.busy and clock.elapsed() < timeout_ms:
            QCoreApplication.processEvents()
            QThread.msleep(5)
        return not self.busy

    def _fill(self, runs: list[dict[str, Any]]) -> None:
        selected = self.selected_run() or self._select
        self.runs = runs
        self._filling = True
        self.table.setRowCount(len(runs))
        for i, r in enumerate(runs):
            cells = [str(r["id"]), r.get("name") or "", ", ".join(r.get("tags") or ()), r.get("note") or "",
                     r["status"], r["task"], r["model"], str(r["variants"]), megabytes(self.disk.get(r["id"])),
                     (r.get("started_at") or "").replace("T", " ").rstrip("Z")]
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, r["id"])
                flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
                if j in EDITABLE:
                    flags |= Qt.ItemFlag.ItemIsEditable
                item.setFlags(flags)
                if j == 1 and not r.get("name") and r.get("recipe_name"):
                    item.setToolTip(f"Recipe: {r['recipe_name']}")
                if j == 3 and r.get("note"):
                    item.setToolTip(r["note"])
                if j == 4 and r.get("error"):
                    item.setToolTip(r["error"])
                self.table.setItem(i, j, item)
        self._filling = False
        self.table.resizeColumnsToContents()
        for column, low, high in ((1, 140, 260), (2, 100, 200), (3, 160, 320), (6, 120, 220), (8, 80, 120)):
            self.table.setColumnWidth(column, max(low, min(self.table.columnWidth(column), high)))
        if selected is not None:
            self.select_run(selected)
        self._update_buttons()

    def _fill_disk(self, disk: dict[int, int]) -> None:
        self.disk = disk
        for i, r in enumerate(self.runs):
            item = self.table.item(i, 8)
            if item is not None:
                item.setText(megabytes(disk.get(r["id"])))
        self.table.resizeColumnToContents(8)
        self.total.setText(f"{megabytes(sum(disk.values()))} of artifacts in {len(disk)} run(s)")

    # --- selection ----------------------------------------------------------------------------------
    def selected_run(self) -> int | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows:
            return None
        item = self.table.item(rows[0].row(), 0)
        return int(item.data(Qt.ItemDataRole.UserRole)) if item is not None else None

    def select_run(self, run_id: int) -> None:
        for i, r in enumerate(self.runs):
            if r["id"] == run_id:
                self.table.selectRow(i)
                self.table.scrollToItem(self.table.item(i, 0))

    def _run_info(self, run_id: int) -> dict[str, Any]:
        return next(r for r in self.runs if r["id"] == run_id)

    def _with_run(self, action: Any) -> None:
        run = self.selected_run()
        if run is not None:
            action(run)

    def _update_buttons(self) -> None:
        has = self.selected_run() is not None
        for b in (self.show_button, self.load_button, self.folder_button, self.delete_button):
            b.setEnabled(has)

    # --- actions --------------------------------------------------------------------------------------
    def _item_changed(self, item: QTableWidgetItem) -> None:
        if self._filling or item.column() not in EDITABLE:
            return
        run_id = int(item.data(Qt.ItemDataRole.UserRole))
        field = EDITABLE[item.column()]
        text = item.text()
        db = self._db()

        def saved(_result: Any) -> None:
            self.status.setStyleSheet("")
            self.status.setText(f"Run {run_id}: {field} saved")
            self.changed.emit()
            self.reload()

        self._background(lambda: store_client.set_labels(db, run_id, **{field: text}), saved)

    def open_folder(self, run_id: int) -> bool:
        folder = self._run_info(run_id).get("artifacts_dir") or ""
        if not folder or not Path(folder).is_dir():
            self.status.setText(f"Run {run_id} has no artifact folder on disk")
            return False
        return QDesktopServices.openUrl(QUrl.fromLocalFile(folder))

    def delete(self, run_id: int) -> None:
        info = self._run_info(run_id)
        db = self._db()
        if info["status"] == "running":
            QMessageBox.information(self, "Delete run", f"Run {run_id} is running: cancel it (Esc) or let it "
                                    "finish, then delete it.")
            return
        self._background(lambda: store_client.dependents(db, run_id), lambda deps: self._confirm_delete(run_id, deps))

    def _confirm_delete(self, run_id: int, dependents: list[int]) -> None:
        info = self._run_info(run_id)
        db = self._db()
        text = (f"Delete run {run_id} ({info.get('name') or info.get('recipe_name') or info['task']}): its "
                f"{info['variants']} variant(s), their numbers and its artifact folder "
                f"({megabytes(self.disk.get(run_id))})? This cannot be undone.")
        if dependents:
            text += (f"\n\nRuns {', '.join(map(str, dependents))} reused variants of this run from the cache: "
                     "their numbers stay, but those variants' folders go with this run.")
        answer = QMessageBox.question(self, "Delete run", text,
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
                                      QMessageBox.StandardButton.Cancel)
        if answer != QMessageBox.StandardButton.Yes:
            return

        def deleted(report: Any) -> None:
            self.status.setStyleSheet("")
            self.status.setText(f"Deleted run {run_id}: {report.variants} variant(s), "
                                f"{megabytes(report.bytes_freed)} freed")
            self.changed.emit()
            self.reload()

        self._background(lambda: store_client.delete_run(db, run_id, force=bool(dependents)), deleted)

    def collect(self) -> None:
        db, root = self._db(), self.settings.artifacts_dir()

        def confirm(report: Any) -> None:
            if not report.removed:
                self.status.setStyleSheet("")
                self.status.setText("Nothing to clean up: every artifact folder belongs to a run")
                return
            answer = QMessageBox.question(
                self, "Clean up unused files",
                f"Remove {len(report.removed)} folder(s) or file(s) no run refers to "
                f"({megabytes(report.bytes_freed)})?\n\n" + "\n".join(report.removed[:12])
                + ("\n…" if len(report.removed) > 12 else ""),
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Cancel)
            if answer == QMessageBox.StandardButton.Yes:
                self._background(lambda: store_client.collect_garbage(db, root), collected)

        def collected(report: Any) -> None:
            self.status.setStyleSheet("")
            self.status.setText(f"Removed {len(report.removed)} item(s), {megabytes(report.bytes_freed)} freed")
            self.changed.emit()
            self.reload()

        self._background(lambda: store_client.collect_garbage(db, root, dry_run=True), confirm)
