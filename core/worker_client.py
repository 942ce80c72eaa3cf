"""Start ``python -m core.worker`` as a subprocess and follow its events (torch-free; used by the CLI).

The GUI does the same with QProcess and the same protocol. Cancelling escalates: a cancel message,
then SIGTERM after ``grace`` seconds, then SIGKILL after another ``grace``. The :class:`Outcome`
says how the process ended, like qutebrowser's guiprocess: exit code, signal, crash, and the last
terminal event it sent.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.protocol import (
    CANCEL,
    RUN,
    RUN_CANCELLED,
    RUN_FAILED,
    RUN_FINISHED,
    TERMINAL_EVENTS,
    ProtocolError,
    decode,
    encode,
)


@dataclass
class Outcome:
    """How the worker process ended."""

    exit_code: int | None  # None when killed by a signal
    signal: int | None  # the signal number when killed by one
    terminal: dict[str, Any] | None  # run_finished / run_failed / run_cancelled event, if one arrived
    cancel_requested: bool = False
    escalated: str | None = None  # "terminate" or "kill" when the cancel message was not enough
    stderr_tail: list[str] = field(default_factory=list)
    run_id: int | None = None

    @property
    def crashed(self) -> bool:
        """The process ended without telling us how the run ended (killed, segfault, OOM, bug)."""
        return self.terminal is None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.terminal is not None and self.terminal["type"] == RUN_FINISHED

    @property
    def status(self) -> str:
        if self.terminal is not None:
            return {RUN_FINISHED: "finished", RUN_FAILED: "failed", RUN_CANCELLED: "cancelled"}[self.terminal["type"]]
        return "cancelled" if self.cancel_requested else "crashed"

    def describe(self) -> str:
        """One line for the user."""
        if self.terminal is not None and self.terminal["type"] == RUN_FAILED:
            return str(self.terminal.get("error") or "the run failed")
        if self.terminal is not None and self.terminal["type"] == RUN_FINISHED:
            return f"run {self.run_id} finished"
        if self.terminal is not None:
            return f"run {self.run_id} cancelled"
        if self.signal is not None:
            try:
                name = signal.Signals(self.signal).name
            except ValueError:
                name = str(self.signal)
            how = f"was killed by signal {self.signal} ({name})"
        else:
            how = f"exited with code {self.exit_code}"
        tail = f": {self.stderr_tail[-1]}" if self.stderr_tail else ""
        return f"the worker {how} without finishing the run{tail}"


def worker_command() -> list[str]:
    """How to start one worker; a frozen bundle re-runs its own executable with ``--worker``."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "--worker"]
    return [sys.executable, "-u", "-m", "core.worker"]


def _worker_env(extra: dict[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in paths:  # the worker must import this very copy of core
        env["PYTHONPATH"] = os.pathsep.join([root, *paths])
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra or {})
    return env


class WorkerProcess:
    """One running worker. ``events()`` yields decoded events; ``cancel()`` escalates in the background."""

    def __init__(self, request: dict[str, Any], *, command: list[str] | None = None,
                 env: dict[str, str] | None = None, grace: float = 5.0,
                 on_stderr: Callable[[str], None] | None = None) -> None:
        self.grace = grace
        self.cancel_requested = False
        self.escalated: str | None = None
        self._stderr_tail: deque[str] = deque(maxlen=20)
        self._on_stderr = on_stderr
        self.proc = subprocess.Popen(
            command or worker_command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_worker_env(env),
            text=True,
            encoding="utf-8",
            bufsize=1,
        )
        self._stderr_thread = threading.Thread(target=self._drain_stderr, daemon=True)
        self._stderr_thread.start()
        self._send(encode(RUN, **request))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _send(self, line: str) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(line)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            line = line.rstrip("\n")
            if line.strip():
                self._stderr_tail.append(line)
            if self._on_stderr is not None:
                self._on_stderr(line)

    def events(self) -> Any:
        """Yield each event until the worker closes its event stream. Bad lines become log events."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if not line.strip():
                continue
            try:
                yield decode(line)
            except ProtocolError as exc:
                yield {"type": "log", "level": "warning", "message": f"unreadable worker output: {exc}"}

    def cancel(self) -> None:
        """Ask politely, then terminate, then kill; returns at once (escalation runs in a thread)."""
        if self.cancel_requested:
            return
        self.cancel_requested = True
        self._send(encode(CANCEL))
        threading.Thread(target=self._escalate, daemon=True).start()

    def _escalate(self) -> None:
        for action in ("terminate", "kill"):
            deadline = time.monotonic() + self.grace
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    return
                time.sleep(0.05)
            if self.proc.poll() is None:
                self.escalated = action
                getattr(self.proc, action)()

    def wait(self, terminal: dict[str, Any] | None, run_id: int | None) -> Outcome:
        code = self.proc.wait()
        self._stderr_thread.join(timeout=2)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        return Outcome(
            exit_code=code if code >= 0 else None,
            signal=-code if code < 0 else None,
            terminal=terminal,
            cancel_requested=self.cancel_requested,
            escalated=self.escalated,
            stderr_tail=list(self._stderr_tail),
            run_id=run_id,
        )


def run_worker(
    request: dict[str, Any],
    *,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    cancel: threading.Event | None = None,
    command: list[str] | None = None,
    env: dict[str, str] | None = None,
    grace: float = 5.0,
    on_stderr: Callable[[str], None] | None = None,
    on_start: Callable[[WorkerProcess], None] | None = None,
) -> Outcome:
    """Run one request to completion; ``cancel`` (an Event) set from another thread starts escalation."""
    worker = WorkerProcess(request, command=command, env=env, grace=grace, on_stderr=on_stderr)
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
    terminal = None
    run_id = None
    try:
        for event in worker.events():
            if event.get("run_id") is not None and event["type"] in ("run_started", *TERMINAL_EVENTS):
                run_id = event["run_id"]
            if event["type"] in TERMINAL_EVENTS:
                terminal = event
            if on_event is not None:
                on_event(event)
    finally:
        stop_watch.set()
    return worker.wait(terminal, run_id)
