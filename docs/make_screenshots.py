"""Screenshots of the real window, reproducibly: empty, chain being edited, run in progress, results.

    xvfb-run -a -s "-screen 0 1400x900x24" python docs/make_screenshots.py

Runs a real (small) chain on the packaged all-MiniLM-L6-v2 through the worker, in a temporary
WORKBENCH_HOME, so the screenshots show real numbers. Takes a few minutes on a laptop CPU.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screenshots"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# --results-only HOME: retake the results screenshot from an earlier run's WORKBENCH_HOME.
RESULTS_ONLY = sys.argv[2] if len(sys.argv) > 2 and sys.argv[1] == "--results-only" else None
os.environ["WORKBENCH_HOME"] = RESULTS_ONLY or tempfile.mkdtemp(prefix="wb-shots-")
print("WORKBENCH_HOME", os.environ["WORKBENCH_HOME"], flush=True)
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])


def main() -> None:
    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv[:1])
    from core import protocol
    from core.recipe import Chain, ChainEntry, MeasureSettings, Recipe
    from workbench.icons import icon
    from workbench.main_window import MainWindow

    app.setWindowIcon(icon("workbench"))
    OUT.mkdir(parents=True, exist_ok=True)

    def settle(seconds: float = 0.6) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.01)

    def shot(window: MainWindow, name: str) -> None:
        settle()
        window.grab().save(str(OUT / f"{name}.png"))
        print("wrote", OUT / f"{name}.png", flush=True)

    w = MainWindow(load_initial=False)
    w.resize(1360, 860)
    w.show()
    if RESULTS_ONLY:
        return results_shot(app, w, shot, settle)
    w.set_document(Recipe(model="all-MiniLM-L6-v2", task="sst2"))
    shot(w, "01_empty")

    # Chain being edited: the TinyBERT-style chain, the pruning step selected with a sweep.
    finetune = ChainEntry.default("finetune")
    for name, value in {"epochs": 1.0, "train_size": 400, "max_length": 64, "batch_size": 16}.items():
        finetune = finetune.with_value(name, value)
    doc = Recipe(name="MiniLM on SST-2: fine-tune, prune sweep, int8", model="all-MiniLM-L6-v2", task="sst2",
                 chain=Chain((finetune, ChainEntry.default("prune.global_magnitude").with_value("amount", [0.1, 0.3, 0.5]),
                              ChainEntry.default("quantize.dynamic_int8"))),
                 measure=MeasureSettings(eval_limit=300, eval_batch_size=32, max_length=64, latency_batch_size=8,
                                         latency_seq_len=64, latency_warmup=2, latency_repeats=8))
    w.set_document(doc)
    w._select(1)
    w.editor.fields["amount"].sweep_edit.setFocus()
    shot(w, "02_chain_editing")

    # Run in progress: capture while the second step works.
    w.run_dock.raise_()
    seen: dict[str, bool] = {}

    def on_event(event: object) -> None:
        if isinstance(event, protocol.Progress) and event.index == 1 and event.fraction > 0.3:
            seen["mid"] = True

    w.run_panel.client.event.connect(on_event)
    w.run()
    t0 = time.monotonic()
    while not seen.get("mid") and w.run_panel.is_running() and time.monotonic() - t0 < 900:
        settle(0.2)
    shot(w, "03_run_in_progress")
    while w.run_panel.is_running() and time.monotonic() - t0 < 1800:
        settle(0.5)
    outcome = w.run_panel.last_outcome
    print("run:", outcome.message() if outcome else "timeout", flush=True)
    results_shot(app, w, shot, settle)


def results_shot(app, w, shot, settle) -> None:  # type: ignore[no-untyped-def]
    """Results with charts: two variants selected for side-by-side comparison."""
    from PySide6.QtCore import Qt, QTimer

    w.results.refresh()
    w.results.wait_loaded()
    w.resizeDocks([w.run_dock], [150], Qt.Orientation.Vertical)
    w.palette_dock.hide()
    w.tabs.setCurrentWidget(w.results)
    settle(1.0)
    w.results.table.selectRow(0)
    from PySide6.QtCore import QItemSelectionModel

    last = w.results.proxy.rowCount() - 1
    w.results.table.selectionModel().select(
        w.results.proxy.index(last, 0), QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows)
    w.results.table.resizeColumnsToContents()
    shot(w, "04_results")
    w.undo.setClean()
    QTimer.singleShot(0, app.quit)
    app.exec()
    os._exit(0)  # skip interpreter teardown (Qt objects owned by C++ and Python both)


if __name__ == "__main__":
    main()
