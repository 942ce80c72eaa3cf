"""Measure one model on one task end to end: metric, size of a saved artifact, round trip, latency.

This is what ``python -m core.measure`` prints, and what a runner records for a baseline: the
model loaded with a freshly initialised (seeded) task head, evaluated on the task's dev split,
saved with ``core.artifacts.save_artifact``, reloaded (max abs output difference reported) and timed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

QA_MAX_LENGTH = 384


def measure_task(
    model_ref: str,
    task_id: str,
    *,
    split: str = "dev",
    limit: int | None = None,
    sample_seed: int | None = None,
    batch_size: int = 32,
    max_length: int | None = None,
    threads: int | None = None,
    seed: int = 0,
    latency_batch: int = 8,
    latency_seq: int = 128,
    latency_repeats: int = 20,
    artifact_dir: Path | None = None,
) -> dict[str, Any]:
    """Everything about ``model_ref`` on ``task_id``, as a JSON-able dict."""
    import torch

    from core.artifacts import load_artifact, save_artifact
    from core.measure.evaluation import evaluate
    from core.measure.size import size_report
    from core.measure.timing import latency
    from core.models import ModelRef, load_model, load_tokenizer
    from core.steps.base import ModelState
    from core.tasks import get_task

    task = get_task(task_id)
    ref = ModelRef.parse(model_ref)
    torch.manual_seed(seed)  # the fresh head is part of the measured model: make it reproducible
    model = load_model(ref, task.head, task.num_labels).eval()
    tokenizer = load_tokenizer(ref)
    if max_length is None:
        max_length = QA_MAX_LENGTH if task.head == "qa" else 128
    result = evaluate(
        model, tokenizer, task, split, batch_size=batch_size, max_length=max_length,
        limit=limit, sample_seed=sample_seed, threads=threads,
    )  # fmt: skip
    state = ModelState(model=model, tokenizer=tokenizer, task=task.id, head=task.head)
    with tempfile.TemporaryDirectory(prefix="workbench-measure-") as tmp:
        folder = Path(artifact_dir or tmp) / f"{task.id.replace(':', '_')}-baseline"
        save_artifact(state, folder, base=str(ref))
        size = size_report(model, folder)
        reloaded = load_artifact(folder).model
        probe = tokenizer(["a short probe sentence", "and a second, slightly longer probe sentence"],
                          ["paired text"] * 2 if task.pair or task.head == "qa" else None,
                          padding=True, return_tensors="pt")  # fmt: skip
        with torch.inference_mode():
            a, b = model(**probe), reloaded(**probe)
        keys = ("start_logits", "end_logits") if task.head == "qa" else ("logits",)
        diff = max(float((getattr(a, k) - getattr(b, k)).abs().max()) for k in keys)
    lat = latency(model, tokenizer, batch_size=latency_batch, seq_len=latency_seq,
                  repeats=latency_repeats, threads=threads)  # fmt: skip
    return {
        "model": str(ref),
        "task": task.id,
        "split": split,
        "primary_metric": task.primary_metric,
        "primary": result.primary,
        "metrics": result.metrics,
        "examples": result.examples,
        "eval_seconds": result.seconds,
        "note": result.note,
        "size": size.to_dict(),
        "round_trip_max_abs_diff": diff,
        "latency": {k: v for k, v in lat.to_dict().items() if k != "times_ms"},
    }


def format_line(r: dict[str, Any]) -> str:
    size, lat = r["size"], r["latency"]
    return (
        f"{r['task']:<10} {r['primary_metric']}={r['primary']:.4f}  n={r['examples']} "
        f"eval={r['eval_seconds']:.1f}s | params={size['params']:,} nonzero={size['nonzero_params']:,} "
        f"artifact={size['artifact_mb']:.2f} MB weights={size['weights_bytes'] / 1e6:.2f} MB "
        f"round-trip max|diff|={r['round_trip_max_abs_diff']:.1e} | latency b{lat['batch_size']}x{lat['seq_len']} "
        f"p50={lat['p50_ms']:.1f} ms p90={lat['p90_ms']:.1f} ms ({lat['threads']} threads)"
    )
