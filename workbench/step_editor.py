"""A form for one chain step, generated from its config's ``describe()`` metadata.

No step ships GUI code: spin boxes take their range and unit from the metadata, choices become
combo boxes, list-of-choices a checkable list, and numeric fields accept a comma-separated list
of values for a sweep. Every edit is validated by constructing the config; a refused value shows
the ConfigError message under its field and never reaches the chain.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QScrollArea,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.errors import ConfigError
from core.recipe import entry_problems
from workbench.chain_model import ChainModel, effective_config

_BIG = 1e12


def parse_values(text: str, kind: str) -> list[Any]:
    """'0.1, 0.2' -> [0.1, 0.2]; raise ConfigError naming the piece that is not a number."""
    out: list[Any] = []
    for piece in (p.strip() for p in text.replace(";", ",").split(",")):
        if not piece:
            continue
        try:
            out.append(int(piece) if kind == "int" else float(piece) if kind == "float" else piece)
        except ValueError:
            raise ConfigError(f"'{piece}' is not a{'n integer' if kind == 'int' else ' number'}") from None
    return out


class FieldEditor(QWidget):
    """One field: a value widget plus an error line. ``commit(value)`` is called on each edit."""

    def __init__(self, spec: dict[str, Any], commit: Callable[[Any], None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.spec = spec
        self._commit = commit
        self.error = QLabel()
        self.error.setObjectName("fieldError")
        self.error.setStyleSheet("color: #c0392b;")
        self.error.setWordWrap(True)
        self.error.hide()
        self.widget: QWidget
        self.sweep_edit: QLineEdit | None = None
        self.sweep_button: QToolButton | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        layout.addLayout(row)
        layout.addWidget(self.error)
        kind, is_list, choices = spec["type"], spec["list"], spec.get("choices")
        numeric = kind in ("int", "float")
        if kind == "bool":
            w = QCheckBox()
            w.toggled.connect(lambda v: self._commit(bool(v)))
        elif choices and is_list:
            w = QListWidget()
            for c in choices:
                item = QListWidgetItem(str(c))
                item.setData(Qt.ItemDataRole.UserRole, c)
                item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Unchecked)
                w.addItem(item)
            w.setMaximumHeight(min(22 * len(choices) + 6, 160))
            w.itemChanged.connect(lambda _i: self._commit(self._checked()))
        elif choices:
            w = QComboBox()
            for c in choices:
                w.addItem(str(c), c)
            w.currentIndexChanged.connect(lambda i: self._commit(w.itemData(i)))
        elif numeric and not is_list and spec.get("default") is not None:
            w = self._spin(spec)
        else:  # free text, lists of numbers, optional numbers (empty = none)
            w = QLineEdit()
            if spec.get("default") is None and numeric:
                w.setPlaceholderText("empty = none")
            w.editingFinished.connect(self._text_edited)
        self.widget = w
        row.addWidget(w, 1)
        if numeric and not is_list and not choices and spec.get("sweepable", True):
            self.sweep_edit = QLineEdit()
            self.sweep_edit.setPlaceholderText("values, comma-separated")
            self.sweep_edit.setToolTip("A sweep: the chain runs once per value")
            self.sweep_edit.hide()
            self.sweep_edit.editingFinished.connect(self._sweep_edited)
            row.addWidget(self.sweep_edit, 1)
            self.sweep_button = QToolButton()
            self.sweep_button.setText("Sweep")
            self.sweep_button.setCheckable(True)
            self.sweep_button.setToolTip("Try several values of this field")
            self.sweep_button.toggled.connect(self._sweep_toggled)
            row.addWidget(self.sweep_button)
        tip = spec.get("help") or ""
        self.setToolTip(tip)

    def _spin(self, spec: dict[str, Any]) -> QWidget:
        lo = spec["min"] if spec.get("min") is not None else -_BIG
        hi = spec["max"] if spec.get("max") is not None else _BIG
        if spec["type"] == "int":
            w: QSpinBox | QDoubleSpinBox = QSpinBox()
            w.setRange(int(max(lo, -(2**31) + 1)), int(min(hi, 2**31 - 1)))
        else:
            w = QDoubleSpinBox()
            w.setDecimals(6 if (hi - lo) <= 1 else 4)
            w.setRange(lo, hi)
            w.setSingleStep(0.01 if (hi - lo) <= 1 else 0.1)
        if spec.get("unit"):
            w.setSuffix(f" {spec['unit']}")
        w.setKeyboardTracking(False)  # one edit per Enter/focus-out/arrow, not per keystroke
        w.valueChanged.connect(lambda v: self._commit(v))
        return w

    # --- reading widgets ------------------------------------------------------------------
    def _checked(self) -> list[Any]:
        w = self.widget
        assert isinstance(w, QListWidget)
        return [w.item(i).data(Qt.ItemDataRole.UserRole) for i in range(w.count())
                if w.item(i).checkState() == Qt.CheckState.Checked]

    def _text_edited(self) -> None:
        w = self.widget
        assert isinstance(w, QLineEdit)
        text = w.text().strip()
        kind = self.spec["type"]
        try:
            if self.spec["list"]:
                self._commit(parse_values(text, kind))
            elif kind in ("int", "float"):
                values = parse_values(text, kind)
                self._commit(values[0] if len(values) == 1 else (values or None))
            else:
                self._commit(text)
        except ConfigError as exc:
            self.show_error(f"{self.spec['label']}: {exc}")

    def _sweep_edited(self) -> None:
        assert self.sweep_edit is not None
        try:
            values = parse_values(self.sweep_edit.text(), self.spec["type"])
        except ConfigError as exc:
            self.show_error(f"{self.spec['label']}: {exc}")
            return
        if not values:
            self.show_error(f"{self.spec['label']}: give at least one value")
            return
        self._commit(values[0] if len(values) == 1 else values)

    def _sweep_toggled(self, on: bool) -> None:
        assert self.sweep_edit is not None
        self.widget.setVisible(not on)
        self.sweep_edit.setVisible(on)
        if on:
            if not self.sweep_edit.text():
                self.sweep_edit.setText(str(self._scalar_value()))
            self.sweep_edit.setFocus()
        else:
            self._commit(self._scalar_value())

    def _scalar_value(self) -> Any:
        w = self.widget
        if isinstance(w, (QSpinBox, QDoubleSpinBox)):
            return w.value()
        return None

    # --- showing values -------------------------------------------------------------------
    def set_value(self, value: Any) -> None:
        w = self.widget
        blockers = [w.blockSignals(True)]
        try:
            if self.sweep_edit is not None and self.sweep_button is not None:
                sweep = isinstance(value, (list, tuple))
                self.sweep_button.blockSignals(True)
                self.sweep_button.setChecked(sweep)
                self.sweep_button.blockSignals(False)
                w.setVisible(not sweep)
                self.sweep_edit.setVisible(sweep)
                self.sweep_edit.setText(", ".join(map(str, value)) if sweep else "")
                if sweep:
                    return
            if isinstance(w, QCheckBox):
                w.setChecked(bool(value))
            elif isinstance(w, QListWidget):
                chosen = set(value or ())
                for i in range(w.count()):
                    item = w.item(i)
                    item.setCheckState(Qt.CheckState.Checked if item.data(Qt.ItemDataRole.UserRole) in chosen
                                       else Qt.CheckState.Unchecked)
            elif isinstance(w, QComboBox):
                w.setCurrentIndex(max(0, w.findData(value)))
            elif isinstance(w, (QSpinBox, QDoubleSpinBox)):
                w.setValue(value)
            elif isinstance(w, QLineEdit):
                w.setText(", ".join(map(str, value)) if isinstance(value, (list, tuple)) else
                          "" if value is None else str(value))
        finally:
            w.blockSignals(blockers[0])

    def show_error(self, message: str) -> None:
        self.error.setText(message)
        self.error.setVisible(bool(message))


class StepEditor(QScrollArea):
    """Edits the selected chain row; every accepted change is an undo command on the model."""

    def __init__(self, model: ChainModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.row = -1
        self.fields: dict[str, FieldEditor] = {}
        self.setWidgetResizable(True)
        self._body = QWidget()
        self.setWidget(self._body)
        self._layout = QVBoxLayout(self._body)
        self.title = QLabel("Select a step in the chain to edit it")
        self.title.setObjectName("editorTitle")
        self.title.setStyleSheet("font-weight: bold; font-size: 13pt;")
        self.title.setWordWrap(True)
        self.description = QLabel()
        self.description.setWordWrap(True)
        self.description.setStyleSheet("color: #555;")
        self.chain_problems = QLabel()
        self.chain_problems.setObjectName("chainProblems")
        self.chain_problems.setStyleSheet("color: #c0392b;")
        self.chain_problems.setWordWrap(True)
        self.chain_problems.hide()
        self._form_host = QWidget()
        self._form = QFormLayout(self._form_host)
        self._form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for w in (self.title, self.description, self.chain_problems, self._form_host):
            self._layout.addWidget(w)
        self._layout.addStretch(1)
        model.entryChanged.connect(self._entry_changed)
        model.modelReset.connect(lambda: self.set_row(-1))
        model.rowsRemoved.connect(lambda *_: self.set_row(-1) if self.row >= model.rowCount() else None)

    def set_row(self, row: int) -> None:
        from core.steps import get_step

        self.row = row
        while self._form.rowCount():
            self._form.removeRow(0)
        self.fields = {}
        if not 0 <= row < self.model.rowCount():
            self.row = -1
            self.title.setText("Select a step in the chain to edit it")
            self.description.setText("Drag steps from the palette into the chain; drag them to reorder.")
            self.chain_problems.hide()
            return
        entry = self.model.entry(row)
        try:
            cls = get_step(entry.step)
        except ConfigError as exc:
            self.title.setText(entry.step)
            self.description.setText(str(exc))
            return
        self.title.setText(f"{row + 1}. {cls.title}")
        self.description.setText(cls.description or "")
        for spec in cls.config_cls.describe():
            name = spec["name"]
            editor = FieldEditor(spec, lambda v, n=name: self.try_edit(n, v))
            label = QLabel(spec["label"] + (f" ({spec['unit']})" if spec.get("unit") else ""))
            label.setToolTip(spec.get("help") or "")
            self._form.addRow(label, editor)
            self.fields[name] = editor
        self._load_values()
        self.refresh_problems()

    def try_edit(self, name: str, value: Any) -> bool:
        """Validate by building the config; push an undo command only if it is accepted."""
        if self.row < 0:
            return False
        candidate = self.model.entry(self.row).with_value(name, value)
        problems = entry_problems(candidate, self.row)
        if problems:
            first = problems[0]
            target = self.fields.get(first.field) or self.fields[name]
            target.show_error(str(first.message))
            return False
        for editor in self.fields.values():
            editor.show_error("")
        self.model.edit_field(self.row, name, value)
        return True

    def _load_values(self) -> None:
        config = effective_config(self.model.entry(self.row))
        for name, editor in self.fields.items():
            editor.set_value(config.get(name))

    def _entry_changed(self, row: int) -> None:
        if row == self.row:
            self._load_values()
            for editor in self.fields.values():
                editor.show_error("")
            self.refresh_problems()

    def refresh_problems(self) -> None:
        if self.row < 0:
            return
        problems = self.model.problems(self.row)
        general = [p.message for p in problems if p.field not in self.fields]
        for p in problems:
            if p.field in self.fields:
                self.fields[p.field].show_error(p.message)
        self.chain_problems.setText("\n".join(general))
        self.chain_problems.setVisible(bool(general))
