"""A number field that never changes what was typed.

QSpinBox and QDoubleSpinBox clamp a value outside their range to the last valid one and round to
their decimals (1.5 typed into a 0..1 box became 0.5, a learning rate of 2e-5 became 0.0000), so
a user could run a value they never chose. Here the text is the value: what is typed is handed on
as typed and checked by the step's config, which names the problem; the arrows, the wheel and
Up/Down still step, and only within the field's range.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QKeyEvent, QKeySequence, QValidator, QWheelEvent
from PySide6.QtWidgets import QAbstractSpinBox, QWidget


def format_number(value: object) -> str:
    """A number as the shortest text that reads back as the same number ('0.5', '2e-05', '8')."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def parse_number(text: str, kind: str) -> int | float | None:
    """The number in ``text`` or None when it is not one (finite, and whole for an int field)."""
    text = text.strip()
    try:
        value: int | float = int(text) if kind == "int" else float(text)
    except ValueError:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class NumberBox(QAbstractSpinBox):
    """``edited(text)`` when the user finishes typing (Enter, focus out) or steps."""

    edited = Signal(str)

    def __init__(self, kind: str, minimum: float | None = None, maximum: float | None = None, *,
                 min_exclusive: bool = False, placeholder: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.kind = kind
        self.minimum, self.maximum, self.min_exclusive = minimum, maximum, min_exclusive
        self.setKeyboardTracking(False)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # the wheel steps only a focused box
        self.setAccelerated(True)
        self.lineEdit().setPlaceholderText(placeholder)
        self._last = ""
        self.editingFinished.connect(self._finished)
        self.lineEdit().installEventFilter(self)  # the focus may be on the line edit itself

    def _undo_key(self, event: QEvent) -> bool:
        """Ctrl+Z / Ctrl+Shift+Z belong to the window's undo (every edit is one recipe edit), not
        to the text field's own undo: what was typed is committed first, then undone as one step."""
        if event.type() == QEvent.Type.ShortcutOverride and isinstance(event, QKeyEvent) and (
                event.matches(QKeySequence.StandardKey.Undo) or event.matches(QKeySequence.StandardKey.Redo)):
            self._finished()
            event.ignore()  # not taken here: the shortcut goes to the window's action
            return True
        return False

    def event(self, event: QEvent) -> bool:
        return self._undo_key(event) or super().event(event)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        return self._undo_key(event) or super().eventFilter(watched, event)

    # --- value --------------------------------------------------------------------------------
    def value(self) -> int | float | None:
        return parse_number(self.text(), self.kind)

    def set_text(self, text: str) -> None:
        """Show ``text`` without emitting ``edited`` (the document's value)."""
        self._last = text
        self.lineEdit().setText(text)

    def set_value(self, value: object) -> None:
        self.set_text(format_number(value))

    # --- QAbstractSpinBox ---------------------------------------------------------------------
    def validate(self, text: str, pos: int) -> tuple[QValidator.State, str, int]:  # type: ignore[override]
        return QValidator.State.Acceptable, text, pos  # anything may be typed; the config judges it

    def fixup(self, text: str) -> str:  # type: ignore[override]
        return text

    def _step_size(self, value: float) -> float:
        if self.kind == "int":
            return 1
        unit = 0.01 if self.minimum is not None and self.maximum is not None and self.maximum - self.minimum <= 1 \
            else 0.1
        if value != 0 and abs(value) < 1:
            return min(unit, 10.0 ** math.floor(math.log10(abs(value))))  # 2e-05 steps by 1e-05
        return unit

    def _in_range(self, value: float) -> bool:
        if self.minimum is not None and (value < self.minimum or (self.min_exclusive and value <= self.minimum)):
            return False
        return self.maximum is None or value <= self.maximum

    def _stepped(self, steps: int) -> int | float | None:
        value = self.value()
        if value is None:
            return None
        new = value + steps * self._step_size(float(value))
        if self.kind != "int":
            new = round(new, 12)
        if self._in_range(new):
            return new
        # Step to the bound when the value is inside the range, never past it.
        bound = self.maximum if steps > 0 else self.minimum
        if bound is None or not self._in_range(value) or (steps < 0 and self.min_exclusive):
            return None
        return int(bound) if self.kind == "int" else float(bound)

    def stepEnabled(self) -> QAbstractSpinBox.StepEnabledFlag:
        flags = QAbstractSpinBox.StepEnabledFlag.StepNone
        if self._stepped(1) not in (None, self.value()):
            flags |= QAbstractSpinBox.StepEnabledFlag.StepUpEnabled
        if self._stepped(-1) not in (None, self.value()):
            flags |= QAbstractSpinBox.StepEnabledFlag.StepDownEnabled
        return flags

    def stepBy(self, steps: int) -> None:
        new = self._stepped(steps)
        if new is None or new == self.value():
            return
        self.lineEdit().setText(format_number(new))
        self._finished()

    def wheelEvent(self, event: QWheelEvent) -> None:
        if not self.hasFocus():
            event.ignore()  # scrolling the form must not change a value under the pointer
            return
        super().wheelEvent(event)

    def _finished(self) -> None:
        text = self.text().strip()
        if text != self._last:
            self._last = text
            self.edited.emit(text)
