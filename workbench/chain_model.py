"""The chain as a Qt list model over the document's recipe.

Like napari's qt_list_model, the Python value is the truth: the model never holds entries of its
own. A user's edit (a drop, a tick) becomes a new recipe pushed as one undo command; when the
document changes (that edit, its undo, or any other), the model compares the old and the new chain
and emits the matching Qt signals, so views keep their selection across inserts and moves.
"""

from __future__ import annotations

import json
from collections.abc import Callable
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

from core.errors import ConfigError
from core.recipe import Chain, ChainEntry, Problem, Recipe, sweep_fields
from workbench.document import Document
from workbench.icons import category_icon

STEP_MIME = "application/x-workbench-step"  # palette -> chain: {"step": id}
ROW_MIME = "application/x-workbench-chain-row"  # chain -> chain: {"row": n}

StepIdRole = Qt.ItemDataRole.UserRole + 1
ProblemRole = Qt.ItemDataRole.UserRole + 2

EditFn = Callable[[Recipe, str], None]  # push (new recipe, undo text)


def step_mime(step_id: str) -> QMimeData:
    mime = QMimeData()
    mime.setData(STEP_MIME, QByteArray(json.dumps({"step": step_id}).encode()))
    mime.setText(step_id)
    return mime


def step_title(step_id: str) -> tuple[str, str, str]:
    """(title, category, description) of a step id; an unknown id is shown as itself (validation flags it)."""
    from core.steps import get_step

    try:
        cls = get_step(step_id)
    except ConfigError:
        return step_id, "", ""
    return cls.title, cls.category, cls.description


def effective_config(entry: ChainEntry) -> dict[str, Any]:
    """The entry's config with every field the file leaves out at its default."""
    from core.steps import get_step

    try:
        defaults = get_step(entry.step).config_cls().to_dict()
    except ConfigError:
        defaults = {}
    return {**defaults, **entry.config}


def summarize(entry: ChainEntry) -> str:
    """A one-line summary of the non-default fields, sweeps first."""
    try:
        sweeps = sweep_fields(entry)
        from core.steps import get_step

        defaults = get_step(entry.step).config_cls().to_dict()
    except ConfigError:
        return ""
    parts = [f"{k}: {', '.join(map(str, v))}" for k, v in sweeps.items()]
    parts += [f"{k}={v}" for k, v in entry.config.items() if k not in sweeps and defaults.get(k) != v]
    return "; ".join(parts)


class ChainModel(QAbstractListModel):
    """Rows are the document's chain steps. Edits from views become recipes pushed through ``edit``."""

    entryChanged = Signal(int)

    def __init__(self, document: Document, edit: EditFn, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self._edit = edit
        self._problems: dict[int, list[Problem]] = {}
        document.subscribe(self._document_changed)

    # --- reading -----------------------------------------------------------------------------
    @property
    def chain(self) -> Chain:
        return self.document.recipe.chain

    def entry(self, row: int) -> ChainEntry:
        return self.chain[row]

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.chain)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.chain):
            return None
        entry = self.chain[index.row()]
        title, category, description = step_title(entry.step)
        problems = self._problems.get(index.row(), [])
        if role == Qt.ItemDataRole.DisplayRole:
            summary = summarize(entry)
            return f"{index.row() + 1}. {title}" + (f"\n{summary}" if summary else "")
        if role == Qt.ItemDataRole.DecorationRole:
            return category_icon(category)
        if role == Qt.ItemDataRole.CheckStateRole:
            return Qt.CheckState.Checked if entry.enabled else Qt.CheckState.Unchecked
        if role == Qt.ItemDataRole.ToolTipRole:
            return "\n".join([_text(p) for p in problems] or [description or title])
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
            return [_text(p) for p in problems]
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
            if p.index is not None:
                self._problems.setdefault(p.index, []).append(p)
        if len(self.chain):
            self.dataChanged.emit(self.index(0), self.index(len(self.chain) - 1))

    def problems(self, row: int) -> list[Problem]:
        return self._problems.get(row, [])

    # --- user edits: each is one new recipe ----------------------------------------------------
    def _push(self, chain: Chain, text: str) -> None:
        self._edit(_with_chain(self.document.recipe, chain), text)

    def setData(self, index: QModelIndex | QPersistentModelIndex, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if role == Qt.ItemDataRole.CheckStateRole and index.isValid():
            enabled = Qt.CheckState(value) == Qt.CheckState.Checked if not isinstance(value, bool) else value
            if enabled != self.chain[index.row()].enabled:
                self.set_enabled(index.row(), enabled)
            return True
        return False

    def add_step(self, step_id: str, row: int = -1) -> None:
        row = len(self.chain) if row < 0 or row > len(self.chain) else row
        self._push(self.chain.insert(row, ChainEntry.default(step_id)), f"Add {step_title(step_id)[0]}")

    def remove(self, row: int) -> None:
        self._push(self.chain.remove(row), f"Remove {step_title(self.chain[row].step)[0]}")

    def duplicate(self, row: int) -> None:
        self._push(self.chain.duplicate(row), f"Duplicate {step_title(self.chain[row].step)[0]}")

    def move(self, src: int, dst: int) -> None:
        if src != dst and 0 <= src < len(self.chain) and 0 <= dst < len(self.chain):
            self._push(self.chain.move(src, dst), f"Move {step_title(self.chain[src].step)[0]}")

    def set_enabled(self, row: int, enabled: bool) -> None:
        import dataclasses

        entry = self.chain[row]
        verb = "Enable" if enabled else "Disable"
        self._push(self.chain.replace(row, dataclasses.replace(entry, enabled=enabled)),
                   f"{verb} {step_title(entry.step)[0]}")

    def toggle(self, row: int) -> None:
        self.set_enabled(row, not self.chain[row].enabled)

    def edit_field(self, row: int, name: str, value: Any) -> None:
        entry = self.chain[row]
        if effective_config(entry).get(name) != value:
            self._push(self.chain.replace(row, entry.with_value(name, value)), f"Edit {name}")

    # --- following the document ----------------------------------------------------------------
    def _document_changed(self, old: Recipe, new: Recipe) -> None:
        a, b = list(old.chain), list(new.chain)
        if a == b:
            return
        self._problems = {}
        if len(a) == len(b):
            moved = _single_move(a, b)
            if moved is not None:
                src, dst = moved
                self.beginMoveRows(QModelIndex(), src, src, QModelIndex(), dst + 1 if dst > src else dst)
                self.endMoveRows()
                return
            changed = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
            if changed:
                self.dataChanged.emit(self.index(changed[0]), self.index(changed[-1]))
                for row in changed:
                    self.entryChanged.emit(row)
            return
        if len(b) == len(a) + 1:
            row = next((i for i in range(len(b)) if b[:i] + b[i + 1:] == a), None)
            if row is not None:
                self.beginInsertRows(QModelIndex(), row, row)
                self.endInsertRows()
                return
        if len(b) == len(a) - 1:
            row = next((i for i in range(len(a)) if a[:i] + a[i + 1:] == b), None)
            if row is not None:
                self.beginRemoveRows(QModelIndex(), row, row)
                self.endRemoveRows()
                return
        self.beginResetModel()
        self.endResetModel()

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
            row = parent.row() if parent is not None and parent.isValid() else len(self.chain)
        if data.hasFormat(STEP_MIME):
            step_id = json.loads(bytes(data.data(STEP_MIME).data()).decode())["step"]
            self.add_step(step_id, row)
            return True
        if data.hasFormat(ROW_MIME):
            src = json.loads(bytes(data.data(ROW_MIME).data()).decode())["row"]
            dst = row - 1 if row > src else row
            self.move(src, min(dst, len(self.chain) - 1))
            return True
        return False


def _with_chain(recipe: Recipe, chain: Chain) -> Recipe:
    import dataclasses

    return dataclasses.replace(recipe, chain=chain)


def _single_move(a: list[ChainEntry], b: list[ChainEntry]) -> tuple[int, int] | None:
    """(src, dst) when ``b`` is ``a`` with one entry moved, else None."""
    for src in range(len(a)):
        rest = a[:src] + a[src + 1:]
        for dst in range(len(b)):
            if dst != src and [*rest[:dst], a[src], *rest[dst:]] == b:
                return src, dst
    return None


def _text(problem: Problem) -> str:
    return f"{problem.message}. Fix: {problem.fix}" if problem.fix else problem.message
