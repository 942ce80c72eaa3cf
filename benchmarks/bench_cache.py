"""Prefix cache: re-running a 3-step recipe whose first two steps are unchanged vs the cold run.

Target: the re-run is at least 10x faster (benchmarks/published.py). Recipe on the packaged
default model and SST-2: finetune (2,000 examples, as the shipped TinyBERT recipe) ->
prune.global_magnitude 0.3 -> quantize.dynamic_int8. Runs, in one process, each through the
runner (benchmarks/study.py) into the same fresh database:
  1. cold: everything computed;
  2. warm, step 3 changed (per_channel flipped): baseline and steps 1-2 come from the cache;
  3. warm, identical recipe: every variant from the cache.
Each run hashes the model and data files afresh (the runner's file hasher lives for one run), as a
fresh worker does; interpreter start and imports, the same for any run, are timed separately.
Writes JSON + Markdown to benchmarks/results/.

    python benchmarks/bench_cache.py [--train-size 2000] [--threads N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.published import TARGETS  # noqa: E402
from benchmarks.report import write_section  # noqa: E402
from benchmarks.study import Study, environment, quiet_libraries  # noqa: E402

TARGET = TARGETS["cache_speedup"]
STEPS = ("finetune", "prune.global_magnitude", "quantize.dynamic_int8")


def recipe(train_size: int, threads: int | None, per_channel: bool) -> dict:
    return {
        "format": 1,
        "name": "bench_cache",
        "model": "all-MiniLM-L6-v2",
        "task": "sst2",
        "seed": 0,
        "measure": {"eval_limit": 200, "eval_batch_size": 32, "max_length": 64, "latency_batch_size": 8,
                    "latency_seq_len": 64, "latency_warmup": 2, "latency_repeats": 10, "threads": threads},
        "chain": [
            {"step": "finetune", "config": {"epochs": 1.0, "batch_size": 32, "max_length": 64,
                                            "train_size": train_size}},
            {"step": "prune.global_magnitude", "config": {"amount": 0.3}},
            {"step": "quantize.dynamic_int8", "config": {"per_channel": per_channel}},
        ],
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train-size", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()

    quiet_libraries()
    from core.steps import is_registered

    missing = [s for s in STEPS if not is_registered(s)]
    if missing:
        print(f"bench_cache: step(s) not registered: {', '.join(missing)}", file=sys.stderr)
        return 2

    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, transformers, core.run.runner"], check=True, cwd=ROOT)
    startup_s = time.perf_counter() - t0

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        study = Study(Path(tmp) / "bench.sqlite")
        plan = [("cold", True), ("warm: step 3 changed", False), ("warm: identical", False)]
        for name, per_channel in plan:
            done = study.run(name, recipe(args.train_size, args.threads, per_channel))
            results[name] = {"seconds": round(done.seconds, 2), "cached": [r.cached for r in done.rows],
                             "run_id": done.run_id}
            print(f"{name}: {done.seconds:.1f} s, cached {results[name]['cached']}", file=sys.stderr)

    cold = results["cold"]["seconds"]
    for name in results:
        results[name]["speedup_vs_cold"] = round(cold / results[name]["seconds"], 1)
    changed = results["warm: step 3 changed"]["speedup_vs_cold"]
    report = {
        "benchmark": "bench_cache",
        "target_speedup": TARGET,
        "recipe": recipe(args.train_size, args.threads, True),
        "startup_seconds": round(startup_s, 2),
        "results": results,
        "meets_target": changed >= TARGET,
        "machine": environment(),
    }
    text = write_section("cache", report, Path(args.out) / "bench_cache.json")  # the same table as RESULTS.md
    print(text)
    return 0  # a missed target is a verdict in the report, not a failed benchmark


if __name__ == "__main__":
    sys.exit(main())
