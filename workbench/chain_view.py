"""The chain view: a list that accepts palette drops and reorders by drag."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QAbstractItemView, QListView, QWidget

from workbench.chain_model import ChainModel


class ChainView(QListView):
    def __init__(self, model: ChainModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setModel(model)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        # DragDrop (not InternalMove): every drop goes through ChainModel.dropMimeData, which
        # turns it into an undo command; the model only offers Copy so the view removes nothing.
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragDrop)
        self.setDefaultDropAction(Qt.DropAction.CopyAction)
        self.setDragEnabled(True)
        self.setAcceptDrops(True)
        self.viewport().setAcceptDrops(True)
        self.setDropIndicatorShown(True)
        self.setIconSize(QSize(28, 28))
        self.setSpacing(3)
        self.setAlternatingRowColors(True)
        self.setWordWrap(True)
        self.setUniformItemSizes(False)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)

    def chain_model(self) -> ChainModel:
        model = self.model()
        assert isinstance(model, ChainModel)
        return model

    def current_row(self) -> int:
        index = self.currentIndex()
        return index.row() if index.isValid() else -1
