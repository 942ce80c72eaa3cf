"""Run ``core.worker`` in a QProcess and report its events and how it ended.

Modelled on qutebrowser's misc/guiprocess.py: an :class:`Outcome` says whether the worker
finished, failed with a message, exited with a code, crashed or was killed by a signal, so the
window can tell the user in words and stay usable. Nothing here blocks the GUI thread: output
is read on readyRead, and cancel escalates by timers (cancel line -> terminate -> kill).
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

from core import protocol
from core.worker_client import worker_command as core_worker_command


def worker_command() -> tuple[str, list[str]]:
    """Program and arguments for QProcess; ``core.worker_client`` is the one place that knows how
    to start a worker (``python -m core.worker``, or ``--worker`` in a frozen bundle)."""
    program, *args = core_worker_command()
    return program, args


def worker_environment() -> QProcessEnvironment:
    """The GUI's environment, with the folder holding ``core`` first on PYTHONPATH."""
    env = QProcessEnvironment.systemEnvironment()
    import core

    root = str(Path(next(iter(core.__path__))).parent)
    paths = [root] + [p for p in env.value("PYTHONPATH", "").split(os.pathsep) if p and p != root]
    env.insert("PYTHONPATH", os.pathsep.join(paths))
    env.insert("PYTHONUNBUFFERED", "1")
    return env


@dataclass
class Outcome:
    """How a worker ended, in words a user understands."""

    status: str  # "finished" | "failed" | "cancelled" | "exited" | "crashed" | "not_started"
    code: int | None = None
    signal_name: str = ""
    error: str = ""
    run_id: int | None = None
    stderr_tail: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "finished"

    def message(self) -> str:
        tail = ("\n\nLast worker output:\n" + "\n".join(self.stderr_tail[-8:])) if self.stderr_tail else ""
        if self.status == "finished":
            return "The run finished."
        if self.status == "cancelled":
            return "The run was cancelled; finished steps are kept in the results."
        if self.status == "failed":
            return f"The run failed: {self.error}"
        if self.status == "not_started":
            return f"The worker could not be started: {self.error}"
        if self.status == "crashed":
            why = f" by signal {self.signal_name}" if self.signal_name else ""
            hint = " (killed: often the machine ran out of memory)" if self.signal_name == "SIGKILL" else ""
            return (f"The worker process was stopped{why}{hint} before the run ended. "
                    f"Finished steps are kept; the run can be resumed.{tail}")
        return (f"The worker exited with code {self.code} before the run ended. "
                f"Finished steps are kept; the run can be resumed.{tail}")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class WorkerClient(QObject):
    """One worker run at a time. Emits decoded protocol events and, at the end, an Outcome."""

    event = Signal(dict)
    stderrLine = Signal(str)
    finished = Signal(object)  # Outcome

    def __init__(self, parent: QObject | None = None, *, terminate_after_ms: int = 15000,
                 kill_after_ms: int = 5000) -> None:
        super().__init__(parent)
        self.terminate_after_ms = terminate_after_ms
        self.kill_after_ms = kill_after_ms
        self.process: QProcess | None = None
        self._stdout = b""
        self._stderr = b""
        self._stderr_tail: list[str] = []
        self._terminal: dict[str, Any] | None = None
        self._run_id: int | None = None
        self._cancel_requested = False
        self._escalation = QTimer(self)
        self._escalation.setSingleShot(True)
        self._escalation.timeout.connect(self._escalate)
        self._stage = 0

    def is_running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning

    def start(self, request: dict[str, Any]) -> None:
        if self.is_running():
            raise RuntimeError("a worker is already running")
        self._stdout = self._stderr = b""
        self._stderr_tail = []
        self._terminal = None
        self._run_id = None
        self._cancel_requested = False
        self._stage = 0
        proc = QProcess(self)
        self.process = proc
        program, args = worker_command()
        proc.setProcessEnvironment(worker_environment())
        proc.readyReadStandardOutput.connect(self._read_stdout)
        proc.readyReadStandardError.connect(self._read_stderr)
        proc.finished.connect(self._finished)
        proc.errorOccurred.connect(self._error)
        proc.started.connect(lambda: proc.write(protocol.encode(protocol.RUN, **request).encode()))
        proc.start(program, args)

    def pid(self) -> int:
        return int(self.process.processId()) if self.process is not None else 0

    def cancel(self) -> None:
        """Ask politely, then terminate, then kill, each after a grace period."""
        if not self.is_running() or self._cancel_requested:
            return
        self._cancel_requested = True
        assert self.process is not None
        self.process.write(protocol.encode(protocol.CANCEL).encode())
        self._stage = 1
        self._escalation.start(self.terminate_after_ms)

    def _escalate(self) -> None:
        if not self.is_running():
            return
        assert self.process is not None
        if self._stage == 1:
            self.stderrLine.emit("Worker did not stop after the cancel request; terminating it")
            self.process.terminate()
            self._stage = 2
            self._escalation.start(self.kill_after_ms)
        else:
            self.stderrLine.emit("Worker did not terminate; killing it")
            self.process.kill()

    # --- reading ------------------------------------------------------------------------------
    def _read_stdout(self) -> None:
        assert self.process is not None
        self._stdout += bytes(self.process.readAllStandardOutput().data())
        *lines, self._stdout = self._stdout.split(b"\n")
        for raw in lines:
            if not raw.strip():
                continue
            try:
                message = protocol.decode(raw)
            except protocol.ProtocolError as exc:
                self.stderrLine.emit(f"(unreadable worker output: {exc})")
                continue
            if message["type"] == protocol.RUN_STARTED:
                self._run_id = message.get("run_id")
            if message["type"] in protocol.TERMINAL_EVENTS:
                self._terminal = message
            self.event.emit(message)

    def _read_stderr(self) -> None:
        assert self.process is not None
        self._stderr += bytes(self.process.readAllStandardError().data())
        *lines, self._stderr = self._stderr.split(b"\n")
        for raw in lines:
            text = raw.decode("utf-8", "replace").rstrip()
            if text:
                self._stderr_tail = [*self._stderr_tail[-19:], text]
                self.stderrLine.emit(text)

    def _error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            assert self.process is not None
            program, _ = worker_command()
            self._emit(Outcome("not_started", error=f"{program}: {self.process.errorString()}"))

    def _finished(self, code: int, status: QProcess.ExitStatus) -> None:
        self._escalation.stop()
        self._read_stdout()
        self._read_stderr()
        term = self._terminal or {}
        kind = term.get("type")
        run_id = term.get("run_id", self._run_id)
        if kind == protocol.RUN_FINISHED and status == QProcess.ExitStatus.NormalExit:
            outcome = Outcome("finished", code=code, run_id=run_id)
        elif kind == protocol.RUN_CANCELLED:
            outcome = Outcome("cancelled", code=code, run_id=run_id)
        elif kind == protocol.RUN_FAILED:
            error = str(term.get("error", "unknown error"))
            if term.get("index") is not None:
                error = f"{error} (step {term['index']})"
            outcome = Outcome("failed", code=code, error=error, run_id=run_id, stderr_tail=self._stderr_tail)
        elif status == QProcess.ExitStatus.CrashExit:
            # On POSIX, QProcess reports the signal number as the exit code of a crash.
            name = _signal_name(code) if code else ""
            outcome = Outcome("crashed", code=code, signal_name=name, run_id=run_id, stderr_tail=self._stderr_tail)
            if self._cancel_requested:
                outcome = Outcome("cancelled", code=code, signal_name=name, run_id=run_id)
        else:
            outcome = Outcome("exited", code=code, run_id=run_id, stderr_tail=self._stderr_tail)
            if self._cancel_requested:
                outcome = Outcome("cancelled", code=code, run_id=run_id)
        self._emit(outcome)

    def _emit(self, outcome: Outcome) -> None:
        self.finished.emit(outcome)


def request_json(request: dict[str, Any]) -> str:
    """The request line as the worker will read it (for logs and the CLI-equivalent hint)."""
    return json.dumps(request, indent=2)
