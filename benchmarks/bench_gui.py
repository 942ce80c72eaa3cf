"""GUI benchmarks: launch to an interactive window, GUI-thread stalls during a real run, chart
redraw with 1,000 variants. Writes benchmarks/results/gui.json and gui.md.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_gui.py [--repeats 5] [--no-run]

Targets (issue 7, benchmarks/published.py): launch to an interactive window; max GUI-thread gap during
a run (10 ms timer probe); charts fluid with 1,000 variants. Timings on a shared 2-core machine are noisy: medians are reported.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"

from benchmarks.published import TARGETS  # noqa: E402
from benchmarks.report import write_section  # noqa: E402

_KEEP: list = []

_LAUNCH = r"""
import sys, time
t_import = time.time()
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
app = QApplication(sys.argv)
from workbench.main_window import MainWindow
w = MainWindow()
w.show()
def ready():
    print(f"READY {time.time():.6f} {t_import:.6f}", flush=True)
    w.undo.setClean()
    app.quit()
QTimer.singleShot(0, ready)  # fires once the event loop runs: the window answers input from here
app.exec()
"""


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "WORKBENCH_HOME": str(home), "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen"),
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def bench_launch(repeats: int) -> dict:
    """Wall time from spawning a fresh interpreter to the first event-loop turn after show()."""
    times, interp = [], []
    with tempfile.TemporaryDirectory() as home:
        for _ in range(repeats):
            t0 = time.time()
            out = subprocess.run([sys.executable, "-c", _LAUNCH], capture_output=True, text=True, env=_env(Path(home)),
                                 cwd=ROOT, timeout=120)
            line = next(x for x in out.stdout.splitlines() if x.startswith("READY"))
            ready, started = map(float, line.split()[1:])
            times.append(ready - t0)
            interp.append(started - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "interpreter_start_median_s": statistics.median(interp), "repeats": repeats, "target_s": TARGETS["launch_s"]}


def synthetic_rows(n: int, seed: int = 0) -> list[dict]:
    """n variants as the results view receives them (core.store.ResultRow dicts), in runs of 10:
    a baseline and a pruning sweep, for timing. Fields this benchmark does not vary stay empty."""
    import dataclasses

    from core.store import ResultRow

    def blank(f: dataclasses.Field) -> object:
        if f.default is not dataclasses.MISSING:
            return f.default
        return [] if f.name == "flags" else {} if f.name in ("swept", "task_metrics", "task_intervals") else None

    empty = {f.name: blank(f) for f in dataclasses.fields(ResultRow)}
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        run, index = i // 10 + 1, i % 10
        mb = 90.0 * (1 - 0.08 * index) * rng.uniform(0.9, 1.1)
        metric = 0.91 - 0.004 * index * rng.random()
        p50 = 40 * (1 - 0.03 * index) * rng.uniform(0.9, 1.1)
        amount = round(0.05 * index, 2)
        row = empty | {
            "run": run, "variant": i + 1, "parent": None if index == 0 else run * 10 - 9, "step": 0 if index == 0 else 1,
            "step_id": "baseline" if index == 0 else "prune.global_magnitude",
            "label": "baseline" if index == 0 else f"prune.global_magnitude(amount={amount})", "cached": False,
            "model": "all-MiniLM-L6-v2", "task": "sst2", "swept": {} if index == 0 else {"amount": amount},
            "metric_name": "accuracy", "metric": metric, "pct_baseline": 100 * metric / 0.91,
            "task_metrics": {"accuracy": metric}, "params": 22_700_000,
            "nonzero_params": int(22_700_000 * (1 - amount)), "size_mb": mb, "size_ratio": 90 / mb,
            "pct_smaller": 100 * (1 - mb / 90), "latency_p50_ms": p50, "latency_p90_ms": p50 * 1.15,
            "speedup": 40 / p50,
        }
        rows.append(ResultRow(**row).to_dict())
    return rows


def bench_charts(n: int = 1000, repeats: int = 10) -> dict:
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    from workbench._refcount_guard import guard_none_refcount
    from workbench.charts import Charts

    guard_none_refcount()
    rows = synthetic_rows(n)
    charts = Charts()
    charts.resize(1000, 700)
    charts.show()
    app.processEvents()
    redraw = []
    for _ in range(repeats):
        t = time.perf_counter()
        charts.update_rows(rows, run_id=None)
        charts.repaint()
        app.processEvents()
        redraw.append((time.perf_counter() - t) * 1000)
    vb = charts.scatter_plot.getPlotItem().getViewBox()
    pan = []
    for k in range(repeats):
        t = time.perf_counter()
        vb.setXRange(k, 60 + k, padding=0)
        charts.scatter_plot.repaint()
        app.processEvents()
        pan.append((time.perf_counter() - t) * 1000)
    # Table: model reset + sort over n rows
    from workbench.results import ResultsView
    from workbench.settings import Settings

    home = tempfile.mkdtemp(prefix="wb-bench-")
    view = ResultsView(Settings(Path(home) / "s.ini"))
    view.resize(1300, 800)
    view.show()
    t = time.perf_counter()
    view.set_rows(rows)
    view.table.sortByColumn(2, view.table.horizontalHeader().sortIndicatorOrder())
    app.processEvents()
    table_ms = (time.perf_counter() - t) * 1000
    # Keep the widgets alive (hidden) until exit: pyqtgraph items collected mid-paint crash.
    charts.hide()
    view.hide()
    _KEEP.extend([charts, view])
    return {"variants": n, "full_redraw_median_ms": statistics.median(redraw), "full_redraw_max_ms": max(redraw),
            "pan_zoom_median_ms": statistics.median(pan), "table_fill_sort_charts_ms": table_ms, "repeats": repeats}


def bench_run_stall(timeout_s: float = 600) -> dict:
    """Max gap between 10 ms timer ticks on the GUI thread while the real worker runs a chain."""
    from PySide6.QtCore import QElapsedTimer, QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    home = Path(tempfile.mkdtemp(prefix="wb-bench-"))
    os.environ["WORKBENCH_HOME"] = str(home)
    model = _tiny_model(home)
    from core.recipe import Recipe
    from workbench.main_window import MainWindow

    w = MainWindow(load_initial=False)
    w.show()
    recipe = Recipe.from_dict({  # the window's document is this recipe; its worker is core.run.worker
        "model": str(model), "task": "sst2",
        "measure": {"eval_limit": 64, "latency_repeats": 5, "latency_seq_len": 32, "max_length": 32},
        "chain": [{"step": "prune.global_magnitude", "config": {"amount": 0.3}},
                  {"step": "quantize.dynamic_int8", "config": {}}],
    })
    w.set_document(recipe)
    # Start as a user would: once the window is painted and its start-up query has landed.
    landed: list[bool] = []
    w.results.refreshed.connect(lambda: landed.append(True))
    t0 = time.monotonic()
    while not landed and time.monotonic() - t0 < 60:
        app.processEvents()
        time.sleep(0.005)
    gaps: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.nsecsElapsed()]

    def probe() -> None:
        now = clock.nsecsElapsed()
        gaps.append((now - last[0]) / 1e6)
        last[0] = now

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(probe)
    timer.start()
    t0 = time.monotonic()
    w.run()
    while (w.run_panel.is_running() or w.run_panel.last_outcome is None) and time.monotonic() - t0 < timeout_s:
        app.processEvents()
        time.sleep(0.001)
    timer.stop()
    outcome = w.run_panel.last_outcome
    w.undo.setClean()
    w.close()
    gaps = gaps[1:] or [0.0]
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "datasets"))
    return {"gui_process_heavy_modules": heavy, "run_seconds": time.monotonic() - t0, "outcome": outcome.status if outcome else "timeout",
            "outcome_message": outcome.message()[:300] if outcome else "",
            "ticks": len(gaps), "max_gap_ms": max(gaps), "p99_gap_ms": sorted(gaps)[int(0.99 * (len(gaps) - 1))],
            "median_gap_ms": statistics.median(gaps), "target_max_gap_ms": TARGETS["stall_ms"]}


def _tiny_model(home: Path) -> Path:
    """Built in a subprocess: this process plays the GUI, which never holds torch (its heap, GC
    pauses and import hooks would not be the GUI's)."""
    folder = home / "tiny"
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from tests.helpers import tiny_bert_folder; "
            "tiny_bert_folder(__import__('pathlib').Path(sys.argv[2]), layers=2, hidden=32)")
    subprocess.run([sys.executable, "-c", code, str(ROOT), str(folder)], check=True, capture_output=True, timeout=300)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-run", action="store_true", help="skip the run-stall measurement")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for gui.json/.md")
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    result = {"machine": platform.processor() or platform.machine(), "cores": os.cpu_count(),
              "python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    result["launch"] = bench_launch(args.repeats)
    result["charts"] = bench_charts()
    result["run_stall"] = {"skipped": "--no-run"} if args.no_run else bench_run_stall()
    text = write_section("gui", result, args.out / "gui.json")  # the same table as RESULTS.md
    print(text, flush=True)
    os._exit(0)  # skip interpreter teardown: PySide6 + pyqtgraph can crash while collecting at exit


if __name__ == "__main__":
    main()
