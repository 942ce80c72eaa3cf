"""Window-level behaviour: first start, recipes, recents, settings, About."""

from __future__ import annotations

from pathlib import Path

import yaml
from PySide6.QtCore import Qt, QTimer

from core.recipe import Chain, ChainEntry, MeasureSettings, Recipe, dumps_recipe, load_recipe
from workbench.settings import Settings


def test_settings_live_in_the_test_home(tmp_path: Path) -> None:
    import os

    s = Settings()
    assert Path(s.path()).parent == Path(os.environ["WORKBENCH_HOME"])
    s.add_recent("models", "a")
    s.add_recent("models", "b")
    s.add_recent("models", "a")
    assert s.recent("models") == ["a", "b"]
    for i in range(20):
        s.add_recent("recipes", f"r{i}")
    assert len(s.recent("recipes")) == 8 and s.recent("recipes")[0] == "r19"


def test_first_start_opens_the_shipped_default_recipe(qtbot) -> None:
    from workbench.main_window import MainWindow, default_recipe_path

    w = MainWindow()
    qtbot.addWidget(w, before_close_func=lambda w: w.undo.setClean())
    assert w.model_picker.current() == "all-MiniLM-L6-v2"
    expected = load_recipe(default_recipe_path())  # the shipped TinyBERT recipe
    assert w.document.recipe == expected and len(expected.chain) > 0
    assert w.task_picker.current() == expected.task
    assert w.document.path is None  # editing the shipped file never overwrites it
    w.settings.add_recent("recipes", "/no/such/recipe.yaml")  # a vanished recent recipe falls back to it too
    w2 = MainWindow()
    qtbot.addWidget(w2, before_close_func=lambda w: w.undo.setClean())
    assert w2.document.recipe == expected


def test_recipe_saved_by_the_window_round_trips_steps_sweeps_and_disabled_flags(window, tmp_path: Path) -> None:
    recipe = Recipe(model="all-MiniLM-L6-v2", task="sst2", seed=3, measure=MeasureSettings(eval_limit=64), chain=Chain((
        ChainEntry("wbtest.scale", {"amount": [0.1, 0.2], "rounds": 2, "mode": "l2", "parts": ["ffn"],
                                    "keep_bias": False}),
        ChainEntry("wbtest.freeze", {"bits": 8}, enabled=False),
    )))
    window.set_document(recipe)
    path = tmp_path / "r.yaml"
    assert window.save_path(path)
    data = yaml.safe_load(path.read_text())
    assert data["chain"][1]["enabled"] is False and "enabled" not in data["chain"][0]
    assert data["measure"]["eval_limit"] == 64 and data["chain"][0]["config"]["amount"] == [0.1, 0.2]
    assert load_recipe(path) == recipe
    # A file the window saved is exactly what the CLI writes (and reads unchanged).
    assert dumps_recipe(load_recipe(path)) == path.read_text()


def test_save_open_and_recent_recipes_through_the_window(window, tmp_path: Path) -> None:
    window.chain.add_step("wbtest.scale")
    assert window.windowTitle().startswith("untitled *")
    path = tmp_path / "chain.yaml"
    assert window.save_path(path)
    assert not window.windowTitle().startswith("untitled")
    assert "*" not in window.windowTitle()
    assert window.settings.recent("recipes")[0] == str(path)
    window.new()
    assert window.chain.rowCount() == 0
    assert window.open_path(path)
    assert [e.step for e in window.document.recipe.chain] == ["wbtest.scale"]
    assert [a.text() for a in window.recent_menu.actions()] == [str(path)]


def test_unknown_step_in_a_recipe_is_marked_on_its_row_and_blocks_the_run(window, tmp_path: Path, monkeypatch) -> None:
    from PySide6.QtWidgets import QMessageBox

    shown = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: shown.append(a[2]))
    path = tmp_path / "bad.yaml"
    path.write_text("model: all-MiniLM-L6-v2\ntask: sst2\nchain:\n  - step: no.such.step\n")
    assert window.open_path(path)  # the file opens, nothing in it is lost ...
    assert shown == []
    assert "unknown step 'no.such.step'" in window.chain.problems(0)[0].message  # ... and the row says why
    window.run()
    assert not window.run_panel.is_running() and "Fix the chain first" in window.run_panel.status.text()
    path.write_text("model: all-MiniLM-L6-v2\ntask: sst2\nchain: [\n")
    assert not window.open_path(path)  # a file that is not a recipe is refused, naming the line
    assert "YAML syntax error" in shown[0] and "bad.yaml:" in shown[0]


def test_window_geometry_and_recents_persist_across_windows(qtbot) -> None:
    from workbench.main_window import MainWindow

    w = MainWindow(load_initial=False)
    qtbot.addWidget(w)
    w.resize(700, 500)  # inside the 800x600 offscreen screen
    w.show()
    w.settings.add_recent("models", "/tmp/some-model")
    w.close()
    size = w.size()
    assert w.settings.value("window/geometry") is not None
    w2 = MainWindow(load_initial=False)
    qtbot.addWidget(w2)
    assert w2.size() == size and size.width() < 1360  # not the first-start default
    labels = [w2.model_picker.itemData(i) for i in range(w2.model_picker.count())]
    assert "/tmp/some-model" in labels


def test_about_lists_versions_without_importing_torch(window) -> None:
    import sys

    from workbench.about import AboutDialog, versions

    had_torch = "torch" in sys.modules
    v = versions()
    assert v["PySide6"] != "not installed" and "Qt" in v
    dialog = AboutDialog(window)
    text = dialog.findChild(type(dialog.layout().itemAt(0).widget()), "aboutText").text()
    assert "torch" in text and v["torch"] in text
    assert ("torch" in sys.modules) == had_torch


def test_shortcuts_are_bound(window) -> None:
    w = window
    got = [a.shortcut().toString() for a in (w.act_run, w.act_cancel, w.act_duplicate, w.act_new, w.act_open,
                                             w.act_save, w.act_undo)]
    assert got == ["Ctrl+R", "Esc", "Ctrl+D", "Ctrl+N", "Ctrl+O", "Ctrl+S", "Ctrl+Z"]
    assert w.act_redo.shortcut().toString() == "Ctrl+Shift+Z"
    assert window.act_delete.shortcut().toString() == "Del"
    assert window.act_delete.shortcutContext() == Qt.ShortcutContext.WidgetWithChildrenShortcut


def test_custom_data_file_columns_are_offered_for_mapping(window, tmp_path: Path) -> None:
    from workbench.custom_task import CustomTaskDialog, file_columns

    path = tmp_path / "reviews.tsv"
    path.write_text("review\tsentence2\tlabel\nnice\tx\t1\n")
    assert file_columns(path) == ["review", "sentence2", "label"]
    dialog = CustomTaskDialog(window)
    assert dialog.load_columns(path)
    dialog.path_edit.setText(str(path))
    assert dialog.spec() == {"name": "reviews", "path": str(path), "text": "review", "text_pair": "sentence2",
                             "label": "label", "kind": "classification", "dev_path": None, "stratify": True}
    assert not dialog.load_columns(tmp_path / "missing.csv")
    assert "Cannot read columns" in dialog.error.text()


def test_a_custom_data_dialog_takes_a_dev_file_and_a_parquet_file(window, tmp_path: Path) -> None:
    """The dialog said "without a separate dev file" but had no field for one, and could not read a parquet
    file's columns although the engine reads parquet."""
    import pandas as pd

    from workbench.custom_task import CustomTaskDialog

    rows = {"review": [f"text {i}" for i in range(20)], "label": ["pos" if i % 2 else "neg" for i in range(20)]}
    train, dev = tmp_path / "train.parquet", tmp_path / "dev.csv"
    pd.DataFrame(rows).to_parquet(train)
    pd.DataFrame(rows).head(8).to_csv(dev, index=False)
    dialog = CustomTaskDialog(window)
    dialog.path_edit.setText(str(train))
    assert dialog.load_columns(train) and dialog.label_combo.currentText() == "label"
    dialog.dev_edit.setText(str(tmp_path / "nowhere.csv"))
    dialog._accept()
    assert dialog.result() == 0 and "nowhere.csv does not exist" in dialog.error.text()
    dialog.dev_edit.setText(str(dev))
    dialog._accept()
    assert dialog.result() == 1, dialog.error.text()
    window.set_custom_data(dialog.spec())
    assert window.document.recipe.data.dev_path == str(dev)
    from core.tasks import get_task

    assert len(get_task(window.document.recipe.task).load("dev")) == 8


def test_the_dialogs_dev_split_keeps_each_labels_share_where_it_can(window, tmp_path: Path) -> None:
    """A newcomer's 1-in-10 class landed in dev at twice or half its share: the dialog now stratifies, and
    says when it cannot (regression, a separate dev file), without losing the choice."""
    from core.tasks import get_task
    from workbench.custom_task import CustomTaskDialog

    path = tmp_path / "skewed.csv"
    path.write_text("review,label\n" + "".join(f"text {i},{'rare' if i % 10 == 0 else 'common'}\n" for i in range(100)))
    dialog = CustomTaskDialog(window)
    dialog.path_edit.setText(str(path))
    assert dialog.load_columns(path)
    assert dialog.stratify_check.isEnabled() and dialog.stratify_check.isChecked()
    dialog.kind_combo.setCurrentText("regression")
    assert not dialog.stratify_check.isEnabled() and dialog.spec()["stratify"] is None
    dialog.kind_combo.setCurrentText("classification")
    dialog.dev_edit.setText(str(path))
    assert not dialog.stratify_check.isEnabled() and dialog.spec()["stratify"] is None
    dialog.dev_edit.clear()
    assert dialog.stratify_check.isEnabled() and dialog.stratify_check.isChecked()
    dialog._accept()
    assert dialog.result() == 1, dialog.error.text()
    window.set_custom_data(dialog.spec())
    assert window.document.recipe.data.stratify
    assert window.document.recipe.to_dict()["data"]["stratify"] is True
    task = get_task(window.document.recipe.task)
    assert list(task.load("dev")["label"]).count(task.label_names.index("rare")) == 2
    dialog.stratify_check.setChecked(False)
    assert dialog.spec()["stratify"] is None


def _mine_dialog(window, folder: Path):  # type: ignore[no-untyped-def]
    """The custom-data dialog with mine.csv (columns review, label) chosen and its columns loaded."""
    from workbench.custom_task import CustomTaskDialog

    path = folder / "mine.csv"
    path.write_text("review,label\n" + "".join(f"text {i},{'pos' if i % 2 else 'neg'}\n" for i in range(20)))
    dialog = CustomTaskDialog(window)
    dialog.path_edit.setText(str(path))
    assert dialog.load_columns(path)
    return dialog, path


def test_custom_data_file_is_checked_by_the_engine_and_registered(window, tmp_path: Path) -> None:
    dialog, _ = _mine_dialog(window, tmp_path)
    dialog.label_combo.setCurrentText("review")
    dialog.text_combo.setCurrentText("label")
    dialog.label_combo.setCurrentText("review")
    dialog.kind_combo.setCurrentText("regression")
    dialog._accept()  # 'review' holds text, not scores: refused by the engine, with the reason
    assert dialog.result() == 0 and "review" in dialog.error.text()
    dialog.text_combo.setCurrentText("review")
    dialog.label_combo.setCurrentText("label")
    dialog.kind_combo.setCurrentText("classification")
    dialog._accept()
    assert dialog.result() == 1, dialog.error.text()
    from core.tasks import get_task

    assert get_task("custom:mine").num_labels == 2


def test_a_custom_data_file_becomes_the_recipe_task_and_survives_save_and_open(window, tmp_path: Path) -> None:
    dialog, path = _mine_dialog(window, tmp_path)
    dialog._accept()
    assert dialog.result() == 1, dialog.error.text()
    window.set_custom_data(dialog.spec())
    assert window.task_picker.current() == "custom:mine"
    assert window.task_picker.currentText() == "mine (custom classification)"
    assert window.validate() == []
    recipe = window.document.recipe.to_dict()
    assert recipe["task"] == "custom:mine"
    assert recipe["data"] == {"name": "mine", "path": str(path), "text": "review", "label": "label",
                              "kind": "classification", "dev_fraction": 0.2, "stratify": True}
    saved = tmp_path / "mine.yaml"
    assert window.save_path(saved)
    assert "review" in saved.read_text()
    window.set_document(Recipe(model="all-MiniLM-L6-v2", task="sst2"))
    assert window.open_path(saved)
    assert window.task_picker.current() == "custom:mine" and window.document.recipe.data.path == str(path)
    assert window.task_picker.currentText() == "mine (custom classification)"
    assert window.validate() == []
    # Picking a bundled task drops the custom data: the recipe no longer names the file.
    window._task_chosen("sst2")
    assert "data" not in window.document.recipe.to_dict()
    window.undo.undo()  # ... and that is one undoable edit
    assert window.document.recipe.data is not None and window.task_picker.current() == "custom:mine"


def test_run_where_to_run_sends_the_next_run_to_a_ray_cluster(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    """Run › Where to run… (workbench.execution): the setting the dialog saves is in the next RunRequest,
    the status bar says it, and the dialog fits the smallest window size the layout tests use."""
    from PySide6.QtWidgets import QApplication

    from workbench.execution import ExecutionDialog

    run_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Run")
    assert window.act_where in run_menu.actions()
    assert window.run_request().ray is None
    seen: list[ExecutionDialog] = []

    def answer() -> None:
        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, ExecutionDialog)
        seen.append(dialog)
        hint = dialog.sizeHint()
        assert hint.width() <= 1024 and hint.height() <= 700, hint
        dialog.cluster.setChecked(True)
        dialog.address.setText("127.0.0.1:6379")
        dialog.accept()

    QTimer.singleShot(0, answer)
    window.act_where.trigger()
    assert seen, "Run › Where to run… opened no dialog"
    request = window.run_request()
    assert (request.ray, request.shared_artifacts, request.artifacts) == (
        "127.0.0.1:6379", False, str(window.settings.artifacts_dir()))
    assert window.statusBar().currentMessage() == "Runs: sweep branches on the Ray cluster 127.0.0.1:6379"


def test_a_window_saved_on_a_larger_screen_opens_filling_this_one(qtbot) -> None:
    """Qt shrinks a restored window that does not fit to 2/3 of the screen (776x466 at 1024x700); the
    workbench fills the screen instead, and restores a saved size that fits exactly."""
    from PySide6.QtCore import QSize

    from workbench.main_window import MainWindow

    first = MainWindow(load_initial=False)
    qtbot.addWidget(first, before_close_func=lambda w: w.undo.setClean())
    screen = first.screen().availableGeometry()
    big = QSize(screen.width() + 400, screen.height() + 300)
    first.resize(big)  # a window never shown is not clamped to the screen
    saved = first.saveGeometry()
    first.settings.set_window_state(saved, first.saveState(), big)
    w = MainWindow(load_initial=False)
    qtbot.addWidget(w, before_close_func=lambda w: w.undo.setClean())
    assert (w.width(), w.height()) == (min(1360, screen.width()), min(860, screen.height()))

    small = QSize(screen.width() * 2 // 3 - 50, screen.height() * 2 // 3 - 40)
    first.resize(small)
    first.settings.set_window_state(first.saveGeometry(), first.saveState(), small)
    again = MainWindow(load_initial=False)
    qtbot.addWidget(again, before_close_func=lambda w: w.undo.setClean())
    assert again.size() == small


def test_a_run_dock_saved_on_a_larger_screen_is_refitted_to_this_one(qtbot) -> None:
    """A Run dock saved 400 px tall on a larger screen took 40 % of a 1024x700 one and squeezed the results
    chart to its axis: a window refitted to this screen gets its dock a quarter of its height again."""
    from PySide6.QtCore import QSize, Qt

    from workbench.main_window import MainWindow

    first = MainWindow(load_initial=False)
    qtbot.addWidget(first, before_close_func=lambda w: w.undo.setClean())
    screen = first.screen().availableGeometry()
    big = QSize(screen.width() + 400, screen.height() + 300)
    first.resize(big)
    first.show()
    first.resizeDocks([first.run_dock], [400], Qt.Orientation.Vertical)
    qtbot.waitUntil(lambda: first.run_dock.height() >= 390, timeout=3000)
    first.settings.set_window_state(first.saveGeometry(), first.saveState(), big)
    w = MainWindow(load_initial=False)
    qtbot.addWidget(w, before_close_func=lambda w: w.undo.setClean())
    w.show()
    qtbot.waitExposed(w)
    qtbot.waitUntil(lambda: w.run_dock.height() <= max(150, w.height() // 4) + 10, timeout=3000)


def test_closing_saves_the_window_size(qtbot) -> None:
    from workbench.main_window import MainWindow

    w = MainWindow(load_initial=False)
    qtbot.addWidget(w)
    w.resize(700, 500)
    w.undo.setClean()
    w.close()
    from PySide6.QtCore import QSize

    assert w.settings.window_state()[2] == QSize(700, 500)


def test_opening_a_recipe_over_unsaved_changes_asks_under_its_own_title(window, monkeypatch) -> None:
    """The save question before New or Open was titled "Close Compression Workbench"."""
    from PySide6.QtWidgets import QMessageBox

    asked: list[str] = []

    def answer(box: QMessageBox) -> int:
        asked.append(box.windowTitle())
        return QMessageBox.StandardButton.Cancel  # nothing clicked: the question is cancelled

    monkeypatch.setattr(QMessageBox, "exec", answer)
    window.chain.add_step("wbtest.scale")
    assert window._confirm_discard() is False
    assert asked == ["Unsaved recipe"]
