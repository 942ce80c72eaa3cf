"""``python -m core.worker``: run one request in a fresh process, speaking core.protocol JSON lines.

The events go to a duplicate of the *original* stdout; file descriptor 1 (and ``sys.stdout``) is
pointed at stderr before anything heavy is imported, so prints from libraries, C extensions
included, land on stderr and cannot corrupt the event stream. A thread reads stdin for a cancel
message; SIGTERM stops the run at once and leaves it ``interrupted`` (resumable); the end of stdin (the
client went away) cancels.

Request (one line on stdin): ``{"protocol": 1, "type": "run", "recipe": {...recipe dict...} | null,
"db": path | null, "artifacts": dir | null, "resume_run": run id | null, "background": bool}``; null
db/artifacts mean the defaults of core.paths; ``background`` lowers the worker's CPU priority so an
interactive client (the window) keeps the cores it needs to stay responsive. Keep stdin open while the run lasts: its end means "client gone" and
cancels. Then ``{"type": "cancel"}`` at any time asks for a stop at the next safe point.

Exit codes: 0 finished, 1 failed, 2 bad request, 3 cancelled, 4 terminated (SIGTERM).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import IO, Any

from core.protocol import CANCEL, LOG, RUN, RUN_FAILED, ProtocolError, decode, encode

EXIT_FINISHED = 0
EXIT_FAILED = 1
EXIT_BAD_REQUEST = 2
EXIT_CANCELLED = 3
EXIT_TERMINATED = 4


class EventWriter:
    """Thread-safe writer of protocol events to the reserved stream."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def __call__(self, kind: str, /, **fields: Any) -> None:
        line = encode(kind, **fields)
        with self._lock:
            try:
                self._stream.write(line)
                self._stream.flush()
            except (BrokenPipeError, ValueError):  # the client went away; keep working, keep the DB right
                pass


def _reserve_stdout() -> IO[str]:
    """Keep the real stdout for events only; everything else written to fd 1 goes to stderr."""
    sys.stdout.flush()
    events_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(events_fd, "w", encoding="utf-8", buffering=1)


def _watch_stdin(stdin: IO[str], cancel: threading.Event, emit: EventWriter) -> None:
    for line in stdin:
        if not line.strip():
            continue
        try:
            message = decode(line)
        except ProtocolError as exc:
            emit(LOG, level="warning", message=f"ignored a bad message: {exc}")
            continue
        if message["type"] == CANCEL:
            cancel.set()
            emit(LOG, level="info", message="cancel requested; stopping at the next safe point")
    # End of input: the client is gone (closed, crashed); nobody will read the results live.
    cancel.set()


BACKGROUND_NICENESS = 10


def _lower_priority(emit: EventWriter) -> None:
    """Yield the CPU to the GUI: torch's threads busy every core, and the window's event loop must
    still get a time slice within milliseconds. Latency ratios are unaffected on an idle machine."""
    try:
        os.nice(BACKGROUND_NICENESS)
    except (AttributeError, OSError) as exc:  # Windows has no nice(); a sandbox may refuse it
        emit(LOG, level="info", message=f"running at normal priority ({exc})")


def main(argv: list[str] | None = None) -> int:
    events = _reserve_stdout()
    emit = EventWriter(events)
    stdin = sys.stdin
    first = stdin.readline()
    try:
        request = decode(first)
        if request["type"] != RUN:
            raise ProtocolError(f"expected a '{RUN}' request, got '{request['type']}'")
    except ProtocolError as exc:
        emit(RUN_FAILED, run_id=None, error=f"Bad request to the worker: {exc}", kind="ProtocolError", index=None)
        return EXIT_BAD_REQUEST

    if request.get("background"):
        _lower_priority(emit)
    cancel = threading.Event()
    threading.Thread(target=_watch_stdin, args=(stdin, cancel, emit), daemon=True, name="cancel-reader").start()

    from core.runner import Interrupted

    def _on_term(signum: int, _frame: Any) -> None:
        raise Interrupted(f"signal {signum}")

    signal.signal(signal.SIGTERM, _on_term)
    # Ctrl+C in a terminal reaches the whole process group; the client turns it into a cancel message.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    from core.errors import WorkbenchError
    from core.runner import run_recipe
    from core.store import schema

    try:
        outcome = run_recipe(
            request.get("recipe"),
            db_url_or_path=request.get("db"),
            artifacts_dir=request.get("artifacts"),
            emit=emit,
            cancelled=cancel.is_set,
            resume_run=request.get("resume_run"),
        )
    except Interrupted:
        return EXIT_TERMINATED
    except WorkbenchError as exc:  # before the run was recorded: bad recipe, unusable database
        emit(RUN_FAILED, run_id=None, error=str(exc), kind=type(exc).__name__, index=None)
        return EXIT_FAILED
    except Exception as exc:
        import traceback

        traceback.print_exc()
        emit(RUN_FAILED, run_id=None, error=f"Internal error ({type(exc).__name__}): {exc}",
             kind=type(exc).__name__, index=None)
        return EXIT_FAILED
    finally:
        sys.stderr.flush()
    return {schema.FINISHED: EXIT_FINISHED, schema.CANCELLED: EXIT_CANCELLED}.get(outcome.status, EXIT_FAILED)


if __name__ == "__main__":
    sys.exit(main())
