"""Run ``core.run.worker`` in a QProcess: a thin adapter around :class:`core.run.session.WorkerSession`.

The session decodes events, keeps the stderr tail and turns the process's end into an
:class:`~core.run.session.Outcome`; this class only moves bytes between QProcess and the session.
Nothing blocks the GUI thread: output is read on readyRead, and a cancel escalates by timers on
the session's schedule (cancel request -> terminate -> kill).
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

import core.run.session as sessions
from core.protocol import RunRequest
from core.run.session import WorkerSession


class WorkerClient(QObject):
    """One worker run at a time. Emits each decoded event and, at the end, the Outcome."""

    event = Signal(object)  # a core.protocol event
    stderrLine = Signal(str)
    finished = Signal(object)  # core.run.session.Outcome

    def __init__(self, parent: QObject | None = None, *,
                 terminate_after_ms: int = int(sessions.TERMINATE_AFTER_S * 1000),
                 kill_after_ms: int = int(sessions.KILL_AFTER_S * 1000)) -> None:
        super().__init__(parent)
        self.terminate_after_ms = terminate_after_ms
        self.kill_after_ms = kill_after_ms
        self.process: QProcess | None = None
        self.session: WorkerSession | None = None
        self._stdout = b""
        self._stderr = b""
        self._escalation = QTimer(self)
        self._escalation.setSingleShot(True)
        self._escalation.timeout.connect(self._escalate)
        self._terminated = False

    def is_running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning

    def start(self, request: RunRequest) -> None:
        if self.is_running():
            raise RuntimeError("a worker is already running")
        self._stdout = self._stderr = b""
        self._terminated = False
        session = self.session = WorkerSession(request)
        proc = self.process = QProcess(self)
        program, *args = sessions.worker_command()
        env = QProcessEnvironment()
        for key, value in sessions.worker_environment().items():
            env.insert(key, value)
        proc.setProcessEnvironment(env)
        proc.readyReadStandardOutput.connect(self._read_stdout)
        proc.readyReadStandardError.connect(self._read_stderr)
        proc.finished.connect(self._finished)
        proc.errorOccurred.connect(self._error)
        proc.started.connect(lambda: proc.write(session.request_line()))
        proc.start(program, args)

    def pid(self) -> int:
        return int(self.process.processId()) if self.process is not None else 0

    def cancel(self) -> None:
        """Ask the worker to stop at its next safe point; terminate, then kill, if it does not."""
        if not self.is_running() or self.session is None or self.session.cancel_requested:
            return
        assert self.process is not None
        self.process.write(self.session.cancel_line())
        self._escalation.start(self.terminate_after_ms)

    def kill(self, wait_ms: int = 3000) -> None:
        """Stop at once: reported as cancelled (the user asked), the run stays resumable."""
        if not self.is_running() or self.session is None or self.process is None:
            return
        self.session.cancel_requested = True
        self.process.kill()
        self.process.waitForFinished(wait_ms)

    def stop(self, wait_ms: int = 5000) -> None:
        """Stop now because the user closes the window: terminate (the worker marks its run
        interrupted, so it resumes later) and kill only if it does not end within ``wait_ms``.
        Reported as a stop the user asked for, never as a crash."""
        if not self.is_running() or self.session is None or self.process is None:
            return
        self.session.cancel_requested = True
        self._escalation.stop()
        self.process.terminate()
        if not self.process.waitForFinished(wait_ms):
            self.process.kill()
            self.process.waitForFinished(wait_ms)

    def _escalate(self) -> None:
        if not self.is_running():
            return
        assert self.process is not None
        if not self._terminated:
            self.stderrLine.emit("Worker did not stop after the cancel request; terminating it")
            self._terminated = True
            self.process.terminate()
            self._escalation.start(self.kill_after_ms)
        else:
            self.stderrLine.emit("Worker did not terminate; killing it")
            self.process.kill()

    # --- reading ------------------------------------------------------------------------------
    def _read_stdout(self) -> None:
        assert self.process is not None and self.session is not None
        self._stdout += bytes(self.process.readAllStandardOutput().data())
        *lines, self._stdout = self._stdout.split(b"\n")
        for raw in lines:
            event = self.session.stdout_line(raw)
            if event is not None:
                self.event.emit(event)

    def _read_stderr(self) -> None:
        assert self.process is not None and self.session is not None
        self._stderr += bytes(self.process.readAllStandardError().data())
        *lines, self._stderr = self._stderr.split(b"\n")
        for raw in lines:
            text = self.session.stderr_line(raw)
            if text is not None:
                self.stderrLine.emit(text)

    def _error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart and self.process is not None:
            program = sessions.worker_command()[0]
            self.finished.emit(WorkerSession.not_started(f"{program}: {self.process.errorString()}"))

    def _finished(self, code: int, status: QProcess.ExitStatus) -> None:
        self._escalation.stop()
        self._read_stdout()
        self._read_stderr()
        assert self.session is not None
        if status == QProcess.ExitStatus.CrashExit:
            # On POSIX, QProcess reports the signal number as the exit code of a crash.
            outcome = self.session.finish(None, code or None)
        else:
            outcome = self.session.finish(code)
        self.finished.emit(outcome)
