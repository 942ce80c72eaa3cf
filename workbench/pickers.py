"""Model and task pickers for the toolbar."""

from __future__ import annotations

import contextlib

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QFileDialog, QInputDialog, QWidget

from core.errors import ModelLoadError
from core.models import DEFAULT_MODEL, PACKAGED_MODELS, ModelRef

_FOLDER = "__folder__"
_HUB = "__hub__"
_CUSTOM = "__custom__"


class ModelPicker(QComboBox):
    """Packaged models, recent models, a local folder (dialog) or a hub id (needs the network)."""

    modelChosen = Signal(str)

    def __init__(self, recent: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("modelPicker")
        self.setMinimumContentsLength(24)
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setToolTip("The model to compress: packaged default, a local Hugging Face folder, or a hub id")
        self.setProperty("tip", self.toolTip())
        self._recent = recent
        self._current = DEFAULT_MODEL
        self._rebuild()
        self.activated.connect(self._activated)

    def _rebuild(self) -> None:
        self.blockSignals(True)
        self.clear()
        seen = set()
        for name in PACKAGED_MODELS:
            self.addItem(f"{name} (packaged)", name)
            seen.add(name)
        for ref in [self._current, *self._recent]:
            if ref and ref not in seen:
                seen.add(ref)
                try:
                    kind = ModelRef.parse(ref).kind
                except ModelLoadError:
                    continue
                self.addItem(f"{ModelRef.parse(ref).display_name} ({kind})", ref)
                self.setItemData(self.count() - 1, ref, 3)  # tooltip: full path / id
        self.insertSeparator(self.count())
        self.addItem("Local folder…", _FOLDER)
        self.addItem("Hugging Face hub id… (needs the network)", _HUB)
        self.setCurrentIndex(max(0, self.findData(self._current)))
        self.blockSignals(False)

    def current(self) -> str:
        return self._current

    def set_current(self, ref: str, recent: list[str] | None = None) -> None:
        self._current = ref
        if recent is not None:
            self._recent = recent
        self._rebuild()

    def _activated(self, index: int) -> None:
        data = self.itemData(index)
        choice: str | None = data
        if data == _FOLDER:
            choice = QFileDialog.getExistingDirectory(self, "Choose a Hugging Face model folder") or None
        elif data == _HUB:
            text, ok = QInputDialog.getText(
                self, "Hub model id",
                "Model id on the Hugging Face hub, e.g. huawei-noah/TinyBERT_General_4L_312D.\n"
                "Downloading needs the network; offline, the run fails with a message naming the id.",
            )
            choice = text.strip() if ok and text.strip() else None
        if choice is None:
            self.setCurrentIndex(max(0, self.findData(self._current)))
            return
        if choice != self._current:
            self._current = choice
            self._rebuild()
            self.modelChosen.emit(choice)


class TaskPicker(QComboBox):
    """Registered tasks (bundled data), plus a custom data file."""

    taskChosen = Signal(str)
    customRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from core.tasks import all_tasks

        self.setObjectName("taskPicker")
        self.setMinimumContentsLength(18)
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setToolTip("The task: its data trains and evaluates every variant")
        self.setProperty("tip", self.toolTip())
        for task in all_tasks():
            self.addItem(task.title, task.id)
            if task.note:
                self.setItemData(self.count() - 1, task.note, 3)
        self.insertSeparator(self.count())
        self.addItem("Custom data file…", _CUSTOM)
        self._current = self.itemData(0)
        self.activated.connect(self._activated)

    def current(self) -> str:
        return self._current

    def set_current(self, task_id: str) -> None:
        index = self.findData(task_id)
        if index < 0:  # a custom data file
            self.insertItem(self.count() - 2, task_id, task_id)
            index = self.findData(task_id)
        if self.itemText(index) == task_id:  # its title once the recipe check has registered it
            from core.tasks import get_task

            with contextlib.suppress(Exception):
                self.setItemText(index, get_task(task_id).title)
        self._current = task_id
        self.setCurrentIndex(index)

    def _activated(self, index: int) -> None:
        data = self.itemData(index)
        if data == _CUSTOM:
            self.setCurrentIndex(max(0, self.findData(self._current)))
            self.customRequested.emit()
            return
        if data != self._current:
            self._current = data
            self.taskChosen.emit(data)
