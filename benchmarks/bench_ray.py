"""A 16-variant sweep on a local 2-node Ray cluster against the same sweep run locally.

Recipe (packaged MiniLM, SST-2, every variant measured with 1 thread): baseline ->
prune.global_magnitude amount 0.2/0.4/0.6/0.8 -> quantize.linear_nbit 4/6/8/16 bits: 16 variants at
the leaves, 21 nodes. Two runs through the worker, as `workbench-cli run` starts it:
  1. local: every node in the worker process, parents in memory (threads 1);
  2. ray: a cluster of two Ray nodes on 127.0.0.1 with 1 CPU each (ray.cluster_utils.Cluster, Ray's
     documented way to run several nodes on one machine), the worker joins it as driver: the
     baseline is made in the worker, the 20 later nodes as Ray tasks.
Both runs must give the same metrics (checked below). From the Ray run's per-variant times this
projects the wall time on N nodes of the same speed:

    wall(N) = prefix + warm-up + ceil(4/N) x mean prune task + ceil(16/N) x mean n-bit task + 20 x collect

prefix: the baseline made in the worker; warm-up: a fresh Ray worker's first task minus the
median task of its kind (imports torch, reads the data); collect: the driver's serial part per
task (fetching the zip from the object store and unpacking it). Level by level, so a slight
over-estimate (a child starts as soon as its own parent is done). N=2 is checked against the
measured wall time. Writes JSON + Markdown to benchmarks/results/.

    python benchmarks/bench_ray.py [--quick]      # --quick: the tiny test model, for a dry run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

AMOUNTS = [0.2, 0.4, 0.6, 0.8]
BITS = [4, 6, 8, 16]


def recipe(model: str) -> dict[str, Any]:
    return {
        "format": 1, "name": "bench_ray", "model": model, "task": "sst2", "seed": 0,
        "measure": {"eval_limit": 200, "eval_batch_size": 32, "max_length": 64, "latency_batch_size": 8,
                    "latency_seq_len": 64, "latency_warmup": 2, "latency_repeats": 10, "threads": 1},
        "chain": [{"step": "prune.global_magnitude", "config": {"amount": AMOUNTS}},
                  {"step": "quantize.linear_nbit", "config": {"bits": BITS}}],
    }


def uptime() -> str:
    """``uptime``'s line: the machine is shared, so every figure says how busy it was."""
    import subprocess

    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"load average {os.getloadavg()}"


def run(request: Any) -> tuple[float, Any]:
    from core.run.process import run_worker

    clock = time.perf_counter()
    outcome = run_worker(request, on_stderr=lambda line: None)
    seconds = time.perf_counter() - clock
    if not outcome.ok:
        raise SystemExit(f"run failed: {outcome.message()}")
    return seconds, outcome


def two_node_cluster(folder: Path) -> Any:
    """Two Ray nodes on 127.0.0.1, 1 CPU each, their files under ``folder``."""
    os.environ.update({"RAY_TMPDIR": str(folder), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
                       "RAY_USAGE_STATS_ENABLED": "0"})
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={
        "node_ip_address": "127.0.0.1", "num_cpus": 1, "include_dashboard": False,
        "object_store_memory": 400 * 2**20})
    cluster.add_node(node_ip_address="127.0.0.1", num_cpus=1, object_store_memory=400 * 2**20)
    cluster.wait_for_nodes()
    return cluster


def project(prefix: float, prune: list[float], nbit: list[float], collect: list[float], warmup: float,
            n: int) -> float:
    return (prefix + warmup + math.ceil(len(prune) / n) * statistics.fmean(prune)
            + math.ceil(len(nbit) / n) * statistics.fmean(nbit) + sum(collect))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="the tiny test model: checks the machinery in a minute")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    from core.protocol import RunRequest
    from core.store import open_store, run_variants, variant_info

    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    if args.quick:
        from tests.helpers import tiny_bert_folder

        model = str(tiny_bert_folder(work / "tiny"))
    else:
        model = "all-MiniLM-L6-v2"
    load_before = os.getloadavg()[0]
    uptime_before = uptime()

    local_s, local = run(RunRequest(recipe=recipe(model), db=str(work / "local.sqlite"),
                                    artifacts=str(work / "local-artifacts")))
    print(f"local: {local_s:.1f} s", file=sys.stderr)

    cluster = two_node_cluster(Path(tempfile.mkdtemp(prefix="wbray-")))
    try:
        ray_s, far = run(RunRequest(recipe=recipe(model), db=str(work / "ray.sqlite"),
                                    artifacts=str(work / "ray-artifacts"), ray=cluster.address))
        print(f"ray, 2 nodes: {ray_s:.1f} s", file=sys.stderr)
    finally:
        cluster.shutdown()

    with open_store(work / "local.sqlite") as store:
        here = sorted(run_variants(store, local.run_id), key=lambda v: v.node)
    with open_store(work / "ray.sqlite") as store:
        there = sorted(run_variants(store, far.run_id), key=lambda v: v.node)
        infos = {v.id: variant_info(store, v.id) for v in there}
    same = all(a.label == b.label and a.metrics.get("accuracy") == b.metrics.get("accuracy")
               and a.metrics.get("artifact_bytes") == b.metrics.get("artifact_bytes") for a, b in zip(here, there, strict=True))
    if not same:
        raise SystemExit("the Ray run's variants differ from the local run's")

    rows, tasks = [], []
    for v in there:
        info = infos[v.id]
        remote = info.get("ray")
        rows.append({"node": v.node, "label": v.label, "accuracy": v.metrics.get("accuracy"),
                     "local_seconds": round(next(a.seconds for a in here if a.node == v.node), 2),
                     "ray_seconds": round(v.seconds, 2), "made_on": remote["node"][:8] if remote else "driver",
                     "pid": remote["pid"] if remote else None,
                     "task_seconds": remote["task_seconds"] if remote else None,
                     "collect_seconds": remote["transfer_seconds"] if remote else None,
                     "timings": info.get("timings", {})})
        if remote:
            tasks.append((v.id, v.step_id, remote["pid"], remote["task_seconds"], remote["transfer_seconds"]))
    prefix = next(r["ray_seconds"] for r in rows if r["made_on"] == "driver")
    first_ids = {min(i for i, _s, pid, _t, _c in tasks if pid == worker) for worker in {task[2] for task in tasks}}
    kinds = {}
    for step in ("prune.global_magnitude", "quantize.linear_nbit"):
        steady = [t for i, s, _p, t, _c in tasks if s == step and i not in first_ids]
        kinds[step] = (statistics.fmean(steady) if steady else
                       statistics.median([t for _i, s, _p, t, _c in tasks if s == step]))
    # warm-up: what a fresh Ray worker's first task took beyond a steady task of its kind (imports, data)
    warmup = max([0.0] + [t - kinds[s] for i, s, _p, t, _c in tasks if i in first_ids])
    prune = [kinds["prune.global_magnitude"]] * len(AMOUNTS)
    nbit = [kinds["quantize.linear_nbit"]] * (len(AMOUNTS) * len(BITS))
    collect = [c for *_rest, c in tasks]
    projected = {n: round(project(prefix, prune, nbit, collect, warmup, n), 1) for n in (1, 2, 4, 8, 16)}
    result = {
        "bench": "ray", "quick": args.quick, "model_ref": "tiny test model" if args.quick else model,
        "recipe": recipe("MODEL"), "variants": len(there), "leaves": len(AMOUNTS) * len(BITS),
        "cluster": "2 Ray nodes on 127.0.0.1 (ray.cluster_utils.Cluster), 1 CPU each, one 2-core machine",
        "load_avg_1m_before": round(load_before, 2), "load_avg_1m_after": round(os.getloadavg()[0], 2),
        "uptime_before": uptime_before, "uptime_after": uptime(), "cpu_count": os.cpu_count(),
        "wall_seconds": {"local": round(local_s, 1), "ray_2_nodes": round(ray_s, 1)},
        "speedup_2_nodes": round(local_s / ray_s, 2),
        "model_terms": {"prefix_s": round(prefix, 2), "warmup_s": round(warmup, 2),
                        "mean_prune_task_s": round(kinds["prune.global_magnitude"], 2),
                        "mean_nbit_task_s": round(kinds["quantize.linear_nbit"], 2),
                        "collect_total_s": round(sum(collect), 2)},
        "measured_vs_projected_2_nodes": None,
        "projected_wall_seconds": projected,
        "projection": ("wall(N) = prefix + warm-up + ceil(4/N) x mean prune task + ceil(16/N) x mean n-bit task "
                  "+ sum of collect (the driver's serial fetch + unpack)"),
        "same_metrics_as_local": same,
        "per_variant": rows,
        "command": "python benchmarks/bench_ray.py" + (" --quick" if args.quick else ""),
    }
    result["measured_vs_projected_2_nodes"] = {"measured": round(ray_s, 1), "projected": projected[2]}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "bench_ray_quick" if args.quick else "bench_ray"
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"{name}.md").write_text(markdown(result))
    print(markdown(result))
    return 0


def markdown(r: dict[str, Any]) -> str:
    t = r["model_terms"]
    lines = [
        f"# Ray: a {r['leaves']}-variant sweep on a local 2-node cluster vs local",
        "",
        f"`{r['command']}` — {r['variants']} nodes (baseline, 4 prune amounts, 16 n-bit leaves), {r['cluster']}; "
        f"every variant measured with 1 thread. The machine ({r['cpu_count']} cores) is shared with other jobs, "
        "so absolute times are noisy:",
        "",
        f"    before: {r['uptime_before']}",
        f"    after:  {r['uptime_after']}",
        "",
        "| run | wall time (s) |",
        "|---|---|",
        f"| local (one process, parents in memory) | {r['wall_seconds']['local']} |",
        f"| Ray, 2 nodes x 1 CPU | {r['wall_seconds']['ray_2_nodes']} |",
        "",
        f"Speed-up on 2 nodes: {r['speedup_2_nodes']}x. Same metrics as the local run: {r['same_metrics_as_local']}. "
        f"The model's 2-node figure: {r['projected_wall_seconds'][2]} s projected, {r['wall_seconds']['ray_2_nodes']} s measured "
        "(the measured run also pays joining the cluster and shipping the code once).",
        "",
        f"Projection, {r['projection']}; measured terms: prefix {t['prefix_s']} s, warm-up {t['warmup_s']} s, "
        f"prune task {t['mean_prune_task_s']} s, n-bit task {t['mean_nbit_task_s']} s, collect {t['collect_total_s']} s "
        "in all. Nodes of this machine's speed, 1 CPU each:",
        "",
        "| nodes | projected wall time (s) |",
        "|---|---|",
    ]
    lines += [f"| {n} | {s} |" for n, s in r["projected_wall_seconds"].items()]
    lines += ["", "Per variant (seconds; ray: task wall time on the node + collect on the driver):", "",
              "| node | variant | accuracy | local s | ray s | made on | task s | collect s |", "|---|---|---|---|---|---|---|---|"]
    for row in r["per_variant"]:
        acc = "" if row["accuracy"] is None else f"{row['accuracy']:.3f}"
        lines.append(f"| {row['node']} | {row['label']} | {acc} | {row['local_seconds']} | {row['ray_seconds']} | "
                     f"{row['made_on']} | {row['task_seconds'] or ''} | {row['collect_seconds'] or ''} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
