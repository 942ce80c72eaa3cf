"""Sensitivity map and automatic mixed precision on the packaged model fine-tuned on SST-2 (issue 18).

Targets:
1. A sensitivity map of 6 layers x 3 transforms (int8, nbit:6, prune:0.3) on 400 dev examples in at
   most 5 minutes on 2 cores. The map also has the embeddings and head rows (8 x 3 cells); its wall
   and CPU time are reported whole (a superset of the target's 18 cells) and per cell, with the load.
2. Automatic mixed precision either reaches a smaller artifact than uniform 8-bit at no more than
   uniform 8-bit's metric loss, or a better metric than uniform 6-bit at no more than 6-bit's size.
   Both are tried from a second map (nbit:4/5/6/8 on the same 400 examples), the planner reading
   each part's drop at the pessimistic end of its paired interval (core.analysis.mixed, default):
   plan A = the smallest assignment of widths <= 8 within the drop the map predicts for uniform
   8-bit; plan B = the least predicted drop within uniform 6-bit's measured bytes. Each plan is run
   through the engine and measured on the whole dev set (872) from its reloaded artifact, and set
   against its uniform rival by a paired interval on the same examples: the check of the combined
   assignment the per-part map cannot give. A plan that misses is tightened (its most uncertain
   part one width up, the plan made again) and measured again, at most --tighten rounds, all shown.

Everything runs through the engine (benchmarks/study.py: core.run.runner into one results database):
recipe 1 = the packaged model -> finetune (defaults, 2,000 sentences, 1 epoch) -> quantize.linear_nbit bits [8, 6];
the maps are measured on the fine-tuned variant (core.analysis.sensitivity, as `workbench-cli
sensitivity`); each plan is appended to the chain that made that variant (as `workbench-cli
mixed-precision`), so the fine-tune is reused from the cache, not trained again.
Writes benchmarks/results/bench_sensitivity.{json,md}; notes written by hand go in
benchmarks/results/bench_sensitivity.notes.md and are shown marked as such (--render redraws).

    python benchmarks/bench_sensitivity.py [--db PATH] [--reuse] [--threads 2] [--examples 400]
    python benchmarks/bench_sensitivity.py --reuse --stop-after-map      # time the map alone, then
    python benchmarks/bench_sensitivity.py --reuse --timed-map ID        # the plans, reporting that map
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MAP_TRANSFORMS = ["int8", "nbit:6", "prune:0.3"]
PLAN_TRANSFORMS = ["nbit:4", "nbit:5", "nbit:6", "nbit:8"]
TARGET_SECONDS = 300.0
# The finetune step's defaults except its budget: 2,000 sentences, one epoch (about 56 steps). The
# default 1,000-step budget, and even 8,000 sentences x 1 epoch (235 steps), took 14-15 s a step on the
# shared machine (load 14-15 from other jobs): about an hour instead of a few minutes.
FINETUNE = {"train_size": 2000, "epochs": 1.0}


def measure(threads: int) -> dict[str, Any]:
    return {"eval_limit": None, "eval_batch_size": 32, "max_length": 64, "latency_batch_size": 8, "latency_seq_len": 64,
            "latency_warmup": 1, "latency_repeats": 5, "threads": threads}


def load() -> float:
    return round(os.getloadavg()[0], 2)


def row_of(store: Any, run_id: int, label_prefix: str) -> Any:
    from core.store import result_rows

    return next(r for r in result_rows(store, run_ids=[run_id]) if r.label.startswith(label_prefix))


def pts(x: float | None) -> float | None:
    return None if x is None else round(100 * x, 2)


def row_summary(r: Any) -> dict[str, Any]:
    return {"variant": r.variant, "label": r.label, "accuracy": pts(r.metric), "ci": [pts(r.metric_ci_low), pts(r.metric_ci_high)],
            "delta_vs_start": pts(r.delta_vs_parent), "delta_ci": [pts(r.delta_ci_low), pts(r.delta_ci_high)],
            "mb": round(r.size_mb, 3) if r.size_mb else None, "examples": r.eval_examples,
            "flags": [f["code"] for f in r.flags]}


def paired(store: Any, a: int, b: int, only: set[int] | None = None) -> dict[str, Any]:
    """accuracy(a) - accuracy(b) on the same dev examples (those in ``only``, when given), with the
    paired 95 % bootstrap interval."""
    from core.measure.intervals import paired_delta_interval
    from core.store import variant_predictions
    from core.tasks import get_task

    task = get_task("sst2")
    pa, pb = variant_predictions(store, a), variant_predictions(store, b)
    assert pa is not None and pb is not None and pa["indices"] == pb["indices"]
    keep = [k for k, i in enumerate(pa["indices"]) if only is None or i in only]
    dev = task.load("dev")
    refs = [dev[pa["indices"][k]]["label"] for k in keep]
    ci = paired_delta_interval("accuracy", [pa["predictions"][k] for k in keep], [pb["predictions"][k] for k in keep],
                               refs, task.score, task.resample, seed=0)
    return {"delta": pts(ci.value), "ci": [pts(ci.low), pts(ci.high)], "examples": len(keep)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", default=str(Path.home() / ".cache" / "workbench-bench" / "sensitivity" / "bench.sqlite"),
                    help="the benchmark's results database (its artifacts go beside it)")
    ap.add_argument("--reuse", action="store_true",
                    help="keep the database: variants with the same cache key (e.g. the fine-tune) are reused")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--examples", type=int, default=400)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--render", metavar="JSON", help="only write the Markdown again from a results JSON")
    ap.add_argument("--timed-map", type=int, metavar="ID",
                    help="reuse this finished map of the fine-tuned variant (its stored wall time) instead of "
                         "measuring the timed map again (with --reuse)")
    ap.add_argument("--plan-transforms", default=",".join(PLAN_TRANSFORMS),
                    help="the transforms of the map the plans come from (comma-separated)")
    ap.add_argument("--plan-examples", type=int, default=None, help="its dev examples (default: --examples)")
    ap.add_argument("--plan-map", type=int, metavar="ID", help="reuse this finished plan map (with --reuse)")
    ap.add_argument("--estimate", choices=["interval", "point"], default="interval",
                    help="how the plans read a part's drop (core.analysis.mixed)")
    ap.add_argument("--min-bits", type=int, default=5,
                    help="no part below this width in either plan (4-bit parts' losses did not add up)")
    ap.add_argument("--tighten", type=int, default=3, metavar="ROUNDS",
                    help="when a plan misses its target, raise its most uncertain part one width and measure again, "
                         "at most this many times (0: measure the first plan only)")
    ap.add_argument("--stop-after-map", action="store_true",
                    help="measure the timed map (and the fine-tune before it), log its wall/CPU time and load beside "
                         "the database, and stop: a later '--reuse --timed-map ID' run reports them")
    args = ap.parse_args()
    if args.render:
        report = json.loads(Path(args.render).read_text())
        report["notes"] = _notes(Path(args.out))
        Path(args.render).write_text(json.dumps(report, indent=2, default=str) + "\n")
        (Path(args.out) / "bench_sensitivity.md").write_text(markdown(report))
        return 0

    from benchmarks.study import Study, log, quiet_libraries

    quiet_libraries()
    import torch

    from core.analysis.mixed import add_to_chain, plan, tighten, uniform
    from core.analysis.sensitivity import Settings, parse_transforms, run_sensitivity
    from core.analysis.source import recipe_for_variant
    from core.errors import WorkbenchError
    from core.store import open_store, sensitivity_map
    from core.store.analysis import sensitivity_grid
    from core.store.rows import MB

    torch.set_num_threads(args.threads)
    loads = {"at_start": load()}
    clock = time.perf_counter()
    study = Study(Path(args.db), reuse=args.reuse)
    recipe = {"format": 1, "name": "bench_sensitivity: fine-tune, uniform 8 and 6 bits", "model": "all-MiniLM-L6-v2",
              "task": "sst2", "seed": 0, "measure": measure(args.threads),
              "chain": [{"step": "finetune", "config": FINETUNE}, {"step": "quantize.linear_nbit", "config": {"bits": [8, 6]}}]}
    uniform_run = study.run("uniform", recipe)
    base = next(r for r in uniform_run.rows if r.step_id == "finetune")
    eight, six = (next(r for r in uniform_run.rows if r.step_id == "quantize.linear_nbit" and r.swept.get("bits") == b)
                  for b in (8, 6))
    start_info = {"variant": base.variant, "cached": base.cached, "recipe_seconds": round(uniform_run.seconds, 1),
                  "finetune": _finetune_stats(study.step_info(base).get("finetune") or {})}
    log(f"uniform: start {base.metric:.4f}, 8-bit {eight.metric:.4f}, 6-bit {six.metric:.4f}")

    store = open_store(study.db)
    settings = Settings(examples=args.examples, seed=0, threads=args.threads)
    map_cpu: float | None = None
    map_nice: int | None = os.nice(0)
    if args.timed_map is not None:
        timed = sensitivity_map(store, args.timed_map)
        from core.store import get_variants

        (measured,) = get_variants(store, [timed.variant_id])  # the fine-tune's row, or the one it was cached from
        same = timed.variant_id == base.variant or measured.artifact_path == base.artifact_path
        if not same or timed.status != "finished" or timed.transforms != MAP_TRANSFORMS:
            raise SystemExit(f"--timed-map {args.timed_map} is not a finished {MAP_TRANSFORMS} map of variant {base.variant}")
        timed_id, map_seconds = timed.id, float(timed.seconds or 0.0)
        earlier = _map_log(study.db, timed_id)
        if earlier:  # the invocation that measured it (--stop-after-map) logged its CPU time and load
            map_cpu, loads["timed_map"], map_nice = earlier["cpu_seconds"], earlier["load"], earlier.get("nice")
        else:
            loads["timed_map"], map_nice = "measured by an earlier invocation (its load is in that run's log)", None
    else:
        from benchmarks.study import LoadSampler

        t0, cpu0 = time.perf_counter(), time.process_time()
        with LoadSampler() as sampled:
            timed_id = run_sensitivity(store, base.variant, parse_transforms(MAP_TRANSFORMS), settings)
        map_seconds, map_cpu = time.perf_counter() - t0, time.process_time() - cpu0
        loads["timed_map"] = sampled.summary()
        timed = sensitivity_map(store, timed_id)
        _write_map_log(study.db, timed_id, map_seconds, map_cpu, loads["timed_map"])
    log(f"map {timed_id}: {map_seconds:.1f} s wall, {map_cpu if map_cpu is None else round(map_cpu, 1)} s CPU, "
        f"load {loads['timed_map']}")
    if args.stop_after_map:
        store.close()
        return 0
    plan_transforms = [t.strip() for t in args.plan_transforms.split(",") if t.strip()]
    plan_settings = Settings(examples=args.plan_examples or args.examples, seed=0, threads=args.threads)
    plan_map_load: dict[str, float] = {}
    plan_map_cpu: float | None = None
    if args.plan_map is not None:
        plan_map_id = args.plan_map
        plan_map = sensitivity_map(store, plan_map_id)
        if (plan_map.transforms != plan_transforms or plan_map.examples != plan_settings.examples
                or plan_map.status != "finished"):
            raise SystemExit(f"--plan-map {plan_map_id} ({plan_map.status}) measured {plan_map.transforms} on "
                             f"{plan_map.examples} examples, not {plan_transforms} on {plan_settings.examples}")
        plan_map_seconds = float(plan_map.seconds or 0.0)
        earlier = _map_log(study.db, plan_map_id)
        plan_map_cpu, plan_map_load = earlier.get("cpu_seconds"), earlier.get("load") or {}
    else:
        from benchmarks.study import LoadSampler

        t0, cpu0 = time.perf_counter(), time.process_time()
        with LoadSampler() as sampled:
            plan_map_id = run_sensitivity(store, base.variant, parse_transforms(plan_transforms), plan_settings)
        plan_map_seconds, plan_map_cpu = time.perf_counter() - t0, time.process_time() - cpu0
        plan_map_load = sampled.summary()
        plan_map = sensitivity_map(store, plan_map_id)
        _write_map_log(study.db, plan_map_id, plan_map_seconds, plan_map_cpu, plan_map_load)
    log(f"plan map {plan_map_id}: {plan_map_seconds:.1f} s")
    chain_to_start = recipe_for_variant(store, base.variant)
    store.close()

    # Both plans read each part's drop at the pessimistic end of its paired interval (the planner's
    # default) and choose no width below --min-bits. A: smaller than uniform 8-bit at no more predicted
    # drop than the map predicts for uniform 8-bit itself (same estimate), nothing wider than 8 bits.
    # B: within uniform 6-bit's measured bytes, the least predicted drop.
    bounds = {"estimate": args.estimate, "min_bits": args.min_bits}
    # The map's own examples decide tightening; the rest of the dev set was never looked at by the
    # planner nor the loop: the held-out check of the final plan.
    from core.measure.evaluation import subset_indices
    from core.tasks import get_task

    dev_rows = get_task("sst2").load("dev").num_rows
    planning = set(subset_indices(dev_rows, plan_map.examples, plan_map.seed))
    held_out = set(range(dev_rows)) - planning
    eight_predicted = uniform(plan_map, 8, estimate=args.estimate)
    specs = {"A: smaller than uniform 8-bit within its loss":
             (eight, {"max_drop": eight_predicted.predicted_drop, "max_bits": 8, **bounds}),
             "B: better than uniform 6-bit within its size":
             (six, {"target_bytes": round((six.size_mb or 0) * MB), **bounds})}
    results: dict[str, Any] = {}
    for name, (rival, budget) in specs.items():
        rounds: list[dict[str, Any]] = []
        floors: dict[str, int] = {}
        chosen = plan(plan_map, **budget)
        for k in range(args.tighten + 1):
            mixed_run = study.run(f"mixed {name[:1]}{k}", add_to_chain(chain_to_start, chosen))
            mixed = next(r for r in mixed_run.rows if r.step_id == "quantize.linear_nbit")
            with open_store(study.db) as store:
                vs = paired(store, mixed.variant, rival.variant)
                on_plan = paired(store, mixed.variant, rival.variant, planning)
                on_held_out = paired(store, mixed.variant, rival.variant, held_out)
            if name.startswith("A"):  # no more loss than 8-bit: at least its accuracy, on the same examples
                fits = bool(mixed.size_mb < rival.size_mb)
                met, met_on_plan = fits and vs["delta"] >= 0, fits and on_plan["delta"] >= 0
                met_held_out = fits and on_held_out["delta"] >= 0
            else:
                fits = bool(mixed.size_mb <= rival.size_mb)
                met, met_on_plan = fits and vs["delta"] > 0, fits and on_plan["delta"] > 0
                met_held_out = fits and on_held_out["delta"] > 0
            rounds.append({"round": k, "floors": dict(floors), "plan": chosen.lines(), "config": chosen.step_config(),
                           "predicted_mb": round(chosen.predicted_bytes / 1e6, 3),
                           "predicted_drop": round(chosen.predicted_drop, 2), "method": chosen.method,
                           "fine_tune_reused": any(r.cached for r in mixed_run.rows if r.step_id == "finetune"),
                           "seconds": round(mixed_run.seconds, 1), "load": mixed_run.load,
                           "mixed": row_summary(mixed), "mixed_minus_rival": vs, "met": met,
                           "on_plan_examples": on_plan, "met_on_plan_examples": met_on_plan,
                           "on_held_out_examples": on_held_out, "met_on_held_out_examples": met_held_out})
            log(f"{name} round {k}: {mixed.size_mb:.2f} MB {mixed.metric:.4f} vs {rival.size_mb:.2f} MB "
                f"{rival.metric:.4f}: met={met}, on the map's examples {met_on_plan}, held out {met_held_out}")
            if met_on_plan or k == args.tighten:
                break
            step = tighten(chosen)  # the chosen part with the widest interval goes one measured width up
            if step is None:
                rounds[-1]["next"] = "every part is at its widest allowed width: nothing to tighten"
                break
            floors[step[0]] = step[1]
            try:
                chosen = plan(plan_map, floors=dict(floors), **budget)
            except WorkbenchError as exc:
                rounds[-1]["next"] = f"{step[0]} at least {step[1]} bits: {exc}"
                break
            rounds[-1]["next"] = f"{step[0]} at least {step[1]} bits (its interval was the widest of the parts)"
        last = rounds[-1]
        results[name] = {"rival": row_summary(rival),
                         "budget": {k: round(v, 4) if isinstance(v, float) else v for k, v in budget.items() if v is not None},
                         "rounds": rounds, "met": last["met"], "met_on_held_out_examples": last["met_on_held_out_examples"],
                         "met_in_round": last["round"] if last["met"] else None}
    loads["at_end"] = load()
    per_cell = map_seconds / (len(timed.cells) + 1)
    report = {
        "benchmark": "bench_sensitivity",
        "start": start_info,
        "threads": args.threads, "examples": args.examples, "nice": os.nice(0), "tighten": args.tighten,
        "command": "python " + " ".join(["benchmarks/bench_sensitivity.py", *sys.argv[1:]]),
        "load_avg_1m": loads, "cores": os.cpu_count(),
        "uniform": {"start": row_summary(base), "8-bit": row_summary(eight), "6-bit": row_summary(six)},
        "map": {"id": timed_id, "transforms": MAP_TRANSFORMS, "parts": timed.layers, "cells": len(timed.cells),
                "seconds": round(map_seconds, 1), "cpu_seconds": None if map_cpu is None else round(map_cpu, 1),
                "nice": map_nice,
                "seconds_per_evaluation": round(per_cell, 2),
                "seconds_6x3_estimate": round(per_cell * (18 + 1), 1), "target_seconds": TARGET_SECONDS,
                "met": map_seconds <= TARGET_SECONDS, "grid": sensitivity_grid(timed)},
        "plan_map": {"id": plan_map_id, "transforms": plan_transforms, "examples": plan_settings.examples,
                     "seconds": round(plan_map_seconds, 1), "load": plan_map_load,
                     "cpu_seconds": None if plan_map_cpu is None else round(plan_map_cpu, 1),
                     "estimate": args.estimate, "min_bits": args.min_bits,
                     "uniform_8_predicted": {"mb": round(eight_predicted.predicted_bytes / 1e6, 3),
                                             "drop": round(eight_predicted.predicted_drop, 2)},
                     "grid": sensitivity_grid(plan_map)},
        "mixed": results,
        "target_met_by": [name for name, r in results.items() if r["met"]],
        "study": study.summary(),
        "seconds_total": round(time.perf_counter() - clock, 1),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report["notes"] = _notes(out)
    (out / "bench_sensitivity.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "bench_sensitivity.md").write_text(markdown(report))
    print(markdown(report))
    return 0


def _notes(out: Path) -> str:
    """Notes written by hand beside the results (bench_sensitivity.notes.md), shown marked as such."""
    path = out / "bench_sensitivity.notes.md"
    return path.read_text() if path.exists() else ""


def _map_log(db: Path, map_id: int) -> dict[str, Any]:
    """What the invocation that measured a map logged beside the database (CPU time, load)."""
    path = Path(f"{db}.map_{map_id}.json")
    return json.loads(path.read_text()) if path.exists() else {}


def _write_map_log(db: Path, map_id: int, seconds: float, cpu: float, load: dict[str, Any]) -> None:
    Path(f"{db}.map_{map_id}.json").write_text(json.dumps(
        {"map": map_id, "seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1), "load": load, "nice": os.nice(0),
         "utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())}, indent=2) + "\n")


def _grid(grid: Any) -> list[str]:
    columns, rows = grid
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns), *("| " + " | ".join(r) + " |" for r in rows)]


def _v(r: dict[str, Any]) -> str:
    return (f"{r['accuracy']:.2f} [{r['ci'][0]:.2f}, {r['ci'][1]:.2f}] | "
            f"{r['delta_vs_start']:+.2f} [{r['delta_ci'][0]:+.2f}, {r['delta_ci'][1]:+.2f}] | {r['mb']:.2f}")


def _cpu_words(m: dict[str, Any]) -> str:
    return "" if m.get("cpu_seconds") is None else f", {m['cpu_seconds']:.0f} s CPU (this process, every thread)"


def _finetune_stats(stats: dict[str, Any]) -> dict[str, Any]:
    keep = ("steps", "train_examples", "max_length", "final_loss", "stopped_early", "seconds")
    out = {k: stats[k] for k in keep if k in stats}
    if isinstance(stats.get("learned"), dict):
        out["learned"] = stats["learned"].get("summary")
    return out


def _finetune(d: dict[str, Any]) -> str:
    summary = d["start"].get("finetune") or {}
    if not summary:
        return "its summary was not stored"
    return ", ".join(v if k == "learned" else f"{k.replace('_', ' ')} {round(v, 3) if isinstance(v, float) else v}"
                     for k, v in summary.items())


def _load(load: Any) -> str:
    if isinstance(load, dict) and load:
        return f"mean {load['mean']}, max {load['max']} ({load['samples']} samples)"
    return str(load)


def _vs(v: dict[str, Any]) -> str:
    return f"{v['delta']:+.2f} [{v['ci'][0]:+.2f}, {v['ci'][1]:+.2f}]"


def _yes(flag: bool) -> str:
    return "met" if flag else "not met"


def _verdict(name: str, r: dict[str, Any]) -> str:
    last = r["rounds"][-1]
    vs = last["mixed_minus_rival"]
    if name.startswith("A"):
        sure = ("the paired interval excludes a loss against 8-bit" if vs["ci"][0] >= 0 else
                "the paired interval still allows a loss against 8-bit of up to "
                f"{-vs['ci'][0]:.2f} points")
    else:
        sure = ("the paired interval excludes a loss against 6-bit" if vs["ci"][0] > 0 else
                f"the paired interval [{vs['ci'][0]:+.2f}, {vs['ci'][1]:+.2f}] still includes no gain")
    return sure


def markdown(d: dict[str, Any]) -> str:
    m, loads, pm = d["map"], d["load_avg_1m"], d["plan_map"]
    lines = [
        "# Sensitivity map and automatic mixed precision (issue 18)", "",
        f"MiniLM-L6 fine-tuned on SST-2 (the finetune step's defaults with 2,000 sentences and 1 epoch; {_finetune(d)}), "
        f"{d['threads']} threads on a {d['cores']}-core machine; this invocation ran at nice {d.get('nice', 0)}. "
        f"1-minute load average (whole machine, sampled every 10 s): at start {loads.get('at_start')}, "
        f"during the timed map {_load(loads.get('timed_map'))}, during the plan map {_load(pm.get('load'))}, "
        f"at end {loads.get('at_end')}. Other jobs shared the machine: the wall times include their contention.", "",
        "## Target 1: sensitivity map on 400 dev examples in at most 5 minutes", "",
        f"Map {m['id']}: {len(m['parts'])} parts (embeddings, 6 layers, head) x {len(m['transforms'])} transforms = "
        f"{m['cells']} cells + the untouched variant, **{m['seconds']:.0f} s** wall{_cpu_words(m)} "
        f"({m['seconds_per_evaluation']:.1f} s per evaluation; the 6 layers x 3 transforms alone: about "
        f"{m['seconds_6x3_estimate']:.0f} s), measured at nice {m.get('nice', 'unknown')}. Target "
        f"{m['target_seconds']:.0f} s: **{'met' if m['met'] else 'not met'}**, at the load above.", "",
        "Change of accuracy in points when one part alone gets the transform (95 % paired bootstrap interval, "
        f"{d['examples']} dev examples):", "", *_grid(m["grid"]), "",
        "## Target 2: automatic mixed precision against uniform 8 and 6 bits", "",
        "Every variant measured from its reloaded artifact on the whole SST-2 dev set (872), accuracy x100 with "
        "its 95 % interval, change against the start with the paired interval, artifact MB.", "",
        "| variant | accuracy [95 % CI] | vs start [95 % CI] | MB |", "|---|---|---|---|",
        f"| start (fp32) | {_v(d['uniform']['start'])} |", f"| uniform 8-bit | {_v(d['uniform']['8-bit'])} |",
        f"| uniform 6-bit | {_v(d['uniform']['6-bit'])} |",
    ]
    for name, r in d["mixed"].items():
        for k in r["rounds"]:
            lines.append(f"| mixed {name[:1]}, round {k['round']} | {_v(k['mixed'])} |")
    cpu = "" if pm.get("cpu_seconds") is None else f", {pm['cpu_seconds']:.0f} s CPU"
    lines += ["", f"The plans come from map {pm['id']} ({', '.join(pm['transforms'])}, {pm['seconds']:.0f} s wall{cpu}) "
              f"measured on {pm['examples']} dev examples (a seeded sample, the same seed; the plans are judged on the "
              "whole dev set, which contains them):", "", *_grid(pm["grid"]), "",
              f"Planner settings: each part's drop is read as **{pm['estimate']}** "
              f"({'the pessimistic end of its paired 95 % interval' if pm['estimate'] == 'interval' else 'its measured change, gains as 0'}), "
              f"no width below {pm['min_bits']} bits. The map predicts uniform 8-bit at {pm['uniform_8_predicted']['mb']:.2f} MB "
              f"and a drop of {pm['uniform_8_predicted']['drop']:.2f} points by this estimate: plan A's budget. When a plan "
              f"misses its target on the map's own {pm['examples']} examples, its part with the widest interval is "
              f"raised one measured width and the plan is made again (at most {d.get('tighten', 0)} rounds); every "
              "round is measured and shown. The other dev examples were used neither by the planner nor by this loop: "
              "the held-out comparison is the unbiased check of the final plan.", ""]
    for name, r in d["mixed"].items():
        lines += [f"### Plan {name}", "", f"Budget: {r['budget']}.", ""]
        for k in r["rounds"]:
            vs = k["mixed_minus_rival"]
            floors = f" (floors {k['floors']})" if k["floors"] else ""
            lines += [f"Round {k['round']}{floors}:",
                      "", "```", *k["plan"], "```", "",
                      f"Measured: {k['mixed']['mb']:.2f} MB (predicted {k['predicted_mb']:.2f}), accuracy change against "
                      f"the start {k['mixed']['delta_vs_start']:+.2f} points [{k['mixed']['delta_ci'][0]:+.2f}, "
                      f"{k['mixed']['delta_ci'][1]:+.2f}] (predicted at worst -{k['predicted_drop']:.2f}). Mixed minus "
                      f"its uniform rival: {_vs(vs)} on all {vs['examples']} examples, {_vs(k['on_plan_examples'])} on "
                      f"the map's {k['on_plan_examples']['examples']}, {_vs(k['on_held_out_examples'])} on the "
                      f"{k['on_held_out_examples']['examples']} held out. Target on all: **{'met' if k['met'] else 'not met'}**; "
                      f"on the map's examples {_yes(k['met_on_plan_examples'])}; held out {_yes(k['met_on_held_out_examples'])} "
                      "(point estimates)."
                      f"{'' if 'next' not in k else ' Next: ' + k['next'] + '.'}", ""]
        when = "" if r["met_in_round"] is None else f" in round {r['met_in_round']}"
        lines += [f"Plan {name[:1]}: **{'met' if r['met'] else 'not met'}**{when} on the whole dev set, "
                  f"**{_yes(r['met_on_held_out_examples'])}** on the held-out examples; {_verdict(name, r)}.", ""]
    met = d["target_met_by"]
    lines += [f"**Target 2 met by: {', '.join(met) if met else 'neither plan'}** (comparing point estimates; the "
              "intervals above say how sure).", "",
              f"Total {d['seconds_total']:.0f} s (the recipe with the fine-tune: {d['start']['recipe_seconds']:.0f} s"
              f"{', fine-tune reused from the cache' if d['start']['cached'] else ''}). Command: "
              f"`{d.get('command', 'python benchmarks/bench_sensitivity.py')}`.", ""]
    notes = d.get("notes")
    if notes:
        lines += ["## Notes (written by hand after the run, not computed)", "", notes.strip(), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
