"""The sensitivity view: a heatmap of layers x transforms (colour = metric drop, tooltip = the paired
95 % interval) for one stored variant, measured in a child process with progress and cancel, read back
from the database; and one-click mixed precision: a plan from the shown map (core.analysis.mixed) added
to the chain as one undoable edit.

Opened from Analysis > Sensitivity… for the variant selected in the results table. The window never
imports torch: the map is measured by ``python -m core.analysis.worker`` (workbench.analysis_process).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from core import protocol as p
from core.analysis.client import sensitivity_command
from core.errors import WorkbenchError
from core.store.analysis import SensitivityMap, describe, export_sensitivity, interval_text, sensitivity_maps
from workbench.exports import TEXT_FORMATS, ask_save_path, export_button, write_text
from workbench.number_box import NumberBox

DEFAULT_TRANSFORMS = "int8, nbit:6, prune:0.3"
_Index = QModelIndex | QPersistentModelIndex


def drop_colour(drop: float | None, worst: float) -> QColor:
    """White at no change, deeper red as the drop nears the map's worst, light green for a gain;
    grey for a cell with nothing measured."""
    if drop is None:
        return QColor(225, 225, 225)
    if drop <= 0:
        t = min(1.0, -drop / max(worst, 1e-9)) * 0.5
        return QColor(int(255 - 90 * t), 255, int(255 - 90 * t))
    t = min(1.0, drop / max(worst, 1e-9))
    return QColor(255, int(255 - 200 * t), int(255 - 200 * t))


class HeatmapModel(QAbstractTableModel):
    """Rows: the map's parts (bottom to top); columns: its transforms; cells: the change in points."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.map: SensitivityMap | None = None

    def set_map(self, m: SensitivityMap | None) -> None:
        self.beginResetModel()
        self.map = m
        self.endResetModel()

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 (Qt's signature)
        return 0 if self.map is None or parent.isValid() else len(self.map.layers)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if self.map is None or parent.isValid() else len(self.map.transforms)

    def worst(self) -> float:
        if self.map is None:
            return 1.0
        drops = [abs(c.delta) * self.map.points for c in self.map.cells if c.delta is not None]
        return max(drops, default=1.0) or 1.0

    def cell(self, index: _Index) -> Any:
        if self.map is None or not index.isValid():
            return None
        return self.map.cell(self.map.transforms[index.column()], self.map.layers[index.row()])

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        m = self.map
        if m is None or not index.isValid():
            return None
        c = self.cell(index)
        if role == Qt.ItemDataRole.DisplayRole:
            if c is None:
                return "…" if m.status in ("running",) else "—"
            return "n/a" if c.delta is None else f"{c.delta * m.points:+.1f}"
        if role == Qt.ItemDataRole.BackgroundRole:
            return drop_colour(None if c is None or c.delta is None else -c.delta * m.points, self.worst())
        if role == Qt.ItemDataRole.ForegroundRole:
            return QColor(20, 20, 20)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(Qt.AlignmentFlag.AlignCenter)
        if role == Qt.ItemDataRole.ToolTipRole:
            where = f"{m.layers[index.row()]} × {m.transforms[index.column()]}"
            if c is None:
                return f"{where}: not measured ({m.status})"
            if c.delta is None:
                return f"{where}: this transform has nothing to act on in this part"
            return (f"{where}: {interval_text(m, c)} points of {m.metric} (95 % paired bootstrap interval)\n"
                    f"{m.metric} {c.metric * m.points:.1f} with the transform, {m.base_metric * m.points:.1f} untouched\n"
                    f"{c.examples} dev examples, seed {c.seed}")
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if self.map is None or role != Qt.ItemDataRole.DisplayRole:
            return None
        return self.map.transforms[section] if orientation == Qt.Orientation.Horizontal else self.map.layers[section]


class SensitivityView(QWidget):
    """Heatmaps of one variant's stored maps, a Run/Cancel to measure a new one, and mixed precision."""

    mapShown = Signal(object)  # the SensitivityMap shown (or None)
    analysisFinished = Signal(str)  # finished | cancelled | failed | crashed

    def __init__(self, db: Path, variant: dict[str, Any], *, add_step: Callable[[Any], None] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from workbench.analysis_process import AnalysisProcess

        self.db = Path(db)
        self.variant = variant
        self.add_step = add_step
        self.maps: list[SensitivityMap] = []
        self.plan: Any = None
        self._store: Any = None
        self.process = AnalysisProcess(self)
        self.process.event.connect(self._on_event)
        self.process.finished.connect(self._on_finished)

        title = QLabel(f"<b>Sensitivity of variant {variant.get('variant')}</b>: {variant.get('label', '')} "
                       f"(run {variant.get('run')}, {variant.get('task', '')})")
        self.map_combo = QComboBox()
        self.map_combo.setObjectName("mapCombo")
        self.map_combo.setMinimumContentsLength(30)
        self.transforms_edit = QLineEdit(DEFAULT_TRANSFORMS)
        self.transforms_edit.setObjectName("transformsEdit")
        self.transforms_edit.setToolTip("int8, nbit:BITS (1-16) or prune:AMOUNT (0-0.95), comma-separated")
        self.examples_spin = QSpinBox()
        self.examples_spin.setRange(1, 100_000)
        self.examples_spin.setValue(400)
        self.examples_spin.setSuffix(" examples")
        self.by_combo = QComboBox()
        self.by_combo.addItem("by layer", "layer")
        self.by_combo.addItem("by role", "role")
        self.run_button = QPushButton("Measure")
        self.run_button.setObjectName("measureButton")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.hide()
        self.status = QLabel()
        self.status.setObjectName("sensitivityStatus")
        self.status.setWordWrap(True)
        run_row = QHBoxLayout()
        for w in (QLabel("Transforms:"), self.transforms_edit, self.examples_spin, self.by_combo, self.run_button,
                  self.cancel_button):
            run_row.addWidget(w)
        run_row.setStretch(1, 1)

        self.model = HeatmapModel(self)
        self.table = QTableView()
        self.table.setObjectName("heatmap")
        self.table.setModel(self.model)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        font = QFont(self.table.font())
        font.setBold(True)
        self.table.setFont(font)
        self.caption = QLabel()
        self.caption.setObjectName("heatmapCaption")
        self.caption.setWordWrap(True)
        self.caption.setStyleSheet("color: palette(mid);")
        self.export_button = export_button(self, "Export map", [(f"{name}…", lambda f=fmt: self.export_dialog(f))
                                                                for fmt, (name, _ext) in TEXT_FORMATS.items()])
        maps_row = QHBoxLayout()
        maps_row.addWidget(QLabel("Map:"))
        maps_row.addWidget(self.map_combo, 1)
        maps_row.addWidget(self.export_button)

        # --- mixed precision ---------------------------------------------------------------------
        box = QGroupBox("Mixed precision from this map")
        self.scheme_combo = QComboBox()
        self.scheme_combo.addItem("bits per layer (quantize.linear_nbit)", "nbit")
        self.scheme_combo.addItem("layers kept in float (quantize.dynamic_int8)", "int8")
        self.objective_combo = QComboBox()
        self.objective_combo.setObjectName("objectiveCombo")
        self.objective_combo.addItem("least drop within a size (MB)", "target_mb")
        self.objective_combo.addItem("smallest within a drop (points)", "max_drop")
        # What is typed is what is planned: a spin box would round 0.125 MB to 0.13 or clamp -1 to 0.
        self.budget_spin = NumberBox("float", 0.0, None)
        self.budget_spin.setObjectName("budgetSpin")
        self.budget_spin.set_value(1.0)
        self.budget_spin.setMinimumWidth(self.budget_spin.fontMetrics().horizontalAdvance("0000.000") + 40)
        self.budget_unit = QLabel("points")
        self.estimate_combo = QComboBox()
        self.estimate_combo.setObjectName("estimateCombo")
        self.estimate_combo.addItem("pessimistic end of each cell's 95 % interval", "interval")
        self.estimate_combo.addItem("measured change (gains read as 0)", "point")
        self.estimate_combo.setToolTip("How a part's drop is read from its cell: the interval's low end does not "
                                       "mistake a cell measured on few examples for a free one")
        self.min_bits_combo = QComboBox()
        self.min_bits_combo.setObjectName("minBitsCombo")
        self.max_bits_combo = QComboBox()
        self.max_bits_combo.setObjectName("maxBitsCombo")
        self.max_bits_combo.setToolTip("e.g. 8 for a plan smaller than uniform 8-bit: no part kept in float")
        self.plan_label = QLabel()
        self.plan_label.setObjectName("planLabel")
        self.plan_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.plan_label.setFont(QFont("monospace"))
        self.plan_label.setWordWrap(True)
        self.add_button = QPushButton("Add to chain")
        self.add_button.setObjectName("addMixedButton")
        self.add_button.setEnabled(False)
        self.add_button.setToolTip("Append the step with this assignment to the chain (Ctrl+Z undoes it)")
        form = QFormLayout()
        form.addRow("Scheme:", self.scheme_combo)
        goal = QHBoxLayout()
        goal.addWidget(self.objective_combo, 1)
        goal.addWidget(self.budget_spin)
        goal.addWidget(self.budget_unit)
        form.addRow("Goal:", goal)
        form.addRow("Drop of a choice:", self.estimate_combo)
        widths = QHBoxLayout()
        widths.addWidget(QLabel("from"))
        widths.addWidget(self.min_bits_combo, 1)
        widths.addWidget(QLabel("to"))
        widths.addWidget(self.max_bits_combo, 1)
        form.addRow("Widths:", widths)
        inner = QVBoxLayout(box)
        inner.addLayout(form)
        inner.addWidget(self.plan_label)
        inner.addWidget(self.add_button, 0, Qt.AlignmentFlag.AlignRight)

        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addLayout(run_row)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addLayout(maps_row)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.caption)
        layout.addWidget(box)

        self.run_button.clicked.connect(self.measure)
        self.cancel_button.clicked.connect(self.process.cancel)
        self.map_combo.currentIndexChanged.connect(lambda _i: self._show_current())
        self.scheme_combo.currentIndexChanged.connect(lambda _i: self._fill_widths())
        # A new objective first takes its default goal in its own unit, then plans with it.
        self.objective_combo.currentIndexChanged.connect(lambda _i: self._default_budget())
        for signal in (self.scheme_combo.currentIndexChanged, self.objective_combo.currentIndexChanged,
                       self.estimate_combo.currentIndexChanged, self.min_bits_combo.currentIndexChanged,
                       self.max_bits_combo.currentIndexChanged):
            signal.connect(lambda _i: self.update_plan())
        self.budget_spin.edited.connect(lambda _text: self.update_plan())
        self.add_button.clicked.connect(self._add)
        self.reload()

    # --- stored maps ------------------------------------------------------------------------------
    def _open(self) -> Any:
        if self._store is None:
            from core.store import open_store

            self._store = open_store(self.db, create=False)
        return self._store

    def reload(self, select: int | None = None) -> None:
        """Re-read this variant's maps; show ``select`` (default: the one shown, else the newest)."""
        current = select if select is not None else self.map_combo.currentData()
        try:
            self.maps = sensitivity_maps(self._open(), int(self.variant["variant"]))
        except WorkbenchError as exc:
            self.maps = []
            self.status.setText(f"Cannot read maps: {exc}")
        self.map_combo.blockSignals(True)
        self.map_combo.clear()
        for m in self.maps:
            self.map_combo.addItem(f"Map {m.id} · {', '.join(m.transforms)} · by {m.grouping} · {m.examples} examples · "
                                   f"{m.status}", m.id)
        index = self.map_combo.findData(current)
        self.map_combo.setCurrentIndex(index if index >= 0 else 0)
        self.map_combo.blockSignals(False)
        if not self.maps:
            self.caption.setText("No map of this variant yet: choose transforms and press Measure "
                                 "(6 layers x 3 transforms on 400 examples take a few minutes on 2 cores).")
        self._show_current()

    def current_map(self) -> SensitivityMap | None:
        map_id = self.map_combo.currentData()
        return next((m for m in self.maps if m.id == map_id), None)

    def _show_current(self) -> None:
        m = self.current_map()
        self.model.set_map(m)
        if m is not None:
            self.caption.setText(describe(m) + ". Red: the metric falls when only this part is transformed; "
                                 "hover a cell for its interval.")
        self._default_budget()
        self._fill_widths()
        self.update_plan()
        self.mapShown.emit(m)

    # --- measuring ---------------------------------------------------------------------------------
    def measure(self) -> None:
        """Start a new map in the analysis process; progress and cancel while it runs."""
        if self.process.is_running():
            return
        transforms = [t.strip() for t in self.transforms_edit.text().replace(";", ",").split(",") if t.strip()]
        if not transforms:
            self.status.setText("Give at least one transform: int8, nbit:6, prune:0.3")
            return
        request = p.SensitivityRequest(variant=int(self.variant["variant"]), transforms=transforms, db=str(self.db),
                                       examples=self.examples_spin.value(), by=self.by_combo.currentData(),
                                       background=True)
        self.progress.setValue(0)
        self.progress.show()
        self.status.setText("Starting the analysis process…")
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.process.start(sensitivity_command(), request)

    def _on_event(self, event: Any) -> None:
        if isinstance(event, p.Progress):
            self.progress.setValue(int(1000 * event.fraction))
            self.progress.setFormat(f"%p %  {event.message}")
        elif isinstance(event, p.Log):
            self.status.setText(event.message)
            if event.message.startswith("sensitivity map "):
                self.reload(select=int(event.message.split()[2].rstrip(":")))
            elif self.process.is_running() and self.current_map() is not None:
                self.reload()  # a cell landed: show it as it arrives

    def _on_finished(self, status: str, result_id: Any, error: str) -> None:
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.progress.hide()
        words = {"finished": f"Map {result_id} measured.",
                 "cancelled": "Cancelled; the cells measured so far are kept." if result_id else "Cancelled.",
                 "failed": f"The analysis failed: {error}", "crashed": f"The analysis process crashed: {error}"}
        self.status.setText(words.get(status, status))
        self.status.setStyleSheet("color: #c0392b;" if status in ("failed", "crashed") else "")
        self.reload(select=result_id if isinstance(result_id, int) else None)
        self.analysisFinished.emit(status)

    # --- mixed precision -----------------------------------------------------------------------
    def _default_budget(self) -> None:
        m = self.current_map()
        if self.objective_combo.currentData() == "target_mb":
            size = (m.body.get("artifact_bytes") or 0) / 1e6 if m is not None else 0.0
            self.budget_unit.setText("MB")
            self.budget_spin.set_value(round(size * 0.25, 2) if size else 10.0)  # about uniform 8-bit
        else:
            self.budget_unit.setText("points")
            self.budget_spin.set_value(1.0)

    def _fill_widths(self) -> None:
        """The width bounds offered: the widths the shown map measured for the scheme (any / float
        leave that side open); the choices kept when still offered."""
        m = self.current_map()
        scheme = self.scheme_combo.currentData()
        measured = sorted({8 if t == "int8" else int(t.split(":")[1]) for t in (m.transforms if m else [])
                           if (t == "int8" if scheme == "int8" else t.startswith("nbit:"))})
        for combo, open_end, label in ((self.min_bits_combo, None, "any"), (self.max_bits_combo, None, "float")):
            kept = combo.currentData()
            combo.blockSignals(True)
            combo.clear()
            combo.addItem(label, open_end)
            for bits in measured:
                combo.addItem(f"{bits} bits", bits)
            index = combo.findData(kept)
            combo.setCurrentIndex(index if index >= 0 else 0)
            combo.blockSignals(False)

    def update_plan(self) -> None:
        from core.analysis.mixed import plan

        m = self.current_map()
        self.plan = None
        self.add_button.setEnabled(False)
        if m is None:
            self.plan_label.setText("Measure a map by layer with nbit:B transforms (or int8) to plan from it.")
            return
        value = self.budget_spin.value()
        if value is None:
            what = "a size in MB" if self.objective_combo.currentData() == "target_mb" else "a drop in points"
            self.plan_label.setText(f"The goal '{self.budget_spin.text()}' is not a number: give {what}.")
            return
        how = {"scheme": self.scheme_combo.currentData(), "estimate": self.estimate_combo.currentData(),
               "min_bits": self.min_bits_combo.currentData(), "max_bits": self.max_bits_combo.currentData()}
        try:
            if self.objective_combo.currentData() == "target_mb":
                self.plan = plan(m, target_bytes=round(value * 1e6), **how)
            else:
                self.plan = plan(m, max_drop=value, **how)
        except WorkbenchError as exc:
            self.plan_label.setText(str(exc))
            return
        self.plan_label.setText("\n".join(self.plan.lines()))
        self.add_button.setEnabled(self.add_step is not None)

    def _add(self) -> None:
        if self.plan is not None and self.add_step is not None:
            self.add_step(self.plan)
            self.status.setText(f"Added {self.plan.step} to the chain (Edit > Undo removes it).")

    # --- export ---------------------------------------------------------------------------------
    def export_to(self, fmt: str, path: Path) -> bool:
        m = self.current_map()
        if m is None:
            QMessageBox.warning(self, "Export", "There is no map to export yet.")
            return False
        if not write_text(self, path, export_sensitivity(m, fmt)):
            return False
        self.status.setText(f"Exported map {m.id} to {path}")
        return True

    def export_dialog(self, fmt: str) -> None:
        name, ext = TEXT_FORMATS[fmt]
        path = ask_save_path(self, f"Export map as {name}", "sensitivity", name, ext)
        if path is not None:
            self.export_to(fmt, path)

    def close_store(self) -> None:
        self.process.kill()
        if self._store is not None:
            self._store.close()
            self._store = None


class SensitivityDialog(QDialog):
    """The view in its own window (non-modal), closed cleanly: the analysis process is stopped."""

    def __init__(self, db: Path, variant: dict[str, Any], *, add_step: Callable[[Any], None] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Sensitivity — variant {variant.get('variant')}")
        self.setObjectName("sensitivityDialog")
        self.view = SensitivityView(db, variant, add_step=add_step, parent=self)
        QVBoxLayout(self).addWidget(self.view)
        self.resize(900, 700)

    def done(self, result: int) -> None:
        self.view.close_store()
        super().done(result)
