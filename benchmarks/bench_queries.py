"""GUI-facing queries on a database holding 10,000 variants: target < 50 ms each.

Builds a synthetic database (runs of several sizes over a few models, 12 metrics per variant, as the
runner records them), then times, median of repeats: the variants of one run (typical and largest),
all runs of one model, a run's results table, and the runs list. Writes JSON + Markdown to
benchmarks/results/.

    python benchmarks/bench_queries.py [--variants 10000] [--repeats 15]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.published import TARGETS  # noqa: E402
from benchmarks.report import write_section  # noqa: E402
from core.store import (  # noqa: E402
    list_runs,
    open_store,
    results_table,
    run_variants,
    variants_of_model,
)
from core.store import schema as s  # noqa: E402
from core.store.record import now  # noqa: E402

TARGET_MS = TARGETS["query_ms"]
LARGEST_RUN = 1000  # one sweep of this many variants, the rest typical runs
METRICS = [("accuracy", "", "dev"), ("eval_examples", "count", "dev"), ("eval_seconds", "s", "dev"),
           ("params", "count", ""), ("nonzero_params", "count", ""), ("artifact_bytes", "bytes", ""),
           ("weights_bytes", "bytes", ""), ("latency_p50", "ms", ""), ("latency_p90", "ms", ""),
           ("latency_mean", "ms", ""), ("f1", "", "dev"), ("exact", "", "dev")]


def build(path: Path, n_variants: int, seed: int = 0) -> dict[str, int]:
    """Fill ``path`` with runs of 5..60 variants plus one large 1,000-variant sweep run."""
    rng = random.Random(seed)
    store = open_store(path)
    models = [f"/models/model-{i}" for i in range(5)]
    sizes = []
    remaining = n_variants - LARGEST_RUN
    while remaining > 0:
        k = min(remaining, rng.randint(5, 60))
        sizes.append(k)
        remaining -= k
    sizes.append(LARGEST_RUN)
    with store.write() as session:
        model_rows = [s.Model(ref=m, kind="local", content_hash=f"h{i}", created_at=now()) for i, m in enumerate(models)]
        session.add_all(model_rows)
        dataset = s.Dataset(task="sst2", content_hash="d", created_at=now())
        env = s.Environment(content_hash="e", body="{}", created_at=now())
        session.add_all([dataset, env])
        session.flush()
        vid = 0
        for r, size in enumerate(sizes):
            recipe = s.Recipe(content_hash=f"r{r}", name=f"recipe {r}", body="{}", created_at=now())
            session.add(recipe)
            session.flush()
            model = model_rows[r % len(model_rows)]
            run = s.Run(recipe_id=recipe.id, model_id=model.id, dataset_id=dataset.id, environment_id=env.id,
                        task="sst2", seed=r, status="finished", created_at=now(), started_at=now(),
                        finished_at=now(), artifacts_dir=f"/a/run-{r}", attempts=1)
            session.add(run)
            session.flush()
            parent = None
            variants = []
            for i in range(size):
                v = s.Variant(run_id=run.id, parent_id=parent, step_index=min(i, 4), step_id="step", label=f"v{i}",
                              config=json.dumps({"amount": i / size}), cache_key=f"k{vid}", cached=False,
                              seconds=1.0, info="{}", created_at=now())
                variants.append(v)
                vid += 1
            session.add_all(variants)
            session.flush()
            for i, v in enumerate(variants):
                if i and i % 5:
                    v.parent_id = variants[i - 1].id
            session.add_all(s.Metric(variant_id=v.id, name=n, value=rng.random(), unit=u, split=sp)
                            for v in variants for n, u, sp in METRICS)
            session.add_all(s.Artifact(variant_id=v.id, path=f"/a/{v.id}", bytes=rng.randint(10**6, 10**8))
                            for v in variants)
    store.close()
    return {"runs": len(sizes), "variants": n_variants, "metrics": n_variants * len(METRICS),
            "largest_run": LARGEST_RUN, "median_run": int(statistics.median(sizes[:-1]))}


def timed(fn, repeats: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    fn()  # warm the page cache and SQLAlchemy's statement cache, as a GUI that has been open does
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {"median_ms": statistics.median(times), "p90_ms": times[max(0, int(0.9 * len(times)) - 1)],
            "min_ms": times[0]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    if args.variants < LARGEST_RUN + 5:  # the typical runs' median needs at least one beside the sweep
        ap.error(f"--variants must be at least {LARGEST_RUN + 5}: the database holds one {LARGEST_RUN}-variant "
                 "sweep plus typical runs of 5 to 60 variants")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.sqlite"
        t0 = time.perf_counter()
        shape = build(path, args.variants)
        build_s = time.perf_counter() - t0
        store = open_store(path)
        runs = list_runs(store)
        typical = min(runs, key=lambda r: abs(r.variants - shape["median_run"]))
        largest = max(runs, key=lambda r: r.variants)
        model = typical.model
        cases = {
            f"run_variants (typical run, {typical.variants} variants)": lambda: run_variants(store, typical.id),
            f"run_variants (largest run, {largest.variants} variants)": lambda: run_variants(store, largest.id),
            f"list_runs(model=...) ({len(list_runs(store, model=model))} runs)": lambda: list_runs(store, model=model),
            f"list_runs() (all {len(runs)} runs)": lambda: list_runs(store),
            f"results_table (typical run, {typical.variants} variants)": lambda: results_table(store, run_ids=[typical.id]),
            f"variants_of_model ({len(variants_of_model(store, model))} variants)": lambda: variants_of_model(store, model),
        }
        results = {name: timed(fn, args.repeats) for name, fn in cases.items()}
        store.close()

    report = {
        "benchmark": "bench_queries",
        "target_ms": TARGET_MS,
        "database": shape,
        "build_seconds": round(build_s, 2),
        "machine": {"python": platform.python_version(), "machine": platform.machine(), "processor": platform.processor()},
        "results": results,
    }
    text = write_section("queries", report, Path(args.out) / "bench_queries.json")  # the same table as RESULTS.md
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
