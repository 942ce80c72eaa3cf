"""The one way a view offers exports: a button with a menu of formats, a save dialog, and a write that
says what went wrong (full disk, read-only folder) instead of losing the user's click."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QMenu, QMessageBox, QToolButton, QWidget

# The text formats of the CLI's exporters: format -> (name shown, file extension)
TEXT_FORMATS = {"csv": ("CSV", "csv"), "markdown": ("Markdown", "md"), "json": ("JSON", "json")}


def export_button(parent: QWidget, text: str, entries: Iterable[tuple[str, Callable[[], None]]]) -> QToolButton:
    """A tool button whose click opens a menu of (label, action) entries."""
    button = QToolButton(parent)
    button.setText(text)
    button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
    menu = QMenu(button)
    for label, action in entries:
        menu.addAction(label, action)
    button.setMenu(menu)
    return button


_last_folder: Path | None = None  # where this session's last export went


def ask_save_path(parent: QWidget, title: str, default_stem: str, name: str, ext: str) -> Path | None:
    """The file to export to; the dialog starts in the last export's folder, else the home folder (a bare
    file name would start in the working directory, which for a checkout is the source tree)."""
    global _last_folder
    start = _last_folder if _last_folder is not None and _last_folder.is_dir() else Path.home()
    path, _ = QFileDialog.getSaveFileName(parent, title, str(start / f"{default_stem}.{ext}"), f"{name} (*.{ext})")
    if not path:
        return None
    _last_folder = Path(path).parent
    return Path(path)


def write_text(parent: QWidget, path: Path, text: str) -> bool:
    """Write ``text`` to ``path``; a warning naming the file and the reason when the system refuses."""
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        QMessageBox.warning(parent, "Export", f"Cannot write {path}: {exc.strerror or exc}")
        return False
    return True
