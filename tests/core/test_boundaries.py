"""The engine runs headless: importing every core module never loads Qt or the workbench."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import core


def _core_modules() -> list[str]:
    return [m.name for m in pkgutil.walk_packages(core.__path__, "core.")]


def test_core_modules_exist() -> None:
    assert "core.models" in _core_modules()
    assert "core.steps.base" in _core_modules()


def test_importing_all_of_core_loads_no_gui() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {_core_modules()!r}:\n"
        "    if name.endswith('__main__'): continue\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'workbench'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"core imported GUI modules: {out.stdout}"


def test_no_pickle_loading_in_sources() -> None:
    import pathlib
    import re

    root = pathlib.Path(core.__path__[0]).parent
    offenders = []
    for path in list((root / "core").rglob("*.py")) + list((root / "workbench").rglob("*.py")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if re.search(r"pickle\.loads?\(|torch\.load\(", line) and "weights_only=True" not in line:
                offenders.append(f"{path}: {line.strip()}")
    assert offenders == []
