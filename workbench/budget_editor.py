"""The recipe's accuracy budget (core.recipe.Budget) in the Recipe tab: on/off, a number, points or %
of the reference. Every change is one undoable recipe edit; the row follows the document (undo, open).

What is typed is what the recipe holds: a value the budget refuses (negative, text, a percentage
above 100) is kept in its field with the reason beside it, the recipe keeps its budget, and the
window runs nothing meanwhile (``invalid_inputs``). A variant whose metric falls further below the
run's reference than the budget allows is flagged "over budget" in the results and nothing after it
runs (core.run.runner).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from core.errors import ConfigError
from core.recipe import Budget, Recipe
from workbench.document import Document
from workbench.number_box import NumberBox, parse_number

UNITS = (("metric_drop", "points below the reference"), ("metric_drop_pct", "% of the reference"))
DEFAULT_VALUE = 1.0


class BudgetEditor(QWidget):
    refused_changed = Signal()  # a refused value appeared or went away: the window re-validates

    def __init__(self, document: Document, edit: Callable[[Recipe, str], None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document, self._edit = document, edit
        self.check = QCheckBox("Stop a branch that loses more than")
        self.check.setObjectName("budgetCheck")
        self.check.setToolTip("A variant whose metric falls further below the run's reference (its first trained "
                              "variant) than this is flagged 'over budget' and nothing after it runs; a sweep stops "
                              "at its first value over budget, keeping the last value within it")
        self.value = NumberBox("float", 0.0, None)
        self.value.setObjectName("budgetValue")
        self.value.set_value(DEFAULT_VALUE)
        self.value.setMinimumWidth(self.value.fontMetrics().horizontalAdvance("100.00") + 40)
        self.unit = QComboBox()
        self.unit.setObjectName("budgetUnit")
        for key, title in UNITS:
            self.unit.addItem(title, key)
        self.error = QLabel()
        self.error.setObjectName("budgetError")
        self.error.setStyleSheet("color: #c0392b;")
        self.error.setWordWrap(True)
        self.error.hide()
        self.pending = ""  # the message of a refused value still shown
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.value)
        row.addWidget(self.unit, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.check)
        layout.addLayout(row)
        layout.addWidget(self.error)
        self._syncing = False
        self.check.toggled.connect(lambda _on: self._changed())
        self.value.edited.connect(lambda _text: self._changed())
        self.unit.currentIndexChanged.connect(lambda _i: self._changed())
        document.subscribe(lambda _old, _new: self.sync())
        self.sync()

    def invalid_inputs(self) -> list[str]:
        return [f"Accuracy budget: {self.pending}"] if self.pending else []

    def sync(self) -> None:
        """Show the document's budget (after an edit, an undo or opening a recipe)."""
        budget = self.document.recipe.budget
        self._syncing = True
        try:
            self.check.setChecked(budget is not None)
            if budget is not None:
                key = "metric_drop" if budget.metric_drop is not None else "metric_drop_pct"
                self.unit.setCurrentIndex(self.unit.findData(key))
                self.value.set_value(getattr(budget, key))
                self._refuse("")
            elif self.pending:
                self._refuse("")
                self.value.set_value(DEFAULT_VALUE)
            self.value.setEnabled(budget is not None)
            self.unit.setEnabled(budget is not None)
        finally:
            self._syncing = False

    def _changed(self) -> None:
        if self._syncing:
            return
        on = self.check.isChecked()
        self.value.setEnabled(on)
        self.unit.setEnabled(on)
        budget: Budget | None = None
        if on:
            text = self.value.text()
            number = parse_number(text, "float")
            if number is None:
                self._refuse(f"'{text}' is not a number")
                return
            try:
                budget = Budget(**{self.unit.currentData(): float(number)})
            except ConfigError as exc:
                self._refuse(str(exc))
                return
        self._refuse("")
        if budget != self.document.recipe.budget:
            self._edit(dataclasses.replace(self.document.recipe, budget=budget),
                       "Change the accuracy budget" if budget is not None else "Remove the accuracy budget")

    def _refuse(self, message: str) -> None:
        changed, self.pending = message != self.pending, message
        if message:
            current = self.document.recipe.budget
            keeps = current.describe() if current is not None else "no budget"
            self.error.setText(f"{message}. The recipe keeps {keeps} until this is fixed; nothing runs meanwhile.")
        self.error.setVisible(bool(message))
        if changed:
            self.refused_changed.emit()

