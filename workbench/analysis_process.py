"""Analyses in a child process, so the window never imports torch or datasets (DESIGN.md boundary 2).

:class:`AnalysisProcess` runs ``python -m core.analysis.worker`` with one request line and decodes its
core.protocol events (Progress, Log, AnalysisFinished); a cancel is a CancelRequest line, then
terminate after :data:`TERMINATE_AFTER_MS`, then kill. :class:`JsonProcess` runs a command that prints
one JSON object (``python -m core.analysis.disagreements``) and hands it over.
"""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

from core import protocol as p
from core.logtail import meaningful_tail
from core.run.session import worker_environment

TERMINATE_AFTER_MS = 10_000
KILL_AFTER_MS = 5_000


def _process(parent: QObject, command: list[str]) -> QProcess:
    proc = QProcess(parent)
    env = QProcessEnvironment()
    for key, value in worker_environment().items():
        env.insert(key, value)
    proc.setProcessEnvironment(env)
    proc.setProgram(command[0])
    proc.setArguments(command[1:])
    return proc


class AnalysisProcess(QObject):
    """One analysis request at a time. ``event`` carries each decoded message; ``finished`` carries
    (status, result id, error): finished | cancelled | failed | crashed."""

    event = Signal(object)
    finished = Signal(str, object, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.process: QProcess | None = None
        self._stdout = b""
        self._stderr: list[str] = []
        self._end: p.AnalysisFinished | None = None
        self._cancelled = False
        self._escalation = QTimer(self)
        self._escalation.setSingleShot(True)
        self._escalation.timeout.connect(self._escalate)

    def is_running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning

    def start(self, command: list[str], request: p.Message) -> None:
        if self.is_running():
            raise RuntimeError("an analysis is already running")
        self._stdout, self._stderr, self._end, self._cancelled = b"", [], None, False
        proc = self.process = _process(self, command)
        proc.readyReadStandardOutput.connect(self._read)
        proc.readyReadStandardError.connect(
            lambda: self._stderr.extend(bytes(proc.readAllStandardError().data()).decode("utf-8", "replace").splitlines()))
        proc.finished.connect(self._finished)
        proc.errorOccurred.connect(self._error)
        proc.started.connect(lambda: proc.write(request.to_json().encode()))
        proc.start()

    def cancel(self) -> None:
        if not self.is_running() or self._cancelled:
            return
        assert self.process is not None
        self._cancelled = True
        self.process.write(p.CancelRequest().to_json().encode())
        self._escalation.start(TERMINATE_AFTER_MS)

    def kill(self, wait_ms: int = 3000) -> None:
        if self.is_running() and self.process is not None:
            self._cancelled = True
            self.process.kill()
            self.process.waitForFinished(wait_ms)

    def _escalate(self) -> None:
        if not self.is_running() or self.process is None:
            return
        if self.process.property("terminated"):
            self.process.kill()
        else:
            self.process.setProperty("terminated", True)
            self.process.terminate()
            self._escalation.start(KILL_AFTER_MS)

    def _read(self) -> None:
        assert self.process is not None
        self._stdout += bytes(self.process.readAllStandardOutput().data())
        *lines, self._stdout = self._stdout.split(b"\n")
        for raw in lines:
            if not raw.strip():
                continue
            try:
                message = p.decode(raw)
            except p.ProtocolError:
                continue
            if isinstance(message, p.AnalysisFinished):
                self._end = message
            self.event.emit(message)

    def _error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart and self.process is not None:
            self.finished.emit("failed", None, f"the analysis process could not start: {self.process.errorString()}")

    def _finished(self, code: int, status: QProcess.ExitStatus) -> None:
        self._escalation.stop()
        self._read()
        end = self._end
        if end is not None:
            self.finished.emit(end.status, end.result_id, end.error)
        elif self._cancelled:
            self.finished.emit("cancelled", None, "")
        else:
            tail = meaningful_tail(self._stderr)
            why = tail[-1] if tail else f"exit code {code}"
            self.finished.emit("crashed", None, f"the analysis process stopped before it finished: {why}")


class JsonProcess(QObject):
    """Runs a command that prints one JSON object; ``done`` carries (object or None, error text)."""

    done = Signal(object, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.process: QProcess | None = None

    def is_running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning

    def start(self, command: list[str]) -> None:
        proc = self.process = _process(self, command)
        proc.finished.connect(lambda code, _status: self._finished(proc, code))
        proc.errorOccurred.connect(
            lambda e: self.done.emit(None, f"could not start: {proc.errorString()}")
            if e == QProcess.ProcessError.FailedToStart else None)
        proc.start()

    def kill(self) -> None:
        if self.is_running() and self.process is not None:
            self.process.kill()
            self.process.waitForFinished(3000)

    def _finished(self, proc: QProcess, code: int) -> None:
        out = bytes(proc.readAllStandardOutput().data()).decode("utf-8", "replace").strip()
        err = bytes(proc.readAllStandardError().data()).decode("utf-8", "replace").splitlines()
        try:
            data: Any = json.loads(out.splitlines()[-1]) if out else None
        except ValueError:
            data = None
        if isinstance(data, dict) and "error" in data and len(data) == 1:
            self.done.emit(None, str(data["error"]))
        elif isinstance(data, dict):
            self.done.emit(data, "")
        else:
            tail = meaningful_tail(err)
            self.done.emit(None, tail[-1] if tail else f"the process ended with code {code} and printed nothing")
