"""Run / Cancel, one progress bar per step with a time estimate, and the live log."""

from __future__ import annotations

import time
from collections.abc import Callable
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
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from core import protocol as p
from core.logtail import is_progress_line
from core.protocol import RunRequest
from core.run.session import Outcome
from workbench.chain_model import step_title
from workbench.worker_client import WorkerClient


def _fmt_seconds(s: float) -> str:
    s = max(0, round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _fmt_left(s: float) -> str:
    """A time left as precisely as an estimate deserves: 5 s steps under a minute, then m:ss by 10 s."""
    s = max(0.0, s)
    if s < 60:
        return f"~{max(5, 5 * round(s / 5))} s left"
    return f"~{_fmt_seconds(10 * round(s / 10))} left"


def _title(step_id: str, label: str) -> str:
    """'Global magnitude pruning · amount=0.1' from a step id and a runner label."""
    if step_id == "baseline":
        return "Baseline"
    title = step_title(step_id)[0]
    return f"{title} · {label[label.find('(') + 1:-1]}" if "(" in label else title


# Estimates within this factor of the running countdown do not move it up: no jitter.
ETA_SLACK = 1.25
MIN_ELAPSED_FOR_ETA = 2.0  # seconds: before that, a rate says nothing


class ElidingProgressBar(QProgressBar):
    """A bar whose text ends in "…" where the bar is too narrow (Qt clips it at both ends, so a narrow
    Run panel showed "ining: step 59/49"); the whole text is its tooltip."""

    def text(self) -> str:
        full = super().text()
        return self.fontMetrics().elidedText(full, Qt.TextElideMode.ElideRight, max(0, self.width() - 8))

    def setFormat(self, text: str) -> None:
        super().setFormat(text)
        self.setToolTip(text)


class StepProgress:
    """One row: title, bar, and 'elapsed · ~left'.

    The bar never goes back. Time left is estimated at each progress event from the elapsed time
    and the fraction done (the runner weights a step's phases by their expected time), and never
    below ``prior`` less the time gone (a fast step still has its measuring to come); it then counts
    down with the clock until the next event, so it never sits still while
    nothing reports; it is raised only when the step is clearly slower than estimated, and when it runs
    out the row says so instead of showing a stale "~0:02 left".
    """

    def __init__(self, grid: QGridLayout, row: int, title: str, clock: Any = time.monotonic) -> None:
        self.clock = clock
        self.label = QLabel(title)
        self.bar = ElidingProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setValue(0)
        self.bar.setFormat("waiting")
        self.time = QLabel("")
        self.time.setMinimumWidth(150)
        self.message = ""
        grid.addWidget(self.label, row, 0)
        grid.addWidget(self.bar, row, 1)
        grid.addWidget(self.time, row, 2)
        self.started: float | None = None
        self.fraction = 0.0
        self.done = False
        self.estimate: tuple[float, float] | None = None  # (when, seconds left then)
        self.seconds: float | None = None  # when finished
        self.cached = False
        # its measuring's expected time (the runner's), else the least an earlier computed variant took
        self.prior: float | None = None
        self.step = ""  # its step id (from the run's plan)
        self.skipped = False  # not run: the accuracy budget stopped its branch

    def start(self, title: str) -> None:
        self.label.setText(title)
        self.started = self.clock()
        self.bar.setFormat("starting")
        self.tick()

    def update(self, fraction: float, message: str = "") -> None:
        if self.done:
            return
        if self.started is None:
            self.started = self.clock()
        self.fraction = max(self.fraction, min(1.0, float(fraction)))  # never backwards
        self.message = message
        self.bar.setValue(int(self.fraction * 1000))
        self.bar.setFormat(f"{self.fraction * 100:.0f}%" + (f" · {message}" if message else ""))
        now = self.clock()
        elapsed = now - self.started
        if self.fraction > 0.01 and elapsed >= MIN_ELAPSED_FOR_ETA:
            fresh = elapsed * (1 - self.fraction) / self.fraction
            if self.prior is not None:
                # A step that is quick to apply reaches its measuring early: the rate so far
                # would promise seconds, while measuring alone took about this long before.
                fresh = max(fresh, self.prior - elapsed)
            current = self.left()
            if current is None or fresh < current or fresh > ETA_SLACK * max(current, 1.0):
                self.estimate = (now, fresh)
        self.tick()

    def left(self) -> float | None:
        """Seconds left by the last estimate, counted down since (None: no estimate yet)."""
        if self.estimate is None:
            return None
        when, seconds = self.estimate
        return seconds - (self.clock() - when)

    def tick(self) -> None:
        if self.started is None or self.done:
            return
        elapsed = _fmt_seconds(self.clock() - self.started)
        left = self.left()
        if left is None:
            self.time.setText(elapsed)
        elif left > 0:
            self.time.setText(f"{elapsed} · {_fmt_left(left)}")
        else:
            self.time.setText(f"{elapsed} · longer than estimated")
        self.time.setToolTip("Time left is estimated from the progress so far; it counts down between "
                             "progress reports")

    def finish(self, seconds: float | None, cached: bool) -> None:
        self.done = True
        self.estimate = None
        self.bar.setValue(1000)
        self.cached = cached
        self.bar.setFormat("reused from cache" if cached else "done")
        if seconds is None and self.started is not None:
            seconds = self.clock() - self.started
        self.seconds = seconds
        self.time.setText(_fmt_seconds(seconds or 0))

    def stop(self, why: str) -> None:
        """The run ended before this row did: no time left is shown any more."""
        if self.done:
            return
        self.done = True
        self.estimate = None
        self.bar.setFormat(why if self.started is None else f"{self.fraction * 100:.0f}% · {why}")
        self.time.setText(_fmt_seconds(self.clock() - self.started) if self.started is not None else "")


class RunPanel(QWidget):
    """Drives one WorkerClient: a row per variant with its progress, the run's time left, the log,
    and live training curves."""

    runFinished = Signal(object)  # Outcome
    busyChanged = Signal(bool)  # a worker started (True) or ended (False)
    rowAdded = Signal(dict)  # a committed variant's results row (core.store.ResultRow as a dict)

    def __init__(self, client: WorkerClient | None = None, parent: QWidget | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(parent)
        self.clock = clock
        self.client = client or WorkerClient(self)
        self.client.event.connect(self.on_event)
        self.client.stderrLine.connect(self._stderr_line)
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
        self._grid.setRowStretch(1000, 1)
        steps_scroll = QScrollArea()
        steps_scroll.setWidgetResizable(True)
        steps_scroll.setWidget(self._steps_host)
        self.log = QPlainTextEdit()
        self.log.setObjectName("runLog")
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(5000)
        self.log.setFont(QFont("monospace", 9))
        self.side = QTabWidget()
        self.side.setObjectName("runTabs")
        self.side.setDocumentMode(True)
        self.side.addTab(self.log, "Log")
        self._curves_host = QWidget()
        QVBoxLayout(self._curves_host).setContentsMargins(0, 0, 0, 0)
        self.side.addTab(self._curves_host, "Training curves")
        self.side.setTabToolTip(1, "Loss and learning rate of the step in flight (fine-tune, distil, share layers)")
        self._curves: Any = None
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(steps_scroll)
        split.addWidget(self.side)
        split.setSizes([500, 500])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(split, 1)
        self.rows: dict[int, StepProgress] = {}
        self.planned = 0
        self.run_id: int | None = None
        self.last_outcome: Outcome | None = None
        self._current: int | None = None
        self._current_title = ""
        self._later: float | None = None  # the runner's estimate of the variants after the one in flight
        self._run_estimate: tuple[float, float] | None = None  # (when, the run's seconds left then)
        self._started = 0.0
        self._ticker = QTimer(self)
        self._ticker.setInterval(500)
        self._ticker.timeout.connect(self._tick)
        self.cancel_button.clicked.connect(self.cancel)

    @property
    def curves(self) -> Any:
        """The live training-curves chart, built the first time a curve arrives or its tab shows."""
        if self._curves is None:
            from workbench.charts import CurvesChart

            self._curves = CurvesChart()
            self._curves.setObjectName("liveCurves")
            layout = self._curves_host.layout()
            assert layout is not None
            layout.addWidget(self._curves)
        return self._curves

    # --- control ------------------------------------------------------------------------------
    def is_running(self) -> bool:
        return self.client.is_running()

    def start(self, request: RunRequest) -> None:
        if self.is_running():
            return
        self._clear_rows()
        self.run_id = None
        self.planned = 0
        self._current, self._later, self._run_estimate = None, None, None
        self.last_outcome = None
        self.log.clear()
        if self._curves is not None:
            self._curves.reset("no training step yet")
        if request.recipe is not None:
            self.log_line(f"Starting worker for {request.recipe.get('model', '?')} on {request.recipe.get('task', '?')}")
        else:
            self.log_line(f"Starting worker to resume run {request.resume_run}")
        self.status.setText("Starting the worker…")
        self.status.setStyleSheet("")
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self._started = self.clock()
        self._ticker.start()
        self.client.start(request)
        self.busyChanged.emit(True)

    def stop_for_close(self) -> None:
        """The window is closing: stop the worker now (it marks its run interrupted, resumable)."""
        if self.is_running():
            self.log_line("Stopping the run: the window is closing", "info")
            self.client.stop()

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
            self.rows[node] = StepProgress(self._grid, len(self.rows), title or f"Step {node}", clock=self.clock)
        return self.rows[node]

    def on_event(self, event: Any) -> None:
        if isinstance(event, p.RunStarted):
            self.run_id = event.run_id
            self.planned = event.variants
            resumed = " (resumed)" if event.resumed else ""
            self.status.setText(f"Run {self.run_id}{resumed}: {event.variants} variants to measure")
            for step in event.steps:
                row = self._row(step.node, _title(step.step, step.label))
                row.step = step.step
                row.label.setIndent(14 * step.index)  # depth in the chain
        elif isinstance(event, p.StepStarted):
            title = _title(event.step, event.label)
            row = self._row(event.node, title)
            row.prior = event.measure_seconds
            if row.prior is None:
                row.prior = self._expected_seconds(row.step, floor_only=True)
            self._later = event.later_seconds
            row.start(title)
            self._current, self._current_title = event.node, title
            self._show_status()
            self.log_line(f"▶ {title}", "info")
        elif isinstance(event, p.Progress):
            self._row(event.node).update(event.fraction, event.message)
            self._show_status()
        elif isinstance(event, p.Curve):
            title = self.rows[event.node].label.text() if event.node in self.rows else f"step {event.index}"
            self.curves.add_point(event.phase, event.series, event.step, event.value, f"{title} (run {self.run_id})")
        elif isinstance(event, p.Log):
            self.log_line(event.message, event.level)
        elif isinstance(event, p.StepFinished):
            self._row(event.node).finish(event.seconds, event.cached)
            self._log_row(event.row)
            self.rowAdded.emit(event.row)
            self._show_status()
        elif isinstance(event, p.StepSkipped):
            row = self._row(event.node, event.label)
            row.stop("not run")
            row.skipped = True
            row.time.setText("over the accuracy budget" if "budget" in event.reason else "")
            row.time.setToolTip(event.reason)
            self.log_line(f"⊘ {event.label}: not run ({event.reason})", "info")
            self._show_status()
        elif isinstance(event, p.RunFailed):
            self.log_line(f"✖ {event.error}", "error")
        elif isinstance(event, p.RunCancelled):
            self.log_line("Run cancelled" if not event.interrupted else "Run stopped (resumable)", "info")
        elif isinstance(event, p.RunFinished):
            self.log_line("✔ Run finished", "info")

    def run_left(self) -> float | None:
        """Seconds left in the whole run: the step in flight's estimate, plus the runner's estimate of
        every variant after it (from this run's measured phases and each step's training work); without
        one (a Ray run), each step still to come at what the same step took earlier in this run, else at
        the least any computed variant took (every variant is measured). While a variant just started has
        no estimate yet, the run's last one counted down; None before any, or once that has run out."""
        if self._current is None or self._current not in self.rows:
            return None
        fresh = self._fresh_run_left()
        if fresh is not None:
            self._run_estimate = (self.clock(), fresh)
            return fresh
        if self._run_estimate is None:
            return None
        # A variant just started has no estimate of its own yet (nothing to go on before its progress moves):
        # the last estimate of the run, counted down, holds until it has, so the figure does not come and go.
        when, seconds = self._run_estimate
        held = seconds - (self.clock() - when)
        return held if held > 0 else None

    def _fresh_run_left(self) -> float | None:
        current = self.rows[self._current].left()  # type: ignore[index]
        if current is not None and self._later is not None:
            return max(current, 0.0) + self._later
        waiting = [self._expected_seconds(r.step) for r in self.rows.values() if r.started is None and not r.skipped]
        if current is None or None in waiting:
            return None
        return max(current, 0.0) + sum(w or 0.0 for w in waiting)

    def _expected_seconds(self, step: str, *, floor_only: bool = False) -> float | None:
        """How long a variant of ``step`` should take, from the variants this run computed (not
        reused): the mean of the same step's, else (or with ``floor_only``) the least of all,
        since each variant is at least measured. None before any was computed."""
        computed = [r for r in self.rows.values() if r.seconds and not r.cached]
        if not computed:
            return None
        same = [r.seconds for r in computed if r.step == step and r.seconds]
        if same and not floor_only:
            return sum(same) / len(same)
        return min(r.seconds for r in computed if r.seconds)

    def _show_status(self) -> None:
        if self._current is None:
            return
        done = sum(1 for r in self.rows.values() if r.done and not r.skipped)
        skipped = sum(1 for r in self.rows.values() if r.skipped)
        text = f"Run {self.run_id}: {self._current_title} · {done} of {self.planned or len(self.rows)} variants done"
        if skipped:
            text += f", {skipped} not run (over budget)"
        left = self.run_left()
        if left is not None:
            text += f" · about {_fmt_left(left).removeprefix('~').removesuffix(' left')} left in the run"
        self.status.setText(text)

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
        self._current = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.busyChanged.emit(False)
        self.status.setText(outcome.message().split("\n\n")[0])
        self.status.setStyleSheet("" if outcome.status in ("finished", "cancelled") else "color: #c0392b;")
        if not outcome.ok and outcome.status != "cancelled":
            self.log_line(outcome.message(), "error")
        self.runFinished.emit(outcome)

    def _tick(self) -> None:
        for row in self.rows.values():
            row.tick()
        self._show_status()

    def _stderr_line(self, line: str) -> None:
        # Library progress bars ("Loading weights: 0%|...") say nothing the rows do not.
        if not is_progress_line(line):
            self.log_line(line, "stderr")

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
