"""Light and dark themes: Fusion with a palette, following the system's colour scheme by default.

Qt reports the desktop's scheme (``QStyleHints.colorScheme``) and tells when it changes; the
window follows it unless the user picked one under View › Theme. Widgets use palette roles, the
charts restyle from the palette, so one switch recolours everything.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

MODES = ("system", "light", "dark")


def system_is_dark() -> bool:
    hints = QGuiApplication.styleHints()
    return hints.colorScheme() == Qt.ColorScheme.Dark


def dark_palette() -> QPalette:
    p = QPalette()
    window, base, text = QColor(45, 47, 51), QColor(32, 33, 36), QColor(230, 230, 230)
    roles = {
        QPalette.ColorRole.Window: window,
        QPalette.ColorRole.WindowText: text,
        QPalette.ColorRole.Base: base,
        QPalette.ColorRole.AlternateBase: QColor(40, 42, 46),
        QPalette.ColorRole.ToolTipBase: QColor(60, 62, 66),
        QPalette.ColorRole.ToolTipText: text,
        QPalette.ColorRole.PlaceholderText: QColor(160, 163, 168),
        QPalette.ColorRole.Text: text,
        QPalette.ColorRole.Button: QColor(55, 57, 62),
        QPalette.ColorRole.ButtonText: text,
        QPalette.ColorRole.BrightText: QColor(255, 120, 120),
        QPalette.ColorRole.Light: QColor(75, 77, 82),
        QPalette.ColorRole.Midlight: QColor(62, 64, 69),
        QPalette.ColorRole.Mid: QColor(120, 123, 128),
        QPalette.ColorRole.Dark: QColor(25, 26, 28),
        QPalette.ColorRole.Shadow: QColor(0, 0, 0),
        QPalette.ColorRole.Highlight: QColor(59, 125, 216),
        QPalette.ColorRole.HighlightedText: QColor(255, 255, 255),
        QPalette.ColorRole.Link: QColor(110, 170, 255),
        QPalette.ColorRole.LinkVisited: QColor(170, 140, 255),
    }
    for role, color in roles.items():
        p.setColor(role, color)
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.WindowText, QPalette.ColorRole.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor(120, 123, 128))
    return p


def is_dark(mode: str) -> bool:
    return mode == "dark" or (mode == "system" and system_is_dark())


def apply_theme(mode: str = "system", app: QApplication | None = None) -> bool:
    """Style the application for ``mode`` (system, light or dark); returns whether it is dark."""
    app = app or QApplication.instance()  # type: ignore[assignment]
    assert isinstance(app, QApplication)
    dark = is_dark(mode if mode in MODES else "system")
    if app.style().name().lower() != "fusion":
        app.setStyle("Fusion")  # the one style that draws a custom palette everywhere
    app.setPalette(dark_palette() if dark else app.style().standardPalette())
    app.setProperty("workbench_dark", dark)
    return dark
