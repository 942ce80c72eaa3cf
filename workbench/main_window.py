"""The main window: pickers, palette, chain, step editor, run panel and results."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from PySide6.QtCore import QItemSelectionModel, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QUndoStack
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from core.errors import WorkbenchError
from core.protocol import RunRequest
from core.recipe import DataSpec, Problem, Recipe, load_recipe, validate_recipe
from workbench.chain_model import ChainModel
from workbench.chain_view import ChainView
from workbench.document import Document
from workbench.edits import push_edit
from workbench.icons import icon
from workbench.palette import Palette
from workbench.pickers import ModelPicker, TaskPicker
from workbench.run_panel import RunPanel
from workbench.settings import Settings
from workbench.step_editor import StepEditor

DEFAULT_RECIPE = "tinybert_further_compressed.yaml"


def default_recipe_path() -> Path:
    import resources

    return Path(next(iter(resources.__path__))) / "recipes" / DEFAULT_RECIPE


class MainWindow(QMainWindow):
    def __init__(self, settings: Settings | None = None, *, load_initial: bool = True) -> None:
        super().__init__()
        self.settings = settings or Settings()
        self.setWindowTitle("Compression Workbench")
        self.setWindowIcon(icon("workbench"))
        self.setObjectName("mainWindow")
        self.document = Document()
        self.undo = QUndoStack(self)
        self.chain = ChainModel(self.document, self.edit, self)

        # --- widgets ---------------------------------------------------------------------------
        self.palette = Palette()
        self.palette.setObjectName("palette")
        self.chain_view = ChainView(self.chain)
        self.chain_view.setObjectName("chainView")
        self.editor = StepEditor(self.chain)
        self.editor.setObjectName("stepEditor")
        self.model_picker = ModelPicker(self.settings.recent("models"))
        self.task_picker = TaskPicker()
        self.run_panel = RunPanel()
        self.run_panel.setObjectName("runPanel")
        from workbench.results import ResultsView

        self.results = ResultsView(self.settings)
        self.results.setObjectName("resultsView")

        chain_box = QWidget()
        chain_layout = QVBoxLayout(chain_box)
        chain_layout.setContentsMargins(0, 0, 0, 0)
        hint = QLabel("Chain — drag steps here from the palette; drag to reorder; untick to skip")
        hint.setStyleSheet("color: palette(mid);")
        self.chain_status = QLabel()
        self.chain_status.setObjectName("chainStatus")
        self.chain_status.setWordWrap(True)
        chain_layout.addWidget(hint)
        chain_layout.addWidget(self.chain_view, 1)
        chain_layout.addWidget(self.chain_status)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(chain_box)
        split.addWidget(self.editor)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 1)
        self.tabs = QTabWidget()
        self.tabs.setObjectName("tabs")
        self.tabs.addTab(split, "Chain")
        self.tabs.addTab(self.results, "Results")
        self.setCentralWidget(self.tabs)

        self.palette_dock = QDockWidget("Steps", self)
        self.palette_dock.setObjectName("paletteDock")
        self.palette_dock.setWidget(self.palette)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.palette_dock)
        self.run_dock = QDockWidget("Run", self)
        self.run_dock.setObjectName("runDock")
        self.run_dock.setWidget(self.run_panel)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.run_dock)

        self._make_actions()
        self._make_toolbar()
        self._make_menus()

        # --- wiring ----------------------------------------------------------------------------
        self.palette.stepActivated.connect(lambda sid: self.chain.add_step(sid, self._insert_row()))
        self.chain_view.selectionModel().currentChanged.connect(lambda cur, _prev: self.editor.set_row(cur.row()))
        self.document.subscribe(lambda _old, _new: self._document_changed())
        self.chain.rowsInserted.connect(lambda _p, first, _last: self._select(first))
        self.chain.rowsMoved.connect(lambda _p, _s, _e, _d, row: self._select_moved(row))
        self.undo.cleanChanged.connect(self._update_title)
        self.model_picker.modelChosen.connect(self._model_chosen)
        self.task_picker.taskChosen.connect(self._task_chosen)
        self.task_picker.customRequested.connect(self._custom_task)
        self.run_panel.run_button.clicked.connect(self.run)
        self.run_panel.runFinished.connect(self._run_finished)
        self.run_panel.rowAdded.connect(self.results.add_row)
        self.run_panel.resume_button.clicked.connect(self.resume)

        geometry, state = self.settings.window_state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1360, 860)
        if state is not None:
            self.restoreState(state)
        if load_initial:
            self.load_initial()
        else:
            self.set_document(Document().recipe)
        QTimer.singleShot(0, self.results.refresh)
        # After each (threaded) results query, so core.store is already imported off the GUI thread.
        self.results.refreshed.connect(self._check_interrupted)

    # --- actions ---------------------------------------------------------------------------------
    def _action(self, text: str, slot: Any, shortcut: Any = None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(tip)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _make_actions(self) -> None:
        K = QKeySequence.StandardKey
        self.act_new = self._action("&New recipe", self.new, K.New)
        self.act_open = self._action("&Open recipe…", self.open, K.Open)
        self.act_save = self._action("&Save recipe", self.save, K.Save)
        self.act_save_as = self._action("Save recipe &as…", self.save_as, "Ctrl+Shift+S")
        self.act_quit = self._action("&Quit", self.close, K.Quit)
        self.act_undo = self.undo.createUndoAction(self, "&Undo")
        self.act_undo.setShortcut(QKeySequence("Ctrl+Z"))
        self.act_redo = self.undo.createRedoAction(self, "&Redo")
        self.act_redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        self.addActions([self.act_undo, self.act_redo])
        self.act_delete = self._action("&Delete step", self.delete_step, None, "Remove the selected step")
        self.act_delete.setShortcut(QKeySequence(QKeySequence.StandardKey.Delete))
        self.act_delete.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.removeAction(self.act_delete)
        self.chain_view.addAction(self.act_delete)
        self.act_duplicate = self._action("D&uplicate step", self.duplicate_step, "Ctrl+D")
        self.act_toggle = self._action("&Enable/disable step", self.toggle_step, "Ctrl+E")
        self.act_up = self._action("Move step &up", lambda: self.move_step(-1), "Ctrl+Up")
        self.act_down = self._action("Move step do&wn", lambda: self.move_step(1), "Ctrl+Down")
        self.act_run = self._action("&Run", self.run, "Ctrl+R", "Run the chain in a background worker")
        self.act_cancel = self._action("&Cancel run", self.run_panel.cancel, "Esc")
        self.act_db = self._action("Results &database…", self.choose_db)
        self.act_about = self._action("&About", self.about)

    def _make_toolbar(self) -> None:
        bar = QToolBar("Main")
        bar.setObjectName("mainToolbar")
        self.addToolBar(bar)
        bar.addWidget(QLabel(" Model: "))
        bar.addWidget(self.model_picker)
        bar.addWidget(QLabel("  Task: "))
        bar.addWidget(self.task_picker)
        bar.addSeparator()
        for a in (self.act_new, self.act_open, self.act_save):
            bar.addAction(a)
        bar.addSeparator()
        bar.addAction(self.act_undo)
        bar.addAction(self.act_redo)
        bar.addSeparator()
        bar.addAction(self.act_run)
        bar.addAction(self.act_cancel)

    def _make_menus(self) -> None:
        menu = self.menuBar().addMenu("&File")
        for a in (self.act_new, self.act_open):
            menu.addAction(a)
        self.recent_menu = menu.addMenu("Open &recent")
        for a in (self.act_save, self.act_save_as):
            menu.addAction(a)
        menu.addSeparator()
        menu.addAction(self.act_db)
        menu.addSeparator()
        menu.addAction(self.act_quit)
        edit = self.menuBar().addMenu("&Edit")
        for a in (self.act_undo, self.act_redo, None, self.act_delete, self.act_duplicate, self.act_toggle,
                  self.act_up, self.act_down):
            edit.addSeparator() if a is None else edit.addAction(a)
        run = self.menuBar().addMenu("&Run")
        run.addAction(self.act_run)
        run.addAction(self.act_cancel)
        view = self.menuBar().addMenu("&View")
        view.addAction(self.palette_dock.toggleViewAction())
        view.addAction(self.run_dock.toggleViewAction())
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(self.act_about)
        self._rebuild_recent()
        self.chain_view.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        for a in (self.act_duplicate, self.act_toggle, self.act_up, self.act_down):
            self.chain_view.addAction(a)

    def _rebuild_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.settings.recent("recipes")
        for path in recent:
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda _c=False, p=path: self.open_path(Path(p)))
        self.recent_menu.setEnabled(bool(recent))

    # --- document --------------------------------------------------------------------------------
    def load_initial(self) -> None:
        """Last recipe if any, else the bundled default recipe, else an empty chain on SST-2."""
        candidates = [Path(p) for p in self.settings.recent("recipes")[:1]] + [default_recipe_path()]
        for path in candidates:
            if path.is_file():
                try:
                    self.set_document(load_recipe(path), path if path != default_recipe_path() else None)
                    return
                except WorkbenchError as exc:
                    self.statusBar().showMessage(f"Could not open {path.name}: {exc}", 10000)
        self.set_document(Document().recipe)

    def set_document(self, recipe: Recipe, path: Path | None = None) -> None:
        """Start editing ``recipe`` (new or opened): not undoable, so the undo history starts afresh."""
        self.document.path = path
        self.document.set_recipe(recipe)
        self.undo.clear()
        self.undo.setClean()
        self._document_changed()
        self.editor.set_row(-1)
        if len(recipe.chain):
            self._select(0)

    def edit(self, recipe: Recipe, text: str) -> None:
        """Every edit of the document: one undo command holding the old and the new recipe."""
        push_edit(self.undo, self.document, recipe, text)

    def _document_changed(self) -> None:
        recipe = self.document.recipe
        self.model_picker.set_current(recipe.model)
        self.validate()
        self.task_picker.set_current(recipe.task)  # a custom data task has its title once validated

    def _update_title(self, *_args: object) -> None:
        dirty = "" if self.undo.isClean() else " *"
        self.setWindowTitle(f"{self.document.title}{dirty} — Compression Workbench")

    def _confirm_discard(self) -> bool:
        if self.undo.isClean():
            return True
        answer = QMessageBox.question(
            self, "Unsaved changes", "The recipe has unsaved changes. Discard them?",
            QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
        )
        return answer == QMessageBox.StandardButton.Discard

    def new(self) -> None:
        if self._confirm_discard():
            self.set_document(Recipe(model=self.document.recipe.model, task=self.document.recipe.task,
                                     data=self.document.recipe.data))

    def open(self) -> None:
        if not self._confirm_discard():
            return
        path, _ = QFileDialog.getOpenFileName(self, "Open recipe", str(self._recipe_dir()),
                                              "Recipes (*.yaml *.yml *.json);;All files (*)")
        if path:
            self.open_path(Path(path))

    def open_path(self, path: Path) -> bool:
        try:
            recipe = load_recipe(path)
        except WorkbenchError as exc:
            QMessageBox.warning(self, "Cannot open recipe", str(exc))
            return False
        self.set_document(recipe, path)
        self.settings.add_recent("recipes", str(path))
        self._rebuild_recent()
        return True

    def save(self) -> bool:
        if self.document.path is None:
            return self.save_as()
        return self.save_path(self.document.path)

    def save_as(self) -> bool:
        path, _ = QFileDialog.getSaveFileName(self, "Save recipe", str(self._recipe_dir() / "recipe.yaml"),
                                              "Recipes (*.yaml *.yml)")
        return self.save_path(Path(path)) if path else False

    def save_path(self, path: Path) -> bool:
        try:
            self.document.save(path)
        except OSError as exc:
            QMessageBox.warning(self, "Cannot save recipe", f"{path}: {exc.strerror}")
            return False
        self.undo.setClean()
        self.settings.add_recent("recipes", str(path))
        self._rebuild_recent()
        self._update_title()
        self.statusBar().showMessage(f"Saved {path}", 5000)
        return True

    def _recipe_dir(self) -> Path:
        recent = self.settings.recent("recipes")
        return Path(recent[0]).parent if recent else Path.home()

    # --- chain editing ---------------------------------------------------------------------------
    def _insert_row(self) -> int:
        row = self.chain_view.current_row()
        return row + 1 if row >= 0 else -1

    def _select(self, row: int) -> None:
        if 0 <= row < self.chain.rowCount():
            index = self.chain.index(row)
            self.chain_view.selectionModel().setCurrentIndex(index, QItemSelectionModel.SelectionFlag.ClearAndSelect)
            self.editor.set_row(row)

    def _select_moved(self, dest_child: int) -> None:
        row = self.chain_view.current_row()
        self._select(row if row >= 0 else dest_child)

    def delete_step(self) -> None:
        row = self.chain_view.current_row()
        if row >= 0:
            self.chain.remove(row)
            self._select(min(row, self.chain.rowCount() - 1))

    def duplicate_step(self) -> None:
        row = self.chain_view.current_row()
        if row >= 0:
            self.chain.duplicate(row)

    def toggle_step(self) -> None:
        row = self.chain_view.current_row()
        if row >= 0:
            self.chain.toggle(row)

    def move_step(self, delta: int) -> None:
        row = self.chain_view.current_row()
        if 0 <= row + delta < self.chain.rowCount() and row >= 0:
            self.chain.move(row, row + delta)
            self._select(row + delta)

    def validate(self) -> list[Problem]:
        problems = validate_recipe(self.document.recipe)
        self.chain.set_problems(problems)
        self.editor.refresh_problems()
        if problems:
            first = problems[0]
            more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
            where = f"Step {first.index + 1}" if first.index is not None else (first.field or "Recipe").capitalize()
            fix = f". Fix: {first.fix}" if first.fix else ""
            self.chain_status.setText(f"⚠ {where}: {first.message}{fix}{more}")
            self.chain_status.setStyleSheet("color: #c0392b;")
        else:
            n = sum(e.enabled for e in self.document.recipe.chain)
            self.chain_status.setText(f"{n} step{'s' if n != 1 else ''} ready to run" if n else "Empty chain")
            self.chain_status.setStyleSheet("")
        self._update_title()
        return problems

    def _model_chosen(self, ref: str) -> None:
        self.settings.add_recent("models", ref)
        self.edit(dataclasses.replace(self.document.recipe, model=ref), "Change model")

    def _task_chosen(self, task_id: str) -> None:
        # A bundled task replaces a custom data file.
        self.edit(dataclasses.replace(self.document.recipe, task=task_id, data=None), "Change task")

    def _custom_task(self) -> None:
        from workbench.custom_task import CustomTaskDialog

        dialog = CustomTaskDialog(self)
        if dialog.exec():
            self.set_custom_data(dialog.spec())

    def set_custom_data(self, spec: dict[str, Any]) -> None:
        """Make the user's data file the task: the recipe carries the file and its column mapping
        (``data:``), so the worker, a saved recipe and the CLI all run the same task."""
        data = DataSpec.from_dict({k: v for k, v in spec.items() if v is not None})
        self.edit(dataclasses.replace(self.document.recipe, task=data.task_id, data=data), "Use custom data")

    # --- running ---------------------------------------------------------------------------------
    def run_request(self, resume_run: int | None = None) -> RunRequest:
        db = self.settings.db_path()
        db.parent.mkdir(parents=True, exist_ok=True)
        return RunRequest(
            recipe=None if resume_run is not None else self.document.recipe.to_dict(), db=str(db),
            artifacts=str(self.settings.artifacts_dir()), resume_run=resume_run,
            background=True,  # the worker yields the CPU to this window (see core.run.worker)
        )

    def run(self) -> None:
        if self.run_panel.is_running():
            return
        problems = self.validate()
        if problems:
            self.run_dock.show()
            self.run_panel.status.setText("Fix the chain first: " + problems[0].message)
            self.run_panel.status.setStyleSheet("color: #c0392b;")
            if problems[0].index is not None:
                self._select(problems[0].index)
            return
        self.run_dock.show()
        self.run_panel.start(self.run_request())

    def resume(self) -> None:
        run_id = self.run_panel.resume_button.property("run_id")
        if run_id is not None and not self.run_panel.is_running():
            self.run_panel.resume_button.hide()
            self.run_panel.start(self.run_request(resume_run=int(run_id)))

    def _run_finished(self, outcome: Any) -> None:
        self.results.refresh(select_run=outcome.run_id)
        if outcome.ok:
            self.statusBar().showMessage("Run finished — see the Results tab", 10000)
        elif outcome.status not in ("cancelled",):
            QMessageBox.warning(self, "The run stopped", outcome.message())

    def _check_interrupted(self) -> None:
        """Offer to resume a run left 'interrupted' (e.g. by closing the app mid-run)."""
        run_id = self.results.interrupted_run()
        button = self.run_panel.resume_button
        button.setVisible(run_id is not None and not self.run_panel.is_running())
        button.setProperty("run_id", run_id)
        if run_id is not None:
            button.setText(f"Resume run {run_id}")

    def choose_db(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Results database", str(self.settings.db_path()),
                                              "SQLite (*.sqlite *.db)",
                                              options=QFileDialog.Option.DontConfirmOverwrite)
        if path:
            self.settings.set_db_path(path)
            self.results.refresh()

    def about(self) -> None:
        from workbench.about import AboutDialog

        AboutDialog(self).exec()

    # --- closing ---------------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:
        if self.run_panel.is_running():
            answer = QMessageBox.question(
                self, "A run is in progress",
                "Closing stops the worker. Finished steps are kept and the run can be resumed later. Close?",
            )
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
            self.run_panel.client.kill()
        if not self._confirm_discard():
            event.ignore()
            return
        self.settings.set_window_state(self.saveGeometry(), self.saveState())
        self.settings.sync()
        event.accept()
