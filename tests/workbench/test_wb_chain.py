"""Chain editing through the real widgets: drag and drop, the generated editor, undo/redo."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QComboBox, QDoubleSpinBox, QLineEdit, QListWidget


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


def test_invalid_values_are_refused_with_the_message_on_the_field(window, qtbot) -> None:
    window.chain.add_step("wbtest.scale")
    editor = window.editor
    assert editor.row == 0
    amount = editor.fields["amount"]
    spin = amount.widget
    assert isinstance(spin, QDoubleSpinBox)
    assert (spin.minimum(), spin.maximum()) == (0.0, 1.0)  # the range comes from the metadata
    # A sweep typed as text with one value out of range: refused, message under the field.
    amount.sweep_button.click()
    edit = amount.sweep_edit
    assert isinstance(edit, QLineEdit) and not edit.isHidden() and spin.isHidden()
    edit.setText("0.1, 1.5")
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    assert not amount.error.isHidden()
    assert "must be <= 1.0" in amount.error.text() and "Amount" in amount.error.text()
    assert window.chain.entry(0).config["amount"] == 0.5
    # Not a number at all.
    edit.setText("0.1, lots")
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    assert "'lots' is not a number" in amount.error.text()
    # A valid sweep is accepted and stored as a list.
    edit.setText("0.1, 0.2, 0.3")
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    assert amount.error.isHidden()
    assert window.chain.entry(0).config["amount"] == [0.1, 0.2, 0.3]
    assert "amount: 0.1, 0.2, 0.3" in window.chain.data(window.chain.index(0))
    # Cross-field validation (config.validate) names the other field.
    amount.sweep_button.click()  # back to a single value
    spin.setValue(0.95)
    assert window.chain.entry(0).config["amount"] == 0.95
    mode = editor.fields["mode"].widget
    assert isinstance(mode, QComboBox)
    mode.setCurrentIndex(mode.findData("random"))
    assert window.chain.entry(0).config["mode"] == "l1"  # refused
    assert "random mode" in editor.fields["amount"].error.text()


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
