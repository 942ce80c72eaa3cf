"""What a client (the window) needs to start an analysis process: its command lines. Torch-free;
the window imports this and core.analysis.mixed, never the modules that compute."""

from __future__ import annotations

import sys


def sensitivity_command() -> list[str]:
    """Runs one SensitivityRequest (core.protocol) read from stdin: core.analysis.worker."""
    return [sys.executable, "-u", "-m", "core.analysis.worker"]


def disagreements_command(db: str, a: int, b: int) -> list[str]:
    """Prints the disagreement report of variants a and b as one JSON object: core.analysis.disagreements."""
    return [sys.executable, "-m", "core.analysis.disagreements", "--db", db, str(a), str(b)]
