"""Run one worker as a subprocess and follow it (the CLI's client; torch-free).

A thin adapter around :class:`core.run.session.WorkerSession`: it writes the request, feeds the
session stdout and stderr lines, escalates a cancel on the session's schedule and returns its
:class:`~core.run.session.Outcome`.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable

from core.protocol import Event, RunRequest
from core.run import session as sessions
from core.run.session import KILL_AFTER_S, TERMINATE_AFTER_S, Outcome, WorkerSession, worker_environment


class WorkerProcess:
    """One running worker. ``events()`` yields decoded events; ``cancel()`` escalates in the background."""

    def __init__(self, request: RunRequest, *, command: list[str] | None = None,
                 env: dict[str, str] | None = None, on_stderr: Callable[[str], None] | None = None,
                 terminate_after: float = TERMINATE_AFTER_S, kill_after: float = KILL_AFTER_S) -> None:
        self.session = WorkerSession(request)
        self.escalated: str | None = None
        self._delays = {"terminate": terminate_after, "kill": kill_after}
        self._on_stderr = on_stderr
        try:
            self.proc = subprocess.Popen(
                command or sessions.worker_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=worker_environment({**os.environ, **(env or {})}),
            )
        except OSError as exc:
            raise WorkerNotStarted(f"{(command or sessions.worker_command())[0]}: {exc.strerror or exc}") from exc
        self._stderr_thread = threading.Thread(target=self._drain_stderr, daemon=True)
        self._stderr_thread.start()
        self._send(self.session.request_line())

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _send(self, data: bytes) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):  # the worker already ended
            pass

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            text = self.session.stderr_line(raw)
            if text is not None and self._on_stderr is not None:
                self._on_stderr(text)

    def events(self):  # type: ignore[no-untyped-def]
        """Yield each event until the worker closes its event stream."""
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            event = self.session.stdout_line(raw)
            if event is not None:
                yield event

    def cancel(self) -> None:
        """Ask politely, then terminate, then kill; returns at once (escalation runs in a thread)."""
        if self.session.cancel_requested:
            return
        self._send(self.session.cancel_line())
        threading.Thread(target=self._escalate, daemon=True).start()

    def kill(self) -> None:
        self.session.cancel_requested = True
        self.proc.kill()

    def _escalate(self) -> None:
        for action in ("terminate", "kill"):
            deadline = time.monotonic() + self._delays[action]
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    return
                time.sleep(0.05)
            if self.proc.poll() is None:
                self.escalated = action
                getattr(self.proc, action)()

    def wait(self) -> Outcome:
        code = self.proc.wait()
        self._stderr_thread.join(timeout=2)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        return self.session.finish(code if code >= 0 else None, -code if code < 0 else None)


class WorkerNotStarted(OSError):
    pass


def run_worker(
    request: RunRequest,
    *,
    on_event: Callable[[Event], None] | None = None,
    cancel: threading.Event | None = None,
    command: list[str] | None = None,
    env: dict[str, str] | None = None,
    on_stderr: Callable[[str], None] | None = None,
    on_start: Callable[[WorkerProcess], None] | None = None,
    terminate_after: float = TERMINATE_AFTER_S,
    kill_after: float = KILL_AFTER_S,
) -> Outcome:
    """Run one request to completion; ``cancel`` (an Event) set from another thread starts escalation."""
    try:
        worker = WorkerProcess(request, command=command, env=env, on_stderr=on_stderr,
                               terminate_after=terminate_after, kill_after=kill_after)
    except WorkerNotStarted as exc:
        return WorkerSession.not_started(str(exc))
    if on_start is not None:
        on_start(worker)
    stop_watch = threading.Event()
    if cancel is not None:

        def watch() -> None:
            while not stop_watch.is_set():
                if cancel.wait(0.1):
                    worker.cancel()
                    return

        threading.Thread(target=watch, daemon=True).start()
    try:
        for event in worker.events():
            if on_event is not None:
                on_event(event)
    finally:
        stop_watch.set()
    return worker.wait()
