"""Errors of the deployment backends; each names the variant, the backend and what to do."""

from __future__ import annotations

from core.errors import WorkbenchError

INSTALL_HINT = 'pip install -e ".[deploy]"'


class BackendError(WorkbenchError):
    """A backend cannot export, load or run a variant. ``backend`` says which one."""

    def __init__(self, message: str, *, backend: str = "") -> None:
        super().__init__(message)
        self.backend = backend


class BackendUnavailable(BackendError):
    """A package a backend needs is not installed (the optional ``deploy`` extra)."""


class UnsupportedVariant(BackendError):
    """The variant holds modules the backend cannot run (e.g. torch's dynamic int8 Linear)."""


class ExportFailed(BackendError):
    """The exporter or converter rejected the model; the message names the operator when known."""
