"""Persistent settings (QSettings, INI format: readable, never pickled).

The file lives in ``$WORKBENCH_HOME/settings.ini`` when WORKBENCH_HOME is set (tests set it to a
temporary folder, so no test reads the developer's settings), else in Qt's per-user location.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings, QSize

MAX_RECENT = 8


def default_db_path() -> Path:
    """The engine's rule (core.paths): WORKBENCH_DB, else WORKBENCH_HOME, else the user data dir."""
    from core.paths import default_db

    return default_db()


class Settings:
    """Typed accessors over one QSettings file."""

    def __init__(self, path: str | Path | None = None) -> None:
        if path is None and os.environ.get("WORKBENCH_HOME"):
            path = Path(os.environ["WORKBENCH_HOME"]) / "settings.ini"
        if path is not None:
            self.qs = QSettings(str(path), QSettings.Format.IniFormat)
        else:
            self.qs = QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope,
                                "compression-workbench", "workbench")

    def path(self) -> str:
        return self.qs.fileName()

    def sync(self) -> None:
        self.qs.sync()

    # --- recent lists -------------------------------------------------------------------------
    def recent(self, key: str) -> list[str]:
        value: Any = self.qs.value(f"recent/{key}", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or []) if v]

    def add_recent(self, key: str, item: str) -> list[str]:
        items = [item] + [i for i in self.recent(key) if i != item]
        items = items[:MAX_RECENT]
        self.qs.setValue(f"recent/{key}", items)
        return items

    # --- simple values ------------------------------------------------------------------------
    def db_path(self) -> Path:
        value = self.qs.value("paths/database", "")
        return Path(str(value)) if value else default_db_path()

    def set_db_path(self, path: str | Path) -> None:
        self.qs.setValue("paths/database", str(path))

    def artifacts_dir(self) -> Path:
        value = self.qs.value("paths/artifacts", "")
        if value:
            return Path(str(value))
        from core.paths import default_artifacts

        return default_artifacts(self.db_path())

    def window_state(self) -> tuple[QByteArray | None, QByteArray | None, QSize | None]:
        """The saved geometry, dock layout and the window's own (unmaximised) size; None where unsaved."""
        geometry = self.qs.value("window/geometry")
        state = self.qs.value("window/state")
        size = self.qs.value("window/size")
        return (geometry if isinstance(geometry, QByteArray) else None,
                state if isinstance(state, QByteArray) else None,
                size if isinstance(size, QSize) and size.isValid() else None)

    def set_window_state(self, geometry: QByteArray, state: QByteArray, size: QSize) -> None:
        self.qs.setValue("window/geometry", geometry)
        self.qs.setValue("window/state", state)
        self.qs.setValue("window/size", size)

    def value(self, key: str, default: Any = None) -> Any:
        return self.qs.value(key, default)

    def set_value(self, key: str, value: Any) -> None:
        self.qs.setValue(key, value)
