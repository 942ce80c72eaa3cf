"""A form for one chain step, generated from its config's ``describe()`` metadata.

No step ships GUI code: number fields take their range from the metadata, choices become combo
boxes, list-of-choices a checkable list, and numeric fields accept a comma-separated list of
values for a sweep. Every edit lands in the recipe exactly as typed (an undoable edit), so nothing
is ever silently changed or lost: a value the step's config refuses is marked on its field and on
its chain row by the recipe check, and the window refuses to run until it is fixed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.errors import ConfigError
from core.recipe import entry_problems
from workbench.chain_model import ChainModel, effective_config
from workbench.number_box import NumberBox, format_number

ERROR_STYLE = "color: #c0392b;"


def parse_values(text: str, kind: str) -> list[Any]:
    """'0.1, 0.2' -> [0.1, 0.2]; raise ConfigError naming the piece that is not a (finite) number."""
    out: list[Any] = []
    for piece in (p.strip() for p in text.replace(";", ",").split(",")):
        if not piece:
            continue
        try:
            value = int(piece) if kind == "int" else float(piece) if kind == "float" else piece
        except ValueError:
            raise ConfigError(f"'{piece}' is not a{'n integer' if kind == 'int' else ' number'}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"'{piece}' is not a finite number")
        out.append(value)
    return out


def typed_value(text: str, kind: str) -> Any:
    """What a typed numeric field holds: a number, a list (a sweep), None (empty), or, when the
    text is not a number, the text itself, so the recipe keeps it and the check names it."""
    try:
        values = parse_values(text, kind)
    except ConfigError:
        return text.strip()
    return values[0] if len(values) == 1 else (values or None)


def empty_placeholder(help_text: str) -> str:
    """What an empty optional number means, as its help says ("empty = all", "empty = from the data"),
    so the empty field tells the truth; "empty = none" when the help does not say."""
    found = re.search(r"empty = (.+?)(?=[;(]|\.\s|\.$|$)", help_text)
    return f"empty = {found.group(1).strip()}" if found else "empty = none"


class FieldEditor(QWidget):
    """One field: a value widget plus an error line. ``commit(value)`` is called on each edit."""

    def __init__(self, spec: dict[str, Any], commit: Callable[[Any], None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.spec = spec
        self._commit = commit
        self.error = QLabel()
        self.error.setObjectName("fieldError")
        self.error.setStyleSheet(ERROR_STYLE)
        self.error.setWordWrap(True)
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # Grow in height with the wrapped text: a long message is read, not clipped.
        self.error.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.MinimumExpanding)
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
        elif numeric and not is_list:
            w = NumberBox(kind, spec.get("min"), spec.get("max"), min_exclusive=bool(spec.get("min_exclusive")),
                          placeholder=empty_placeholder(spec.get("help") or "") if spec.get("default") is None else "")
            w.edited.connect(lambda text: self._commit(typed_value(text, kind)))
        else:  # free text, lists of numbers
            w = QLineEdit()
            w.editingFinished.connect(self._text_edited)
        self.widget = w
        row.addWidget(w, 1)
        if numeric and not is_list and not choices and spec.get("sweepable", True):
            self.sweep_edit = QLineEdit()
            self.sweep_edit.setObjectName("sweepEdit")
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
        self.setWhatsThis(f"<b>{spec['label']}</b><br>{tip}" if tip else "")

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
        if self.spec["list"] and kind in ("int", "float"):
            try:
                self._commit(parse_values(text, kind))
            except ConfigError:
                self._commit(text)  # kept as typed; the recipe check names the problem
        elif self.spec["list"]:
            self._commit([p.strip() for p in text.split(",") if p.strip()])
        else:
            self._commit(text)

    def _sweep_edited(self) -> None:
        assert self.sweep_edit is not None
        # Each value on its own, a piece that is not a number kept as typed: the check then names every
        # bad value at once (a value out of range and one that is text), not the whole text as one.
        # A sweep keeps the list form even for one value typed here, so the field stays a sweep.
        self._commit([typed_value(piece, self.spec["type"]) for piece in self.sweep_edit.text().replace(";", ",").split(",")
                      if piece.strip()])

    def _sweep_toggled(self, on: bool) -> None:
        assert self.sweep_edit is not None
        self.widget.setVisible(not on)
        self.sweep_edit.setVisible(on)
        if on:
            if not self.sweep_edit.text():
                self.sweep_edit.setText(self._scalar_text())
            self.sweep_edit.setFocus()
            self._sweep_edited()
        else:
            w = self.widget
            assert isinstance(w, NumberBox)
            self._commit(typed_value(w.text(), self.spec["type"]))

    def _scalar_text(self) -> str:
        w = self.widget
        return w.text() if isinstance(w, NumberBox) else ""

    # --- showing values -------------------------------------------------------------------
    def set_value(self, value: Any) -> None:
        w = self.widget
        blockers = [w.blockSignals(True)]
        try:
            if self.sweep_edit is not None and self.sweep_button is not None:
                # A list, or text that was typed as one, is a sweep.
                sweep = isinstance(value, (list, tuple)) or (isinstance(value, str) and ("," in value or ";" in value))
                self.sweep_button.blockSignals(True)
                self.sweep_button.setChecked(sweep)
                self.sweep_button.blockSignals(False)
                w.setVisible(not sweep)
                self.sweep_edit.setVisible(sweep)
                self.sweep_edit.setText(", ".join(map(format_number, value)) if isinstance(value, (list, tuple))
                                        else str(value) if sweep else "")
                if sweep:
                    return
            if isinstance(w, QCheckBox):
                w.setChecked(bool(value))
            elif isinstance(w, QListWidget):
                chosen = set(value or ()) if isinstance(value, (list, tuple)) else set()
                for i in range(w.count()):
                    item = w.item(i)
                    item.setCheckState(Qt.CheckState.Checked if item.data(Qt.ItemDataRole.UserRole) in chosen
                                       else Qt.CheckState.Unchecked)
            elif isinstance(w, QComboBox):
                w.setCurrentIndex(max(0, w.findData(value)))
            elif isinstance(w, NumberBox):
                w.set_text(value if isinstance(value, str) else format_number(value))
            elif isinstance(w, QLineEdit):
                w.setText(", ".join(map(str, value)) if isinstance(value, (list, tuple)) else
                          "" if value is None else str(value))
        finally:
            w.blockSignals(blockers[0])

    def explain(self, value: Any, message: str) -> str:
        """The message for a refused value: for text in a number field (or among a sweep's values),
        what is not a number."""
        if self.spec["type"] not in ("int", "float"):
            return message
        pieces = [value] if isinstance(value, str) else [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
        for piece in pieces:
            try:
                parse_values(piece, self.spec["type"])
            except ConfigError as exc:
                if isinstance(value, str) or f"'{piece}'" in message:
                    return f"{self.spec['label']}: {exc}"
        return message

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self._fit_error()

    def _fit_error(self) -> None:
        # QFormLayout does not pass height-for-width on to a wrapped label in a field: ask for it.
        if self.error.text():
            self.error.setMinimumHeight(self.error.heightForWidth(max(1, self.width())))

    def show_error(self, message: str) -> None:
        self.error.setText(message)
        self.error.setToolTip(message)
        self._fit_error()
        self.error.setVisible(bool(message))
        self.setProperty("invalid", bool(message))
        # The frame of the text, not of a whole spin box (a style sheet there redraws its arrows).
        target = self.widget.lineEdit() if isinstance(self.widget, NumberBox) else self.widget
        target.setStyleSheet("border: 1px solid #c0392b;" if message else "")


class StepEditor(QScrollArea):
    """Edits the selected chain row; every change is an undo command on the model."""

    def __init__(self, model: ChainModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.row = -1
        self._step_id = ""
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

        if row == self.row and 0 <= row < self.model.rowCount() and self.fields \
                and self.model.entry(row).step == self._step_id:
            self._load_values()  # the same step again: keep its widgets (and the focus)
            self.refresh_problems()
            return
        self.row = row
        self._step_id = ""
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
        self._step_id = entry.step
        self.title.setText(f"{row + 1}. {cls.title}")
        self.description.setText(cls.description or "")
        self.setWhatsThis(f"<b>{cls.title}</b> <code>{cls.id}</code><br>{cls.description or ''}")
        for spec in cls.config_cls.describe():
            name = spec["name"]
            editor = FieldEditor(spec, lambda v, n=name: self.try_edit(n, v))
            label = QLabel(spec["label"] + (f" ({spec['unit']})" if spec.get("unit") else ""))
            label.setToolTip(spec.get("help") or "")
            label.setWhatsThis(editor.whatsThis())
            label.setBuddy(editor.widget)
            self._form.addRow(label, editor)
            self.fields[name] = editor
        self._load_values()
        self.refresh_problems()

    def try_edit(self, name: str, value: Any) -> bool:
        """Put ``value`` into the recipe as given (one undo command); True when the step accepts it.

        A refused value is kept (nothing typed is lost or silently replaced): the recipe check marks
        it on its field and its chain row, and the window will not run until it is fixed.
        """
        if self.row < 0:
            return False
        candidate = self.model.entry(self.row).with_value(name, value)
        self.model.edit_field(self.row, name, value)
        return not entry_problems(candidate, self.row)

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
        config = effective_config(self.model.entry(self.row))
        general = [p.message for p in problems if p.field not in self.fields]
        shown: dict[str, str] = {}
        for p in problems:
            if p.field in self.fields:  # every problem of the field, one per line
                text = self.fields[p.field].explain(config.get(p.field), p.message).rstrip(".")
                line = f"{text}. Fix: {p.fix}." if p.fix else f"{text}."
                shown[p.field] = f"{shown[p.field]}\n{line}" if p.field in shown else line
        for name, editor in self.fields.items():
            editor.show_error(shown.get(name, ""))
        self.chain_problems.setText("\n".join(general))
        self.chain_problems.setVisible(bool(general))
