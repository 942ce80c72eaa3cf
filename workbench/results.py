"""The Results tab: a sortable, filterable variants table, charts, side-by-side comparison, export."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QRegularExpression, QRunnable, Qt, QThread, QThreadPool, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QSplitter,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from workbench import store_client
from workbench.results_model import COLUMNS, ResultsFilter, ResultsModel
from workbench.settings import Settings

TABLE_FORMATS = {"csv": ("CSV", "csv"), "markdown": ("Markdown", "md"), "latex": ("LaTeX", "tex")}


class _Loaded(QObject):
    done = Signal(str, object, object, str)  # db, rows, interrupted run id, error


class _Load(QRunnable):
    """One results query off the GUI thread."""

    def __init__(self, db: Path, sink: _Loaded) -> None:
        super().__init__()
        self.db, self.sink = db, sink

    def run(self) -> None:
        try:
            if not self.db.exists():  # nothing to show yet: warm up for when a run's first variant lands
                store_client.warm_up()
            rows = store_client.results(self.db)
            result = (str(self.db), rows, _interrupted_run(self.db), "")
        except Exception as exc:
            result = (str(self.db), [], None, str(exc))
        with contextlib.suppress(RuntimeError):  # "Signal source has been deleted": the view closed meanwhile
            self.sink.done.emit(*result)


def _interrupted_run(db: Path) -> int | None:
    """Marks runs whose worker is gone as interrupted and returns the newest; None when unreadable
    (refresh reports that). Queried here, never on the GUI thread: a worker may hold the database."""
    try:
        store_client.mark_interrupted(db)
        return store_client.interrupted_run(db)
    except Exception:
        return None


class ResultsView(QWidget):
    refreshed = Signal()

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.loading = False
        self._again = False
        self._interrupted: int | None = None
        self._select_run: int | None = None
        self._loaded = _Loaded(self)  # lives in the GUI thread: its signal is delivered there (queued)
        self._loaded.done.connect(self._on_loaded)
        self.model = ResultsModel(self)
        self.proxy = ResultsFilter(self)
        self.proxy.setSourceModel(self.model)
        self.rows: list[dict[str, Any]] = []
        self._dirty = True

        self.run_combo = QComboBox()
        self.run_combo.setObjectName("runFilter")
        self.run_combo.setMinimumContentsLength(24)
        self.filter_edit = QLineEdit()
        self.filter_edit.setObjectName("resultsFilter")
        self.filter_edit.setPlaceholderText("Filter variants (step, model, task)…")
        self.filter_edit.setClearButtonEnabled(True)
        self.export_table_button = QToolButton()
        self.export_table_button.setText("Export table")
        self.export_table_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self)
        for fmt, (title, _ext) in TABLE_FORMATS.items():
            menu.addAction(title, lambda f=fmt: self.export_table_dialog(f))
        self.export_table_button.setMenu(menu)
        self.export_chart_button = QToolButton()
        self.export_chart_button.setText("Export chart")
        self.export_chart_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        chart_menu = QMenu(self)
        # pyqtgraph (and numpy) take about a second to import: the charts are built the first
        # time the Results tab is shown, so the window opens fast.
        self._charts = None
        self.charts_host = QWidget()
        self.charts_host.setObjectName("chartsHost")
        QVBoxLayout(self.charts_host).setContentsMargins(0, 0, 0, 0)
        for name in ("scatter", "latency", "waterfall", "sweep"):
            for ext in ("png", "svg"):
                chart_menu.addAction(f"{name} as {ext.upper()}", lambda n=name, e=ext: self.export_chart_dialog(n, e))
        self.export_chart_button.setMenu(chart_menu)
        self.count_label = QLabel()
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Run:"))
        bar.addWidget(self.run_combo)
        bar.addWidget(self.filter_edit, 1)
        bar.addWidget(self.count_label)
        bar.addWidget(self.export_table_button)
        bar.addWidget(self.export_chart_button)

        self.table = QTableView()
        self.table.setObjectName("resultsTable")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setAlternatingRowColors(True)
        self.compare = QTableWidget()
        self.compare.setObjectName("compareTable")
        self.compare.hide()
        self.empty = QLabel("No results yet. Build a chain and press Run (Ctrl+R); "
                            "every step's variant appears here as it is measured.")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setStyleSheet("color: palette(mid); padding: 12px;")

        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(self.table)
        left.addWidget(self.compare)
        left.setSizes([500, 200])
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(self.charts_host)
        split.setSizes([560, 640])
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.empty)
        layout.addWidget(split, 1)

        self._filter_timer = QTimer(self)
        self._filter_timer.setSingleShot(True)
        self._filter_timer.setInterval(150)
        self._filter_timer.timeout.connect(self._apply_filter)
        self.filter_edit.textChanged.connect(lambda _t: self._filter_timer.start())
        self.run_combo.currentIndexChanged.connect(self._run_changed)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._selection_changed())

    # --- data ---------------------------------------------------------------------------------
    def refresh(self, select_run: int | None = None) -> None:
        """Re-query the database in a pool thread; the rows arrive on the GUI thread by signal.

        The first query imports SQLAlchemy and opens the store (about a second on a busy machine),
        and a worker may be writing: none of that may stall the GUI thread during a run.
        """
        if select_run is not None:
            self._select_run = select_run
        if self.loading:
            self._again = True  # one more query when this one lands: never two at once
            return
        self.loading = True
        self._again = False
        QThreadPool.globalInstance().start(_Load(self.settings.db_path(), self._loaded))

    def wait_loaded(self, timeout_ms: int = 30_000) -> bool:
        """Block (processing events) until no query is in flight; for scripts and tests."""
        from PySide6.QtCore import QCoreApplication, QElapsedTimer

        clock = QElapsedTimer()
        clock.start()
        while self.loading and clock.elapsed() < timeout_ms:
            QCoreApplication.processEvents()
            QThread.msleep(5)
        return not self.loading

    def _on_loaded(self, db: str, rows: object, interrupted: object, error: str) -> None:
        self.loading = False
        self._interrupted = interrupted if isinstance(interrupted, int) else None
        select_run, self._select_run = self._select_run, None
        if error:  # a damaged or newer DB (StoreError): say so, keep the window usable
            self.set_rows([])
            self.empty.setText(f"Cannot read results from {db}: {error}")
            self.empty.show()
        else:
            self.set_rows(rows, select_run=select_run)  # type: ignore[arg-type]
        self.refreshed.emit()
        if self._again:
            self.refresh()

    def set_rows(self, rows: list[dict[str, Any]], select_run: int | None = None) -> None:
        self.rows = rows
        self._fill_runs(select_run)
        self.model.set_rows(rows)
        self.proxy.set_run(self.run_combo.currentData())
        self.empty.setVisible(not rows)
        self._update_count()
        self.redraw()

    def add_row(self, row: dict[str, Any]) -> None:
        """A variant a running worker has just committed: shown at once, no database query."""
        if any(r["variant"] == row["variant"] for r in self.rows):
            return  # a refresh already brought it
        self.rows.append(row)
        if self.run_combo.findData(row.get("run")) < 0:
            self._fill_runs(None)
        self.model.add_row(row)
        self.empty.hide()
        self._update_count()
        self.redraw()

    def _fill_runs(self, select_run: int | None) -> None:
        current = self.run_combo.currentData() if select_run is None else select_run
        self.run_combo.blockSignals(True)
        self.run_combo.clear()
        self.run_combo.addItem("All runs", None)
        runs: dict[int, dict[str, Any]] = {}
        for r in self.rows:
            runs.setdefault(int(r["run"]), r)
        for run_id in sorted(runs, reverse=True):
            r = runs[run_id]
            self.run_combo.addItem(f"Run {run_id}: {r.get('model') or ''} · {r.get('task') or ''}".strip(" ·"), run_id)
        self.run_combo.setCurrentIndex(max(0, self.run_combo.findData(current)))
        self.run_combo.blockSignals(False)
        self.proxy.set_run(self.run_combo.currentData())

    @property
    def charts(self):  # type: ignore[no-untyped-def]
        """The Charts widget, built on first use."""
        if self._charts is None:
            from workbench.charts import Charts

            self._charts = Charts()
            self._charts.setObjectName("charts")
            layout = self.charts_host.layout()
            assert layout is not None
            layout.addWidget(self._charts)
            self._dirty = True
        return self._charts

    def showEvent(self, event) -> None:  # type: ignore[no-untyped-def]
        super().showEvent(event)
        if self._dirty or self._charts is None:
            self.redraw()

    def redraw(self) -> None:
        """Redraw now if the tab is visible; otherwise when it is next shown."""
        if not self.isVisible():
            self._dirty = True
            return
        self._dirty = False
        self.charts.update_rows(self.rows, run_id=self.run_combo.currentData(), selected=self.selected_rows())

    def interrupted_run(self) -> int | None:
        """The newest resumable run, as of the last refresh."""
        return self._interrupted

    def visible_rows(self) -> list[dict[str, Any]]:
        return [self.model.rows[self.proxy.mapToSource(self.proxy.index(i, 0)).row()]
                for i in range(self.proxy.rowCount())]

    def selected_rows(self) -> list[dict[str, Any]]:
        rows = sorted({self.proxy.mapToSource(i).row() for i in self.table.selectionModel().selectedRows()})
        return [self.model.rows[r] for r in rows]

    def _apply_filter(self) -> None:
        pattern = QRegularExpression.escape(self.filter_edit.text())
        if pattern == self.proxy.filterRegularExpression().pattern():
            return  # unchanged: re-filtering would only drop the selection
        self.proxy.setFilterRegularExpression(QRegularExpression(pattern))
        self._update_count()

    def _run_changed(self, _index: int) -> None:
        self.proxy.set_run(self.run_combo.currentData())
        self._update_count()
        self.redraw()

    def _update_count(self) -> None:
        self.count_label.setText(f"{self.proxy.rowCount()} of {self.model.rowCount()} variants")

    def _selection_changed(self) -> None:
        selected = self.selected_rows()
        if self.isVisible():
            self.charts.mark_selected(selected)
            run_id = self.run_combo.currentData()
            run_rows = [r for r in self.rows if run_id is None or r.get("run") == run_id]
            if run_id is None and self.rows:
                last = max(r["run"] for r in self.rows)
                run_rows = [r for r in self.rows if r["run"] == last]
            ends = [r for r in selected if r in run_rows]
            self.charts._update_waterfall(run_rows, ends[-1] if ends else None)
        self.show_comparison(selected)

    def show_comparison(self, rows: list[dict[str, Any]]) -> None:
        """Two or more selected variants, side by side: one column per variant."""
        if len(rows) < 2:
            self.compare.hide()
            return
        self.compare.clear()
        cols = [c for c in COLUMNS if c.key not in ("label",)]
        self.compare.setRowCount(len(cols))
        self.compare.setColumnCount(len(rows))
        self.compare.setHorizontalHeaderLabels([f"{r.get('label')} (run {r.get('run')})" for r in rows])
        self.compare.setVerticalHeaderLabels([c.title for c in cols])
        for j, r in enumerate(rows):
            for i, c in enumerate(cols):
                v = r.get(c.key)
                text = "—" if v is None else (format(v, c.fmt) if c.fmt else str(v))
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.compare.setItem(i, j, item)
        self.compare.resizeColumnsToContents()
        self.compare.show()

    # --- export -------------------------------------------------------------------------------
    def export_text(self, fmt: str) -> str:
        """The visible rows (filter and run applied), through the same exporter as the CLI."""
        rows = self.visible_rows()
        if not rows:
            raise ValueError("there are no results to export yet")
        return store_client.export_rows(rows, fmt)

    def export_table_dialog(self, fmt: str) -> None:
        title, ext = TABLE_FORMATS[fmt]
        path, _ = QFileDialog.getSaveFileName(self, f"Export table as {title}", f"variants.{ext}", f"{title} (*.{ext})")
        if path:
            self.export_table_to(fmt, Path(path))

    def export_table_to(self, fmt: str, path: Path) -> bool:
        try:
            path.write_text(self.export_text(fmt), encoding="utf-8")
        except ValueError as exc:
            QMessageBox.warning(self, "Export", f"Nothing exported: {exc}")
            return False
        except OSError as exc:
            QMessageBox.warning(self, "Export", f"Cannot write {path}: {exc.strerror}")
            return False
        return True

    def export_chart_dialog(self, name: str, ext: str) -> None:
        path, _ = QFileDialog.getSaveFileName(self, f"Export {name} chart", f"{name}.{ext}", f"{ext.upper()} (*.{ext})")
        if path:
            self.charts.export(name, Path(path))
