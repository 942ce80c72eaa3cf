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

from core import protocol as p
from core.protocol import RunRequest
from core.run.session import Outcome
from workbench.chain_model import step_title
from workbench.worker_client import WorkerClient


def _fmt_seconds(s: float) -> str:
    s = max(0, round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _title(step_id: str, label: str) -> str:
    """'Global magnitude pruning · amount=0.1' from a step id and a runner label."""
    if step_id == "baseline":
        return "Baseline"
    title = step_title(step_id)[0]
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
    rowAdded = Signal(dict)  # a committed variant's results row (core.store.ResultRow as a dict)

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

    def start(self, request: RunRequest) -> None:
        if self.is_running():
            return
        self._clear_rows()
        self.run_id = None
        self.last_outcome = None
        self.log.clear()
        if request.recipe is not None:
            self.log_line(f"Starting worker for {request.recipe.get('model', '?')} on {request.recipe.get('task', '?')}")
        else:
            self.log_line(f"Starting worker to resume run {request.resume_run}")
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
    def _row(self, node: int, title: str = "") -> StepProgress:
        """The row of one variant: keyed by its node in the variant tree (sweeps branch one index)."""
        if node not in self.rows:
            self.rows[node] = StepProgress(self._grid, len(self.rows), title or f"Step {node}")
        return self.rows[node]

    def on_event(self, event: Any) -> None:
        if isinstance(event, p.RunStarted):
            self.run_id = event.run_id
            resumed = " (resumed)" if event.resumed else ""
            self.status.setText(f"Run {self.run_id}{resumed}: {event.variants} variants to measure")
            for step in event.steps:
                row = self._row(step.node, _title(step.step, step.label))
                row.label.setIndent(14 * step.index)  # depth in the chain
        elif isinstance(event, p.StepStarted):
            title = _title(event.step, event.label)
            self._row(event.node, title).start(title)
            self.status.setText(f"Run {self.run_id}: {title}")
            self.log_line(f"▶ {title}", "info")
        elif isinstance(event, p.Progress):
            self._row(event.node).update(event.fraction, event.message)
        elif isinstance(event, p.Log):
            self.log_line(event.message, event.level)
        elif isinstance(event, p.StepFinished):
            self._row(event.node).finish(event.seconds, event.cached)
            self._log_row(event.row)
            self.rowAdded.emit(event.row)
        elif isinstance(event, p.RunFailed):
            self.log_line(f"✖ {event.error}", "error")
        elif isinstance(event, p.RunCancelled):
            self.log_line("Run cancelled", "info")
        elif isinstance(event, p.RunFinished):
            self.log_line("✔ Run finished", "info")

    def _log_row(self, row: dict[str, Any]) -> None:
        """The measured numbers of a finished variant, one log line each."""
        shown = {row.get("metric_name") or "metric": (row.get("metric"), ""), "size": (row.get("size_mb"), "MB"),
                 "latency p50": (row.get("latency_p50_ms"), "ms"), "params": (row.get("params"), "")}
        for name, (value, unit) in shown.items():
            if value is not None:
                text = f"{value:.4g}" if isinstance(value, float) else str(value)
                self.log_line(f"  {name}: {text}{' ' + unit if unit else ''}", "metric")

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
