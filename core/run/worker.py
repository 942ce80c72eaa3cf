"""``python -m core.run.worker``: run one request in a fresh process, speaking core.protocol lines.

The events go to a duplicate of the *original* stdout; file descriptor 1 (and ``sys.stdout``) is
pointed at stderr before anything heavy is imported, so prints from libraries, C extensions
included, land on stderr and cannot corrupt the event stream. The first stdin line is a
:class:`~core.protocol.RunRequest`; a thread then reads stdin for a
:class:`~core.protocol.CancelRequest` (a stop at the next safe point), and the end of stdin (the
client went away) cancels too. SIGTERM stops the run at once and leaves it ``interrupted``.

Exit codes: 0 finished, 1 failed, 2 bad request, 3 cancelled, 4 terminated (SIGTERM).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import IO, Any

from core.protocol import (
    CancelRequest,
    Event,
    Log,
    ProtocolError,
    RunCancelled,
    RunFailed,
    RunRequest,
    decode,
)

EXIT_FINISHED = 0
EXIT_FAILED = 1
EXIT_BAD_REQUEST = 2
EXIT_CANCELLED = 3
EXIT_TERMINATED = 4

BACKGROUND_NICENESS = 10


class EventWriter:
    """Thread-safe writer of protocol events to the reserved stream."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        line = event.to_json()
        with self._lock:
            try:
                self._stream.write(line)
                self._stream.flush()
            except (BrokenPipeError, ValueError):  # the client went away; keep working, keep the DB right
                pass


class _SurvivesClosedReader:
    """sys.stderr (and sys.stdout), except that a write to a pipe nobody reads any more is dropped.

    When the client is killed, the worker must still reach its next safe point and leave the run
    resumable; a log line or a progress bar printed in between used to raise BrokenPipeError there
    (and again in the error handler), killing the worker with the run left 'running'."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except (BrokenPipeError, ValueError):  # ValueError: the stream was closed
            return len(text)

    def flush(self) -> None:
        with contextlib.suppress(BrokenPipeError, ValueError):
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _reserve_stdout() -> IO[str]:
    """Keep the real stdout for events only; everything else written to fd 1 goes to stderr."""
    sys.stdout.flush()
    events_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stderr = _SurvivesClosedReader(sys.stderr)  # type: ignore[assignment]
    sys.stdout = sys.stderr
    return os.fdopen(events_fd, "w", encoding="utf-8", buffering=1)


def _watch_stdin(stdin: IO[str], cancel: threading.Event, emit: EventWriter) -> None:
    for line in stdin:
        if not line.strip():
            continue
        try:
            message = decode(line)
        except ProtocolError as exc:
            emit(Log(level="warning", message=f"ignored a bad message: {exc}"))
            continue
        if isinstance(message, CancelRequest):
            cancel.set()
            emit(Log(level="info", message="cancel requested; stopping at the next safe point"))
    # End of input: the client is gone (closed, crashed); nobody will read the results live.
    cancel.set()


def _lower_priority(emit: EventWriter) -> None:
    """Yield the CPU to the GUI: torch's threads busy every core, and the window's event loop must
    still get a time slice within milliseconds. Latency ratios are unaffected on an idle machine."""
    try:
        os.nice(BACKGROUND_NICENESS)
    except (AttributeError, OSError) as exc:  # Windows has no nice(); a sandbox may refuse it
        emit(Log(level="info", message=f"running at normal priority ({exc})"))


def main(argv: list[str] | None = None) -> int:
    emit = EventWriter(_reserve_stdout())
    stdin = sys.stdin
    try:
        request = decode(stdin.readline())
        if not isinstance(request, RunRequest):
            raise ProtocolError(f"expected a run request, got '{request.type}'")
    except ProtocolError as exc:
        emit(RunFailed(run_id=None, error=f"Bad request to the worker: {exc}", kind="ProtocolError"))
        return EXIT_BAD_REQUEST

    if request.background:
        _lower_priority(emit)
    cancel = threading.Event()
    threading.Thread(target=_watch_stdin, args=(stdin, cancel, emit), daemon=True, name="cancel-reader").start()

    from core.run.runner import Interrupted

    def _on_term(signum: int, _frame: Any) -> None:
        raise Interrupted(f"signal {signum}")

    signal.signal(signal.SIGTERM, _on_term)
    # Ctrl+C in a terminal reaches the whole process group; the client turns it into a cancel message.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    from core.errors import WorkbenchError
    from core.run.runner import run_recipe

    try:
        terminal = run_recipe(request.recipe, db_url_or_path=request.db, artifacts_dir=request.artifacts, emit=emit,
                              cancelled=cancel.is_set, resume_run=request.resume_run, ray=request.ray,
                              shared_artifacts=request.shared_artifacts)
    except Interrupted:
        return EXIT_TERMINATED
    except WorkbenchError as exc:  # before the run was recorded: bad recipe, unusable database
        emit(RunFailed(run_id=None, error=str(exc), kind=type(exc).__name__))
        return EXIT_FAILED
    except Exception as exc:
        import traceback

        traceback.print_exc()
        emit(RunFailed(run_id=None, error=f"Internal error ({type(exc).__name__}): {exc}", kind=type(exc).__name__))
        return EXIT_FAILED
    finally:
        sys.stderr.flush()
    if isinstance(terminal, RunCancelled):
        return EXIT_CANCELLED
    return EXIT_FAILED if isinstance(terminal, RunFailed) else EXIT_FINISHED


if __name__ == "__main__":
    sys.exit(main())
