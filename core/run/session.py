"""One worker run as seen by a client, without any process API: lines and an exit status in, one
:class:`Outcome` out. The CLI (core.run.process, subprocess) and the window (workbench.worker_client,
QProcess) are thin adapters around it, so both decode events, keep the stderr tail, escalate a
cancel and describe the ending in the same words.

Like qutebrowser's guiprocess, the outcome says how the worker ended: finished, failed with a
message, cancelled (by the user, however it then stopped), or crashed / exited early (killed by a
signal, out of memory, a bug), in which case the run stays resumable.
"""

from __future__ import annotations

import os
import signal
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from core.logtail import is_progress_line, meaningful_tail
from core.protocol import (
    TERMINAL,
    CancelRequest,
    Event,
    Log,
    ProtocolError,
    RunFailed,
    RunFinished,
    RunRequest,
    RunStarted,
    decode,
)

# After a cancel request the worker stops at its next safe point (a batch, at most seconds); if it
# has not ended after TERMINATE_AFTER_S it is terminated (SIGTERM: marks the run interrupted), and
# KILL_AFTER_S later killed.
TERMINATE_AFTER_S = 10.0
KILL_AFTER_S = 5.0

STDERR_TAIL = 20


def worker_command() -> list[str]:
    """How to start one worker; a frozen bundle re-runs its own executable with ``--worker``."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "--worker"]
    return [sys.executable, "-u", "-m", "core.run.worker"]


def worker_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The client's environment, with the folder holding this ``core`` first on PYTHONPATH so the
    worker imports this very copy, and unbuffered output."""
    env = dict(os.environ if base is None else base)
    root = str(Path(__file__).resolve().parents[2])
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != root]
    env["PYTHONPATH"] = os.pathsep.join([root, *paths])
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass(frozen=True)
class Outcome:
    """How a worker ended, in words a user understands."""

    status: str  # finished | failed | cancelled | crashed | exited | not_started
    run_id: int | None = None
    error: str = ""
    exit_code: int | None = None
    signal_name: str = ""
    failed_index: int | None = None  # chain position of the step that failed
    stderr_tail: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return self.status == "finished"

    @property
    def resumable(self) -> bool:
        return self.run_id is not None and self.status in ("failed", "cancelled", "crashed", "exited")

    def message(self) -> str:
        """What happened, for the status line, a dialog or stderr."""
        if self.status == "finished":
            return f"Run {self.run_id} finished."
        if self.status == "cancelled":
            return f"Run {self.run_id} was cancelled; finished steps are kept and the run can be resumed."
        if self.status == "failed":
            where = f" (step {self.failed_index})" if self.failed_index else ""
            return f"The run failed{where}: {self.error}"
        if self.status == "not_started":
            return f"The worker could not be started: {self.error}"
        if self.status == "crashed":
            how = f"was stopped by {self.signal_name}" if self.signal_name else "crashed"
            hint = " (often the machine ran out of memory)" if self.signal_name == "SIGKILL" else ""
        else:
            how, hint = f"exited with code {self.exit_code}", ""
        tail = f": {self.stderr_tail[-1]}" if self.stderr_tail else ""
        resume = " Finished steps are kept; the run can be resumed." if self.run_id is not None else ""
        return f"The worker {how}{hint} before the run ended{tail}.{resume}"


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class WorkerSession:
    """The client side of one run, whatever starts the process."""

    def __init__(self, request: RunRequest) -> None:
        self.request = request
        self.run_id: int | None = request.resume_run
        self.terminal: Event | None = None
        self.cancel_requested = False
        self._tail: deque[str] = deque(maxlen=STDERR_TAIL)

    def request_line(self) -> bytes:
        return self.request.to_json().encode()

    def cancel_line(self) -> bytes:
        """The cancel request to write to the worker; remembers that the user asked."""
        self.cancel_requested = True
        return CancelRequest().to_json().encode()

    def stdout_line(self, line: str | bytes) -> Event | None:
        """Decode one line of the event stream; an unreadable line becomes a warning Log event."""
        if not line.strip():
            return None
        try:
            event = decode(line)
        except ProtocolError as exc:
            return Log(level="warning", message=f"unreadable worker output: {exc}")
        if isinstance(event, RunStarted) or (isinstance(event, TERMINAL) and event.run_id is not None):
            self.run_id = event.run_id
        if isinstance(event, TERMINAL):
            self.terminal = event
        return event  # type: ignore[return-value]

    def stderr_line(self, line: str | bytes) -> str | None:
        """Keep one line of the worker's stderr for the crash message; None for a blank line."""
        text = (line.decode("utf-8", "replace") if isinstance(line, bytes) else line).rstrip()
        if not text.strip():
            return None
        if not is_progress_line(text):  # a progress bar never says why a worker died
            self._tail.extend(meaningful_tail([text]))
        return text

    def finish(self, exit_code: int | None, signal_number: int | None = None) -> Outcome:
        """The outcome once the process has ended (``exit_code`` None when a signal killed it)."""
        tail = tuple(self._tail)
        term = self.terminal
        name = signal_name(signal_number) if signal_number else ""
        if isinstance(term, RunFinished) and exit_code == 0:
            return Outcome("finished", self.run_id, exit_code=exit_code)
        if isinstance(term, RunFailed):
            return Outcome("failed", self.run_id, error=term.error, exit_code=exit_code, failed_index=term.index,
                           stderr_tail=tail)
        if self.cancel_requested or (term is not None and not isinstance(term, RunFinished)):
            return Outcome("cancelled", self.run_id, exit_code=exit_code, signal_name=name)
        if signal_number:
            return Outcome("crashed", self.run_id, exit_code=None, signal_name=name, stderr_tail=tail)
        return Outcome("exited", self.run_id, exit_code=exit_code, stderr_tail=tail)

    @staticmethod
    def not_started(error: str) -> Outcome:
        return Outcome("not_started", error=error)
