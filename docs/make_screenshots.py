"""Screenshots of the real window, reproducibly, at 1600x1000, 1024x700 and 150 % scale.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/make_screenshots.py

Runs a real (small) chain on the packaged all-MiniLM-L6-v2 through the worker, in a temporary
WORKBENCH_HOME, so the screenshots show real numbers: fine-tune on 2,000 SST-2 sentences, a
pruning sweep, int8. Takes about ten minutes on two CPU cores. Then the same results are shown in
a 1024x700 window and at 150 % scale (QT_SCALE_FACTOR=1.5 on the 1600x1000 screen), each in its
own process (the scale is fixed when Qt starts).

    --home DIR --size WxH --prefix NAME    only the static shots, from DIR's results (no run)
    --home DIR --full                      every results shot from DIR's results, then the other sizes
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", help="reuse this WORKBENCH_HOME's results; run nothing")
    parser.add_argument("--size", default="1600x1000")
    parser.add_argument("--prefix", default="")
    parser.add_argument("--full", action="store_true", help="with --home: every results shot, as after a run")
    return parser.parse_args()


def main() -> None:
    args = _args()
    os.environ["WORKBENCH_HOME"] = args.home or tempfile.mkdtemp(prefix="wb-shots-")
    print("WORKBENCH_HOME", os.environ["WORKBENCH_HOME"], flush=True)
    from docs.camera import Camera

    camera = Camera(prefix=args.prefix, pause=0.6)
    app, settle, shot = camera.app, camera.settle, camera.shot
    from workbench.icons import icon
    from workbench.main_window import MainWindow

    app.setWindowIcon(icon("workbench"))
    width, height = (int(v) for v in args.size.split("x"))

    w = MainWindow()
    w.resize(width, height)
    w.show()
    settle(1.0)
    if args.home:
        static_shots(w, shot, settle, full=args.full)
    else:
        run_and_shoot(w, shot, settle)
    w.undo.setClean()
    w.run_panel.stop_for_close()  # a run that outlived the wait: stopped, resumable, no question asked
    w.close()
    app.quit()
    if not args.home or args.full:
        for extra, env in (("--size 1024x700 --prefix 1024x700_", {}),
                           ("--size 1066x666 --prefix scale150_", {"QT_SCALE_FACTOR": "1.5"})):
            subprocess.run([sys.executable, __file__, "--home", os.environ["WORKBENCH_HOME"], *extra.split()],
                           env={**os.environ, **env}, check=True)
    os._exit(0)  # skip interpreter teardown (Qt objects owned by C++ and Python both)


def run_and_shoot(w, shot, settle) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import Qt

    from core import protocol
    from core.recipe import Chain, ChainEntry, MeasureSettings, Recipe

    shot(w, "01_first_start")
    finetune = ChainEntry.default("finetune")
    for name, value in {"epochs": 1.0, "train_size": 2000, "max_length": 64, "batch_size": 32}.items():
        finetune = finetune.with_value(name, value)
    doc = Recipe(name="MiniLM on SST-2: fine-tune, prune sweep, int8", model="all-MiniLM-L6-v2", task="sst2",
                 description="Fine-tune on 2,000 SST-2 sentences, prune 10/30/50 % of the weights, then int8.",
                 chain=Chain((finetune, ChainEntry.default("prune.global_magnitude").with_value("amount", [0.1, 0.3, 0.5]),
                              ChainEntry.default("quantize.dynamic_int8"))),
                 measure=MeasureSettings(eval_limit=400, eval_batch_size=32, max_length=64, latency_batch_size=8,
                                         latency_seq_len=64, latency_warmup=2, latency_repeats=10))
    w.set_document(doc)
    # A value the step cannot take, as typed: marked on the field and the row, before anything runs.
    w._select(1)
    amount = w.editor.fields["amount"]
    amount.sweep_edit.setText("0.1, 0.3, 1.5")
    amount.sweep_edit.editingFinished.emit()
    shot(w, "02_chain_invalid_value")
    amount.sweep_edit.setText("0.1, 0.3, 0.5")
    amount.sweep_edit.editingFinished.emit()
    w.side_tabs.setCurrentWidget(w.data_panel)
    w.data_panel.wait_loaded()
    shot(w, "03_data_preview")
    w.side_tabs.setCurrentWidget(w.recipe_panel)
    shot(w, "04_recipe_and_measurement")
    w.side_tabs.setCurrentWidget(w.editor)

    # Run in progress: capture while fine-tuning draws its curves, then during the sweep.
    seen: dict[str, bool] = {}

    def on_event(event: object) -> None:
        if isinstance(event, protocol.Curve) and event.step >= 30:
            seen["curves"] = True
        if isinstance(event, protocol.Progress) and event.index == 2 and event.fraction > 0.3:
            seen["sweep"] = True

    w.run_panel.client.event.connect(on_event)
    w.run()
    t0 = time.monotonic()
    while not seen.get("curves") and w.run_panel.is_running() and time.monotonic() - t0 < 1200:
        settle(0.2)
    w.run_panel.side.setCurrentIndex(1)
    shot(w, "05_run_training_curves")
    w.run_panel.side.setCurrentIndex(0)
    while not seen.get("sweep") and w.run_panel.is_running() and time.monotonic() - t0 < 2400:
        settle(0.2)
    shot(w, "06_run_in_progress")
    while w.run_panel.is_running() and time.monotonic() - t0 < 3600:
        settle(0.5)
    outcome = w.run_panel.last_outcome
    print("run:", outcome.message() if outcome else "timeout", flush=True)
    static_shots(w, shot, settle, full=True)
    w.resizeDocks([w.run_dock], [170], Qt.Orientation.Vertical)


def static_shots(w, shot, settle, *, full: bool) -> None:  # type: ignore[no-untyped-def]
    """The chain, the results with charts (two rows compared), and with --full the other charts,
    the run manager and the dark theme."""
    from PySide6.QtCore import QItemSelectionModel, Qt

    w.tabs.setCurrentIndex(0)
    if not full:
        runs = w.results
        runs.refresh()
        runs.wait_loaded()
        rows = runs.rows
        if rows:
            w.load_run_recipe(rows[-1]["run"])
            settle(1.5)
        shot(w, "chain")
    view = w.results
    view.refresh()
    view.wait_loaded()
    w.resizeDocks([w.run_dock], [150], Qt.Orientation.Vertical)
    w.tabs.setCurrentWidget(view)
    settle(1.0)
    flags = QItemSelectionModel.SelectionFlag
    best = next(iter(view.best.values()), None)
    model = view.table.selectionModel()
    model.clearSelection()
    for i, row in enumerate(view.visible_rows()):
        if row.get("step") == 0 or (best is not None and row["variant"] == best["variant"]):
            model.select(view.proxy.index(i, 0), flags.Select | flags.Rows)
    shot(w, "07_results" if full else "results")
    if not full:
        return
    for name in ("latency", "steps", "sweeps"):
        view.charts.setCurrentWidget(view.charts.charts()[name])
        settle(0.5)
        shot(w, f"08_results_{name}")
    finetuned = next((r for r in view.visible_rows() if r.get("step_id") == "finetune"), None)
    if finetuned is not None:
        view.select_variant(finetuned["variant"])
        view.charts.setCurrentWidget(view.charts.curves)
        settle(1.5)
        shot(w, "09_results_training_curves")
    # The Recipe tab of the run's recipe (name, description, seeds, measurement settings). The edited recipe
    # counts as saved, or loading another one first asks whether to save it (a modal question no one answers).
    w.undo.setClean()
    w.load_run_recipe(view.rows[-1]["run"])
    settle(1.5)
    w.tabs.setCurrentIndex(0)
    w.side_tabs.setCurrentWidget(w.recipe_panel)
    shot(w, "04_recipe_and_measurement")
    w.side_tabs.setCurrentWidget(w.editor)
    w.tabs.setCurrentWidget(view)
    dialog = w.manage_runs(None)
    dialog.wait_idle()
    settle(0.5)
    shot(dialog, "10_runs")
    dialog.close()
    # A large sweep is confirmed before it starts (core.recipe.run_estimate, as the CLI's --yes).
    import dataclasses

    from core.recipe import Chain, ChainEntry, run_estimate

    amounts = [round(0.05 * i, 2) for i in range(1, 16)]
    prune = ChainEntry.default("prune.global_magnitude").with_value("amount", amounts)
    big = dataclasses.replace(w.document.recipe, chain=Chain((prune, prune)))  # 1 + 15 + 225 variants
    estimate = run_estimate(big, w.settings.artifacts_dir())
    box = w.large_run_box(estimate.reasons(), estimate.summary())
    box.show()
    shot(box, "12_large_run_confirm")
    box.close()
    view.charts.setCurrentIndex(0)
    w.set_theme("dark")
    settle(0.8)
    shot(w, "11_results_dark")
    w.set_theme("system")


if __name__ == "__main__":
    main()
