"""Where runs are made: on this machine, or their sweep's branches on a Ray cluster (docs/CLUSTER.md).

A small dialog over two settings, and :func:`request_fields`, the ``RunRequest`` fields they give.
The window wires it with two lines: a menu action opening :class:`ExecutionDialog`, and
``**request_fields(settings, artifacts)`` in the request it builds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from core.protocol import ray_address_problem

RAY_KEY = "execution/ray"  # "" = on this machine
SHARED_KEY = "execution/shared_artifacts"  # "" = artifacts travel through Ray's object store


def request_fields(settings: Any, artifacts: str) -> dict[str, Any]:
    """The RunRequest fields of the saved setting: ``artifacts`` on this machine; on a Ray cluster its
    address too, and the shared artifacts folder instead of ``artifacts`` when one is set."""
    address = str(settings.value(RAY_KEY, "") or "").strip()
    if not address:
        return {"artifacts": artifacts}
    shared = str(settings.value(SHARED_KEY, "") or "").strip()
    return {"artifacts": shared or artifacts, "ray": address, "shared_artifacts": bool(shared)}


def describe(settings: Any) -> str:
    """The setting in a few words, for a status line."""
    address = str(settings.value(RAY_KEY, "") or "").strip()
    return f"sweep branches on the Ray cluster {address}" if address else "on this machine"


class ExecutionDialog(QDialog):
    """Run here, or on a Ray cluster (its address, and optionally a folder every node shares)."""

    def __init__(self, settings: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.setWindowTitle("Where to run")
        self.local = QRadioButton("On this machine")
        self.cluster = QRadioButton("Sweep branches on a Ray cluster")
        group = QButtonGroup(self)
        group.addButton(self.local)
        group.addButton(self.cluster)
        self.address = QLineEdit()
        self.address.setPlaceholderText("auto, or the head's HOST:PORT")
        self.shared = QLineEdit()
        self.shared.setPlaceholderText("optional: an artifacts folder every node mounts at this path")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.problem = QLabel("")
        self.problem.setStyleSheet("color: #c0392b;")
        self.problem.setWordWrap(True)
        help_text = QLabel("This machine must be a node of the cluster ('ray start --address HEAD:6379 --num-cpus 0'); "
                           "the results database stays here. See docs/CLUSTER.md.")
        help_text.setWordWrap(True)
        shared_row = QHBoxLayout()
        shared_row.addWidget(self.shared)
        shared_row.addWidget(browse)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        for widget in (self.local, self.cluster, QLabel("Ray address"), self.address,
                       QLabel("Shared artifacts folder")):
            layout.addWidget(widget)
        layout.addLayout(shared_row)
        layout.addWidget(help_text)
        layout.addWidget(self.problem)
        layout.addWidget(buttons)
        address = str(settings.value(RAY_KEY, "") or "")
        (self.cluster if address else self.local).setChecked(True)
        self.address.setText(address or "auto")
        self.shared.setText(str(settings.value(SHARED_KEY, "") or ""))
        self.cluster.toggled.connect(self._enable)
        self._enable()

    def _enable(self) -> None:
        on = self.cluster.isChecked()
        self.address.setEnabled(on)
        self.shared.setEnabled(on)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Shared artifacts folder", self.shared.text())
        if folder:
            self.shared.setText(folder)

    def accept(self) -> None:
        """Save the setting; a bad address is named and nothing is saved."""
        if self.cluster.isChecked():
            problem = ray_address_problem(self.address.text())
            shared = self.shared.text().strip()
            if problem is None and shared and not Path(shared).is_absolute():
                problem = f"{shared}: the shared folder must be an absolute path, the same on every node"
            if problem is not None:
                self.problem.setText(problem)
                return
            self.settings.set_value(RAY_KEY, self.address.text().strip())
            self.settings.set_value(SHARED_KEY, shared)
        else:
            self.settings.set_value(RAY_KEY, "")
        super().accept()
