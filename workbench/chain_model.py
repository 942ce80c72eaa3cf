"""The chain as a Qt list model over a plain Python list of ChainEntry, with undoable edits.

Like napari's qt_list_model: the Python list is the truth and every change goes through one
method that emits the matching Qt signals. Every user edit is a QUndoCommand (one class per
kind of edit, as in orange-canvas-core's document/commands.py); drops become commands too.
"""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QByteArray,
    QMimeData,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
)
from PySide6.QtGui import QUndoCommand, QUndoStack

from workbench.document import ChainEntry, Problem, default_config, sweep_fields
from workbench.icons import category_icon

STEP_MIME = "application/x-workbench-step"  # palette -> chain: {"step": id}
ROW_MIME = "application/x-workbench-chain-row"  # chain -> chain: {"row": n}

StepIdRole = Qt.ItemDataRole.UserRole + 1
ProblemRole = Qt.ItemDataRole.UserRole + 2


def step_mime(step_id: str) -> QMimeData:
    mime = QMimeData()
    mime.setData(STEP_MIME, QByteArray(json.dumps({"step": step_id}).encode()))
    mime.setText(step_id)
    return mime


def _title(step_id: str) -> tuple[str, str, str]:
    from core.steps.base import get_step

    try:
        cls = get_step(step_id)
        return cls.title, cls.category, cls.description
    except Exception:  # unknown ids are shown, and flagged by validation
        return step_id, "", ""


def summarize(entry: ChainEntry) -> str:
    """A one-line summary of the non-default fields, sweeps first."""
    try:
        defaults = default_config(entry.step)
    except Exception:
        defaults = {}
    sweeps = sweep_fields(entry) if defaults else {}
    parts = [f"{k}: {', '.join(map(str, v))}" for k, v in sweeps.items()]
    parts += [f"{k}={v}" for k, v in entry.config.items() if k not in sweeps and defaults.get(k) != v]
    return "; ".join(parts)


class ChainModel(QAbstractListModel):
    """Rows are chain steps. Edits from views go to the undo stack, never straight to the list."""

    chainChanged = Signal()
    entryChanged = Signal(int)

    def __init__(self, undo: QUndoStack, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.undo = undo
        self._entries: list[ChainEntry] = []
        self._problems: dict[int, list[Problem]] = {}

    # --- reading -----------------------------------------------------------------------------
    @property
    def entries(self) -> list[ChainEntry]:
        return self._entries

    def entry(self, row: int) -> ChainEntry:
        return self._entries[row]

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._entries)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._entries):
            return None
        entry = self._entries[index.row()]
        title, category, description = _title(entry.step)
        problems = self._problems.get(index.row(), [])
        if role == Qt.ItemDataRole.DisplayRole:
            summary = summarize(entry)
            return f"{index.row() + 1}. {title}" + (f"\n{summary}" if summary else "")
        if role == Qt.ItemDataRole.DecorationRole:
            return category_icon(category)
        if role == Qt.ItemDataRole.CheckStateRole:
            return Qt.CheckState.Checked if entry.enabled else Qt.CheckState.Unchecked
        if role == Qt.ItemDataRole.ToolTipRole:
            lines = [p.message for p in problems] or [description or title]
            return "\n".join(lines)
        if role == Qt.ItemDataRole.ForegroundRole:
            from PySide6.QtGui import QColor

            if problems:
                return QColor("#c0392b")
            if not entry.enabled:
                return QColor("#8a8f98")
            return None
        if role == StepIdRole:
            return entry.step
        if role == ProblemRole:
            return [p.message for p in problems]
        return None

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.ItemIsDropEnabled
        return (
            Qt.ItemFlag.ItemIsEnabled
            | Qt.ItemFlag.ItemIsSelectable
            | Qt.ItemFlag.ItemIsDragEnabled
            | Qt.ItemFlag.ItemIsUserCheckable
        )

    def set_problems(self, problems: list[Problem]) -> None:
        self._problems = {}
        for p in problems:
            self._problems.setdefault(p.index, []).append(p)
        if self._entries:
            self.dataChanged.emit(self.index(0), self.index(len(self._entries) - 1))

    def problems(self, row: int) -> list[Problem]:
        return self._problems.get(row, [])

    # --- user edits (undoable) ---------------------------------------------------------------
    def setData(self, index: QModelIndex | QPersistentModelIndex, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if role == Qt.ItemDataRole.CheckStateRole and index.isValid():
            enabled = Qt.CheckState(value) == Qt.CheckState.Checked if not isinstance(value, bool) else value
            if enabled != self._entries[index.row()].enabled:
                self.undo.push(ToggleCommand(self, index.row(), enabled))
            return True
        return False

    def add_step(self, step_id: str, row: int = -1) -> None:
        row = len(self._entries) if row < 0 or row > len(self._entries) else row
        self.undo.push(InsertCommand(self, row, ChainEntry(step_id, default_config(step_id))))

    def remove(self, row: int) -> None:
        self.undo.push(RemoveCommand(self, row))

    def duplicate(self, row: int) -> None:
        self.undo.push(DuplicateCommand(self, row))

    def move(self, src: int, dst: int) -> None:
        if src != dst and 0 <= src < len(self._entries) and 0 <= dst < len(self._entries):
            self.undo.push(MoveCommand(self, src, dst))

    def toggle(self, row: int) -> None:
        self.undo.push(ToggleCommand(self, row, not self._entries[row].enabled))

    def edit_field(self, row: int, name: str, value: Any) -> None:
        old = self._entries[row].config.get(name)
        if old != value:
            self.undo.push(EditFieldCommand(self, row, name, old, value))

    def reset(self, entries: list[ChainEntry]) -> None:
        """Replace the whole chain (new/open): not undoable, clears the stack."""
        self.beginResetModel()
        self._entries = [e.copy() for e in entries]
        self._problems = {}
        self.endResetModel()
        self.undo.clear()
        self.chainChanged.emit()

    # --- drag and drop -----------------------------------------------------------------------
    def mimeTypes(self) -> list[str]:
        return [STEP_MIME, ROW_MIME]

    def mimeData(self, indexes: list[QModelIndex]) -> QMimeData:
        mime = QMimeData()
        rows = sorted({i.row() for i in indexes if i.isValid()})
        if rows:
            mime.setData(ROW_MIME, QByteArray(json.dumps({"row": rows[0]}).encode()))
        return mime

    def supportedDropActions(self) -> Qt.DropAction:
        return Qt.DropAction.CopyAction | Qt.DropAction.MoveAction

    def supportedDragActions(self) -> Qt.DropAction:
        # Copy, so the view never removes the source row itself: the move is our undo command.
        return Qt.DropAction.CopyAction

    def canDropMimeData(self, data: QMimeData, action: Qt.DropAction, row: int, column: int, parent: Any) -> bool:
        return data.hasFormat(STEP_MIME) or data.hasFormat(ROW_MIME)

    def dropMimeData(self, data: QMimeData, action: Qt.DropAction, row: int, column: int, parent: Any) -> bool:
        if row < 0:
            row = parent.row() if parent is not None and parent.isValid() else len(self._entries)
        if data.hasFormat(STEP_MIME):
            step_id = json.loads(bytes(data.data(STEP_MIME).data()).decode())["step"]
            self.add_step(step_id, row)
            return True
        if data.hasFormat(ROW_MIME):
            src = json.loads(bytes(data.data(ROW_MIME).data()).decode())["row"]
            dst = row - 1 if row > src else row
            self.move(src, min(dst, len(self._entries) - 1))
            return True
        return False

    # --- primitive mutations used by the commands -----------------------------------------------
    def _insert(self, row: int, entry: ChainEntry) -> None:
        self.beginInsertRows(QModelIndex(), row, row)
        self._entries.insert(row, entry)
        self.endInsertRows()
        self.chainChanged.emit()

    def _remove(self, row: int) -> ChainEntry:
        self.beginRemoveRows(QModelIndex(), row, row)
        entry = self._entries.pop(row)
        self.endRemoveRows()
        self.chainChanged.emit()
        return entry

    def _move(self, src: int, dst: int) -> None:
        dest_child = dst + 1 if dst > src else dst
        self.beginMoveRows(QModelIndex(), src, src, QModelIndex(), dest_child)
        self._entries.insert(dst, self._entries.pop(src))
        self.endMoveRows()
        self.chainChanged.emit()

    def _changed(self, row: int) -> None:
        self.dataChanged.emit(self.index(row), self.index(row))
        self.entryChanged.emit(row)
        self.chainChanged.emit()

    def _set_enabled(self, row: int, enabled: bool) -> None:
        self._entries[row].enabled = enabled
        self._changed(row)

    def _set_field(self, row: int, name: str, value: Any) -> None:
        self._entries[row].config[name] = value
        self._changed(row)


class InsertCommand(QUndoCommand):
    def __init__(self, model: ChainModel, row: int, entry: ChainEntry) -> None:
        super().__init__(f"Add {_title(entry.step)[0]}")
        self.model, self.row, self.entry = model, row, entry

    def redo(self) -> None:
        self.model._insert(self.row, self.entry.copy())

    def undo(self) -> None:
        self.model._remove(self.row)


class DuplicateCommand(InsertCommand):
    def __init__(self, model: ChainModel, row: int) -> None:
        super().__init__(model, row + 1, model.entry(row).copy())
        self.setText(f"Duplicate {_title(self.entry.step)[0]}")


class RemoveCommand(QUndoCommand):
    def __init__(self, model: ChainModel, row: int) -> None:
        super().__init__(f"Remove {_title(model.entry(row).step)[0]}")
        self.model, self.row = model, row
        self.entry = model.entry(row).copy()

    def redo(self) -> None:
        self.model._remove(self.row)

    def undo(self) -> None:
        self.model._insert(self.row, self.entry.copy())


class MoveCommand(QUndoCommand):
    def __init__(self, model: ChainModel, src: int, dst: int) -> None:
        super().__init__(f"Move {_title(model.entry(src).step)[0]}")
        self.model, self.src, self.dst = model, src, dst

    def redo(self) -> None:
        self.model._move(self.src, self.dst)

    def undo(self) -> None:
        self.model._move(self.dst, self.src)


class ToggleCommand(QUndoCommand):
    def __init__(self, model: ChainModel, row: int, enabled: bool) -> None:
        super().__init__(f"{'Enable' if enabled else 'Disable'} {_title(model.entry(row).step)[0]}")
        self.model, self.row, self.enabled = model, row, enabled

    def redo(self) -> None:
        self.model._set_enabled(self.row, self.enabled)

    def undo(self) -> None:
        self.model._set_enabled(self.row, not self.enabled)


class EditFieldCommand(QUndoCommand):
    def __init__(self, model: ChainModel, row: int, name: str, old: Any, new: Any) -> None:
        super().__init__(f"Edit {name}")
        self.model, self.row, self.name, self.old, self.new = model, row, name, old, new

    def redo(self) -> None:
        self.model._set_field(self.row, self.name, self.new)

    def undo(self) -> None:
        self.model._set_field(self.row, self.name, self.old)
