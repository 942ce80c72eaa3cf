"""Window-level behaviour: first start, recipes, recents, settings, About."""

from __future__ import annotations

from pathlib import Path

import yaml
from PySide6.QtCore import Qt

from workbench.document import ChainEntry, Document, load_recipe, save_recipe
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


def test_first_start_opens_the_default_recipe_or_an_empty_sst2_chain(qtbot) -> None:
    from workbench.main_window import MainWindow, default_recipe_path

    w = MainWindow()
    qtbot.addWidget(w, before_close_func=lambda w: w.undo.setClean())
    assert w.model_picker.current() == "all-MiniLM-L6-v2"
    if default_recipe_path().is_file():
        expected = load_recipe(default_recipe_path())
        assert [e.step for e in w.chain.entries] == [e.step for e in expected.steps]
        assert w.task_picker.current() == expected.task
    else:
        assert w.chain.rowCount() == 0
        assert w.task_picker.current() == "sst2"


def test_recipe_round_trip_keeps_steps_sweeps_and_disabled_flags(tmp_path: Path) -> None:
    doc = Document(model="all-MiniLM-L6-v2", task="sst2", seed=3, steps=[
        ChainEntry("wbtest.scale", {"amount": [0.1, 0.2], "rounds": 2, "mode": "l2",
                                  "parts": ["ffn"], "keep_bias": False}),
        ChainEntry("wbtest.freeze", {"bits": 8}, enabled=False),
    ], extra={"measure": {"eval_limit": 64}})
    path = tmp_path / "r.yaml"
    save_recipe(doc, path)
    data = yaml.safe_load(path.read_text())
    assert data["chain"][1]["enabled"] is False and "enabled" not in data["chain"][0]
    assert data["measure"]["eval_limit"] == 64 and data["chain"][0]["config"]["amount"] == [0.1, 0.2]
    back = load_recipe(path)
    assert back.steps == doc.steps and (back.model, back.task, back.seed) == (doc.model, doc.task, doc.seed)
    assert back.extra["measure"]["eval_limit"] == 64
    # A file the window saved is exactly what core.chain writes (the CLI reads it unchanged).
    from core.chain import dumps_recipe
    from core.chain import load_recipe as core_load

    assert dumps_recipe(core_load(path)) == path.read_text()


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
    assert [e.step for e in window.chain.entries] == ["wbtest.scale"]
    assert [a.text() for a in window.recent_menu.actions()] == [str(path)]


def test_unknown_step_in_a_recipe_is_reported_not_crashing(window, tmp_path: Path, monkeypatch) -> None:
    from PySide6.QtWidgets import QMessageBox

    shown = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: shown.append(a[2]))
    path = tmp_path / "bad.yaml"
    path.write_text("model: all-MiniLM-L6-v2\ntask: sst2\nchain:\n  - step: no.such.step\n")
    assert not window.open_path(path)
    assert "Unknown step 'no.such.step'" in shown[0]


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
                             "label": "label", "kind": "classification"}
    assert not dialog.load_columns(tmp_path / "missing.csv")
    assert "Cannot read columns" in dialog.error.text()


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
    recipe = window.current_document().to_dict()
    assert recipe["task"] == "custom:mine"
    assert recipe["data"] == {"name": "mine", "path": str(path), "text": "review", "label": "label",
                              "kind": "classification"}
    saved = tmp_path / "mine.yaml"
    assert window.save_path(saved)
    assert "review" in saved.read_text()
    window.set_document(Document())
    assert window.open_path(saved)
    assert window.task_picker.current() == "custom:mine" and window.doc.extra["data"]["path"] == str(path)
    assert window.task_picker.currentText() == "mine (custom classification)"
    assert window.validate() == []
    # Picking a bundled task drops the custom data: the recipe no longer names the file.
    window._task_chosen("sst2")
    assert "data" not in window.current_document().to_dict()
