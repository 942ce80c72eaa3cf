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


# Values quoted in messages are cut to about this many characters: a message must stay readable
# whatever the input (a 5 MB string or a 10,000-value list once made a 5.8 MB message).
QUOTE_CHARS = 80


def brief(value: object, limit: int = QUOTE_CHARS) -> str:
    """``repr(value)`` for a message, at most about ``limit`` characters; a longer value is cut with
    an ellipsis and its size, so '…' never hides how big the input was. Bounded time on any value."""
    import reprlib

    if isinstance(value, str):
        return repr(value) if len(value) <= limit else f"{value[:limit]!r}… ({len(value):,} characters)"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 4 * limit:
        return f"a whole number of about {int(value.bit_length() * 0.30103):,} digits"  # repr may refuse it
    short = reprlib.Repr()
    short.maxlevel, short.maxstring, short.maxother, short.maxlong = 3, limit // 2, limit, limit
    short.maxlist = short.maxtuple = short.maxdict = short.maxset = 8
    text = short.repr(value)
    if len(text) > limit:
        text = text[:limit] + "…"
    if isinstance(value, (list, tuple, dict, set)) and len(value) > 8:
        text += f" ({len(value):,} items)"
    return text


def brief_names(names: object, most: int = 10) -> str:
    """Names (e.g. unknown keys) joined with commas: at most ``most`` of them, each cut by :func:`brief`."""
    items = [n if isinstance(n, str) and len(n) <= QUOTE_CHARS else brief(n) for n in names]  # type: ignore[attr-defined]
    shown = ", ".join(str(n) for n in items[:most])
    return shown + (f" … ({len(items) - most:,} more)" if len(items) > most else "")


def cap_message(text: str, limit: int = 600) -> str:
    """A whole message cut to about ``limit`` characters (the last guard before a user sees it)."""
    if len(text) <= limit:
        return text
    return f"{text[: limit - 100]} … [{len(text):,} characters in all] … {text[-80:]}"
