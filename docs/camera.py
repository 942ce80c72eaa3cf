"""What both screenshot scripts share: the application (with the refcount guard the workbench applies at
start), letting the event loop settle, and saving a widget's picture under docs/screenshots/."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "screenshots"


class Camera:
    def __init__(self, prefix: str = "", pause: float = 0.6) -> None:
        from PySide6.QtWidgets import QApplication

        from workbench._refcount_guard import guard_none_refcount

        guard_none_refcount()
        self.app = QApplication.instance() or QApplication(sys.argv[:1])
        self.prefix, self.pause = prefix, pause
        OUT.mkdir(parents=True, exist_ok=True)

    def settle(self, seconds: float | None = None) -> None:
        """Let the window lay out, draw and finish background queries for a while."""
        end = time.monotonic() + (self.pause if seconds is None else seconds)
        while time.monotonic() < end:
            self.app.processEvents()
            time.sleep(0.01)

    def shot(self, widget: Any, name: str) -> None:
        self.settle()
        path = OUT / f"{self.prefix}{name}.png"
        widget.grab().save(str(path))
        print("wrote", path, flush=True)
