"""The Results tab: a sortable, filterable variants table, charts, the best variant within an
accuracy budget, side-by-side comparison, run actions and export.

Every filter (run, task, text, cached copies) applies to the table and to every chart alike: the
charts draw exactly the rows the table shows. A click on a chart element selects its table row,
and selecting rows marks them in the charts.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QItemSelectionModel,
    QObject,
    QPoint,
    QRegularExpression,
    QRunnable,
    Qt,
    QThread,
    QThreadPool,
    QTimer,
    QUrl,
    Signal,
)
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
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

from core.published import not_drawn
from core.store.pareto import best_within_budget
from workbench import store_client
from workbench.background import run_in_background
from workbench.exports import ask_save_path, export_button, write_text
from workbench.number_box import NumberBox
from workbench.results_model import (
    FlagsDelegate,
    ResultsFilter,
    ResultsModel,
    display_text,
    mixed_settings,
    variant_name,
)
from workbench.settings import Settings

TABLE_FORMATS = {"csv": ("CSV", "csv"), "markdown": ("Markdown", "md"), "latex": ("LaTeX", "tex")}
DEFAULT_BUDGET = 99.0


class _Loaded(QObject):
    done = Signal(str, object, object, object, str)  # db, rows, runs, interrupted run id, error


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
            interrupted = _interrupted_run(self.db)  # marks dead runs first, so their status is right
            result = (str(self.db), rows, store_client.run_titles(self.db), interrupted, "")
        except Exception as exc:
            result = (str(self.db), [], {}, None, str(exc))
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


def run_title(run_id: int, info: dict[str, Any] | None, row: dict[str, Any] | None = None) -> str:
    """'Run 3: my try · sst2 · 2026-12-05 14:02 · cancelled' (the user's name, else the recipe's, then the task,
    when it started in local time, and how it ended unless it finished): runs of one recipe told apart."""
    info = info or {}
    name = info.get("name") or info.get("recipe_name") or (row or {}).get("model") or ""
    task = info.get("task") or (row or {}).get("task") or ""
    when = _local_time(info.get("created_at"))
    status = info.get("status") if info.get("status") not in (None, "finished") else ""
    tags = f" [{', '.join(info['tags'])}]" if info.get("tags") else ""
    return f"Run {run_id}: " + " · ".join(p for p in (name, task, when, status) if p) + tags


def _local_time(iso_utc: str | None) -> str:
    """An ISO 8601 UTC time as '2026-12-05 14:02' in this machine's time zone ('' when absent or
    unreadable): the year kept and no month names, which a locale would translate."""
    from datetime import datetime, timezone

    try:
        moment = datetime.fromisoformat(iso_utc) if iso_utc else None
    except ValueError:
        return ""
    if moment is None:
        return ""
    utc = timezone.utc  # not datetime.UTC: Python 3.10 has none
    return (moment if moment.tzinfo else moment.replace(tzinfo=utc)).astimezone().strftime("%Y-%m-%d %H:%M")


def _difference_text(rows: list[dict[str, Any]]) -> str:
    return f"Difference and disagreements of #{rows[0]['variant']} and #{rows[1]['variant']}…"


class ResultsView(QWidget):
    refreshed = Signal()
    message = Signal(str)  # for the window's status bar
    loadRecipeRequested = Signal(int)  # a run id
    manageRunsRequested = Signal(object)  # a run id to show, or None
    sensitivityRequested = Signal(dict)  # a variant's row: open its sensitivity view
    disagreementsRequested = Signal(list)  # two variants' rows: open the disagreement explorer

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
        self.runs: dict[int, dict[str, Any]] = {}
        self.best: dict[tuple[str, str], dict[str, Any]] = {}
        self._dirty = True
        self._columns_fitted = False
        self._curves_for: int | None = None

        # --- the filter bar ---------------------------------------------------------------------
        self.run_combo = QComboBox()
        self.run_combo.setObjectName("runFilter")
        self.run_combo.setMinimumContentsLength(16)
        self.run_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.run_combo.setToolTip("Show one run's variants, or all runs (cached copies hidden)")
        self.task_combo = QComboBox()
        self.task_combo.setObjectName("taskFilter")
        self.task_combo.setMinimumContentsLength(10)
        self.task_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.task_combo.setToolTip("Show one task's variants: a front and a best variant belong to one task")
        self.filter_edit = QLineEdit()
        self.filter_edit.setObjectName("resultsFilter")
        self.filter_edit.setPlaceholderText("Filter (step, model, task)…")
        self.filter_edit.setClearButtonEnabled(True)
        self.cached_check = QCheckBox("Cached copies")
        self.cached_check.setToolTip("In the all-runs view, also list variants a run reused from the cache "
                                     "(the same numbers as the variants they copy)")
        self.count_label = QLabel()
        self.budget_box = NumberBox("float", 0.0, 100.0)
        self.budget_box.setObjectName("budgetBox")
        try:
            self._budget = min(100.0, max(0.0, float(self.settings.value("results/budget", DEFAULT_BUDGET))))
        except (TypeError, ValueError):
            self._budget = DEFAULT_BUDGET
        self.budget_box.set_value(self._budget)
        self.budget_box.setMinimumWidth(self.budget_box.fontMetrics().horizontalAdvance("100.00") + 36)
        self.budget_box.setMaximumWidth(self.budget_box.minimumWidth() + 20)
        self.budget_box.setToolTip("The share of its baseline's metric a variant must keep to be 'best'")
        self.best_label = QLabel()
        self.best_label.setObjectName("bestLabel")
        self.best_label.setWordWrap(True)
        self.best_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.runs_button = QToolButton()
        self.runs_button.setText("Runs…")
        self.runs_button.setToolTip("Name, tag, note, delete runs; disk use; clean up unused files")
        self.runs_button.clicked.connect(lambda: self.manageRunsRequested.emit(self.run_combo.currentData()))
        self.export_table_button = export_button(
            self, "Export table",
            [(f"{title}…", lambda f=fmt: self.export_table_dialog(f)) for fmt, (title, _ext) in TABLE_FORMATS.items()])
        from workbench.chart_names import CHARTS

        self.export_chart_button = export_button(
            self, "Export chart", [(f"{title} as {ext.upper()}…", lambda n=name, e=ext: self.export_chart_dialog(n, e))
                                   for name, title in CHARTS.items() for ext in ("png", "svg")])
        self.published_check = QCheckBox("Published points")
        self.published_check.setObjectName("publishedCheck")
        self.published_check.setChecked(str(self.settings.value("results/published", "true")).lower() != "false")
        missing = "; ".join(f"{p.system}: {p.label} ({p.note})" for p in not_drawn())
        self.published_check.setToolTip(
            "The two published systems' reported results on the metric-vs-size chart, placed against the "
            "reference of the newest run shown, only on the task they were reported on (the SQuAD 2.0 "
            "system's on SQuAD 2.0, the TinyBERT study's on SST-2, CoLA, RTE, STS-B and QNLI): published, "
            f"not measured here. Not drawn (no metric change reported): {missing}")
        self.published_check.toggled.connect(self._published_toggled)
        self.settings_warning = QLabel()
        self.settings_warning.setObjectName("settingsWarning")
        self.settings_warning.setWordWrap(True)
        self.settings_warning.setStyleSheet("color: #b9770e;")
        self.settings_warning.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.settings_warning.hide()
        self.export_note = QLabel()
        self.export_note.setObjectName("exportNote")
        self.export_note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        bar = QHBoxLayout()
        bar.addWidget(QLabel("Run:"))
        bar.addWidget(self.run_combo, 2)
        bar.addWidget(QLabel("Task:"))
        bar.addWidget(self.task_combo, 1)
        bar.addWidget(self.filter_edit, 2)
        bar.addWidget(self.cached_check)
        bar.addWidget(self.count_label)
        bar2 = QHBoxLayout()
        bar2.addWidget(QLabel("Best: keep ≥"))
        bar2.addWidget(self.budget_box)
        bar2.addWidget(QLabel("% of reference"))
        bar2.addWidget(self.best_label, 1)
        bar2.addWidget(self.published_check)
        bar2.addWidget(self.export_note)
        bar2.addWidget(self.runs_button)
        bar2.addWidget(self.export_table_button)
        bar2.addWidget(self.export_chart_button)

        # pyqtgraph (and numpy) take about a second to import: the charts are built the first
        # time the Results tab is shown, so the window opens fast.
        self._charts = None
        self.charts_host = QWidget()
        self.charts_host.setObjectName("chartsHost")
        QVBoxLayout(self.charts_host).setContentsMargins(0, 0, 0, 0)

        self.table = QTableView()
        self.table.setObjectName("resultsTable")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # the runs' order until a header is clicked
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setAlternatingRowColors(True)
        self.flags_delegate = FlagsDelegate(self.table)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.compare = QTableWidget()
        self.compare.setObjectName("compareTable")
        self.compare.hide()
        self.compared: list[dict[str, Any]] = []  # the variants side by side in the comparison
        self.compare.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.compare.customContextMenuRequested.connect(self._compare_menu)
        # Two side by side do not say whether they differ beyond noise: the button leads to B - A with its
        # paired interval (it was only in the comparison's right-click menu, which no one found).
        self.difference_button = QToolButton()
        self.difference_button.setObjectName("differenceButton")
        self.difference_button.setToolTip("B - A on the task's metric with its paired 95 % interval, and the dev "
                                          "examples the two variants predict differently")
        self.difference_button.clicked.connect(self._open_difference)
        self.compare_box = QWidget()
        box = QVBoxLayout(self.compare_box)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.compare, 1)
        box.addWidget(self.difference_button, 0, Qt.AlignmentFlag.AlignLeft)
        self.compare_box.hide()
        self.empty = QLabel("No results yet. Build a chain and press Run (Ctrl+R); "
                            "every step's variant appears here as it is measured.")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setWordWrap(True)
        self.empty.setStyleSheet("color: palette(mid); padding: 12px;")

        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(self.table)
        left.addWidget(self.compare_box)
        left.setSizes([500, 200])
        self.split = QSplitter(Qt.Orientation.Horizontal)
        self.split.setObjectName("resultsSplit")
        self.split.addWidget(left)
        self.split.addWidget(self.charts_host)
        self.split.setStretchFactor(0, 3)
        self.split.setStretchFactor(1, 2)
        self.split.setChildrenCollapsible(False)
        self.charts_host.setMinimumWidth(340)  # a chart narrower than this is cut, not shrunk
        self._sized = False
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addLayout(bar2)
        layout.addWidget(self.settings_warning)
        layout.addWidget(self.empty)
        layout.addWidget(self.split, 1)

        self._filter_timer = QTimer(self)
        self._filter_timer.setSingleShot(True)
        self._filter_timer.setInterval(150)
        self._filter_timer.timeout.connect(self._apply_filter)
        self.filter_edit.textChanged.connect(lambda _t: self._filter_timer.start())
        self.run_combo.currentIndexChanged.connect(self._run_changed)
        self.task_combo.currentIndexChanged.connect(self._task_changed)
        self.cached_check.toggled.connect(self._cached_toggled)
        self.budget_box.edited.connect(self._budget_edited)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._selection_changed())
        self.table.doubleClicked.connect(lambda _i: self._show_curves_tab())

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

    def _on_loaded(self, db: str, rows: object, runs: object, interrupted: object, error: str) -> None:
        self.loading = False
        self._interrupted = interrupted if isinstance(interrupted, int) else None
        select_run, self._select_run = self._select_run, None
        self.runs = runs if isinstance(runs, dict) else {}
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
        selected = {r["variant"] for r in self.selected_rows()}
        self.rows = rows
        self._fill_runs(select_run)
        self._fill_tasks()
        self.model.set_rows(rows)
        self._set_delegates()
        if rows and not self._columns_fitted:
            self._columns_fitted = True
            self.table.resizeColumnsToContents()
        self.empty.setVisible(not rows)
        self.select_variants(selected)
        self._filters_changed()

    def add_row(self, row: dict[str, Any]) -> None:
        """A variant a running worker has just committed: shown at once, no database query."""
        if any(r["variant"] == row["variant"] for r in self.rows):
            return  # a refresh already brought it
        self.rows.append(row)
        if self.run_combo.findData(row.get("run")) < 0:
            self._fill_runs(None)
        if self.task_combo.findData(row.get("task")) < 0:
            self._fill_tasks()
        self.model.add_row(row)
        self._set_delegates()
        self.empty.hide()
        self._filters_changed()

    def _set_delegates(self) -> None:
        """Flags as badges (their column may move when task-metric columns come and go)."""
        for i, col in enumerate(self.model.columns):
            self.table.setItemDelegateForColumn(i, self.flags_delegate if col.key == "flags" else None)

    def _fill_runs(self, select_run: int | None) -> None:
        current = self.run_combo.currentData() if select_run is None else select_run
        self.run_combo.blockSignals(True)
        self.run_combo.clear()
        self.run_combo.addItem("All runs", None)
        first: dict[int, dict[str, Any]] = {}
        for r in self.rows:
            first.setdefault(int(r["run"]), r)
        for run_id in sorted(first, reverse=True):
            info = self.runs.get(run_id)
            self.run_combo.addItem(run_title(run_id, info, first[run_id]), run_id)
            if info and info.get("note"):
                self.run_combo.setItemData(self.run_combo.count() - 1, info["note"], Qt.ItemDataRole.ToolTipRole)
        self.run_combo.setCurrentIndex(max(0, self.run_combo.findData(current)))
        self.run_combo.blockSignals(False)
        self.proxy.set_run(self.run_combo.currentData())

    def _fill_tasks(self) -> None:
        current = self.task_combo.currentData()
        self.task_combo.blockSignals(True)
        self.task_combo.clear()
        self.task_combo.addItem("All tasks", None)
        for task in sorted({str(r.get("task")) for r in self.rows if r.get("task")}):
            self.task_combo.addItem(task, task)
        self.task_combo.setCurrentIndex(max(0, self.task_combo.findData(current)))
        self.task_combo.blockSignals(False)
        self.proxy.set_task(self.task_combo.currentData())

    @property
    def charts(self):  # type: ignore[no-untyped-def]
        """The Charts widget, built on first use."""
        if self._charts is None:
            from workbench.charts import Charts

            self._charts = Charts()
            self._charts.setObjectName("charts")
            self._charts.variantClicked.connect(self.select_variant)
            self._charts.currentChanged.connect(lambda _i: self._maybe_load_curves())
            self._charts.scatter.published.set_visible(self.published_check.isChecked())
            layout = self.charts_host.layout()
            assert layout is not None
            layout.addWidget(self._charts)
            self._dirty = True
        return self._charts

    def showEvent(self, event) -> None:  # type: ignore[no-untyped-def]
        super().showEvent(event)
        if not self._sized and self.split.width() > 0:
            self._sized = True
            width = self.split.width()
            self.split.setSizes([int(width * 0.56), width - int(width * 0.56)])
        if self._dirty or self._charts is None:
            self.redraw()

    def redraw(self) -> None:
        """Redraw now if the tab is visible; otherwise when it is next shown."""
        if not self.isVisible():
            self._dirty = True
            return
        self._dirty = False
        self.charts.update_rows(self.visible_rows(), selected=self.selected_rows(), budget=self.budget())
        self._maybe_load_curves()

    def interrupted_run(self) -> int | None:
        """The newest resumable run, as of the last refresh."""
        return self._interrupted

    def visible_rows(self) -> list[dict[str, Any]]:
        """The rows the table shows, in its order (every filter and the sort applied)."""
        return [self.model.rows[self.proxy.mapToSource(self.proxy.index(i, 0)).row()]
                for i in range(self.proxy.rowCount())]

    def selected_rows(self) -> list[dict[str, Any]]:
        rows = sorted({self.proxy.mapToSource(i).row() for i in self.table.selectionModel().selectedRows()})
        return [self.model.rows[r] for r in rows if r < len(self.model.rows)]

    def budget(self) -> float:
        """The share of its baseline's metric the best variant keeps: the last valid value typed."""
        return self._budget

    # --- filters and selection -------------------------------------------------------------------
    def _apply_filter(self) -> None:
        pattern = QRegularExpression.escape(self.filter_edit.text())
        if pattern == self.proxy.filterRegularExpression().pattern():
            return  # unchanged: re-filtering would only drop the selection
        self.proxy.setFilterRegularExpression(QRegularExpression(pattern))
        self._filters_changed()

    def _run_changed(self, _index: int) -> None:
        self.proxy.set_run(self.run_combo.currentData())
        self._filters_changed()

    def _task_changed(self, _index: int) -> None:
        self.proxy.set_task(self.task_combo.currentData())
        self._filters_changed()

    def _cached_toggled(self, on: bool) -> None:
        self.proxy.set_show_cached(on)
        self._filters_changed()

    def _published_toggled(self, on: bool) -> None:
        self.settings.set_value("results/published", "true" if on else "false")
        if self._charts is not None:
            self._charts.scatter.set_published_visible(on)

    def _budget_edited(self, text: str) -> None:
        value = self.budget_box.value()
        if value is None or not 0 <= value <= 100:
            self.budget_box.lineEdit().setStyleSheet("border: 1px solid #c0392b;")
            self.budget_box.setToolTip(f"'{text}' is not a share between 0 and 100 %; the best variant keeps "
                                       f"{self.budget():g} % until it is")
            self.best_label.setText(f"⚠ '{text}' is not a percentage between 0 and 100")
            return
        self.budget_box.lineEdit().setStyleSheet("")
        self.budget_box.setToolTip("The share of its baseline's metric a variant must keep to be 'best'")
        self._budget = float(value)
        self.settings.set_value("results/budget", self._budget)
        self._filters_changed()

    def _filters_changed(self) -> None:
        """After any change of rows or filters: count, best variant, comparison and charts follow."""
        visible = self.visible_rows()
        self.count_label.setText(f"{len(visible)} of {len(self.rows)} variants")
        warning = mixed_settings(visible)
        self.settings_warning.setText(warning)
        self.settings_warning.setVisible(bool(warning))
        self.best = best_within_budget(visible, self.budget())
        self.model.set_best({r["variant"] for r in self.best.values()})
        self._describe_best()
        self.show_comparison(self.selected_rows())
        self.redraw()

    def _describe_best(self) -> None:
        if not self.best:
            self.best_label.setText("no variant with a metric in view" if not self.rows else
                                    f"no trained variant keeps {self.budget():g} % of its reference")
            return
        parts, untrained = [], []
        for (task, metric), r in list(self.best.items())[:3]:
            smaller = f" ({r['pct_smaller']:.0f} % smaller)" if r.get("pct_smaller") else ""
            ref = next((x for x in self.rows if x["variant"] == r.get("reference")), None)
            yardstick = "the baseline's" if ref is None or ref.get("step") == 0 else f"#{ref['variant']}'s"
            if ref is not None and ref.get("step") != 0:
                untrained.append(f"{task}: the baseline's head is untrained, so #{ref['variant']}, the first "
                                 "trained variant, is the reference")
            # one short line per task: a long one wrapped to six lines and squeezed the chart at 1024x700
            parts.append(f"★ {task}: #{r['variant']} {r['label']} (run {r['run']}), {r['size_mb']:.1f} MB{smaller}, "
                         f"{r['pct_baseline']:.1f} % of {yardstick} {metric}")
        self.best_label.setText("\n".join(parts))
        self.best_label.setToolTip(
            "The smallest variant in view that keeps the chosen share of its run's reference metric, by point "
            "estimates (variants within 1 % of its size count as the same size: the higher metric wins); it is on "
            "its task's Pareto front. A smaller variant just below the share may be within noise of the best: "
            "select both and compare them (B - A with its interval). Variants flagged 'untrained head' or "
            "'did not learn' are never best"
            + "".join(f".\n{u}" for u in untrained))

    def _selection_changed(self) -> None:
        selected = self.selected_rows()
        if self._charts is not None and self.isVisible():
            self.charts.mark_selected(selected)
            self._maybe_load_curves()
        self.show_comparison(selected)

    def select_variant(self, variant_id: int) -> bool:
        """Select (and scroll to) one variant's row; False when a filter hides it."""
        for source, row in enumerate(self.model.rows):
            if row.get("variant") == variant_id:
                index = self.proxy.mapFromSource(self.model.index(source, 0))
                if not index.isValid():
                    self.message.emit(f"Variant #{variant_id} is hidden by the filters")
                    return False
                flags = QItemSelectionModel.SelectionFlag
                self.table.selectionModel().setCurrentIndex(index, flags.ClearAndSelect | flags.Rows)
                self.table.scrollTo(index)
                return True
        return False

    def select_variants(self, ids: set[int]) -> None:
        flags = QItemSelectionModel.SelectionFlag
        model = self.table.selectionModel()
        model.clearSelection()
        for source, row in enumerate(self.model.rows):
            if row.get("variant") in ids:
                index = self.proxy.mapFromSource(self.model.index(source, 0))
                if index.isValid():
                    model.select(index, flags.Select | flags.Rows)

    def show_comparison(self, rows: list[dict[str, Any]]) -> None:
        """Two or more selected (and shown) variants, side by side: one column per variant."""
        shown = {r["variant"] for r in self.visible_rows()} if rows else set()
        rows = [r for r in rows if r["variant"] in shown]
        self.compared = rows if len(rows) >= 2 else []
        if len(rows) < 2:
            self.compare.hide()
            self.compare_box.hide()
            return
        self.difference_button.setVisible(len(rows) == 2)
        if len(rows) == 2:
            self.difference_button.setText(_difference_text(rows))
        self.compare.clear()
        cols = [c for c in self.model.columns if c.key not in ("label", "run", "variant")]
        self.compare.setRowCount(len(cols))
        self.compare.setColumnCount(len(rows))
        after = {v: f" after {variant_name(a)}" for v, a in self.model.branches.items()}
        self.compare.setHorizontalHeaderLabels([f"#{r['variant']} {r.get('label')}{after.get(r['variant'], '')} "
                                                f"(run {r.get('run')})" for r in rows])
        self.compare.setVerticalHeaderLabels([c.title for c in cols])
        for j, r in enumerate(rows):
            for i, c in enumerate(cols):
                item = QTableWidgetItem(display_text(c, r))
                source = self.model.rows.index(r)
                for role in (Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.ForegroundRole, Qt.ItemDataRole.FontRole):
                    value = self.model.index(source, self.model.columns.index(c)).data(role)
                    if value is not None:
                        item.setData(role, value)
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.compare.setItem(i, j, item)
        self.compare.resizeColumnsToContents()
        self.compare.show()
        self.compare_box.show()

    def compare_entry(self) -> tuple[str, Any] | None:
        """The comparison's menu entry, (text, slot): B - A with its interval and the disagreements of the
        two variants side by side (None unless exactly two)."""
        if len(self.compared) != 2:
            return None
        rows = list(self.compared)
        return (_difference_text(rows), lambda: self.disagreementsRequested.emit(rows))

    def _open_difference(self) -> None:
        entry = self.compare_entry()
        if entry is not None:
            entry[1]()

    def _compare_menu(self, pos: Any) -> None:
        entry = self.compare_entry()
        if entry is None:
            return
        menu = QMenu(self)
        menu.addAction(*entry)
        menu.exec(self.compare.viewport().mapToGlobal(pos))

    # --- training curves ------------------------------------------------------------------------
    def _show_curves_tab(self) -> None:
        self.charts.setCurrentWidget(self.charts.curves)

    def _maybe_load_curves(self) -> None:
        """The curves of the one selected variant, read off the GUI thread when their tab shows."""
        if self._charts is None or self.charts.currentWidget() is not self.charts.curves:
            return
        selected = self.selected_rows()
        if len(selected) != 1:
            self._curves_for = None
            self.charts.curves.reset("select one variant of a training step")
            return
        row = selected[0]
        if self._curves_for == row["variant"]:
            return
        self._curves_for = row["variant"]
        db = self.settings.db_path()
        subject = f"#{row['variant']} {row['label']} (run {row['run']})"

        def show(curves: Any) -> None:
            if self._curves_for != row["variant"]:
                return
            if curves:
                self.charts.curves.set_curves(curves, subject)
            else:
                self.charts.curves.reset(f"{subject} did not train")

        run_in_background(self, lambda: store_client.curves(db, row["variant"]), show,
                          lambda error: self.charts.curves.reset(f"cannot read curves: {error}"))

    # --- row actions ----------------------------------------------------------------------------
    def _context_menu(self, pos: QPoint) -> None:
        index = self.table.indexAt(pos)
        if not index.isValid():
            return
        row = self.model.rows[self.proxy.mapToSource(index).row()]
        run = int(row["run"])
        menu = QMenu(self)
        menu.addAction("Open the variant's folder", lambda: self.open_folder(row))
        menu.addAction("Show its training curves", lambda: (self.select_variant(row["variant"]),
                                                            self._show_curves_tab()))
        menu.addAction("Sensitivity of this variant…", lambda: self.sensitivityRequested.emit(row))
        selected = self.selected_rows()
        if len(selected) == 2 and row in selected:
            menu.addAction(_difference_text(selected), lambda: self.disagreementsRequested.emit(selected))
        menu.addSeparator()
        menu.addAction(f"Load run {run}'s recipe into the editor", lambda: self.loadRecipeRequested.emit(run))
        menu.addAction(f"Show only run {run}", lambda: self.run_combo.setCurrentIndex(self.run_combo.findData(run)))
        menu.addAction(f"Name, tag, note or delete run {run}…", lambda: self.manageRunsRequested.emit(run))
        menu.exec(self.table.viewport().mapToGlobal(pos))

    def open_folder(self, row: dict[str, Any]) -> bool:
        path = row.get("artifact_path")
        if not path or not Path(path).is_dir():
            QMessageBox.information(self, "Open folder",
                                    f"The artifact folder of variant #{row['variant']} is gone"
                                    + (f" ({path})" if path else "") + "; its numbers are kept.")
            return False
        return QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))

    # --- export -------------------------------------------------------------------------------
    def export_text(self, fmt: str) -> str:
        """The visible rows (filters and sort applied), through the same exporter as the CLI."""
        rows = self.visible_rows()
        if not rows:
            raise ValueError("there are no results to export yet")
        return store_client.export_rows(rows, fmt)

    def export_table_dialog(self, fmt: str) -> None:
        title, ext = TABLE_FORMATS[fmt]
        path = ask_save_path(self, f"Export table as {title}", "variants", title, ext)
        if path is not None:
            self.export_table_to(fmt, path)

    def export_table_to(self, fmt: str, path: Path) -> bool:
        try:
            text = self.export_text(fmt)
        except ValueError as exc:
            QMessageBox.warning(self, "Export", f"Nothing exported: {exc}")
            return False
        if not write_text(self, path, text):
            return False
        self._exported(f"{len(self.visible_rows())} variants", path)
        return True

    def export_chart_dialog(self, name: str, ext: str) -> None:
        from workbench.chart_names import CHARTS

        title = CHARTS[name]
        if self._dirty:
            self.redraw()
        empty = self.charts.charts()[name].empty_reason()
        if empty:  # said before a file is chosen, not as a failure to write it
            QMessageBox.information(self, "Export", f"Nothing to export: {empty}.")
            return
        path = ask_save_path(self, f"Export the {title} chart", title.lower().replace(" ", "-"), ext.upper(), ext)
        if path is not None:
            self.export_chart_to(name, path)

    def export_chart_to(self, name: str, path: Path) -> bool:
        from workbench.chart_names import CHARTS

        if self._dirty:
            self.redraw()
        try:
            self.charts.export(name, path)
        except OSError as exc:
            QMessageBox.warning(self, "Export", f"Cannot write {path}: {exc.strerror or exc}")
            return False
        if not path.is_file():
            QMessageBox.warning(self, "Export", f"The {CHARTS[name]} chart could not be written to {path}")
            return False
        self._exported(f"the {CHARTS[name]} chart", path)
        return True

    def _exported(self, what: str, path: Path) -> None:
        text = f"Exported {what} to {path}"
        self.export_note.setText(f"✔ exported {path.name}")
        self.export_note.setToolTip(text)
        self.message.emit(text)
