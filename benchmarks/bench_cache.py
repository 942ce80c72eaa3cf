"""Prefix cache: re-running a 3-step recipe whose first two steps are unchanged vs the cold run.

Target: the re-run is at least 10x faster. Recipe on the packaged default model and SST-2:
finetune (2,000 examples, as the shipped TinyBERT recipe) -> prune.global_magnitude 0.3 -> quantize.dynamic_int8. Runs, in one
process, each into the same fresh database:
  1. cold: everything computed;
  2. warm, step 3 changed (per_channel flipped): baseline and steps 1-2 come from the cache;
  3. warm, identical recipe: every variant from the cache.
The in-process file-hash memo is cleared before each run so each pays what a fresh worker pays
(hashing the model and data); interpreter start and imports, the same for any run, are timed
separately. Writes JSON + Markdown to benchmarks/results/.

    python benchmarks/bench_cache.py [--train-size 2000] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TARGET = 10.0
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

    from core import runner
    from core.steps.base import _REGISTRY, discover

    discover()
    missing = [s for s in STEPS if s not in _REGISTRY]
    if missing:
        print(f"bench_cache: step(s) not registered yet: {', '.join(missing)}", file=sys.stderr)
        return 2

    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, transformers, core.run.runner"], check=True, cwd=ROOT)
    startup_s = time.perf_counter() - t0

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.sqlite"
        plan = [("cold", True), ("warm: step 3 changed", False), ("warm: identical", False)]
        for name, per_channel in plan:
            runner._file_hash_cache.clear()
            events: list[dict] = []
            t0 = time.perf_counter()
            outcome = runner.run_recipe(recipe(args.train_size, args.threads, per_channel), db_url_or_path=db,
                                        artifacts_dir=Path(tmp) / "artifacts",
                                        emit=lambda kind, /, _sink=events, **f: _sink.append({"type": kind, **f}))
            seconds = time.perf_counter() - t0
            if outcome.status != "finished":
                print(f"bench_cache: {name} run {outcome.status}: {outcome.error}", file=sys.stderr)
                return 1
            finished = [e for e in events if e["type"] == "step_finished"]
            results[name] = {"seconds": round(seconds, 2),
                             "cached": [bool(e["cached"]) for e in finished],
                             "step_seconds": [e["seconds"] for e in finished]}
            print(f"{name}: {seconds:.1f} s, cached {results[name]['cached']}", file=sys.stderr)

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
        "machine": runner._environment(runner.Recipe.from_dict(recipe(args.train_size, args.threads, True))),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_cache.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    lines = [
        "# Prefix cache: re-run of a 3-step recipe (finetune -> prune 0.3 -> dynamic int8) vs cold",
        "",
        f"Target: >= {TARGET:.0f}x faster when the first two steps are unchanged. MiniLM-L6, SST-2, "
        f"train_size {args.train_size}, eval 200 examples. Interpreter start + imports (same for every run, "
        f"not included below): {startup_s:.1f} s.",
        "",
        "| run | seconds | speedup vs cold | variants from cache |",
        "|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(f"| {name} | {r['seconds']:.1f} | {r['speedup_vs_cold']:.1f}x | "
                     f"{sum(r['cached'])}/{len(r['cached'])} |")
    (out / "bench_cache.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if changed >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
