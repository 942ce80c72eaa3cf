"""Screenshots of issue 18's views on real numbers: the results with published points, the
sensitivity heatmap with a mixed-precision plan, the disagreement explorer and the budget row.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/make_analysis_screenshots.py --db DB

DB is a results database holding a fine-tuned variant with sensitivity maps, e.g. the one
`benchmarks/bench_sensitivity.py --db DB` leaves (nothing is run or measured here).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--size", default="1600x1000")
    args = parser.parse_args()
    os.environ["WORKBENCH_HOME"] = tempfile.mkdtemp(prefix="wb-shots-analysis-")
    os.environ["WORKBENCH_DB"] = str(Path(args.db).resolve())
    from PySide6.QtCore import QItemSelectionModel, Qt

    from docs.camera import Camera

    camera = Camera(pause=0.8)
    app, settle, shot = camera.app, camera.settle, camera.shot
    from workbench.main_window import MainWindow

    width, height = (int(v) for v in args.size.split("x"))

    w = MainWindow(load_initial=False)
    w.resize(width, height)
    w.show()
    settle(1.0)
    view = w.results
    view.refresh()
    view.wait_loaded()
    w.resizeDocks([w.run_dock], [120], Qt.Orientation.Vertical)
    w.tabs.setCurrentWidget(view)
    view.run_combo.setCurrentIndex(0)  # all runs
    settle(1.0)
    rows = view.visible_rows()
    tuned = next(r for r in rows if r.get("step_id") == "finetune")
    quantized = [r for r in rows if r.get("step_id") == "quantize.linear_nbit"]
    flags = QItemSelectionModel.SelectionFlag
    model = view.table.selectionModel()
    model.clearSelection()
    for i, row in enumerate(view.visible_rows()):
        if row["variant"] == tuned["variant"]:
            model.select(view.proxy.index(i, 0), flags.Select | flags.Rows)
    shot(w, "12_results_published_points")

    # The benchmark's plan map (the finished map with the most widths) may hang on a cached copy of
    # the fine-tuned variant that the results table folds into the row it was reused from.
    from core.store import open_store, sensitivity_maps

    with open_store(Path(args.db)) as store:
        finished_maps = [m for m in sensitivity_maps(store) if m.status == "finished"]
    best = max(finished_maps, key=lambda m: (sum(t.startswith("nbit:") for t in m.transforms), m.id), default=None)
    mapped = tuned if best is None else {**tuned, "variant": best.variant_id}
    dialog = w.open_sensitivity(mapped)
    dialog.resize(1100, 860)
    combo = dialog.view.map_combo
    finished = [i for i in range(combo.count()) if "finished" in combo.itemText(i)]
    if finished:  # the finished map with the most widths to plan from
        combo.setCurrentIndex(max(finished, key=lambda i: (combo.itemText(i).count("nbit:"), i)))
    dialog.view.objective_combo.setCurrentIndex(dialog.view.objective_combo.findData("target_mb"))
    six = next((r for r in quantized if (r.get("swept") or {}).get("bits") == 6), None)
    if six is not None:
        dialog.view.budget_spin.set_value(round(float(six["size_mb"]), 2))
        dialog.view.update_plan()
    five = dialog.view.min_bits_combo.findData(5)
    if five >= 0:  # as benchmarks/bench_sensitivity.py plans (--min-bits 5)
        dialog.view.min_bits_combo.setCurrentIndex(five)
    settle(1.0)
    shot(dialog, "13_sensitivity_heatmap")
    dialog.done(0)

    if len(quantized) >= 2:
        pair = [tuned, min(quantized, key=lambda r: r.get("metric") or 0.0)]
        explorer = w.open_disagreements(pair)
        explorer.resize(1300, 860)
        end = time.monotonic() + 120
        while explorer.report is None and time.monotonic() < end and "Cannot" not in explorer.summary.text():
            settle(0.5)
        shot(explorer, "14_disagreements")
        explorer.done(0)

    w.tabs.setCurrentIndex(0)
    w.side_tabs.setCurrentWidget(w.recipe_panel)
    w.recipe_panel.budget_editor.check.setChecked(True)
    shot(w, "15_recipe_budget")
    w.undo.setClean()
    w.close()
    app.quit()
    os._exit(0)  # skip interpreter teardown (Qt objects owned by C++ and Python both)


if __name__ == "__main__":
    main()
