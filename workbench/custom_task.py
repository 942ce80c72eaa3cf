"""A custom data file as a task: pick the file, map its columns to text / pair / label."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QWidget,
)

from core.errors import DataError

_NONE = "(none)"
_FILE_FILTER = "Data (*.csv *.tsv *.tab *.jsonl *.ndjson *.json *.parquet *.pq);;All files (*)"


def file_columns(path: Path) -> list[str]:
    """Column names of a CSV/TSV (header row), JSON-lines file (keys of the first record) or parquet file
    (read whole by the engine's reader: its schema is binary)."""
    if path.suffix.lower() in (".parquet", ".pq"):
        from core.tasks.custom import read_table

        return list(read_table(path))
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            if path.suffix.lower() in (".jsonl", ".json"):
                first = fh.readline()
                record = json.loads(first)
                if not isinstance(record, dict):
                    raise DataError(f"{path.name}: the first line is not a JSON object")
                return list(record)
            header = fh.readline()
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"Cannot read columns of {path}: {exc}") from exc
    delimiter = "\t" if path.suffix.lower() == ".tsv" or header.count("\t") > header.count(",") else ","
    return next(csv.reader([header], delimiter=delimiter))


class CustomTaskDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Custom data file")
        self.setMinimumWidth(560)
        self.path_edit = QLineEdit()
        self.path_edit.setPlaceholderText("a CSV or TSV file with a header row, JSON lines or parquet")
        browse = QPushButton("Browse…")
        browse.setAutoDefault(False)  # Return in the form means OK, not Browse
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.path_edit, 1)
        row.addWidget(browse)
        self.dev_edit = QLineEdit()
        self.dev_edit.setObjectName("devFile")
        self.dev_edit.setPlaceholderText("optional: the dev rows, with the same columns")
        self.dev_edit.setToolTip("A file of dev rows to score every variant on; empty = a seeded 20 % of the "
                                 "file above, which is then not trained on")
        dev_browse = QPushButton("Browse…")
        dev_browse.setAutoDefault(False)
        dev_browse.clicked.connect(self._browse_dev)
        dev_row = QHBoxLayout()
        dev_row.addWidget(self.dev_edit, 1)
        dev_row.addWidget(dev_browse)
        self.name_edit = QLineEdit()
        self.text_combo = QComboBox()
        self.pair_combo = QComboBox()
        self.label_combo = QComboBox()
        self.kind_combo = QComboBox()
        self.kind_combo.addItems(["classification", "regression"])
        self.stratify_check = QCheckBox("Keep each label's share in the dev split")
        self.stratify_check.setObjectName("stratify")
        self.stratify_check.setChecked(True)
        self.stratify_check.setToolTip("The seeded 20 % dev split takes that share of every label, so a rare class "
                                       "is neither missing from dev nor over-represented there (recipe: "
                                       "data.stratify). Only for classification without a separate dev file")
        self.kind_combo.currentTextChanged.connect(self._update_stratify)
        self.dev_edit.textChanged.connect(self._update_stratify)
        self.error = QLabel()
        self.error.setStyleSheet("color: #c0392b;")
        form = QFormLayout(self)
        intro = QLabel("Your own labelled text becomes the task: the workbench trains and scores every variant "
                       "on it. Without a separate dev file, a seeded 20 % of the rows is the dev set; for "
                       "classification, each label keeps its share there.")
        intro.setWordWrap(True)
        form.addRow(intro)
        form.addRow("File", row)
        form.addRow("Dev file", dev_row)
        form.addRow("Task name", self.name_edit)
        form.addRow("Text column", self.text_combo)
        form.addRow("Second text column", self.pair_combo)
        form.addRow("Label column", self.label_combo)
        form.addRow("Kind", self.kind_combo)
        form.addRow("Dev split", self.stratify_check)
        form.addRow(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setDefault(True)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.path_edit.editingFinished.connect(lambda: self.load_columns(Path(self.path_edit.text())))

    def _update_stratify(self) -> None:
        """Stratifying needs class labels and the seeded split: off limits otherwise, the choice kept."""
        self.stratify_check.setEnabled(self.kind_combo.currentText() == "classification"
                                       and not self.dev_edit.text().strip())

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Data file", "", _FILE_FILTER)
        if path:
            self.path_edit.setText(path)
            self.load_columns(Path(path))

    def _browse_dev(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Dev file", str(Path(self.path_edit.text()).parent), _FILE_FILTER)
        if path:
            self.dev_edit.setText(path)

    def load_columns(self, path: Path) -> bool:
        try:
            columns = file_columns(path)
        except DataError as exc:
            self.error.setText(str(exc))
            return False
        self.error.setText("")
        if not self.name_edit.text():
            self.name_edit.setText(path.stem)
        for combo, optional in ((self.text_combo, False), (self.pair_combo, True), (self.label_combo, False)):
            combo.clear()
            if optional:
                combo.addItem(_NONE)
            combo.addItems(columns)
        lower = [c.lower() for c in columns]
        for combo, names in ((self.text_combo, ("text", "sentence", "sentence1", "review", "question")),
                             (self.pair_combo, ("text_pair", "sentence2")),
                             (self.label_combo, ("label", "labels", "score", "stars", "rating", "class", "target"))):
            for n in names:
                if n in lower:
                    combo.setCurrentText(columns[lower.index(n)])
                    break
        if self.label_combo.currentText() == self.text_combo.currentText() and len(columns) > 1:
            # No label-like name: the last column other than the text, as most files put it.
            self.label_combo.setCurrentText(next(c for c in reversed(columns) if c != self.text_combo.currentText()))
        return True

    def spec(self) -> dict[str, Any]:
        pair = self.pair_combo.currentText()
        return {
            "name": self.name_edit.text().strip() or Path(self.path_edit.text()).stem,
            "path": self.path_edit.text(),
            "text": self.text_combo.currentText(),
            "text_pair": None if pair in ("", _NONE) else pair,
            "label": self.label_combo.currentText(),
            "kind": self.kind_combo.currentText(),
            "dev_path": self.dev_edit.text().strip() or None,
            "stratify": True if self.stratify_check.isEnabled() and self.stratify_check.isChecked() else None,
        }

    def _accept(self) -> None:
        spec = self.spec()
        if not Path(spec["path"]).is_file():
            self.error.setText("Choose an existing data file")
        elif spec["dev_path"] is not None and not Path(spec["dev_path"]).is_file():
            self.error.setText(f"The dev file {spec['dev_path']} does not exist: choose one, or leave it empty")
        elif not spec["text"] or not spec["label"]:
            self.error.setText("Map the text and label columns")
        elif spec["text"] == spec["label"]:
            self.error.setText("The text and label columns must differ")
        else:
            # The engine reads the file with this mapping, as the worker will from the recipe's
            # data: a wrong column or an unusable label is reported here, naming the row or column.
            from core.errors import ConfigError
            from core.recipe import DataSpec
            from core.tasks.custom import task_from_spec

            try:
                task_from_spec(DataSpec.from_dict({k: v for k, v in spec.items() if v is not None}))
            except (ConfigError, DataError) as exc:
                self.error.setText(str(exc))
                return
            self.accept()
