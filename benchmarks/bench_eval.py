"""Engine evaluation vs a plain transformers loop padding to max_length, on SST-2 dev.

Same model (the packaged default with a seeded fresh head), same thread count, same data, timed
alternately in one process so machine noise hits both; the predictions must be identical.
Writes benchmarks/results/eval_speed.json and eval_speed.md. Target: engine >= 1.5x faster.

    PYTHONPATH=. python benchmarks/bench_eval.py [--rounds 3] [--threads N] [--limit N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"

from benchmarks.published import TARGETS  # noqa: E402
from benchmarks.report import write_section  # noqa: E402

TARGET = TARGETS["engine_speedup"]


def naive_loop(model: Any, tokenizer: Any, texts: list[str], batch_size: int, max_length: int) -> list[int]:
    """What most scripts do: batches in file order, every row padded to max_length, no_grad."""
    import torch

    preds: list[int] = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(texts[start : start + batch_size], padding="max_length", truncation=True,
                            max_length=max_length, return_tensors="pt")  # fmt: skip
            preds.extend(model(**enc).logits.argmax(dim=-1).tolist())
    return preds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for eval_speed.json/.md")
    args = parser.parse_args()

    import torch

    from core.measure import environment, evaluate
    from core.measure.evaluation import pinned_threads
    from core.models import DEFAULT_MODEL, ModelRef, load_model, load_tokenizer
    from core.tasks import get_task

    task = get_task("sst2")
    ref = ModelRef.parse(DEFAULT_MODEL)
    torch.manual_seed(0)
    model = load_model(ref, task.head, task.num_labels).eval()
    tokenizer = load_tokenizer(ref)
    data = task.load("dev")
    if args.limit:
        data = data.select(range(args.limit))
    texts, labels = list(data["text"]), list(data["label"])
    threads = args.threads or torch.get_num_threads()

    engine_s: list[float] = []
    naive_s: list[float] = []
    engine_preds: list[int] = []
    naive_preds: list[int] = []
    # untimed warm-up of both paths (first-call allocations, kernel selection)
    evaluate(model, tokenizer, task, batch_size=args.batch_size, max_length=args.max_length, limit=64,
             threads=threads)  # fmt: skip
    with pinned_threads(threads):
        naive_loop(model, tokenizer, texts[:64], args.batch_size, args.max_length)
    for _ in range(args.rounds):
        result = evaluate(model, tokenizer, task, batch_size=args.batch_size, max_length=args.max_length,
                          limit=args.limit, threads=threads)  # fmt: skip
        engine_s.append(result.seconds)
        engine_preds = result.predictions
        with pinned_threads(threads):
            start = time.perf_counter()
            naive_preds = naive_loop(model, tokenizer, texts, args.batch_size, args.max_length)
            naive_s.append(time.perf_counter() - start)
    if engine_preds != naive_preds:
        diff = sum(a != b for a, b in zip(engine_preds, naive_preds, strict=True))
        raise SystemExit(f"predictions differ on {diff} of {len(texts)} examples")
    engine_acc = task.score(engine_preds, labels)["accuracy"]
    naive_acc = task.score(naive_preds, labels)["accuracy"]
    assert engine_acc == naive_acc
    ratio = statistics.median(naive_s) / statistics.median(engine_s)
    report = {
        "benchmark": "SST-2 dev evaluation: engine (length-sorted, dynamic padding, inference_mode) "
        "vs plain loop (file order, padding to max_length, no_grad)",
        "model": f"{ref} + seeded fresh classification head",
        "examples": len(texts),
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "threads": threads,
        "rounds": args.rounds,
        "accuracy": engine_acc,
        "predictions_identical": True,
        "engine_seconds": engine_s,
        "naive_seconds": naive_s,
        "engine_median_s": statistics.median(engine_s),
        "naive_median_s": statistics.median(naive_s),
        "speedup": ratio,
        "target": TARGET,
        "meets_target": ratio >= TARGET,
        "environment": environment(),
        "caveat": "shared, noisy 2-core machine: other processes ran during the measurement",
    }
    text = write_section("eval", report, args.out / "eval_speed.json")  # the same table as RESULTS.md
    print(text)


if __name__ == "__main__":
    main()
