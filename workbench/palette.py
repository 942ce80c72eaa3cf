"""The palette: every registered step, grouped by category; drag one into the chain."""

from __future__ import annotations

from PySide6.QtCore import QMimeData, QSize, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QAbstractItemView, QTreeWidget, QTreeWidgetItem, QWidget

from workbench.chain_model import step_mime
from workbench.icons import category_icon

StepIdRole = Qt.ItemDataRole.UserRole + 1


def _tooltip(cls: type) -> str:
    lines = [f"<b>{cls.title}</b> <code>{cls.id}</code>"]
    if cls.description:
        lines.append(cls.description)
    fields = [f"<li>{f['label']}{' (' + f['unit'] + ')' if f['unit'] else ''}: {f['help']}</li>"
              for f in cls.config_cls.describe() if f.get("help")]
    if fields:
        lines.append("<ul>" + "".join(fields) + "</ul>")
    if cls.needs_teacher:
        lines.append("<i>Uses the chain's input model as teacher.</i>")
    return "<br>".join(lines)


class Palette(QTreeWidget):
    """Lists whatever the step registry holds: no step needs GUI code to appear here. Drag a step
    into the chain, double-click it, or select it and press Enter."""

    stepActivated = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setHeaderHidden(True)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setDefaultDropAction(Qt.DropAction.CopyAction)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.itemDoubleClicked.connect(self._activated)
        self.populate()

    def populate(self) -> None:
        from core.steps.base import all_steps

        self.clear()
        groups: dict[str, QTreeWidgetItem] = {}
        for cls in all_steps():
            group = groups.get(cls.category)
            if group is None:
                group = QTreeWidgetItem(self, [cls.category])
                group.setIcon(0, category_icon(cls.category))
                group.setFlags(Qt.ItemFlag.ItemIsEnabled)
                groups[cls.category] = group
            item = QTreeWidgetItem(group, [cls.title])
            item.setData(0, StepIdRole, cls.id)
            item.setToolTip(0, _tooltip(cls))
            item.setWhatsThis(0, _tooltip(cls))
            item.setIcon(0, category_icon(cls.category))
            item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled)
        self.expandAll()
        self.setMinimumWidth(self.needed_width())

    def needed_width(self) -> int:
        """Wide enough for the longest step title at the current font (150 % scale included)."""
        fm = self.fontMetrics()
        longest = 0
        for i in range(self.topLevelItemCount()):
            group = self.topLevelItem(i)
            longest = max(longest, fm.horizontalAdvance(group.text(0)))
            for j in range(group.childCount()):
                longest = max(longest, fm.horizontalAdvance(group.child(j).text(0)) + self.indentation())
        icon = self.iconSize().width() if self.iconSize().isValid() else fm.height()
        scrollbar = self.style().pixelMetric(self.style().PixelMetric.PM_ScrollBarExtent)
        return longest + icon + self.indentation() + scrollbar + 3 * fm.averageCharWidth()

    def sizeHint(self) -> QSize:
        hint = super().sizeHint()
        return QSize(max(hint.width(), self.needed_width()), hint.height())

    def keyPressEvent(self, event: QKeyEvent) -> None:
        item = self.currentItem()
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and item is not None and item.data(0, StepIdRole):
            self.stepActivated.emit(item.data(0, StepIdRole))  # the keyboard's way to add a step
            event.accept()
            return
        super().keyPressEvent(event)

    def item_for(self, step_id: str) -> QTreeWidgetItem | None:
        for i in range(self.topLevelItemCount()):
            group = self.topLevelItem(i)
            for j in range(group.childCount()):
                if group.child(j).data(0, StepIdRole) == step_id:
                    return group.child(j)
        return None

    def mimeTypes(self) -> list[str]:
        from workbench.chain_model import STEP_MIME

        return [STEP_MIME]

    def mimeData(self, items: list[QTreeWidgetItem]) -> QMimeData:  # type: ignore[override]
        ids = [i.data(0, StepIdRole) for i in items if i.data(0, StepIdRole)]
        return step_mime(ids[0]) if ids else QMimeData()

    def supportedDropActions(self) -> Qt.DropAction:
        return Qt.DropAction.CopyAction

    def _activated(self, item: QTreeWidgetItem, _column: int) -> None:
        step_id = item.data(0, StepIdRole)
        if step_id:
            self.stepActivated.emit(step_id)
