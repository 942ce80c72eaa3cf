"""The main window: the chain tab (palette, chain, and the step / recipe / data editors), the
results tab, the run panel, menus and toolbar."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QItemSelectionModel, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QGuiApplication, QKeySequence, QUndoStack
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QStyle,
    QTabWidget,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWhatsThis,
    QWidget,
)

from core.errors import WorkbenchError
from core.protocol import RunRequest
from core.recipe import DataSpec, Problem, Recipe, count_variants, load_recipe, validate_recipe
from core.tasks.base import get_task, is_task_registered
from workbench.chain_model import ChainModel
from workbench.chain_view import ChainView
from workbench.data_preview import DataPreviewPanel
from workbench.document import Document
from workbench.edits import push_edit
from workbench.execution import ExecutionDialog, describe, request_fields
from workbench.icons import icon
from workbench.palette import Palette
from workbench.pickers import ModelPicker, TaskPicker
from workbench.recipe_panel import RecipePanel, secondary
from workbench.run_panel import RunPanel
from workbench.settings import Settings
from workbench.step_editor import StepEditor

DEFAULT_RECIPE = "tinybert_further_compressed.yaml"
ERROR_STYLE = "color: #c0392b;"


def recipes_dir() -> Path:
    import resources

    return Path(next(iter(resources.__path__))) / "recipes"


def default_recipe_path() -> Path:
    return recipes_dir() / DEFAULT_RECIPE


# A ready chain's duration walks its variant tree; beyond this many variants it is not estimated, so
# editing a huge sweep never waits on it.
DURATION_MAX_VARIANTS = 10_000


class MainWindow(QMainWindow):
    def __init__(self, settings: Settings | None = None, *, load_initial: bool = True) -> None:
        super().__init__()
        # the Run panel says why Run was refused, or that the chain is ready since: kept true to the chain
        self._run_status_follows_chain = False
        from workbench import gc_on_gui_thread

        gc_on_gui_thread.install()  # before any background query can collect widgets on a pool thread
        self.settings = settings or Settings()
        self.setWindowTitle("Compression Workbench")
        self.setWindowIcon(icon("workbench"))
        self.setObjectName("mainWindow")
        self.document = Document()
        self.undo = QUndoStack(self)
        self.chain = ChainModel(self.document, self.edit, self)
        self.theme_mode = str(self.settings.value("view/theme", "system"))
        self._apply_theme()

        # --- widgets ---------------------------------------------------------------------------
        self.palette = Palette()
        self.palette.setObjectName("palette")
        self.chain_view = ChainView(self.chain)
        self.chain_view.setObjectName("chainView")
        self.editor = StepEditor(self.chain)
        self.editor.setObjectName("stepEditor")
        self.recipe_panel = RecipePanel(self.document, self.edit)
        self.recipe_panel.setObjectName("recipePanel")
        self.recipe_panel.inputs_changed.connect(self.validate)
        self.data_panel = DataPreviewPanel()
        self.data_panel.setObjectName("dataPanel")
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
        hint = secondary(QLabel("Chain: drag steps here from the palette (or select one and press Enter); drag to "
                                "reorder; untick to skip. New here? Help › Getting started (F1)."))
        hint.setWordWrap(True)
        self.chain_status = QLabel()
        self.chain_status.setObjectName("chainStatus")
        self._duration_timer = QTimer(self)  # edits come in bursts: estimate once they settle
        self._duration_timer.setSingleShot(True)
        self._duration_timer.setInterval(300)
        self._duration_timer.timeout.connect(self._estimate_duration)
        self._status_version = 0  # raised by every validate(): which chain status a duration was read for
        self._chain_ready = False  # the chain status says the chain is ready to run
        self.chain_status.setWordWrap(True)
        self.chain_status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        chain_layout.addWidget(hint)
        chain_layout.addWidget(self.chain_view, 1)
        chain_layout.addWidget(self.chain_status)
        self.side_tabs = QTabWidget()
        self.side_tabs.setObjectName("sideTabs")
        self.side_tabs.addTab(self.editor, "Step")
        self.side_tabs.addTab(self.recipe_panel, "Recipe")
        self.side_tabs.addTab(self.data_panel, "Data")
        self.side_tabs.setTabToolTip(0, "The selected step's settings")
        self.side_tabs.setTabToolTip(1, "The recipe's name, description, seed and measurement settings")
        self.side_tabs.setTabToolTip(2, "The task's data: first rows, label balance, dev size")
        self.chain_split = QSplitter(Qt.Orientation.Horizontal)
        self.chain_split.setObjectName("chainSplit")
        self.chain_split.addWidget(self.palette)
        self.chain_split.addWidget(chain_box)
        self.chain_split.addWidget(self.side_tabs)
        self.chain_split.setStretchFactor(0, 0)
        self.chain_split.setStretchFactor(1, 1)
        self.chain_split.setStretchFactor(2, 1)
        self.chain_split.setChildrenCollapsible(False)
        self.chain_split.setSizes([self.palette.sizeHint().width(), 380, 420])
        self.tabs = QTabWidget()
        self.tabs.setObjectName("tabs")
        self.tabs.addTab(self.chain_split, "Chain")
        self.tabs.addTab(self.results, "Results")
        self.setCentralWidget(self.tabs)

        self.run_dock = QDockWidget("Run", self)
        self.run_dock.setObjectName("runDock")
        self.run_dock.setWidget(self.run_panel)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.run_dock)

        self._make_actions()
        self._make_toolbar()
        self._make_menus()

        # --- wiring ----------------------------------------------------------------------------
        self.palette.stepActivated.connect(lambda sid: self.chain.add_step(sid, self._insert_row()))
        self.chain_view.selectionModel().currentChanged.connect(self._current_changed)
        self.document.subscribe(lambda _old, _new: self._document_changed())
        self.chain.rowsInserted.connect(lambda _p, first, _last: self._select(first))
        self.chain.rowsMoved.connect(lambda _p, _s, _e, _d, row: self._select_moved(row))
        # After an undone insert, a removal or a reset the view's current row settles only later.
        self.chain.rowsRemoved.connect(lambda *_: QTimer.singleShot(0, self._sync_editor))
        self.chain.modelReset.connect(lambda: QTimer.singleShot(0, self._sync_editor))
        self.undo.cleanChanged.connect(self._update_title)
        self.model_picker.modelChosen.connect(self._model_chosen)
        self.task_picker.taskChosen.connect(self._task_chosen)
        self.task_picker.customRequested.connect(self._custom_task)
        self.run_panel.run_button.clicked.connect(self.run)
        self.run_panel.busyChanged.connect(self._busy_changed)
        self.run_panel.runFinished.connect(self._run_finished)
        self.run_panel.rowAdded.connect(self.results.add_row)
        self.run_panel.resume_button.clicked.connect(self.resume)
        self.results.message.connect(lambda text: self.statusBar().showMessage(text, 10000))
        self.results.loadRecipeRequested.connect(self.load_run_recipe)
        self.results.manageRunsRequested.connect(self.manage_runs)
        self.results.sensitivityRequested.connect(self.open_sensitivity)
        self.results.disagreementsRequested.connect(self.open_disagreements)
        # A bound method, not a lambda: the connection dies with this window.
        QGuiApplication.styleHints().colorSchemeChanged.connect(self._follow_system)

        geometry, state, size = self.settings.window_state()
        refit = geometry is None or not self.restoreGeometry(geometry) or self._shrunk(size)
        if refit:
            self._first_size()
        if state is not None:
            self.restoreState(state)
            if refit:  # the docks' saved heights were for a larger screen: the Run dock took 40 % of this one
                self._fit_run_dock()
        if load_initial:
            self.load_initial()
        else:
            self.set_document(Document().recipe)
        QTimer.singleShot(0, self.results.refresh)
        # After each (threaded) results query, so core.store is already imported off the GUI thread.
        self.results.refreshed.connect(self._check_interrupted)

    def _shrunk(self, saved: Any) -> bool:
        """Whether Qt shrank the restored window below its ``saved`` size: it makes a window saved on a
        larger screen 2/3 of this one (776x466 at 1024x700), where filling the screen serves better."""
        if saved is None:
            return False
        restored = self.normalGeometry().size() if self.normalGeometry().isValid() else self.size()
        return restored.width() < 0.9 * saved.width() or restored.height() < 0.9 * saved.height()

    def _first_size(self) -> None:
        """1360x860 where it fits, else the screen's available area: nothing starts cut off."""
        screen = self.screen().availableGeometry() if self.screen() is not None else None
        width, height = 1360, 860
        if screen is not None:
            width, height = min(width, screen.width()), min(height, screen.height())
        self.resize(width, height)
        self._fit_run_dock()

    def _fit_run_dock(self) -> None:
        """The Run dock a quarter of the window's height (at least 150 px): the results keep the rest."""
        self.resizeDocks([self.run_dock], [max(150, self.height() // 4)], Qt.Orientation.Vertical)

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
        SP = QStyle.StandardPixmap
        std = self.style().standardIcon
        self.act_new = self._action("&New recipe", self.new, K.New, "Start an empty chain on the same model and task")
        self.act_new.setIcon(std(SP.SP_FileIcon))
        self.act_open = self._action("&Open recipe…", self.open, K.Open, "Open a recipe file (YAML or JSON)")
        self.act_open.setIcon(std(SP.SP_DialogOpenButton))
        self.act_save = self._action("&Save recipe", self.save, K.Save, "Save the recipe")
        self.act_save.setIcon(std(SP.SP_DialogSaveButton))
        self.act_save_as = self._action("Save recipe &as…", self.save_as, "Ctrl+Shift+S")
        self.act_model_folder = self._action("Open model &folder…", self.open_model_folder, None,
                                             "Use a local Hugging Face model folder")
        self.act_custom_data = self._action("Use a custom &data file…", self._custom_task, None,
                                            "Make your own CSV/TSV/JSON/parquet file the task")
        self.act_quit = self._action("&Quit", self.close, K.Quit)
        self.act_undo = self.undo.createUndoAction(self, "&Undo")
        self.act_undo.setShortcut(QKeySequence("Ctrl+Z"))
        self.act_undo.setIcon(std(SP.SP_ArrowBack))
        self.act_redo = self.undo.createRedoAction(self, "&Redo")
        self.act_redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        self.act_redo.setIcon(std(SP.SP_ArrowForward))
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
        self.act_run = self._action("&Run", self.run, "Ctrl+R", "Run the chain in a background worker (Ctrl+R)")
        self.act_run.setIcon(std(SP.SP_MediaPlay))
        self.act_cancel = self._action("&Cancel run", self.run_panel.cancel, "Esc",
                                       "Stop the run at its next safe point; finished steps are kept (Esc)")
        self.act_cancel.setIcon(std(SP.SP_MediaStop))
        self.act_cancel.setEnabled(False)  # until a run starts
        self.act_runs = self._action("Manage &runs…", lambda: self.manage_runs(None), None,
                                     "Name, tag, note or delete runs; disk use; clean up unused files")
        self.act_db = self._action("Results &database…", self.choose_db)
        self.act_guide = self._action("&Getting started", self.getting_started, "F1", "A short guide to the workbench")
        self.act_whats_this = QWhatsThis.createAction(self)
        self.act_whats_this.setText("What's &this?")
        self.addAction(self.act_whats_this)
        self.act_about = self._action("&About", self.about)
        self.act_sensitivity = self._action("&Sensitivity of the selected variant…", lambda: self.open_sensitivity(),
                                            None, "Which layers can take int8, fewer bits or pruning: a heatmap, "
                                            "and mixed precision from it in one click")
        self.act_disagreements = self._action("&Disagreements of two selected variants…",
                                              lambda: self.open_disagreements(), None,
                                              "The dev examples where two variants' predictions differ, and a "
                                              "confusion matrix per variant")
        self._analysis_dialogs: list[Any] = []

    def _make_toolbar(self) -> None:
        bar = QToolBar("Main")
        bar.setObjectName("mainToolbar")
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        self.addToolBar(bar)
        # Run first: it is never pushed into the toolbar's overflow menu by a narrow window.
        for action in (self.act_run, self.act_cancel):
            bar.addAction(action)
            button = bar.widgetForAction(action)
            if isinstance(button, QToolButton):
                button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        bar.addSeparator()
        bar.addWidget(QLabel(" Model: "))
        for picker in (self.model_picker, self.task_picker):
            picker.setFixedWidth(picker.sizeHint().width())  # a red mark or a long name never moves the bar
        bar.addWidget(self.model_picker)
        bar.addWidget(QLabel("  Task: "))
        bar.addWidget(self.task_picker)
        bar.addSeparator()
        # Icons only: the undo button no longer grows with its text ("Undo Add ..." is its tooltip).
        for a in (self.act_new, self.act_open, self.act_save, None, self.act_undo, self.act_redo):
            bar.addSeparator() if a is None else bar.addAction(a)
        self.toolbar = bar
        for action, key in ((self.act_undo, "Ctrl+Z"), (self.act_redo, "Ctrl+Shift+Z")):
            action.changed.connect(lambda a=action, k=key: self._undo_tip(a, k))
            self._undo_tip(action, key)

    @staticmethod
    def _undo_tip(action: QAction, key: str) -> None:
        """'Undo Add Fine-tune (Ctrl+Z)': the toolbar shows the icon, the tooltip what it undoes."""
        import shiboken6

        if not shiboken6.isValid(action):  # the window is being destroyed
            return
        text = action.text().replace("&", "")
        tip = f"{text} ({key})" if action.isEnabled() else f"{text.split(' ')[0]}: nothing to do"
        if action.toolTip() != tip:  # setting it emits changed again
            action.setToolTip(tip)

    def _make_menus(self) -> None:
        menu = self.menuBar().addMenu("&File")
        for a in (self.act_new, self.act_open):
            menu.addAction(a)
        self.recent_menu = menu.addMenu("Open &recent")
        for a in (self.act_save, self.act_save_as, None, self.act_model_folder, self.act_custom_data, None,
                  self.act_db, None, self.act_quit):
            menu.addSeparator() if a is None else menu.addAction(a)
        edit = self.menuBar().addMenu("&Edit")
        for a in (self.act_undo, self.act_redo, None, self.act_delete, self.act_duplicate, self.act_toggle,
                  self.act_up, self.act_down):
            edit.addSeparator() if a is None else edit.addAction(a)
        run = self.menuBar().addMenu("&Run")
        run.addAction(self.act_run)
        run.addAction(self.act_cancel)
        self.act_where = self._action("&Where to run…", self.choose_where_to_run,
                                      tip="On this machine, or the sweep's branches on a Ray cluster")
        run.addAction(self.act_where)
        run.addSeparator()
        run.addAction(self.act_runs)
        analysis = self.menuBar().addMenu("&Analysis")
        analysis.addAction(self.act_sensitivity)
        analysis.addAction(self.act_disagreements)
        view = self.menuBar().addMenu("&View")
        self.act_palette = view.addAction("Steps &palette")
        self.act_palette.setCheckable(True)
        self.act_palette.setChecked(True)
        self.act_palette.toggled.connect(self.palette.setVisible)
        view.addAction(self.run_dock.toggleViewAction())
        view.addSeparator()
        theme = view.addMenu("&Theme")
        group = QActionGroup(self)
        self.theme_actions: dict[str, QAction] = {}
        for mode, text in (("system", "Follow the &system"), ("light", "&Light"), ("dark", "&Dark")):
            action = theme.addAction(text)
            action.setCheckable(True)
            action.setChecked(mode == self.theme_mode)
            action.triggered.connect(lambda _c=False, m=mode: self.set_theme(m))
            group.addAction(action)
            self.theme_actions[mode] = action
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(self.act_guide)
        help_menu.addAction(self.act_whats_this)
        help_menu.addSeparator()
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
        self.recipe_panel.pending.clear()
        self.recipe_panel.seeds_pending = ""
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
        self.recipe_panel.refresh()
        self.data_panel.show_recipe(recipe)

    def _update_title(self, *_args: object) -> None:
        dirty = "" if self.undo.isClean() else " *"
        name = self.document.recipe.name
        shown = f"{self.document.title} ({name})" if self.document.path and name else self.document.title
        self.setWindowTitle(f"{shown}{dirty} — Compression Workbench")

    def _confirm_discard(self) -> bool:
        """Before the document is replaced: save, discard or keep editing."""
        if self.undo.isClean():
            return True
        choice = self.ask_close(False, True, title="Unsaved recipe")
        return choice == "discard" or (choice == "save" and self.save())

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
        start = self.document.path or self._save_dir() / "recipe.yaml"
        path, _ = QFileDialog.getSaveFileName(self, "Save recipe", str(start), "Recipes (*.yaml *.yml)")
        if not path:
            return False
        renamed = self.document.path is not None and Path(path) != self.document.path
        if not self.save_path(Path(path)):
            return False
        if renamed and self.document.recipe.name:
            self.statusBar().showMessage(
                f"Saved as {path}. Its name is still '{self.document.recipe.name}': change it and the description "
                "in the Recipe tab", 15000)
        return True

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
        """Where Open starts: the last recipe's folder, else the shipped recipes."""
        recent = [Path(p) for p in self.settings.recent("recipes")]
        folders = [p.parent for p in recent if p.parent.is_dir()]
        return folders[0] if folders else recipes_dir()

    def _save_dir(self) -> Path:
        """Where Save As starts: the last recipe's folder, never the installed package's."""
        recent = [Path(p).parent for p in self.settings.recent("recipes")]
        folders = [p for p in recent if p.is_dir() and p != recipes_dir()]
        return folders[0] if folders else Path.home()

    # --- chain editing ---------------------------------------------------------------------------
    def _insert_row(self) -> int:
        row = self.chain_view.current_row()
        return row + 1 if row >= 0 else -1

    def _select(self, row: int) -> None:
        if 0 <= row < self.chain.rowCount():
            index = self.chain.index(row)
            self.chain_view.selectionModel().setCurrentIndex(index, QItemSelectionModel.SelectionFlag.ClearAndSelect)
            self.editor.set_row(row)

    def _current_changed(self, current: Any, _previous: Any) -> None:
        self.editor.set_row(current.row())
        if current.isValid():
            self.side_tabs.setCurrentWidget(self.editor)

    def _sync_editor(self) -> None:
        """The editor shows the view's current row, and that row is the selected one."""
        row = self.chain_view.current_row()
        if 0 <= row < self.chain.rowCount():
            selection = self.chain_view.selectionModel()
            if not selection.isSelected(self.chain.index(row)):
                selection.select(self.chain.index(row), QItemSelectionModel.SelectionFlag.ClearAndSelect)
            self.editor.set_row(row)
        else:
            self.chain_view.selectionModel().clearSelection()
            self.editor.set_row(-1)

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
        """Every problem of the recipe, plus the values refused in the Recipe tab (still shown there):
        marked on their steps and fields, summed up under the chain. Run refuses while any is left."""
        problems = validate_recipe(self.document.recipe)
        problems += [Problem(text, "correct it in the Recipe tab", field="measure")
                     for text in self.recipe_panel.invalid_inputs()]
        self.chain.set_problems(problems)
        self.editor.refresh_problems()
        for picker, fields in ((self.model_picker, ("model",)), (self.task_picker, ("task", "data"))):
            mine = [p for p in problems if p.index is None and p.field in fields]
            picker.setStyleSheet("QComboBox { border: 1px solid #c0392b; }" if mine else "")
            picker.setToolTip(mine[0].message if mine else picker.property("tip") or "")
        self._status_version += 1  # a duration read for an earlier status is not shown on this one
        self._duration_timer.stop()
        self._chain_ready = False
        self.chain_status.setToolTip("")
        if problems:
            first = problems[0]
            more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
            where = f"Step {first.index + 1}" if first.index is not None else (first.field or "Recipe").capitalize()
            fix = f". Fix: {first.fix}" if first.fix else ""
            self.chain_status.setText(f"⚠ {where}: {first.message}{fix}{more}")
            self.chain_status.setStyleSheet(ERROR_STYLE)
        else:
            n = sum(e.enabled for e in self.document.recipe.chain)
            variants = count_variants(self.document.recipe)
            self.chain_status.setText(f"{n} step{'s' if n != 1 else ''} ready to run · {variants} variants"
                                      if n else "Empty chain")
            self.chain_status.setStyleSheet("")
            self._chain_ready = n > 0 and variants <= DURATION_MAX_VARIANTS
            if self._chain_ready:
                self._duration_timer.start()
        if self._run_status_follows_chain and not self.run_panel.is_running():
            if problems:
                self._refuse_run(problems[0].message)
            else:
                self._clear_refusal()
        self._update_title()
        return problems

    def _estimate_duration(self) -> None:
        """Append to a ready chain's status how long its run should take, by what the same work took in
        earlier runs in this database (core.recipe.run_duration), read off the GUI thread."""
        from workbench import store_client
        from workbench.background import run_in_background

        if not self._chain_ready:
            return
        recipe, db, version = self.document.recipe, self.settings.db_path(), self._status_version

        def show(estimate: Any) -> None:
            text = estimate.summary() if estimate is not None else ""
            if not text or version != self._status_version:
                return  # nothing timed before, or the chain, its status or the database changed meanwhile
            self.chain_status.setText(f"{self.chain_status.text()} · {text}")
            self.chain_status.setToolTip(
                f"{estimate.timed} of {estimate.variants} variants were computed here before with this model, task, "
                "data and measurement settings; each is counted at the median of its past times"
                + (f", and {', '.join(estimate.untimed)} never was, so the run takes longer" if estimate.untimed else "")
                + ". Variants reused from the cache take seconds, so a run of work already done is much shorter.")

        run_in_background(self, lambda: store_client.run_duration(db, recipe), show, lambda _error: None)

    def _refuse_run(self, problem: str) -> None:
        self._run_status_follows_chain = True
        self.run_panel.status.setText("Fix the chain first: " + problem)
        self.run_panel.status.setStyleSheet(ERROR_STYLE)

    def _clear_refusal(self) -> None:
        self._run_status_follows_chain = True  # an error typed later takes "ready" back
        self.run_panel.status.setText("The chain is ready: press Run (Ctrl+R)")
        self.run_panel.status.setStyleSheet("")

    def _model_chosen(self, ref: str) -> None:
        self.settings.add_recent("models", ref)
        self.edit(dataclasses.replace(self.document.recipe, model=ref), "Change model")

    def _task_chosen(self, task_id: str) -> None:
        # A bundled task replaces a custom data file.
        recipe = self.document.recipe
        self.edit(dataclasses.replace(recipe, task=task_id, data=None,
                                      name=renamed_for_task(recipe.name, recipe.task, task_id)), "Change task")

    def _custom_task(self) -> None:
        from workbench.custom_task import CustomTaskDialog

        dialog = CustomTaskDialog(self)
        if dialog.exec():
            self.set_custom_data(dialog.spec())

    def set_custom_data(self, spec: dict[str, Any]) -> None:
        """Make the user's data file the task: the recipe carries the file and its column mapping
        (``data:``), so the worker, a saved recipe and the CLI all run the same task."""
        data = DataSpec.from_dict({k: v for k, v in spec.items() if v is not None})
        recipe = self.document.recipe
        self.edit(dataclasses.replace(recipe, task=data.task_id, data=data,
                                      name=renamed_for_task(recipe.name, recipe.task, data.task_id)), "Use custom data")

    # --- running ---------------------------------------------------------------------------------
    def run_request(self, resume_run: int | None = None) -> RunRequest:
        db = self.settings.db_path()
        db.parent.mkdir(parents=True, exist_ok=True)
        return RunRequest(
            recipe=None if resume_run is not None else self.document.recipe.to_dict(), db=str(db),
            resume_run=resume_run, background=True,  # the worker yields the CPU to this window (see core.run.worker)
            # artifacts, and whether the sweep's branches go to a Ray cluster (workbench.execution)
            **request_fields(self.settings, str(self.settings.artifacts_dir())),
        )

    def choose_where_to_run(self) -> None:
        """Run › Where to run…: this machine, or the sweep's branches on a Ray cluster (docs/CLUSTER.md)."""
        if ExecutionDialog(self.settings, self).exec():
            self.statusBar().showMessage(f"Runs: {describe(self.settings)}", 10000)

    def run(self) -> None:
        if self.run_panel.is_running():
            return
        focused = QApplication.focusWidget()
        if focused is not None:
            focused.clearFocus()  # a field still being typed in commits first (its editingFinished)
        problems = self.validate()
        if problems:
            self.run_dock.show()
            self._refuse_run(problems[0].message)
            if problems[0].index is not None:
                self.tabs.setCurrentIndex(0)
                self._select(problems[0].index)
            elif problems[0].field == "measure":
                self.tabs.setCurrentIndex(0)
                self.side_tabs.setCurrentWidget(self.recipe_panel)
            return
        self._run_status_follows_chain = False
        if not self.confirm_run_size():
            self.run_dock.show()
            self.run_panel.status.setText("Run not started: the run is larger than the limits; sweep fewer "
                                          "values or choose another artifacts folder")
            self.run_panel.status.setStyleSheet(ERROR_STYLE)
            return
        self.run_dock.show()
        self.run_panel.start(self.run_request())

    def confirm_run_size(self) -> bool:
        """A large run (many variants, or artifacts that would nearly fill the disk) starts only
        when the user confirms it, as the CLI's ``--yes`` (core.recipe.run_estimate)."""
        from core.recipe import run_estimate

        estimate = run_estimate(self.document.recipe, self.settings.artifacts_dir())
        if not estimate.needs_confirmation:
            return True
        return self.ask_large_run(estimate.reasons(), estimate.summary())

    def ask_large_run(self, reasons: list[str], summary: str) -> bool:
        box = self.large_run_box(reasons, summary)
        box.exec()
        clicked = box.clickedButton()
        return clicked is not None and box.buttonRole(clicked) == QMessageBox.ButtonRole.AcceptRole

    def large_run_box(self, reasons: list[str], summary: str) -> QMessageBox:
        box = QMessageBox(self)
        box.setObjectName("largeRunBox")
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle("A large run")
        box.setText("This run is large: " + "; ".join(reasons) + ".")
        box.setInformativeText(f"{summary}.\n\nSweep fewer values or choose another artifacts folder "
                               "(File > Results database… sets where results and artifacts go), or run it anyway.")
        box.addButton("Run anyway", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        return box

    def _busy_changed(self, running: bool) -> None:
        """Run, Cancel and Resume say what can be done now: one run at a time."""
        self.act_run.setEnabled(not running)
        self.act_cancel.setEnabled(running)
        if running:
            self.run_panel.resume_button.hide()  # offered again when the run ends, if still interrupted
            self._run_status_follows_chain = False  # the run's own status until the chain is edited again

    def resume(self) -> None:
        run_id = self.run_panel.resume_button.property("run_id")
        if run_id is not None and not self.run_panel.is_running():
            self.run_panel.resume_button.hide()
            self.run_panel.start(self.run_request(resume_run=int(run_id)))

    def _run_finished(self, outcome: Any) -> None:
        self.results.refresh(select_run=outcome.run_id)
        self.validate()  # the run's timings change the chain's duration estimate
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
            button.setToolTip(f"Continue run {run_id} where it stopped, with the recipe it was started with (not "
                              "the one in the editor); its finished variants are kept")

    def open_model_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a Hugging Face model folder",
                                                str(Path(self.document.recipe.model).parent)
                                                if Path(self.document.recipe.model).is_dir() else str(Path.home()))
        if path:
            self.model_picker.set_current(path)
            self._model_chosen(path)

    def load_run_recipe(self, run_id: int) -> None:
        """Open the recipe a run executed in the editor (after the unsaved-changes question)."""
        if not self._confirm_discard():
            return
        from workbench import store_client
        from workbench.background import run_in_background

        db = self.settings.db_path()

        def loaded(data: Any) -> None:
            try:
                recipe = Recipe.from_dict(data)
            except WorkbenchError as exc:
                QMessageBox.warning(self, "Cannot load the run's recipe", str(exc))
                return
            self.set_document(recipe)
            self.tabs.setCurrentIndex(0)
            self.statusBar().showMessage(f"Loaded the recipe of run {run_id}; Save As keeps it as a file", 10000)

        run_in_background(self, lambda: store_client.run_recipe(db, run_id), loaded,
                          lambda error: QMessageBox.warning(self, "Cannot load the run's recipe", error))

    def manage_runs(self, run_id: int | None = None) -> Any:
        from workbench.runs import RunsDialog

        dialog = RunsDialog(self.settings, self, select_run=run_id)
        dialog.showRun.connect(self._show_run)
        dialog.loadRecipe.connect(self.load_run_recipe)
        dialog.changed.connect(lambda: self.results.refresh())
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    def _show_run(self, run_id: int) -> None:
        self.tabs.setCurrentWidget(self.results)
        combo = self.results.run_combo
        combo.setCurrentIndex(max(0, combo.findData(run_id)))

    def getting_started(self) -> None:
        from workbench.help import GettingStartedDialog

        dialog = GettingStartedDialog(self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()

    # --- theme ------------------------------------------------------------------------------------
    def _apply_theme(self) -> None:
        from workbench.theme import apply_theme

        apply_theme(self.theme_mode)
        self._restyle_charts()

    def _restyle_charts(self) -> None:
        results = getattr(self, "results", None)
        if results is not None and results._charts is not None:
            results._charts.restyle()
        panel = getattr(self, "run_panel", None)
        if panel is not None and panel._curves is not None:
            panel._curves.restyle()

    def set_theme(self, mode: str) -> None:
        self.theme_mode = mode
        self.settings.set_value("view/theme", mode)
        self._apply_theme()

    def _follow_system(self, _scheme: object = None) -> None:
        import shiboken6

        if not shiboken6.isValid(self) or not self.isVisible():  # a closed window has no say
            return
        # The choice is the application's (the settings file), not one window's.
        self.theme_mode = str(self.settings.value("view/theme", "system"))
        if self.theme_mode == "system":
            self._apply_theme()

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self._restyle_charts()

    def choose_db(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Results database", str(self.settings.db_path()),
                                              "SQLite (*.sqlite *.db)",
                                              options=QFileDialog.Option.DontConfirmOverwrite)
        if path:
            self.settings.set_db_path(path)
            self.results.refresh()
            self.validate()  # the chain's duration comes from the database

    # --- analyses (issue 18) ---------------------------------------------------------------------
    def _selected_variants(self, count: int, what: str) -> list[dict[str, Any]] | None:
        rows = self.results.selected_rows()
        if len(rows) != count:
            QMessageBox.information(self, what, f"Select {'one variant' if count == 1 else f'{count} variants'} "
                                    f"in the Results table first (you selected {len(rows)}).")
            self.tabs.setCurrentWidget(self.results)
            return None
        return rows

    def open_sensitivity(self, row: dict[str, Any] | None = None) -> Any:
        rows = [row] if row is not None else self._selected_variants(1, "Sensitivity")
        if not rows:
            return None
        from workbench.sensitivity_view import SensitivityDialog

        dialog = SensitivityDialog(self.settings.db_path(), rows[0], add_step=self.add_planned_step, parent=self)
        self._analysis_dialogs.append(dialog)
        dialog.finished.connect(lambda _r, d=dialog: self._analysis_dialogs.remove(d)
                                if d in self._analysis_dialogs else None)
        dialog.show()
        return dialog

    def add_planned_step(self, plan: Any) -> None:
        """A mixed-precision plan from the sensitivity view, as one undoable edit of the chain."""
        from core.analysis.mixed import add_to_chain

        self.edit(add_to_chain(self.document.recipe, plan), "Add mixed precision")
        self.tabs.setCurrentIndex(0)
        self._select(len(self.document.recipe.chain) - 1)

    def open_disagreements(self, rows: list[dict[str, Any]] | None = None) -> Any:
        rows = rows if rows is not None else self._selected_variants(2, "Disagreements")
        if not rows:
            return None
        from workbench.disagreements import DisagreementsDialog

        dialog = DisagreementsDialog(self.settings.db_path(), int(rows[0]["variant"]), int(rows[1]["variant"]), self)
        self._analysis_dialogs.append(dialog)
        dialog.finished.connect(lambda _r, d=dialog: self._analysis_dialogs.remove(d)
                                if d in self._analysis_dialogs else None)
        dialog.show()
        return dialog

    def about(self) -> None:
        from workbench.about import AboutDialog

        AboutDialog(self).exec()

    # --- closing ---------------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:
        """One question, in the order that loses nothing: Cancel leaves the run and the recipe as
        they are; only a confirmed close stops the worker (reported as the user's stop)."""
        running = self.run_panel.is_running()
        if running or not self.undo.isClean():
            choice = self.ask_close(running, not self.undo.isClean())
            if choice == "cancel" or (choice == "save" and not self.save()):
                event.ignore()
                return
        if running:
            self.run_panel.stop_for_close()
            self._mark_stopped_run()
        for dialog in list(self._analysis_dialogs):
            dialog.done(0)  # stops any analysis process
        maximized = self.isMaximized() or self.isFullScreen()
        self.settings.set_window_state(self.saveGeometry(), self.saveState(),
                                       self.normalGeometry().size() if maximized else self.size())
        self.settings.sync()
        event.accept()

    def _mark_stopped_run(self) -> None:
        """A worker killed before it could mark its run (SIGTERM not handled within the grace period, e.g.
        on a starved machine) leaves it 'running'; mark it interrupted now, so it is resumable at once."""
        import contextlib

        from workbench import store_client

        with contextlib.suppress(WorkbenchError):  # a locked or damaged database: the next start marks it
            store_client.mark_interrupted(self.settings.db_path())

    def ask_close(self, running: bool, dirty: bool, title: str = "Close Compression Workbench") -> str:
        """'save', 'discard' (or 'close'), or 'cancel'; ``title``: what the question is asked before."""
        B = QMessageBox.StandardButton
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle(title)
        run = f"Run {self.run_panel.run_id}" if self.run_panel.run_id is not None else "A run"
        stop = (f"{run} is in progress. Closing stops it; its finished steps are kept and it can be "
                "resumed when you open the workbench again.")
        if dirty:
            box.setText((stop + "\n\n" if running else "") + "The recipe has unsaved changes. Save them?")
            box.setStandardButtons(B.Save | B.Discard | B.Cancel)
            box.setDefaultButton(B.Save)
        else:
            box.setText(stop)
            box.setStandardButtons(B.Close | B.Cancel)
            box.button(B.Close).setText("Stop the run and close")
            box.setDefaultButton(B.Cancel)
        box.exec()
        clicked = box.standardButton(box.clickedButton()) if box.clickedButton() is not None else B.Cancel
        return {B.Save: "save", B.Discard: "discard", B.Close: "close"}.get(clicked, "cancel")


def _task_names(task_id: str) -> tuple[str, str]:
    """A task's id as a recipe name would write it, and its short title ("sst2", "SST-2"); a custom
    data task ("custom:reviews") is known by its data's name."""
    if is_task_registered(task_id) and not task_id.startswith("custom:"):
        return task_id, get_task(task_id).title.split(" (")[0]
    short = task_id.split(":", 1)[-1]
    return short, short


def renamed_for_task(name: str, old_task: str, new_task: str) -> str:
    """``name`` with the old task's id or short title replaced by the new task's where the name says
    which task it is for: in parentheses or as its last word. "TinyBERT, further compressed (SST-2)"
    named the wrong task once the task was CoLA (newcomer test); "prune the train split" is left
    alone when the old task is custom data called "train"."""
    (old_id, old_title), (new_id, new_title) = _task_names(old_task), _task_names(new_task)
    words = "|".join(re.escape(w) for w in dict.fromkeys((old_title, old_id)) if w)
    if not words:
        return name
    pattern = rf"(?<=\()(?:{words})(?=\))|(?<![\w:-])(?:{words})$"
    said_id = old_id != old_title  # a custom task's id is its title: name the new task by its title
    return re.sub(pattern, lambda m: new_id if said_id and m.group(0).lower() == old_id.lower() else new_title,
                  name, flags=re.IGNORECASE)
