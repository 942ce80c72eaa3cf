"""Icons from resources/icons, looked up by step category."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from PySide6.QtGui import QIcon


def icons_dir() -> Path:
    import resources

    return Path(next(iter(resources.__path__))) / "icons"


@cache
def icon(name: str) -> QIcon:
    path = icons_dir() / f"{name}.svg"
    return QIcon(str(path)) if path.is_file() else QIcon(str(icons_dir() / "step.svg"))


_CATEGORY_ICONS = {
    "training": "training",
    "fine-tuning": "training",
    "distillation": "distillation",
    "pruning": "pruning",
    "quantization": "quantization",
    "structure": "structure",
    "sharing": "structure",
    "vocabulary": "vocabulary",
    "sketching": "sketching",
}


def category_icon(category: str) -> QIcon:
    return icon(_CATEGORY_ICONS.get(category.lower(), "step"))
