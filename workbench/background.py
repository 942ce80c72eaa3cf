"""Work off the GUI thread: a function runs in Qt's thread pool and its result comes back to the
GUI thread by a queued signal. Queries, disk walks and file reads go through here, so a worker
holding the database or a slow disk never freezes the window."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal
from shiboken6 import isValid


class _Sink(QObject):
    done = Signal(object, str)  # result, error ('' when none)


# Sinks waiting for their job. A sink has no Qt parent, so closing the owner cannot delete it while
# a pool thread emits through it (that race crashed the process). The job drops its reference on the
# pool thread; this set keeps one until ``finish`` runs on the GUI thread, which releases it there with
# deleteLater, so the sink is never freed on the pool thread.
_pending: set[_Sink] = set()


class _Job(QRunnable):
    def __init__(self, fn: Callable[[], Any], sink: _Sink) -> None:
        super().__init__()
        self.fn, self.sink = fn, sink

    def run(self) -> None:
        try:
            result, error = self.fn(), ""
        except Exception as exc:  # shown to the user by on_error; never a traceback
            result, error = None, str(exc) or type(exc).__name__
        with contextlib.suppress(RuntimeError):  # the application is shutting down
            self.sink.done.emit(result, error)


def run_in_background(owner: QObject, fn: Callable[[], Any], on_done: Callable[[Any], None],
                      on_error: Callable[[str], None] | None = None) -> None:
    """Call ``fn()`` in the pool; then ``on_done(result)`` (or ``on_error(message)``) on the GUI thread,
    unless ``owner`` is gone by then."""
    sink = _Sink()  # created on the GUI thread, so its signal is delivered there (queued)
    _pending.add(sink)

    def finish(result: Any, error: str) -> None:
        _pending.discard(sink)
        sink.deleteLater()
        if not isValid(owner):
            return
        if error:
            if on_error is not None:
                on_error(error)
        else:
            on_done(result)

    sink.done.connect(finish)
    QThreadPool.globalInstance().start(_Job(fn, sink))
