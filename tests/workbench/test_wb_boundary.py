"""The GUI process never imports torch, transformers or datasets (DESIGN.md boundary 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_CODE = """
import sys
from PySide6.QtWidgets import QApplication
app = QApplication([])
from workbench.main_window import MainWindow
w = MainWindow()
w.show()
for _ in range(5):
    app.processEvents()
w.results.refresh()
assert w.results.wait_loaded(60_000)  # the threaded results query has landed
w.tabs.setCurrentIndex(1)
w.results.charts  # built on first show: pyqtgraph and numpy, not torch
w.validate()
assert w.confirm_run_size()  # the run estimate Run asks for: the default recipe is small, and torch-free
for _ in range(20):
    app.processEvents()
heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'datasets'))
print('HEAVY:' + ','.join(heavy))
steps = sum(w.palette.topLevelItem(i).childCount() for i in range(w.palette.topLevelItemCount()))
from core.steps import all_steps
print(f'STEPS:{steps} of {len(all_steps())}')
w.undo.setClean()
"""


def test_building_and_showing_the_main_window_leaves_torch_out(tmp_path: Path) -> None:
    # A subprocess: other tests in this session may have imported torch already.
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "WORKBENCH_HOME": str(tmp_path),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", _CODE], capture_output=True, text=True, env=env, timeout=120,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "malformed" not in out.stderr, out.stderr  # Qt: "shared QObject was deleted directly" at exit
    heavy = next(line for line in out.stdout.splitlines() if line.startswith("HEAVY:"))
    # If this fails, a step or task module imports torch/transformers/datasets at module level:
    # the names listed say which package leaked; `python -X importtime` shows which module did it.
    assert heavy == "HEAVY:", heavy
    (steps,) = [line for line in out.stdout.splitlines() if line.startswith("STEPS:")]
    shown, _, registered = steps.removeprefix("STEPS:").partition(" of ")
    assert int(shown) == int(registered) >= 8  # the palette listed every registered step


def test_workbench_sources_import_no_heavy_package_anywhere() -> None:
    """Not even lazily: no import statement of torch/transformers/datasets in workbench/."""
    import re

    offenders = []
    for path in (ROOT / "workbench").rglob("*.py"):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.match(r"\s*(import|from)\s+(torch|transformers|datasets)\b", line):
                offenders.append(f"{path.name}:{n}: {line.strip()}")
    assert offenders == []
