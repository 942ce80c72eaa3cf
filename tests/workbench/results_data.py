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


# run -> (task, variants). Run 1 sweeps pruning (two branches off the baseline); run 3 reruns
# run 1's baseline from the cache; run 2 is another task.
RUNS: dict[int, tuple[str, list[V]]] = {
    1: ("sst2", [V("baseline", "baseline", 0, None, 0.86, 90.9, 170.0),
                 V("prune.global_magnitude(amount=0.1)", "prune.global_magnitude", 1, 0, 0.86, 60.0, 160.0,
                   {"amount": 0.1}),
                 V("prune.global_magnitude(amount=0.3)", "prune.global_magnitude", 1, 0, 0.80, 45.0, 150.0,
                   {"amount": 0.3}),
                 V("quantize.dynamic_int8", "quantize.dynamic_int8", 2, 1, 0.855, 23.0, 94.0)]),
    2: ("custom:reviews", [V("baseline", "baseline", 0, None, 0.70, 90.9, 171.0),
                           V("finetune", "finetune", 1, 0, 0.92, 91.0, 172.0),
                           V("quantize.dynamic_int8", "quantize.dynamic_int8", 2, 1, 0.915, 23.5, 95.0)]),
    3: ("sst2", [V("baseline", "baseline", 0, None, 0.86, 90.9, 170.0, cached=True),
                 V("quantize.dynamic_int8", "quantize.dynamic_int8", 1, 0, 0.84, 12.0, 60.0)]),
}
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
            metrics = [MetricValue("accuracy", v.metric, "", "dev"), MetricValue("f1", v.metric - 0.01, "", "dev"),
                       MetricValue("params", 22_700_000.0, "count"),
                       MetricValue("nonzero_params", 22_700_000.0 * (1 - swept.get("amount", 0)), "count"),
                       MetricValue("artifact_bytes", v.size_mb * 1e6, "bytes"),
                       MetricValue("latency_p50", v.p50, "ms"), MetricValue("latency_p90", v.p50 * 1.1, "ms")]
            vid = add_variant(
                store, run_id=ctx.run_id, parent_id=None if v.parent is None else ids[run_id][v.parent],
                step_index=v.step, step_id=v.step_id, label=v.label, config={}, cache_key=f"{task}{v.label}",
                metrics=metrics, artifact_path=folder, artifact_bytes=1000, seconds=1.0,
                info={"curves": CURVES} if v.step_id == "finetune" else {}, cached_from=source, swept=swept,
                flags=[{"code": "not_smaller", "text": "91.0 MB vs its parent's 90.9 MB"}] if v.step_id == "finetune" else None)
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
