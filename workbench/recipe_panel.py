"""The recipe's own settings: its name and description, the seed (or several seeds), the accuracy
budget (workbench.budget_editor) and how every variant is measured (the ``measure:`` block: dev
examples, batch sizes, latency shape, warm-up, repeats, threads).

Each change is one undoable RecipeEdit. A value the measurement settings refuse cannot enter the
recipe (they validate themselves); it stays in its field with the reason beside it, and the window
will not run while any field holds one, so no run ever uses a value other than the one shown.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QEvent, QObject, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from core.errors import ConfigError
from core.recipe import Recipe
from core.recipe.model import BACKEND_CHOICES
from workbench.document import Document
from workbench.number_box import NumberBox, format_number, parse_number

EditFn = Callable[[Recipe, str], None]

# field -> (label, help, empty means)
MEASURE_FIELDS: dict[str, tuple[str, str, str]] = {
    "eval_limit": ("Dev examples", "How many dev examples each variant is scored on (a seeded sample); "
                   "empty = the whole dev split. Fewer is faster and noisier (the Data tab says how noisy).", "all"),
    "eval_batch_size": ("Evaluation batch", "Examples per forward pass while scoring", ""),
    "max_length": ("Max tokens per example", "Longer examples are cut to this many tokens when scored", ""),
    "latency_batch_size": ("Latency batch", "Rows in the batch timed for latency", ""),
    "latency_seq_len": ("Latency sequence length", "Tokens per row of the timed batch", ""),
    "latency_warmup": ("Warm-up passes", "Untimed passes before timing", ""),
    "latency_repeats": ("Timed repeats", "Timed passes: p50 and p90 are taken over these", ""),
    "threads": ("Threads", "torch threads while scoring and timing; empty = torch's default", "torch default"),
}


BACKENDS_HELP = ("Runtimes each variant is timed on, side by side (measure.backends): ONNX Runtime and OpenVINO "
                 "export the variant, check the file against it and time it with the same threads and inputs. "
                 "Needs the deploy extra: pip install -e \".[deploy]\"")


class _FocusOut(QObject):
    def __init__(self, callback: Callable[[], None], parent: QObject) -> None:
        super().__init__(parent)
        self.callback = callback

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.FocusOut:
            self.callback()
        return False


class RecipePanel(QScrollArea):
    inputs_changed = Signal()  # a refused value appeared or went away: the window re-validates

    def __init__(self, document: Document, edit: EditFn, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self._edit = edit
        self.setWidgetResizable(True)
        body = QWidget()
        self.setWidget(body)
        layout = QVBoxLayout(body)

        about = QGroupBox("Recipe")
        form = QFormLayout(about)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)  # a narrow pane: labels above, no side scroll
        self.name_edit = QLineEdit()
        self.name_edit.setObjectName("recipeName")
        self.name_edit.setPlaceholderText("a name for this recipe (shown in the results' run list)")
        self.name_edit.editingFinished.connect(self._name_edited)
        self.description_edit = QPlainTextEdit()
        self.description_edit.setObjectName("recipeDescription")
        self.description_edit.setPlaceholderText("what this chain is for")
        # Five lines, fixed: an expanding box grew and shrank as error lines below came and went.
        margin = 2 * (self.description_edit.frameWidth() + self.description_edit.document().documentMargin())
        self.description_edit.setFixedHeight(int(self.description_edit.fontMetrics().lineSpacing() * 5 + margin))
        self.description_edit.installEventFilter(_FocusOut(self._description_edited, self))
        self.seed_box = NumberBox("int", 0, 2**31 - 1)
        self.seed_box.setObjectName("recipeSeed")
        self.seed_box.setToolTip("Seeds training, sampling of dev examples and latency inputs: same seed, same run")
        self.seed_box.edited.connect(self._seed_edited)
        self.seed_error = self._error_label()
        self.seeds_edit = QLineEdit()
        self.seeds_edit.setObjectName("recipeSeeds")
        self.seeds_edit.setPlaceholderText("one run per seed, e.g. 1, 2, 3 (empty: the seed above)")
        self.seeds_edit.setToolTip("Several seeds make every variant once per seed; the results then show each "
                                   "variant's mean ± standard deviation over the seeds (recipe 'seeds:')")
        self.seeds_edit.editingFinished.connect(self._seeds_edited)
        self.seeds_error = self._error_label()
        self.seeds_pending = ""  # the message of refused seeds still shown
        form.addRow("Name", self.name_edit)
        form.addRow("Description", self.description_edit)
        form.addRow("Seed", self.seed_box)
        form.addRow("", self.seed_error)
        form.addRow("Seeds", self.seeds_edit)
        form.addRow("", self.seeds_error)
        layout.addWidget(about)

        from workbench.budget_editor import BudgetEditor

        budget = QGroupBox("Accuracy budget: where a chain stops")
        budget.setToolTip("budget: in the recipe; the results mark a variant over it 'over budget'")
        self.budget_editor = BudgetEditor(document, edit)
        self.budget_editor.refused_changed.connect(self.inputs_changed)
        QVBoxLayout(budget).addWidget(self.budget_editor)
        layout.addWidget(budget)

        measure = QGroupBox("Measurement: how every variant is measured")
        measure.setToolTip("Recorded with each run; variants compare only when measured the same way")
        mform = QFormLayout(measure)
        mform.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self.boxes: dict[str, NumberBox] = {}
        self.errors: dict[str, QLabel] = {}
        self.pending: dict[str, str] = {}  # field -> message of a refused value still shown
        for name, (label, help_text, empty) in MEASURE_FIELDS.items():
            low = 0 if name == "latency_warmup" else 1
            box = NumberBox("int", low, None, placeholder=empty)
            box.setObjectName(f"measure_{name}")
            box.setToolTip(help_text)
            box.setWhatsThis(f"<b>{label}</b> (<code>measure.{name}</code>)<br>{help_text}")
            box.edited.connect(lambda text, n=name: self._measure_edited(n, text))
            self.boxes[name] = box
            self.errors[name] = self._error_label()
            caption = QLabel(label)
            caption.setToolTip(help_text)
            caption.setBuddy(box)
            mform.addRow(caption, box)
            mform.addRow("", self.errors[name])
        backends = QWidget()
        row = QHBoxLayout(backends)
        row.setContentsMargins(0, 0, 0, 0)
        self.backend_boxes: dict[str, QCheckBox] = {}
        for backend in BACKEND_CHOICES:
            check = QCheckBox(backend)
            check.setObjectName(f"measure_backend_{backend}")
            check.setToolTip(BACKENDS_HELP)
            check.toggled.connect(lambda _on, b=backend: self._backends_edited(b))
            self.backend_boxes[backend] = check
            row.addWidget(check)
        row.addStretch(1)
        caption = QLabel("Backends")
        caption.setToolTip(BACKENDS_HELP)
        self.backends_error = self._error_label()
        mform.addRow(caption, backends)
        mform.addRow("", self.backends_error)
        layout.addWidget(measure)
        layout.addStretch(1)
        self.refresh()

    @staticmethod
    def _error_label() -> QLabel:
        label = QLabel()
        label.setStyleSheet("color: #c0392b;")
        label.setWordWrap(True)
        label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.MinimumExpanding)
        label.hide()
        return label

    # --- following the document ----------------------------------------------------------------
    def refresh(self) -> None:
        """Show the document's values (a refused value still being fixed is left in its field)."""
        recipe = self.document.recipe
        # Text being typed (modified since its last commit) is left alone; anything else follows.
        if not self.name_edit.isModified() and self.name_edit.text() != recipe.name:
            self.name_edit.setText(recipe.name)
        description = self.description_edit.document()
        if not description.isModified() and self.description_edit.toPlainText() != recipe.description:
            self.description_edit.setPlainText(recipe.description)
            description.setModified(False)
        self.seed_box.set_value(recipe.seed)
        self._show(self.seed_error, "")
        if not self.seeds_edit.isModified() or not self.seeds_pending:
            self.seeds_edit.setModified(False)
            self.seeds_edit.setText(", ".join(str(s) for s in recipe.seeds))
            self._show(self.seeds_error, "")
        values = recipe.measure.to_dict()
        for name, box in self.boxes.items():
            if name not in self.pending:
                box.set_value(values.get(name))
        for backend, check in self.backend_boxes.items():
            check.blockSignals(True)
            check.setChecked(backend in recipe.measure.backends)
            check.blockSignals(False)

    def invalid_inputs(self) -> list[str]:
        """Messages of the values shown but refused: the window runs nothing while there are any."""
        seeds = [f"Seeds: {self.seeds_pending}"] if self.seeds_pending else []
        return (seeds + [f"{MEASURE_FIELDS[n][0]}: {m}" for n, m in self.pending.items()]
                + self.budget_editor.invalid_inputs())

    # --- edits ---------------------------------------------------------------------------------
    def _push(self, recipe: Recipe, text: str) -> None:
        self._edit(recipe, text)

    def _name_edited(self) -> None:
        self.name_edit.setModified(False)
        name = " ".join(self.name_edit.text().split())
        if name != self.document.recipe.name:
            self._push(dataclasses.replace(self.document.recipe, name=name), "Rename recipe")

    def _description_edited(self) -> None:
        self.description_edit.document().setModified(False)
        text = self.description_edit.toPlainText().strip()
        if text != self.document.recipe.description:
            self._push(dataclasses.replace(self.document.recipe, description=text), "Edit description")

    def _seed_edited(self, text: str) -> None:
        value = parse_number(text, "int")
        if value is None or not 0 <= value < 2**31:
            self._show(self.seed_error, f"'{text}' is not a seed: give a whole number from 0 to {2**31 - 1}")
            return
        self._show(self.seed_error, "")
        self._push(dataclasses.replace(self.document.recipe, seed=int(value)), "Change seed")

    def _seeds_edited(self) -> None:
        text = self.seeds_edit.text()
        parts = [p for p in text.replace(",", " ").split() if p]
        values = [parse_number(p, "int") for p in parts]
        message = ""
        if any(v is None or not 0 <= v < 2**63 for v in values):
            bad = next(p for p, v in zip(parts, values, strict=True) if v is None or not 0 <= v < 2**63)
            message = f"'{bad}' is not a seed: give whole numbers from 0, separated by commas (e.g. 1, 2, 3)"
        elif len(set(values)) != len(values):
            message = "a seed is listed twice: give each seed once"
        self.seeds_pending = message
        if message:
            self._show(self.seeds_error, message + ". The recipe keeps its seeds until this is fixed; nothing "
                                                   "runs meanwhile.")
            return
        self.seeds_edit.setModified(False)
        self._show(self.seeds_error, "")
        seeds = tuple(int(v) for v in values if v is not None)
        if len(seeds) == 1:  # one seed is the seed
            self.seeds_edit.setText("")
            if seeds[0] != self.document.recipe.seed or self.document.recipe.seeds:
                self._push(dataclasses.replace(self.document.recipe, seed=seeds[0], seeds=()), "Change seed")
            return
        if seeds != self.document.recipe.seeds:
            self._push(dataclasses.replace(self.document.recipe, seeds=seeds), "Change seeds")

    def _measure_edited(self, name: str, text: str) -> None:
        optional = bool(MEASURE_FIELDS[name][2]) and name in ("eval_limit", "threads")
        value: Any
        if not text.strip():
            value = None
            message = "" if optional else "needs a value"
        else:
            value = parse_number(text, "int")
            message = "" if value is not None else f"'{text}' is not a whole number"
        if not message:
            try:
                measure = dataclasses.replace(self.document.recipe.measure, **{name: value})
            except ConfigError as exc:
                message = str(exc).removeprefix(f"measure.{name} ")
        if message:
            self.pending[name] = message
            self._show(self.errors[name], f"{message}. The recipe keeps {self._current(name)} until this is fixed; "
                                          "nothing runs meanwhile.")
            return
        self.pending.pop(name, None)
        self._show(self.errors[name], "")
        label = MEASURE_FIELDS[name][0].lower()
        self._push(dataclasses.replace(self.document.recipe, measure=measure), f"Change {label}")

    def _backends_edited(self, backend: str) -> None:
        chosen = tuple(b for b, check in self.backend_boxes.items() if check.isChecked())
        if not chosen:  # nothing to time on: keep the box ticked and say why
            self.backend_boxes[backend].blockSignals(True)
            self.backend_boxes[backend].setChecked(True)
            self.backend_boxes[backend].blockSignals(False)
            self._show(self.backends_error, "at least one backend times the variants")
            return
        self._show(self.backends_error, "")
        if chosen != self.document.recipe.measure.backends:
            measure = dataclasses.replace(self.document.recipe.measure, backends=chosen)
            self._push(dataclasses.replace(self.document.recipe, measure=measure), "Change backends")

    def _current(self, name: str) -> str:
        value = getattr(self.document.recipe.measure, name)
        return format_number(value) if value is not None else MEASURE_FIELDS[name][2]

    def _show(self, label: QLabel, message: str) -> None:
        changed = message != label.text()
        label.setText(message)
        label.setVisible(bool(message))
        if message:
            label.setMinimumHeight(label.heightForWidth(max(1, label.width() or 200)))
        if changed:
            self.inputs_changed.emit()


def secondary(label: QLabel) -> QLabel:
    """A label in the theme's secondary text colour (readable in light and dark)."""
    label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
    return label

