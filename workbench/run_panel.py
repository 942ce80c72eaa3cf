"""Run / Cancel, one progress bar per step with a time estimate, and the live log."""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QFont, QTextCursor
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from core import protocol
from workbench.worker_client import Outcome, WorkerClient


def _fmt_seconds(s: float) -> str:
    s = max(0, round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _title(step: dict[str, Any]) -> str:
    """'Global magnitude pruning · amount=0.1' from a step id and a runner label."""
    from core.steps.base import get_step

    step_id = str(step.get("step") or "")
    label = str(step.get("label") or step_id)
    try:
        title = get_step(step_id).title
    except Exception:  # baseline, or a step this GUI does not know
        title = str(step.get("title") or label).capitalize() if step_id == "baseline" else label
        return title
    return f"{title} · {label[label.find('(') + 1:-1]}" if "(" in label else title


class StepProgress:
    """One row: title, bar, and 'elapsed / ~left' computed from the fraction done."""

    def __init__(self, grid: QGridLayout, row: int, title: str) -> None:
        self.label = QLabel(title)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setValue(0)
        self.bar.setFormat("waiting")
        self.time = QLabel("")
        self.time.setMinimumWidth(110)
        self.message = ""
        grid.addWidget(self.label, row, 0)
        grid.addWidget(self.bar, row, 1)
        grid.addWidget(self.time, row, 2)
        self.started: float | None = None
        self.fraction = 0.0
        self.done = False

    def start(self, title: str) -> None:
        self.label.setText(title)
        self.started = time.monotonic()
        self.bar.setFormat("starting")

    def update(self, fraction: float, message: str = "") -> None:
        self.fraction = max(0.0, min(1.0, float(fraction)))
        self.message = message
        self.bar.setValue(int(self.fraction * 1000))
        self.bar.setFormat(f"{self.fraction * 100:.0f}%" + (f" · {message}" if message else ""))
        self.tick()

    def tick(self) -> None:
        if self.started is None or self.done:
            return
        elapsed = time.monotonic() - self.started
        if self.fraction > 0.02:
            left = elapsed * (1 - self.fraction) / self.fraction
            self.time.setText(f"{_fmt_seconds(elapsed)} · ~{_fmt_seconds(left)} left")
        else:
            self.time.setText(_fmt_seconds(elapsed))

    def finish(self, seconds: float | None, cached: bool) -> None:
        self.done = True
        self.bar.setValue(1000)
        self.bar.setFormat("reused from cache" if cached else "done")
        if seconds is None and self.started is not None:
            seconds = time.monotonic() - self.started
        self.time.setText(_fmt_seconds(seconds or 0))

    def stop(self, why: str) -> None:
        if not self.done:
            self.done = True
            self.bar.setFormat(why)


class RunPanel(QWidget):
    """Drives one WorkerClient. The window supplies the request through ``request_factory``."""

    runFinished = Signal(object)  # Outcome
    variantAdded = Signal(int)  # variant_id as it is committed

    def __init__(self, client: WorkerClient | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.client = client or WorkerClient(self)
        self.client.event.connect(self.on_event)
        self.client.stderrLine.connect(lambda line: self.log_line(line, "stderr"))
        self.client.finished.connect(self.on_finished)
        self.run_button = QPushButton("Run")
        self.run_button.setObjectName("runButton")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancelButton")
        self.cancel_button.setEnabled(False)
        self.resume_button = QPushButton("Resume interrupted run")
        self.resume_button.hide()
        self.status = QLabel("Ready")
        self.status.setObjectName("runStatus")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        top = QHBoxLayout()
        top.addWidget(self.run_button)
        top.addWidget(self.cancel_button)
        top.addWidget(self.resume_button)
        top.addWidget(self.status, 1)
        self._steps_host = QWidget()
        self._grid = QGridLayout(self._steps_host)
        self._grid.setColumnStretch(1, 1)
        self._grid.setContentsMargins(4, 4, 4, 4)
        steps_scroll = QScrollArea()
        steps_scroll.setWidgetResizable(True)
        steps_scroll.setWidget(self._steps_host)
        self.log = QPlainTextEdit()
        self.log.setObjectName("runLog")
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(5000)
        self.log.setFont(QFont("monospace", 9))
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(steps_scroll)
        split.addWidget(self.log)
        split.setSizes([500, 500])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(split, 1)
        self.rows: dict[int, StepProgress] = {}
        self.run_id: int | None = None
        self.last_outcome: Outcome | None = None
        self._started = 0.0
        self._ticker = QTimer(self)
        self._ticker.setInterval(500)
        self._ticker.timeout.connect(self._tick)
        self.cancel_button.clicked.connect(self.cancel)

    # --- control ------------------------------------------------------------------------------
    def is_running(self) -> bool:
        return self.client.is_running()

    def start(self, request: dict[str, Any]) -> None:
        if self.is_running():
            return
        self._clear_rows()
        self.run_id = None
        self.last_outcome = None
        self.log.clear()
        self.log_line(f"Starting worker for {request.get('recipe', {}).get('model', '?')} "
                      f"on {request.get('recipe', {}).get('task', '?')}", "info")
        self.status.setText("Starting the worker…")
        self.status.setStyleSheet("")
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self._started = time.monotonic()
        self._ticker.start()
        self.client.start(request)

    def cancel(self) -> None:
        if self.is_running():
            self.status.setText("Cancelling…")
            self.log_line("Cancel requested", "info")
            self.cancel_button.setEnabled(False)
            self.client.cancel()

    # --- events -------------------------------------------------------------------------------
    def _row(self, msg: dict[str, Any], title: str = "") -> StepProgress:
        """The row of one variant: keyed by its node in the variant tree (sweeps branch one index)."""
        key = int(msg.get("node", msg.get("index", 0)))
        if key not in self.rows:
            self.rows[key] = StepProgress(self._grid, len(self.rows), title or f"Step {msg.get('index', key)}")
        return self.rows[key]

    def on_event(self, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        if kind == protocol.RUN_STARTED:
            self.run_id = msg.get("run_id")
            resumed = " (resumed)" if msg.get("resumed") else ""
            self.status.setText(f"Run {self.run_id}{resumed}: {msg.get('variants', '?')} variants to measure")
            for node, step in enumerate(msg.get("steps") or []):
                row = self._row({"node": node}, _title(step))
                row.label.setIndent(14 * int(step.get("index") or 0))  # depth in the chain
        elif kind == protocol.STEP_STARTED:
            title = _title(msg)
            self._row(msg, title).start(title)
            self.status.setText(f"Run {self.run_id}: {title}")
            self.log_line(f"▶ {title}", "info")
        elif kind == protocol.PROGRESS:
            self._row(msg).update(float(msg.get("fraction", 0.0)), str(msg.get("message", "")))
        elif kind == protocol.METRIC:
            unit = f" {msg['unit']}" if msg.get("unit") else ""
            value = msg.get("value")
            shown = f"{value:.4g}" if isinstance(value, float) else str(value)
            self.log_line(f"  {msg.get('name')}: {shown}{unit}", "metric")
        elif kind == protocol.LOG:
            self.log_line(str(msg.get("message", "")), str(msg.get("level", "info")))
        elif kind == protocol.STEP_FINISHED:
            row = self._row(msg)
            row.finish(msg.get("seconds"), bool(msg.get("cached")))
            if msg.get("variant_id") is not None:
                self.variantAdded.emit(int(msg["variant_id"]))
        elif kind == protocol.RUN_FAILED:
            self.log_line(f"✖ {msg.get('error')}", "error")
        elif kind == protocol.RUN_CANCELLED:
            self.log_line("Run cancelled", "info")
        elif kind == protocol.RUN_FINISHED:
            self.log_line("✔ Run finished", "info")

    def on_finished(self, outcome: Outcome) -> None:
        self._ticker.stop()
        self.last_outcome = outcome
        why = {"finished": "done", "cancelled": "cancelled"}.get(outcome.status, "stopped")
        for row in self.rows.values():
            row.stop(why)
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.status.setText(outcome.message().split("\n\n")[0])
        self.status.setStyleSheet("" if outcome.status in ("finished", "cancelled") else "color: #c0392b;")
        if not outcome.ok and outcome.status != "cancelled":
            self.log_line(outcome.message(), "error")
        self.runFinished.emit(outcome)

    def _tick(self) -> None:
        for row in self.rows.values():
            row.tick()

    def log_line(self, text: str, level: str = "info") -> None:
        stamp = time.strftime("%H:%M:%S")
        prefix = {"error": "ERROR ", "warning": "WARN  ", "stderr": "| "}.get(level, "")
        self.log.appendPlainText(f"{stamp} {prefix}{text}")
        self.log.moveCursor(QTextCursor.MoveOperation.End)

    def _clear_rows(self) -> None:
        while self._grid.count():
            item = self._grid.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.rows = {}
