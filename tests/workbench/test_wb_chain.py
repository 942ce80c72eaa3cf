"""Chain editing through the real widgets: drag and drop, the generated editor, undo/redo."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QComboBox, QLineEdit, QListWidget


def _drop(view, mime, pos: QPoint, action=Qt.DropAction.CopyAction) -> bool:  # type: ignore[no-untyped-def]
    """Deliver enter/move/drop events to the view's viewport, as Qt does at the end of a drag.

    QTest cannot drive the OS drag loop (QDrag.exec blocks in a platform event loop), so we build
    the same QDragEnterEvent/QDragMoveEvent/QDropEvent Qt would deliver, with the real mime data
    the source widget produced, and send them to the chain view's viewport.
    """
    viewport = view.viewport()
    buttons, mods = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(QPointF(pos), action, mime, buttons, mods)
    QApplication.sendEvent(viewport, enter)
    move = QDragMoveEvent(QPointF(pos), action, mime, buttons, mods)
    QApplication.sendEvent(viewport, move)
    drop = QDropEvent(QPointF(pos), action, mime, buttons, mods)
    QApplication.sendEvent(viewport, drop)
    return drop.isAccepted()


def _palette_mime(window, step_id):  # type: ignore[no-untyped-def]
    item = window.palette.item_for(step_id)
    assert item is not None, f"{step_id} missing from the palette"
    return window.palette.mimeData([item])


def _ids(window) -> list[str]:  # type: ignore[no-untyped-def]
    return [e.step for e in window.document.recipe.chain]


def test_palette_lists_every_registered_step_by_category(window) -> None:
    from core.steps.base import all_steps

    palette = window.palette
    listed = {palette.topLevelItem(i).child(j).data(0, Qt.ItemDataRole.UserRole + 1)
              for i in range(palette.topLevelItemCount()) for j in range(palette.topLevelItem(i).childCount())}
    assert listed == {s.id for s in all_steps()}
    categories = {palette.topLevelItem(i).text(0) for i in range(palette.topLevelItemCount())}
    assert {"Pruning", "Quantization", "Training"} <= categories
    item = palette.item_for("wbtest.scale")
    assert "Fraction of weights to touch" in item.toolTip(0)
    assert not item.icon(0).isNull()


def test_drag_from_palette_into_chain_then_reorder_by_drag(window, qtbot) -> None:
    view = window.chain_view
    # Drop on the empty viewport: appended.
    assert _drop(view, _palette_mime(window, "wbtest.scale"), QPoint(40, 20))
    assert _ids(window) == ["wbtest.scale"]
    # Drop a second step below the first item.
    rect = view.visualRect(window.chain.index(0))
    assert _drop(view, _palette_mime(window, "wbtest.freeze"), QPoint(rect.center().x(), rect.bottom() - 1))
    assert _ids(window) == ["wbtest.scale", "wbtest.freeze"]
    # Drop a third above the first item: inserted at the top.
    rect = view.visualRect(window.chain.index(0))
    assert _drop(view, _palette_mime(window, "wbtest.train"), QPoint(rect.center().x(), rect.top() + 1))
    assert _ids(window) == ["wbtest.train", "wbtest.scale", "wbtest.freeze"]
    # Reorder: drag row 0 (mime data made by the chain model, as the view does) below the last row.
    mime = window.chain.mimeData([window.chain.index(0)])
    rect = view.visualRect(window.chain.index(2))
    assert _drop(view, mime, QPoint(rect.center().x(), rect.bottom() - 1))
    assert _ids(window) == ["wbtest.scale", "wbtest.freeze", "wbtest.train"]
    # The moved step ends after the int8-like step that removed trainability: flagged on that row.
    assert window.chain.problems(2) and "move 'wbtest.train' before step 2" in window.chain.problems(2)[0].fix
    assert "Step 3" in window.chain_status.text()
    # Each drop was one undoable command.
    assert window.undo.count() == 4
    window.undo.undo()
    assert _ids(window) == ["wbtest.train", "wbtest.scale", "wbtest.freeze"]
    assert window.chain.problems(0) == []


def _fully_shown(label, editor) -> bool:  # type: ignore[no-untyped-def]
    """The label is visible, tall enough for its wrapped text and inside the editor's viewport."""
    from PySide6.QtCore import QPoint

    if label.isHidden() or not label.text():
        return False
    right = label.mapTo(editor.viewport(), QPoint(label.width(), 0)).x()
    return label.height() >= label.heightForWidth(label.width()) and right <= editor.viewport().width()


def test_a_number_typed_out_of_range_is_kept_marked_and_never_run(window, qtbot) -> None:
    """Major 1: '1.5' typed into Amount (0..1) and Tab used to become 0.5 without a word."""
    window.chain.add_step("wbtest.scale")
    window.chain.add_step("wbtest.freeze")
    window._select(0)
    amount = window.editor.fields["amount"]
    box = amount.widget
    box.setFocus()
    box.lineEdit().selectAll()
    qtbot.keyClicks(box.lineEdit(), "1.5")
    qtbot.keyClick(box.lineEdit(), Qt.Key.Key_Tab)
    assert box.text() == "1.5"  # what was typed stays
    assert window.chain.entry(0).config["amount"] == 1.5  # in the recipe, as typed: undoable, never replaced
    qtbot.waitUntil(lambda: _fully_shown(amount.error, window.editor), timeout=2000)
    assert "must be <= 1.0" in amount.error.text() and "got 1.5" in amount.error.text()
    assert window.chain.problems(0) and window.chain.data(window.chain.index(0), Qt.ItemDataRole.ForegroundRole)
    assert "Step 1" in window.chain_status.text() and "ready" not in window.chain_status.text()
    window.run()
    assert not window.run_panel.is_running() and "Fix the chain first" in window.run_panel.status.text()
    # Text in a number field is kept too, and named.
    box.lineEdit().selectAll()
    qtbot.keyClicks(box.lineEdit(), "lots")
    qtbot.keyClick(box.lineEdit(), Qt.Key.Key_Return)
    assert window.chain.entry(0).config["amount"] == "lots"
    assert "'lots' is not a number" in amount.error.text()
    box.lineEdit().selectAll()
    qtbot.keyClicks(box.lineEdit(), "nan")
    qtbot.keyClick(box.lineEdit(), Qt.Key.Key_Return)
    assert "'nan' is not a finite number" in amount.error.text()
    # Up steps inside the range only; a valid value clears every mark; each edit was one undo step.
    box.lineEdit().selectAll()
    qtbot.keyClicks(box.lineEdit(), "0.99")
    qtbot.keyClick(box.lineEdit(), Qt.Key.Key_Return)
    qtbot.keyClick(box.lineEdit(), Qt.Key.Key_Up)
    assert window.chain.entry(0).config["amount"] == 1.0
    qtbot.keyClick(box.lineEdit(), Qt.Key.Key_Up)
    assert window.chain.entry(0).config["amount"] == 1.0 and box.text() == "1.0"
    assert amount.error.isHidden() and window.chain.problems(0) == [] and "ready" in window.chain_status.text()
    window.undo.undo()
    assert window.chain.entry(0).config["amount"] == 0.99 and box.text() == "0.99"
    # Cross-field validation (config.validate) names the other field.
    box.lineEdit().selectAll()
    qtbot.keyClicks(box.lineEdit(), "0.95")
    qtbot.keyClick(box.lineEdit(), Qt.Key.Key_Return)
    mode = window.editor.fields["mode"].widget
    assert isinstance(mode, QComboBox)
    mode.setCurrentIndex(mode.findData("random"))
    assert window.chain.entry(0).config["mode"] == "random"
    assert "random mode" in window.editor.fields["amount"].error.text()


def test_a_small_learning_rate_is_shown_and_kept_exactly(window, qtbot) -> None:
    """A spin box with 4 decimals showed 5e-05 as 0.0001 (and stored that after an edit)."""
    window.chain.add_step("finetune")
    lr = window.editor.fields["lr"].widget
    assert lr.text() == "5e-05"  # the default
    lr.setFocus()
    lr.lineEdit().selectAll()
    qtbot.keyClicks(lr.lineEdit(), "2e-05")
    qtbot.keyClick(lr.lineEdit(), Qt.Key.Key_Return)
    assert window.chain.entry(0).config["lr"] == 2e-05 and lr.text() == "2e-05"
    qtbot.keyClick(lr.lineEdit(), Qt.Key.Key_Up)
    assert window.chain.entry(0).config["lr"] == 3e-05
    qtbot.keyClick(lr.lineEdit(), Qt.Key.Key_Tab)
    assert window.chain.entry(0).config["lr"] == 3e-05


def test_an_invalid_sweep_marks_its_step_and_blocks_ctrl_r(window, qtbot) -> None:
    """Major 2: '0.1, 1.5' showed a clipped error, left the step unmarked and Ctrl+R ran 0.5."""
    window.resize(1024, 700)
    window.chain.add_step("wbtest.scale")
    editor = window.editor
    amount = editor.fields["amount"]
    amount.sweep_button.click()
    edit = amount.sweep_edit
    assert isinstance(edit, QLineEdit) and not edit.isHidden() and amount.widget.isHidden()
    edit.selectAll()
    qtbot.keyClicks(edit, "0.1, 1.5")
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    assert window.chain.entry(0).config["amount"] == [0.1, 1.5]
    assert not edit.isHidden()  # still the sweep, as typed
    qtbot.waitUntil(lambda: _fully_shown(amount.error, editor), timeout=2000)
    assert "must be <= 1.0" in amount.error.text() and "Amount" in amount.error.text()
    assert window.chain.problems(0) and "Step 1" in window.chain_status.text()
    assert "ready to run" not in window.chain_status.text()
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    assert not window.run_panel.is_running()
    assert "Fix the chain first" in window.run_panel.status.text()
    # Not a number at all: kept as typed and named.
    edit.selectAll()
    qtbot.keyClicks(edit, "0.1, lots")
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    assert "'lots' is not a number" in amount.error.text() and window.chain.problems(0)
    # Every bad value at once: one out of range and one that is text (only 'abc' was named, then 1.5).
    edit.selectAll()
    qtbot.keyClicks(edit, "0.3, 1.5, abc")
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    assert window.chain.entry(0).config["amount"] == [0.3, 1.5, "abc"]
    assert "must be <= 1.0" in amount.error.text() and "'abc' is not a number" in amount.error.text()
    assert "0.3, 1.5, abc" not in window.chain_status.text()  # never the whole text as one bad value
    # A valid sweep is accepted and stored as a list.
    edit.selectAll()
    qtbot.keyClicks(edit, "0.1, 0.2, 0.3")
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    assert amount.error.isHidden() and window.chain.problems(0) == []
    assert window.chain.entry(0).config["amount"] == [0.1, 0.2, 0.3]
    assert "amount: 0.1, 0.2, 0.3" in window.chain.data(window.chain.index(0))
    assert window.chain_status.text() == "1 step ready to run · 4 variants"  # the baseline and three values


def test_list_of_choices_is_a_checkable_list(window) -> None:
    window.chain.add_step("wbtest.scale")
    parts = window.editor.fields["parts"].widget
    assert isinstance(parts, QListWidget)
    checked = [parts.item(i).text() for i in range(parts.count()) if parts.item(i).checkState() == Qt.CheckState.Checked]
    assert checked == ["attention", "ffn"]
    parts.item(2).setCheckState(Qt.CheckState.Checked)
    assert window.chain.entry(0).config["parts"] == ["attention", "ffn", "embeddings"]


def test_undo_and_redo_every_kind_of_edit(window, qtbot) -> None:
    chain, undo = window.chain, window.undo
    chain.add_step("wbtest.scale")
    chain.add_step("wbtest.freeze")
    assert window.editor.try_edit("bits", 4)  # the editor follows the selected (last inserted) row
    window.chain_view.setFocus()
    window._select(0)
    qtbot.keyClick(window.chain_view, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)  # duplicate
    assert _ids(window) == ["wbtest.scale", "wbtest.scale", "wbtest.freeze"]
    window.toggle_step()
    chain.move(2, 0)
    window._select(1)
    qtbot.keyClick(window.chain_view, Qt.Key.Key_Delete)
    snapshots = []
    for _ in range(undo.count()):
        snapshots.append([(e.step, e.config.get("bits"), e.enabled) for e in chain.chain])
        undo.undo()
    assert chain.rowCount() == 0
    texts = [undo.text(i) for i in range(undo.count())]
    assert texts == ["Add Test scale", "Add Test freeze", "Edit bits", "Duplicate Test scale",
                     "Enable Test scale" if False else "Disable Test scale", "Move Test freeze", "Remove Test scale"]
    for expected in reversed(snapshots):
        undo.redo()
        assert [(e.step, e.config.get("bits"), e.enabled) for e in chain.chain] == expected
    # The editor shows the undone value.
    undo.setIndex(2)
    window._select(1)
    assert window.editor.fields["bits"].widget.value() == 8
    undo.redo()
    assert window.editor.fields["bits"].widget.value() == 4
    # Ctrl+Z / Ctrl+Shift+Z shortcuts drive the same stack.
    before = undo.index()
    qtbot.keyClick(window.chain_view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert undo.index() == before - 1
    qtbot.keyClick(window.chain_view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert undo.index() == before


def test_toggle_by_checkbox_is_undoable_and_disabled_steps_are_not_validated_for_traits(window) -> None:
    chain = window.chain
    chain.add_step("wbtest.freeze")
    chain.add_step("wbtest.train")
    assert window.chain.problems(1)
    chain.setData(chain.index(0), Qt.CheckState.Unchecked.value, Qt.ItemDataRole.CheckStateRole)
    assert chain.entry(0).enabled is False
    assert window.chain.problems(1) == []
    window.undo.undo()
    assert chain.entry(0).enabled is True and window.chain.problems(1)


def test_run_refuses_an_invalid_chain_and_points_at_the_step(window) -> None:
    window.chain.add_step("wbtest.freeze")
    window.chain.add_step("wbtest.train")
    window.run()
    assert not window.run_panel.is_running()
    assert "Fix the chain first" in window.run_panel.status.text()
    assert window.chain_view.current_row() == 1


def test_the_run_panel_s_ready_follows_the_chain_both_ways(window) -> None:
    """After a refusal the Run panel says "ready" once the chain is fixed, and takes it back when an error
    comes again: it never says ready beside a chain with errors."""
    window.chain.add_step("wbtest.freeze")
    window.chain.add_step("wbtest.train")
    window.run()
    assert "Fix the chain first" in window.run_panel.status.text()
    window.chain.remove(1)
    assert window.run_panel.status.text().startswith("The chain is ready")
    window.chain.add_step("wbtest.train")
    assert window.chain_status.text().startswith("⚠")
    assert "Fix the chain first" in window.run_panel.status.text()
    # Once a run (or a resumed one) starts, the panel is the run's: its outcome is not replaced.
    window.run_panel.busyChanged.emit(True)
    window.run_panel.status.setText("Run 7 finished.")
    window.validate()
    assert window.run_panel.status.text() == "Run 7 finished."


def test_changing_model_task_or_data_is_undoable_and_marks_the_window_unsaved(window, tmp_path) -> None:
    assert "*" not in window.windowTitle()
    window._model_chosen("/tmp/some-model")
    assert window.document.recipe.model == "/tmp/some-model" and window.windowTitle().endswith("* — Compression Workbench")
    window._task_chosen("cola")
    assert window.task_picker.current() == "cola"
    path = tmp_path / "pairs.csv"
    path.write_text("a,b\n" + "".join(f"text {i},{i % 2}\n" for i in range(20)))
    window.set_custom_data({"name": "pairs", "path": str(path), "text": "a", "label": "b", "kind": "classification"})
    assert window.task_picker.current() == "custom:pairs" and window.document.recipe.data.path == str(path)
    assert [window.undo.text(i) for i in range(window.undo.count())] == ["Change model", "Change task", "Use custom data"]
    window.undo.undo()
    assert window.document.recipe.data is None and window.task_picker.current() == "cola"
    window.undo.undo()
    window.undo.undo()
    assert (window.document.recipe.model, window.task_picker.current()) == ("all-MiniLM-L6-v2", "sst2")
    assert window.model_picker.current() == "all-MiniLM-L6-v2"
    assert "*" not in window.windowTitle()  # back where it was saved


def test_a_duration_is_added_to_a_ready_chain_only(window, qtbot, monkeypatch) -> None:
    """The duration read off the GUI thread extends the ready status it was read for, never a status that
    has since become an error (a value typed wrong within the 300 ms the estimate waits)."""
    from core.recipe.estimate import DurationEstimate
    from workbench import store_client

    monkeypatch.setattr(store_client, "run_duration", lambda db, recipe: DurationEstimate(600.0, 2, 2, ()))
    window.chain.add_step("wbtest.scale")
    qtbot.waitUntil(lambda: "about 10 min by earlier runs here" in window.chain_status.text(), timeout=3000)
    assert window.chain_status.text().startswith("1 step ready to run · 2 variants · ")
    assert "2 of 2 variants were computed here before" in window.chain_status.toolTip()
    window.chain.edit_field(0, "amount", 0.5)  # ready: a duration is due in 300 ms...
    window.chain.edit_field(0, "amount", 1.5)  # ...but the value is out of range first
    window._estimate_duration()  # even asked for, nothing extends an error
    qtbot.wait(600)
    assert window.chain_status.text().startswith("⚠") and "earlier runs" not in window.chain_status.text()
    assert window.chain_status.toolTip() == ""


def test_a_huge_sweep_is_not_timed_before_run(window, qtbot, monkeypatch) -> None:
    """Beyond DURATION_MAX_VARIANTS the chain's duration is not estimated: walking the tree would hold up editing."""
    from core.recipe.estimate import DurationEstimate
    from workbench import main_window, store_client

    asked: list[object] = []
    monkeypatch.setattr(store_client, "run_duration", lambda db, recipe: asked.append(recipe) or DurationEstimate(60.0, 1, 1, ()))
    monkeypatch.setattr(main_window, "DURATION_MAX_VARIANTS", 1)
    window.chain.add_step("wbtest.scale")
    qtbot.wait(600)
    assert window.chain_status.text() == "1 step ready to run · 2 variants" and asked == []


def test_a_name_that_says_the_task_follows_it_in_the_same_undo_step(window, tmp_path) -> None:
    """Newcomer test: "TinyBERT, further compressed (SST-2)" kept naming SST-2 after the task became CoLA."""
    import dataclasses

    window.edit(dataclasses.replace(window.document.recipe, name="TinyBERT, further compressed (SST-2)"), "Rename recipe")
    window._task_chosen("cola")
    assert window.document.recipe.name == "TinyBERT, further compressed (CoLA)"
    assert window.recipe_panel.name_edit.text() == "TinyBERT, further compressed (CoLA)"
    path = tmp_path / "reviews.csv"
    path.write_text("a,b\n" + "".join(f"text {i},{i % 2}\n" for i in range(20)))
    window.set_custom_data({"name": "reviews", "path": str(path), "text": "a", "label": "b", "kind": "classification"})
    assert window.document.recipe.name == "TinyBERT, further compressed (reviews)"
    window.undo.undo()
    window.undo.undo()  # one step each: the task and its name together
    assert (window.document.recipe.task, window.document.recipe.name) == ("sst2", "TinyBERT, further compressed (SST-2)")
    # Only where the name says its task (in parentheses, or last): not inside a longer word, and not
    # a custom data name that is a common word elsewhere in the name.
    window.edit(dataclasses.replace(window.document.recipe, name="my sst2x sweep of sst2"), "Rename recipe")
    window._task_chosen("rte")
    assert window.document.recipe.name == "my sst2x sweep of rte"
    train = tmp_path / "train.csv"
    train.write_text(path.read_text())
    window.set_custom_data({"name": "train", "path": str(train), "text": "a", "label": "b", "kind": "classification"})
    window.edit(dataclasses.replace(window.document.recipe, name="prune the train split"), "Rename recipe")
    window._task_chosen("cola")
    assert window.document.recipe.name == "prune the train split"
