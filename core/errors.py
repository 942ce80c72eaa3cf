"""Errors a user can cause. Each message names the thing to fix; the GUI and CLI show it as is."""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base of every error meant for the user rather than for a traceback."""


class ConfigError(WorkbenchError, ValueError):
    """A step config or recipe value is invalid. ``step`` and ``field`` say where."""

    def __init__(self, message: str, *, step: str = "", field: str = "") -> None:
        super().__init__(message)
        self.step = step
        self.field = field


class ModelLoadError(WorkbenchError):
    """A model reference cannot be resolved or loaded (missing file, corrupt weights, offline hub id)."""


class DataError(WorkbenchError):
    """A dataset cannot be read or mapped (missing file, wrong column names)."""


class ArtifactError(WorkbenchError):
    """A saved variant cannot be written or read back."""


class StepCancelled(WorkbenchError):
    """Raised at a cancel point when the user cancelled the run."""
