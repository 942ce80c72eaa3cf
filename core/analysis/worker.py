"""``python -m core.analysis.worker``: one analysis request in a fresh process, speaking core.protocol
JSON lines, for the window (whose process never imports torch).

As the run worker (core.run.worker): events go to a duplicate of the original stdout while fd 1 is
pointed at stderr; the first stdin line is the request (a :class:`~core.protocol.SensitivityRequest`);
a later :class:`~core.protocol.CancelRequest` line, or the end of stdin, stops at the next cell.
It emits Progress and Log events and ends with one :class:`~core.protocol.AnalysisFinished`.

Exit codes: 0 finished, 1 failed, 2 bad request, 3 cancelled.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from typing import IO

from core.protocol import (
    AnalysisFinished,
    CancelRequest,
    Log,
    Message,
    Progress,
    ProtocolError,
    SensitivityRequest,
    decode,
)

EXIT_FINISHED, EXIT_FAILED, EXIT_BAD_REQUEST, EXIT_CANCELLED = 0, 1, 2, 3


class _Writer:
    def __init__(self, stream: IO[str]) -> None:
        self._stream, self._lock = stream, threading.Lock()

    def __call__(self, message: Message) -> None:
        with self._lock:
            try:
                self._stream.write(message.to_json())
                self._stream.flush()
            except (BrokenPipeError, ValueError):  # the client went away: finish the cell, keep the DB right
                pass


def _watch(stdin: IO[str], cancel: threading.Event) -> None:
    for line in stdin:
        try:
            if isinstance(decode(line), CancelRequest):
                cancel.set()
        except ProtocolError:
            continue
    cancel.set()  # the client is gone


def main() -> int:
    sys.stdout.flush()
    events_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    emit = _Writer(os.fdopen(events_fd, "w", encoding="utf-8", buffering=1))
    try:
        request = decode(sys.stdin.readline())
        if not isinstance(request, SensitivityRequest):
            raise ProtocolError(f"expected a sensitivity request, got '{request.type}'")
    except ProtocolError as exc:
        emit(AnalysisFinished(kind="sensitivity", result_id=None, status="failed", error=f"Bad request: {exc}"))
        return EXIT_BAD_REQUEST
    if request.background:
        with contextlib.suppress(AttributeError, OSError):
            os.nice(10)  # the window keeps a core, as for runs
    cancel = threading.Event()
    threading.Thread(target=_watch, args=(sys.stdin, cancel), daemon=True, name="cancel-reader").start()

    from core.analysis.sensitivity import Settings, parse_transforms, run_sensitivity
    from core.errors import StepCancelled, WorkbenchError
    from core.store import open_store
    store = None
    created: list[int] = []
    try:
        store = open_store(request.db, create=False)
        map_id = run_sensitivity(
            store, request.variant, parse_transforms(request.transforms),
            Settings(examples=request.examples, seed=request.seed, grouping=request.by, threads=request.threads),
            progress=lambda f, m="": emit(Progress(node=0, index=0, fraction=float(f), message=m)),
            cancelled=cancel.is_set, log=lambda message: emit(Log(level="info", message=message)),
            on_map=created.append)
    except StepCancelled:
        emit(AnalysisFinished(kind="sensitivity", result_id=created[0] if created else None, status="cancelled"))
        return EXIT_CANCELLED
    except WorkbenchError as exc:
        emit(AnalysisFinished(kind="sensitivity", result_id=None, status="failed", error=str(exc)))
        return EXIT_FAILED
    except Exception as exc:
        import traceback

        traceback.print_exc()
        emit(AnalysisFinished(kind="sensitivity", result_id=None, status="failed",
                              error=f"Internal error ({type(exc).__name__}): {exc}"))
        return EXIT_FAILED
    finally:
        if store is not None:
            store.close()
    emit(AnalysisFinished(kind="sensitivity", result_id=map_id, status="finished"))
    return EXIT_FINISHED


if __name__ == "__main__":
    sys.exit(main())
