"""Result rows and a results database for the window tests, without running a worker: the rows
are what core.store computes (ResultRow dicts), the database is written through core.store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

from core.store import open_store, result_rows
from core.store.record import MetricValue, RunIdentity, add_variant, create_run, finish_run


class V(NamedTuple):
    label: str
    step_id: str
    step: int
    parent: int | None  # index in its run's list
    metric: float
    size_mb: float
    p50: float
    swept: dict[str, Any] | None = None
    cached: bool = False
    latency: tuple[int, int, int, int] = (8, 128, 2, 20)  # batch, sequence, threads, repeats
    untrained: bool = False


# run -> (task, variants). Run 1 sweeps pruning (two branches off the baseline); run 3 reruns
# run 1's baseline from the cache; run 2 is another task.
RUNS: dict[int, tuple[str, list[V]]] = {
    1: ("sst2", [V("baseline", "baseline", 0, None, 0.86, 90.9, 170.0),
                 V("prune.global_magnitude(amount=0.1)", "prune.global_magnitude", 1, 0, 0.86, 60.0, 160.0,
                   {"amount": 0.1}),
                 V("prune.global_magnitude(amount=0.3)", "prune.global_magnitude", 1, 0, 0.80, 45.0, 150.0,
                   {"amount": 0.3}),
                 V("quantize.dynamic_int8", "quantize.dynamic_int8", 2, 1, 0.855, 23.0, 94.0)]),
    2: ("custom:reviews", [V("baseline", "baseline", 0, None, 0.70, 90.9, 171.0, untrained=True),
                           V("finetune", "finetune", 1, 0, 0.92, 91.0, 172.0),
                           V("quantize.dynamic_int8", "quantize.dynamic_int8", 2, 1, 0.915, 23.5, 95.0)]),
    3: ("sst2", [V("baseline", "baseline", 0, None, 0.86, 90.9, 170.0, cached=True),
                 V("quantize.dynamic_int8", "quantize.dynamic_int8", 1, 0, 0.84, 12.0, 60.0,
                   latency=(1, 64, 1, 10))]),
}
# Run 3's int8 was timed with other latency settings; run 2's baseline head was never trained.
# Every metric gets a 95 % interval of +-0.03, every change against the parent a paired one of
# +-0.015 (so a change under 0.015 is within noise), every latency one of +-5 %.
METRIC_HALF, DELTA_HALF = 0.03, 0.015
CURVES = {"Training": {"loss": [[1, 0.69], [2, 0.6], [3, 0.45]], "lr": [[1, 5e-05], [2, 4e-05], [3, 2e-05]]}}


def fill_database(db: Path) -> dict[int, list[int]]:
    """Write RUNS into ``db`` with real artifact folders; returns run -> variant ids in RUNS order.
    Run 2's fine-tuned variant carries CURVES, as the runner stores them."""
    store = open_store(db)
    ids: dict[int, list[int]] = {}
    first: dict[tuple[str, str], tuple[int, Path]] = {}
    for run_id, (task, variants) in RUNS.items():
        ident = RunIdentity(model_ref="packaged:all-MiniLM-L6-v2", model_kind="packaged", model_hash="m" * 64,
                            task=task, data_hash="d" * 64,
                            recipe_json=json.dumps({"model": "all-MiniLM-L6-v2", "task": "sst2",
                                                    "name": f"recipe of run {run_id}",
                                                    "chain": [{"step": "quantize.dynamic_int8"}]}),
                            recipe_name=f"recipe {run_id}", seed=run_id, primary_metric="accuracy")
        ctx = create_run(store, ident, db.parent / "artifacts")
        ids[run_id] = []
        for i, v in enumerate(variants):
            key = (task, v.label)
            if v.cached:
                source, folder = first[key]
            else:
                source, folder = None, ctx.artifacts_dir / f"{i:03d}-{v.step_id}"
                folder.mkdir(parents=True)
                (folder / "model.safetensors").write_bytes(b"w" * 1000)
            swept = v.swept or {}
            batch, seq, threads, repeats = v.latency
            metrics = [MetricValue("accuracy", v.metric, "", "dev"), MetricValue("f1", v.metric - 0.01, "", "dev"),
                       MetricValue("accuracy_ci95_low", v.metric - METRIC_HALF, "", "dev"),
                       MetricValue("accuracy_ci95_high", v.metric + METRIC_HALF, "", "dev"),
                       MetricValue("params", 22_700_000.0, "count"),
                       MetricValue("nonzero_params", 22_700_000.0 * (1 - swept.get("amount", 0)), "count"),
                       MetricValue("artifact_bytes", v.size_mb * 1e6, "bytes"),
                       MetricValue("latency_p50", v.p50, "ms"), MetricValue("latency_p90", v.p50 * 1.1, "ms"),
                       MetricValue("latency_p50_ci95_low", v.p50 * 0.95, "ms"),
                       MetricValue("latency_p50_ci95_high", v.p50 * 1.05, "ms"),
                       MetricValue("eval_examples", 872.0, "count"), MetricValue("latency_batch", float(batch), "count"),
                       MetricValue("latency_seq_len", float(seq), "count"),
                       MetricValue("latency_threads", float(threads), "count"),
                       MetricValue("latency_repeats", float(repeats), "count"),
                       MetricValue("load_avg_1m", 1.25, "")]
            flags = []
            if v.untrained:
                flags.append({"code": "untrained_head", "text": "the task head was never trained (a fresh head "
                                                                "predicts at chance); add a finetune step"})
            if v.parent is not None:
                delta = v.metric - variants[v.parent].metric
                metrics += [MetricValue("delta_vs_parent", delta, "", "dev"),
                            MetricValue("delta_vs_parent_ci95_low", delta - DELTA_HALF, "", "dev"),
                            MetricValue("delta_vs_parent_ci95_high", delta + DELTA_HALF, "", "dev")]
                if abs(delta) < DELTA_HALF:
                    flags.append({"code": "within_noise", "text": f"accuracy change vs parent {100 * delta:+.1f} "
                                                                  "points, 95 % interval includes 0"})
            if v.step_id == "finetune":
                flags.append({"code": "not_smaller", "text": "91.0 MB vs its parent's 90.9 MB"})
            vid = add_variant(
                store, run_id=ctx.run_id, parent_id=None if v.parent is None else ids[run_id][v.parent],
                step_index=v.step, step_id=v.step_id, label=v.label, config={}, cache_key=f"{task}{v.label}",
                metrics=metrics, artifact_path=folder, artifact_bytes=1000, seconds=1.0,
                info={"curves": CURVES} if v.step_id == "finetune" else {}, cached_from=source, swept=swept,
                flags=flags)
            ids[run_id].append(vid)
            first.setdefault(key, (vid, folder))
        finish_run(store, ctx.run_id, "finished")
    store.close()
    return ids


def rows_of(db: Path) -> list[dict[str, Any]]:
    store = open_store(db)
    try:
        return [r.to_dict() for r in result_rows(store)]
    finally:
        store.close()
