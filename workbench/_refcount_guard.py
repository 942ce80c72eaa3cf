"""Work around a binding bug: PySide6 6.12 on CPython < 3.12 drops one reference to ``None`` on
every call of a method returning void (``QLabel.setText``, ``processEvents``, ...).

On 3.12+ ``None`` is immortal and nothing happens; on 3.11 its reference count runs down during a
long session (a run with a live log makes millions of such calls) until CPython aborts with
"Fatal Python error: none_dealloc". We probe for the bug once and, only if it is present, raise
``None``'s reference count far out of reach, which is what 3.12 does for every immortal object.

The same binding loses references to ``True`` (four per pyqtgraph PlotDataItem created, through
paths a C-call profile does not show): the result charts create items on every redraw, so with
the bug present ``True`` and ``False`` are pinned the same way ("bool_dealloc" otherwise).
"""

from __future__ import annotations

import sys

_applied = False


def leaks_none() -> bool:
    """True when a void Qt call loses a reference to None (the bug is present)."""
    from PySide6.QtCore import QObject

    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(64):
        probe.setObjectName("probe")
    return before - sys.getrefcount(None) >= 32


def guard_none_refcount() -> bool:
    """Apply the workaround if needed (idempotent). Returns whether it was applied."""
    global _applied
    if _applied or sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return _applied
    if leaks_none():
        import ctypes

        for immortal in (None, True, False):
            ctypes.c_ssize_t.from_address(id(immortal)).value += 1 << 40
        _applied = True
    return _applied
