"""The rest of the editing experience: the recipe's name, description and measurement settings,
the data preview, undo of every edit through the real widgets, keyboard use of the palette, the
Open dialog's folder, the theme, the in-app guide, What's This, and the README's menu names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QPalette
from PySide6.QtWidgets import QFileDialog

from core.recipe import Recipe

ROOT = Path(__file__).resolve().parents[2]


def test_the_recipe_name_and_description_are_edited_undoably_and_saved(window, qtbot, tmp_path: Path) -> None:
    """Save As kept the old name and description and nothing edited them."""
    window.set_document(Recipe(model="all-MiniLM-L6-v2", task="sst2", name="TinyBERT, further compressed",
                               description="the shipped recipe"))
    panel = window.recipe_panel
    window.side_tabs.setCurrentWidget(panel)
    panel.name_edit.setFocus()
    panel.name_edit.selectAll()
    qtbot.keyClicks(panel.name_edit, "My smaller MiniLM")
    qtbot.keyClick(panel.name_edit, Qt.Key.Key_Return)
    assert window.document.recipe.name == "My smaller MiniLM" and "*" in window.windowTitle()
    panel.description_edit.setFocus()
    panel.description_edit.selectAll()
    qtbot.keyClicks(panel.description_edit, "int8 only")
    panel.name_edit.setFocus()  # leaving the description commits it
    assert window.document.recipe.description == "int8 only"
    assert [window.undo.text(i) for i in range(window.undo.count())] == ["Rename recipe", "Edit description"]
    path = tmp_path / "mine.yaml"
    assert window.save_path(path)
    saved = yaml.safe_load(path.read_text())
    assert (saved["name"], saved["description"]) == ("My smaller MiniLM", "int8 only")
    window.undo.undo()
    window.undo.undo()
    assert panel.name_edit.text() == "TinyBERT, further compressed"
    assert panel.description_edit.toPlainText() == "the shipped recipe"


def test_measurement_settings_are_edited_and_a_refused_value_blocks_the_run(window, qtbot) -> None:
    panel = window.recipe_panel
    window.side_tabs.setCurrentWidget(panel)
    box = panel.boxes["eval_limit"]
    box.setFocus()
    box.lineEdit().selectAll()
    qtbot.keyClicks(box.lineEdit(), "200")
    qtbot.keyClick(box.lineEdit(), Qt.Key.Key_Return)
    assert window.document.recipe.measure.eval_limit == 200
    assert window.undo.text(window.undo.index() - 1) == "Change dev examples"
    box.lineEdit().selectAll()
    qtbot.keyClick(box.lineEdit(), Qt.Key.Key_Delete)
    qtbot.keyClick(box.lineEdit(), Qt.Key.Key_Return)
    assert window.document.recipe.measure.eval_limit is None  # empty: the whole dev split
    repeats = panel.boxes["latency_repeats"]
    repeats.setFocus()
    repeats.lineEdit().selectAll()
    qtbot.keyClicks(repeats.lineEdit(), "0")
    qtbot.keyClick(repeats.lineEdit(), Qt.Key.Key_Return)
    # Refused: kept in the field with the reason, the recipe unchanged, and nothing runs.
    assert repeats.text() == "0" and window.document.recipe.measure.latency_repeats == 20
    assert not panel.errors["latency_repeats"].isHidden()
    assert "must be >= 1" in panel.errors["latency_repeats"].text() and "keeps 20" in panel.errors["latency_repeats"].text()
    assert "Timed repeats" in window.chain_status.text()  # at once, not only when Run is pressed
    window.chain.add_step("quantize.dynamic_int8")
    window.run()
    assert not window.run_panel.is_running() and "Timed repeats" in window.run_panel.status.text()
    assert "Timed repeats" in window.chain_status.text()
    repeats.setFocus()
    repeats.lineEdit().selectAll()
    qtbot.keyClicks(repeats.lineEdit(), "5")
    qtbot.keyClick(repeats.lineEdit(), Qt.Key.Key_Return)
    assert window.document.recipe.measure.latency_repeats == 5 and panel.errors["latency_repeats"].isHidden()
    assert window.validate() == []
    # Run's refusal went with its cause: the Run panel no longer asks to fix a chain that is fine.
    assert "Fix the chain first" not in window.run_panel.status.text() and "ready" in window.run_panel.status.text()
    assert "Timed repeats" not in window.chain_status.text()
    # The seed too.
    panel.seed_box.setFocus()
    panel.seed_box.lineEdit().selectAll()
    qtbot.keyClicks(panel.seed_box.lineEdit(), "7")
    qtbot.keyClick(panel.seed_box.lineEdit(), Qt.Key.Key_Return)
    assert window.document.recipe.seed == 7


def test_the_data_tab_previews_the_task_and_warns_about_a_small_dev_set(window, qtbot) -> None:
    data = window.data_panel
    window.side_tabs.setCurrentWidget(data)
    qtbot.waitUntil(lambda: data.preview is not None and data.preview.task_id == "sst2", timeout=20_000)
    assert data.table.rowCount() == 50 and data.table.horizontalHeaderItem(0).text() == "text"
    assert data.table.item(0, 1).text() in ("negative", "positive")
    assert "train 67,349 rows, dev 872 rows" in data.sizes.text() and "Labels in dev:" in data.sizes.text()
    assert data.warning.isHidden()
    window._task_chosen("rte")  # 277 dev examples: too few to tell variants apart
    qtbot.waitUntil(lambda: data.preview is not None and data.preview.task_id == "rte", timeout=20_000)
    assert not data.warning.isHidden() and "277 dev examples" in data.warning.text()
    assert "±5.9 points" in data.warning.text()


def test_undoing_an_added_step_leaves_the_editor_on_the_selected_row(window, qtbot) -> None:
    """After undoing 'Add step' the editor said 'Select a step' while a row was highlighted."""
    window.chain.add_step("prune.global_magnitude")
    window.chain.add_step("quantize.dynamic_int8")
    assert window.editor.row == 1
    window.undo.undo()
    qtbot.waitUntil(lambda: window.editor.row == window.chain_view.current_row() == 0
                    and window.chain_view.selectionModel().isSelected(window.chain.index(0)), timeout=2000)
    assert window.editor.title.text() == "1. Global magnitude pruning"
    window.undo.undo()
    qtbot.waitUntil(lambda: window.editor.row == -1, timeout=2000)
    assert not window.chain_view.selectionModel().hasSelection()


def test_changing_the_task_in_its_picker_is_undoable_and_marks_the_window_unsaved(window) -> None:
    picker = window.task_picker
    assert "*" not in window.windowTitle()
    picker.setCurrentIndex(picker.findData("cola"))
    picker.activated.emit(picker.currentIndex())  # what a click on the item does
    assert window.document.recipe.task == "cola" and "*" in window.windowTitle()
    window.act_undo.trigger()
    assert window.document.recipe.task == "sst2" and picker.current() == "sst2" and "*" not in window.windowTitle()


def test_return_on_a_palette_step_adds_it(window, qtbot) -> None:
    palette = window.palette
    palette.setFocus()
    palette.setCurrentItem(palette.item_for("quantize.dynamic_int8"))
    qtbot.keyClick(palette, Qt.Key.Key_Return)
    assert [e.step for e in window.document.recipe.chain] == ["quantize.dynamic_int8"]
    qtbot.keyClick(palette, Qt.Key.Key_Enter)
    assert len(window.document.recipe.chain) == 2
    palette.setCurrentItem(palette.topLevelItem(0))  # a category: nothing to add
    qtbot.keyClick(palette, Qt.Key.Key_Return)
    assert len(window.document.recipe.chain) == 2


def test_open_starts_in_the_shipped_recipes(window, monkeypatch) -> None:
    from workbench.main_window import recipes_dir

    seen: list[str] = []
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (seen.append(a[2]), ("", ""))[1])
    window.open()
    assert seen == [str(recipes_dir())]
    assert (recipes_dir() / "tinybert_further_compressed.yaml").is_file()


def test_dark_theme_follows_the_system_and_the_view_menu(window, qtbot, monkeypatch) -> None:
    from workbench import theme

    hints = QGuiApplication.styleHints()
    window.results.refresh()
    window.tabs.setCurrentWidget(window.results)
    qtbot.waitUntil(lambda: window.results._charts is not None, timeout=5000)
    chart = window.results.charts.scatter

    def base() -> int:
        from PySide6.QtWidgets import QApplication

        QApplication.processEvents()  # palette changes reach the widgets as events
        return window.chain_view.palette().color(QPalette.ColorRole.Base).lightness()

    try:
        # The desktop turns dark: Qt reports the scheme and signals it (the offscreen platform
        # has no desktop, so the report is stood in for and the signal sent as Qt would).
        monkeypatch.setattr(theme, "system_is_dark", lambda: True)
        hints.colorSchemeChanged.emit(Qt.ColorScheme.Dark)
        assert base() < 80 and chart.backgroundBrush().color().lightness() < 80
        assert chart.untrusted.opts["pen"].color().lightness() > 170  # the × of a variant with no result reads on dark
        monkeypatch.setattr(theme, "system_is_dark", lambda: False)
        hints.colorSchemeChanged.emit(Qt.ColorScheme.Light)
        assert base() > 200 and chart.backgroundBrush().color().lightness() > 200
        assert chart.untrusted.opts["pen"].color().lightness() < 90
        window.theme_actions["dark"].trigger()  # the user's choice wins over the system's
        assert window.settings.value("view/theme") == "dark" and base() < 80
        hints.colorSchemeChanged.emit(Qt.ColorScheme.Light)
        assert base() < 80
    finally:
        window.set_theme("system")


def test_help_has_a_getting_started_guide_and_whats_this_on_steps(window, qtbot) -> None:
    window.act_guide.trigger()
    from workbench.help import GettingStartedDialog

    dialog = window.findChild(GettingStartedDialog)
    assert dialog is not None and dialog.isVisible()
    text = dialog.text.toPlainText()
    assert "Getting started" in text and "Best: keep" in text and "workbench-cli" in text
    dialog.close()
    help_menu = next(m.menu() for m in window.menuBar().actions() if m.text() == "&Help")
    assert [a.text() for a in help_menu.actions() if a.text()] == ["&Getting started", "What's &this?", "&About"]
    item = window.palette.item_for("prune.global_magnitude")
    assert "Global magnitude pruning" in item.whatsThis(0)
    window.chain.add_step("prune.global_magnitude")
    amount = window.editor.fields["amount"]
    assert "Amount" in amount.whatsThis() and amount.whatsThis() != ""
    assert "prune.global_magnitude" in window.editor.whatsThis()


def _menu_paths(window) -> set[str]:  # type: ignore[no-untyped-def]
    paths = set()
    for top in window.menuBar().actions():
        for action in top.menu().actions():
            if action.text():
                paths.add(f"{top.text().replace('&', '')} › {action.text().replace('&', '')}")
    return paths


def test_the_readme_names_only_menus_that_exist(window) -> None:
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    named = set(re.findall(r"\b((?:File|Edit|Run|View|Help) › [^)(\n]*?…?)(?=[)\n,.]| \()", readme))
    assert named, "the README names no menu"
    missing = {n for n in named if n.rstrip(".") not in _menu_paths(window)}
    assert missing == set()


@pytest.mark.parametrize("path", ["File › Open model folder…", "File › Use a custom data file…",
                                  "Run › Manage runs…", "Help › Getting started"])
def test_menus_the_guide_names_exist(window, path: str) -> None:
    assert path in _menu_paths(window)


def test_ctrl_z_in_a_number_field_undoes_the_recipe_edit(window, qtbot) -> None:
    """Newcomer walk: Ctrl+Z in a field undid only the field's text, not the last edit."""
    window.chain.add_step("prune.global_magnitude")
    box = window.editor.fields["amount"].widget
    box.setFocus()
    box.lineEdit().selectAll()
    qtbot.keyClicks(box.lineEdit(), "0.4")
    qtbot.keyClick(box.lineEdit(), Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # typed, not yet committed
    assert window.chain.entry(0).config["amount"] == 0.3 and box.text() == "0.3"
    assert [window.undo.text(i) for i in range(window.undo.count())] == ["Add Global magnitude pruning", "Edit amount"]
    assert window.undo.index() == 1  # committed, then undone as one step
    qtbot.keyClick(box.lineEdit(), Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.chain.rowCount() == 0  # the next Ctrl+Z undoes the added step


def test_a_custom_file_dialog_guesses_a_label_column_and_return_means_ok(window, tmp_path: Path) -> None:
    from workbench.custom_task import CustomTaskDialog

    path = tmp_path / "reviews.csv"
    path.write_text("review,stars\n" + "".join(f"text {i},{'good' if i % 2 else 'bad'}\n" for i in range(30)))
    dialog = CustomTaskDialog(window)
    assert dialog.load_columns(path)
    assert (dialog.text_combo.currentText(), dialog.label_combo.currentText()) == ("review", "stars")
    other = tmp_path / "mine.csv"
    other.write_text("sentence,verdict,source\n" + "".join(f"s {i},{i % 2},web\n" for i in range(30)))
    assert dialog.load_columns(other)
    assert (dialog.text_combo.currentText(), dialog.label_combo.currentText()) == ("sentence", "source")
    from PySide6.QtWidgets import QDialogButtonBox, QPushButton

    ok = dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Ok)
    assert ok.isDefault() and not next(b for b in dialog.findChildren(QPushButton) if b.text() == "Browse…").autoDefault()


def test_a_bad_model_folder_marks_the_model_picker(window, tmp_path: Path) -> None:
    window._model_chosen(str(tmp_path))
    assert "border" in window.model_picker.styleSheet() and "config.json" in window.model_picker.toolTip()
    window.undo.undo()
    assert window.model_picker.styleSheet() == "" and "model to compress" in window.model_picker.toolTip()


def test_an_empty_optional_field_says_what_empty_means(window) -> None:
    """Newcomer check: the fine-tune's empty max length read "empty = none" though it means "from the data"."""
    window.chain.add_step("finetune")
    placeholders = {name: f.widget.lineEdit().placeholderText() for name, f in window.editor.fields.items()
                    if hasattr(f.widget, "lineEdit") and f.widget.lineEdit() is not None}
    assert placeholders["max_length"] == "empty = from the data"
    assert placeholders["train_size"] == "empty = all"
    assert placeholders["lr"] == ""  # a value is required: no placeholder
