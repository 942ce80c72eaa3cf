"""Run the whole benchmark suite and write benchmarks/RESULTS.md beside the published figures.

The suite (which scripts, their flags per mode, the subprocess runner) is benchmarks/suite.py;
the published figures and targets are benchmarks/published.py; the Markdown report is
benchmarks/report.py. This script ties them together:

    python benchmarks/run_all.py --quick            # smoke run, small sizes (results/quick/)
    python benchmarks/run_all.py --quick --budget-minutes 25   # never longer than that
    python benchmarks/run_all.py                    # full suite, reduced training sizes (results/)
    python benchmarks/run_all.py --only eval gui    # a subset
    python benchmarks/run_all.py --report-only [--results DIR]   # re-render from existing JSON

Quick runs write into benchmarks/results/quick/ (their report too) so they never overwrite a full
run's files.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.report import REPORT, write_report  # noqa: E402
from benchmarks.suite import (  # noqa: E402
    BENCHES,
    BY_KEY,
    DEFAULT_RESULTS,
    MANIFEST,
    QUICK_RESULTS,
    command,
    environment,
    now,
    rel,
    run_one,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke-test sizes (a few minutes on an idle machine)")
    parser.add_argument("--only", nargs="+", choices=list(BY_KEY), help="run only these benchmarks")
    parser.add_argument("--skip", nargs="+", choices=list(BY_KEY), default=[], help="leave these out")
    parser.add_argument("--report-only", action="store_true", help="do not run anything; render from existing JSON")
    parser.add_argument("--results", type=Path, default=None,
                        help="folder of the JSON (default: results/quick with --quick, else results)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write the Markdown report (default: benchmarks/RESULTS.md; with --quick "
                             "RESULTS.md in the quick results folder, so a smoke run never replaces the full report)")
    parser.add_argument("--budget-minutes", type=float, default=None,
                        help="stop starting (and time out) benchmarks once this much wall time is spent")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    results = (args.results or (QUICK_RESULTS if args.quick else DEFAULT_RESULTS)).resolve()
    args.out = args.out or (results / "RESULTS.md" if args.quick else REPORT)
    manifest_path = results / MANIFEST

    if args.report_only:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.exists() else {
            "mode": mode, "command": "python benchmarks/run_all.py --report-only (no run manifest: existing JSON)",
            "results_dir": str(rel(results)), "environment": environment(), "started": now(), "finished": now()}
        print(write_report(results, manifest, args.out))
        return 0

    chosen = [b for b in BENCHES if (not args.only or b.key in args.only) and b.key not in args.skip]
    results.mkdir(parents=True, exist_ok=True)
    # a partial run keeps what the previous run of the same mode recorded about the other benchmarks
    earlier: dict[str, Any] = {}
    if args.only and manifest_path.exists():
        old = json.loads(manifest_path.read_text(encoding="utf-8"))
        if old.get("mode") == mode:
            earlier = {k: v for k, v in old.get("benches", {}).items() if k not in {b.key for b in chosen}}
    manifest = {
        "mode": mode,
        "command": shlex.join(["python", "benchmarks/run_all.py", *(sys.argv[1:] if argv is None else argv)]),
        "results_dir": str(rel(results)),
        "started": now(),
        "load_average": {"start": round(os.getloadavg()[0], 1)},
        "environment": environment(),
        "benches": dict(earlier),
    }
    deadline = None if args.budget_minutes is None else time.monotonic() + 60 * args.budget_minutes
    manifest["budget_minutes"] = args.budget_minutes
    for bench in chosen:
        print(f"[{now()}] {bench.key}: {shlex.join(command(bench, mode, results))}", flush=True)
        left = None if deadline is None else deadline - time.monotonic()
        entry = run_one(bench, mode, results, results / "logs", left)
        manifest["benches"][bench.key] = entry
        print(f"[{now()}] {bench.key}: {entry['status']} in {entry['seconds']:.0f} s", flush=True)
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    manifest["finished"] = now()
    manifest["load_average"]["end"] = round(os.getloadavg()[0], 1)
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    print(write_report(results, manifest, args.out))
    failed = [k for k, e in manifest["benches"].items() if not e["output_written"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
