"""Python's cyclic garbage collector runs on the GUI thread only.

Automatic collection runs in whichever thread happens to allocate. When a background query (a pool
thread) triggered it, it freed Python-owned widgets caught in reference cycles there: ~QObject took a
Qt connection lock and waited for the GIL, while the GUI thread held the GIL and waited for that lock
(seen as a hung test: the GUI thread in QLabel.setBuddy, a pool thread in QObject::~QObject). So the
automatic collector is switched off and a timer on the GUI thread collects, generation by generation,
when the allocation counts pass the usual thresholds.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

INTERVAL_MS = 200
_installed: list[QObject] = []


class _Collector(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.thresholds = gc.get_threshold()
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.check)
        self.timer.start(INTERVAL_MS)

    def check(self) -> None:
        first, second, third = gc.get_count()
        if first > self.thresholds[0]:
            generation = 2 if third > self.thresholds[2] else 1 if second > self.thresholds[1] else 0
            gc.collect(generation)


def install() -> bool:
    """Move collection to the GUI thread (idempotent; needs the QApplication). True when installed now."""
    if _installed:
        return False
    gc.disable()
    _installed.append(_Collector())
    return True


def installed() -> bool:
    return bool(_installed) and not gc.isenabled()
