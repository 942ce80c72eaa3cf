"""The "further compression of TinyBERT" study (Tables 1 and 2, Figure 1) on the packaged MiniLM-L6.

For each task: fine-tune the teacher (MiniLM-L6 + task head), distil a 3-layer student (teacher
layers 2, 4, 6; TinyBERT's intermediate-layer then prediction-layer stages), prune the student
(global L1, sweep 0.1-0.4) and quantize it (dynamic int8, embeddings int8). Every variant is saved
as an artifact, reloaded, and the *reloaded* model is evaluated (task metric on the dev split),
sized (bytes of the artifact folder) and timed (batch 8, sequence 128). The int8 vs fp32 latency
ratio is measured in the same run, alternating the two models over several rounds.

    python benchmarks/bench_tinybert.py                       # all five tasks (about 30 min on 2 cores)
    python benchmarks/bench_tinybert.py --tasks sst2 --train-size 2000 --reduced   # a quick run

Writes benchmarks/results/tinybert.json and tinybert.md (or --out PREFIX).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.published import PUBLISHED_TINYBERT as PUBLISHED  # noqa: E402

MB = 1e6  # the study reports decimal megabytes


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Bench:
    def __init__(self, args: argparse.Namespace, folder: Path) -> None:
        self.args = args
        self.folder = folder

    def ctx(self, task: Any, label: str) -> Any:
        from core.state import StepContext

        last = {"t": 0.0}

        def progress(fraction: float, message: str = "") -> None:
            now = time.perf_counter()
            if now - last["t"] > 20 or fraction >= 1.0:
                last["t"] = now
                _log(f"  {label}: {fraction:5.1%} {message}")

        return StepContext(seed=self.args.seed, task=task, scratch=self.folder, progress=progress,
                           threads=self.args.train_threads)

    def apply(self, step_id: str, state: Any, task: Any, **config: Any) -> Any:
        from core.steps.base import get_step

        step = get_step(step_id)
        started = time.perf_counter()
        out = step(step.config_cls(**config)).apply(state, self.ctx(task, step_id))
        out.info.setdefault("_bench_seconds", {})[step_id] = time.perf_counter() - started
        _log(f"  {step_id} done in {time.perf_counter() - started:.0f} s")
        return out

    def measure(self, name: str, state: Any, task: Any) -> tuple[dict[str, Any], Any]:
        """Save, reload, evaluate the reloaded model, size the artifact; returns (row, reloaded model)."""
        from core.artifacts import load_artifact, save_artifact
        from core.measure import evaluate, size_report

        folder = self.folder / name
        save_artifact(state, folder, base="packaged:all-MiniLM-L6-v2")
        loaded = load_artifact(folder)
        result = evaluate(
            loaded.model, loaded.tokenizer, task, "dev", batch_size=32, max_length=128,
            limit=self.args.eval_limit, threads=self.args.threads,
        )  # fmt: skip
        size = size_report(loaded.model, folder)
        row = {
            "variant": name,
            "metric": result.primary,
            "metrics": result.metrics,
            "eval_examples": result.examples,
            "artifact_mb": size.artifact_bytes / MB,
            "weights_mb": size.weights_bytes / MB,
            "params": size.params,
            "nonzero_params": size.nonzero_params,
        }
        _log(f"  {name}: {task.primary_metric} {result.primary:.4f}, artifact {row['artifact_mb']:.2f} MB")
        return row, loaded

    def latencies(self, models: dict[str, Any], tokenizer: Any) -> dict[str, dict[str, float]]:
        """p50/p90 per model, alternating models over rounds so shared-machine noise hits all alike."""
        from core.measure import latency

        runs: dict[str, list[Any]] = {k: [] for k in models}
        for _ in range(self.args.latency_rounds):
            for name, model in models.items():
                runs[name].append(
                    latency(model, tokenizer, batch_size=8, seq_len=128, repeats=self.args.latency_repeats,
                            threads=self.args.threads)
                )  # fmt: skip
        return {
            name: {
                "p50_ms": statistics.median(r.p50_ms for r in reps),
                "p90_ms": statistics.median(r.p90_ms for r in reps),
                "threads": reps[0].threads,
            }
            for name, reps in runs.items()
        }


def run_task(bench: Bench, task_id: str) -> dict[str, Any]:
    import torch

    from core.models import ModelRef, load_model, load_tokenizer
    from core.state import ModelState
    from core.tasks import get_task

    args = bench.args
    task = get_task(task_id)
    ref = ModelRef.parse("all-MiniLM-L6-v2")
    torch.manual_seed(args.seed)
    base = ModelState(load_model(ref, task.head, task.num_labels).eval(), load_tokenizer(ref), task.id, task.head)
    started = time.perf_counter()
    _log(f"{task_id}: fine-tuning the teacher")
    teacher = bench.apply(
        "finetune", base, task, lr=args.teacher_lr, epochs=args.teacher_epochs, batch_size=32,
        train_size=args.train_size, warmup_ratio=0.1,
    )  # fmt: skip
    rows, models = [], {}
    row, loaded = bench.measure("teacher (MiniLM-L6)", teacher, task)
    rows.append(row)
    models["teacher"] = loaded.model
    _log(f"{task_id}: distilling the 3-layer student")
    student = bench.apply(
        "distill", teacher, task, student="teacher_layers", keep_layers="2,4,6",
        intermediate_epochs=args.stage1_epochs, intermediate_lr=args.distill_lr,
        prediction_epochs=args.stage2_epochs, lr=args.distill_lr, temperature=1.0, alpha=1.0,
        batch_size=32, train_size=args.train_size,
    )  # fmt: skip
    row, loaded = bench.measure("student (3 layers)", student, task)
    rows.append(row)
    models["student"] = loaded.model
    for amount in args.prune_amounts:
        pruned = bench.apply("prune.global_magnitude", student, task, amount=amount)
        row, _ = bench.measure(f"student pruned {amount:.0%}", pruned, task)
        row["sparsity"] = pruned.info["prune.global_magnitude"]["sparsity"]
        rows.append(row)
    q = bench.apply("quantize.dynamic_int8", student, task)
    row, loaded = bench.measure("student int8", q, task)
    rows.append(row)
    models["student_int8"] = loaded.model
    if args.torchao:
        qt = bench.apply("quantize.dynamic_int8", student, task, backend="torchao")
        row, loaded = bench.measure("student int8 (torchao)", qt, task)
        rows.append(row)
        models["student_int8_torchao"] = loaded.model
    if args.full_range:
        qf = bench.apply("quantize.dynamic_int8", student, task, activation_range="full")
        row, loaded = bench.measure("student int8 (8-bit activations)", qf, task)
        rows.append(row)
        models["student_int8_full"] = loaded.model
    _log(f"{task_id}: latency (batch 8, seq 128)")
    lat = bench.latencies(models, student.tokenizer)
    key_of = {"teacher (MiniLM-L6)": "teacher", "student (3 layers)": "student", "student int8": "student_int8",
              "student int8 (8-bit activations)": "student_int8_full", "student int8 (torchao)": "student_int8_torchao"}
    for r in rows:
        k = key_of.get(r["variant"])
        if k is None and r["variant"].startswith("student pruned"):
            k = "student"  # unstructured zeros run on the same dense kernels: timed as the student
            r["latency_note"] = "dense kernels: same as the student"
        r["latency_p50_ms"] = lat[k]["p50_ms"]
        r["latency_p90_ms"] = lat[k]["p90_ms"]
    by = {r["variant"]: r for r in rows}
    s, s8, t = by["student (3 layers)"], by["student int8"], by["teacher (MiniLM-L6)"]
    ratios = {
        "int8_vs_fp32_latency_speedup": lat["student"]["p50_ms"] / lat["student_int8"]["p50_ms"],
        "int8_vs_fp32_artifact_ratio": s8["artifact_mb"] / s["artifact_mb"],
        "int8_metric_cost_points": 100 * (s["metric"] - s8["metric"]),
        "student_vs_teacher_metric_retention": s["metric"] / t["metric"] if t["metric"] else None,
        "student_vs_teacher_artifact_ratio": s["artifact_mb"] / t["artifact_mb"],
        "student_vs_teacher_latency_speedup": lat["teacher"]["p50_ms"] / lat["student"]["p50_ms"],
    }
    if "student_int8_torchao" in lat:
        ratios["torchao_int8_latency_speedup"] = lat["student"]["p50_ms"] / lat["student_int8_torchao"]["p50_ms"]
        ratios["torchao_int8_artifact_ratio"] = by["student int8 (torchao)"]["artifact_mb"] / s["artifact_mb"]
        ratios["torchao_int8_metric_cost_points"] = 100 * (s["metric"] - by["student int8 (torchao)"]["metric"])
    if "student_int8_full" in lat:
        ratios["int8_full_range_latency_speedup"] = lat["student"]["p50_ms"] / lat["student_int8_full"]["p50_ms"]
        ratios["int8_full_range_metric_cost_points"] = 100 * (
            s["metric"] - by["student int8 (8-bit activations)"]["metric"]
        )
    train_stats = {
        "teacher_finetune": teacher.info["finetune"],
        "distill": {k: v for k, v in student.info["distill"].items() if k in ("stage1", "stage2", "layer_mapping")},
    }
    return {
        "task": task_id,
        "metric_name": task.primary_metric,
        "task_note": task.note,
        "rows": rows,
        "ratios": ratios,
        "training": train_stats,
        "seconds": time.perf_counter() - started,
    }


def _settings_line(s: dict[str, Any]) -> str:
    return (
        ("**REDUCED** — " if s["reduced"] else "") + f"{', '.join(s['tasks'])}: "
        f"training subset {s['train_size'] or 'all'} examples (seeded); teacher {s['teacher_epochs']} epochs "
        f"(lr {s['teacher_lr']}); distillation stage 1 {s['stage1_epochs']} + stage 2 {s['stage2_epochs']} epochs "
        f"(lr {s['distill_lr']}); training on {s.get('train_threads', '?')} thread(s); dev evaluation "
        f"{'first ' + str(s['eval_limit']) + ' rows' if s['eval_limit'] else 'full'}; latency batch 8 x seq 128 on "
        f"{s['threads']} thread(s), median of {s['latency_rounds']} alternating rounds of {s['latency_repeats']} repeats."
    )


def markdown(result: dict[str, Any]) -> str:
    runs = result.get("runs") or [result["settings"]]
    lines = [
        "# TinyBERT study on the packaged MiniLM-L6 (benchmarks/bench_tinybert.py)",
        "",
        *[f"- {_settings_line(s)}" for s in runs],
        "",
        "Every figure comes from the saved artifact, reloaded.",
        "",
        f"Machine: {result['environment'].get('cpu_model')} ({result['environment'].get('cores')} cores), shared "
        "with other jobs during the run: latencies are noisy, ratios are measured side by side.",
        "",
        "## Table 1 — task metric (dev)",
        "",
    ]
    tasks = result["tasks"]
    variants: list[str] = []
    for t in tasks:
        variants += [r["variant"] for r in t["rows"] if r["variant"] not in variants]
    lines.append("| variant | " + " | ".join(f"{t['task']} ({t['metric_name']})" for t in tasks) + " |")
    lines.append("|---|" + "---:|" * len(tasks))
    for v in variants:
        cells = []
        for t in tasks:
            r = next((r for r in t["rows"] if r["variant"] == v), None)
            cells.append("—" if r is None else f"{r['metric']:.4f}")
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    lines += ["", "## Table 2 — size and latency", "",
              "| task | variant | artifact MB | params | non-zeros | p50 ms | p90 ms |", "|---|---|---:|---:|---:|---:|---:|"]
    for t in tasks:
        for r in t["rows"]:
            lines.append(
                f"| {t['task']} | {r['variant']} | {r['artifact_mb']:.2f} | {r['params']:,} | {r['nonzero_params']:,} | "
                f"{r['latency_p50_ms']:.1f} | {r['latency_p90_ms']:.1f} |"
            )
    lines += ["", "## Ratios measured in the same run", "",
              "| task | int8/fp32 speed-up | int8/fp32 artifact | int8 metric cost (points) | student/teacher metric | "
              "student/teacher artifact | student/teacher speed-up |", "|---|---:|---:|---:|---:|---:|---:|"]
    for t in tasks:
        q = t["ratios"]
        ret = q["student_vs_teacher_metric_retention"]
        lines.append(
            f"| {t['task']} | {q['int8_vs_fp32_latency_speedup']:.2f}x | {q['int8_vs_fp32_artifact_ratio']:.3f} | "
            f"{q['int8_metric_cost_points']:+.2f} | {'n/a' if ret is None else f'{ret:.3f}'} | "
            f"{q['student_vs_teacher_artifact_ratio']:.3f} | {q['student_vs_teacher_latency_speedup']:.2f}x |"
        )
    lines += ["", "int8 metric cost = 100 x (fp32 student - int8 student); negative means int8 scored higher. "
              "Pruned variants run on the same dense kernels, so they are timed as the student."]
    if any("torchao_int8_latency_speedup" in t["ratios"] for t in tasks):
        lines += ["", "torchao backend (Int8DynamicActivationInt8WeightConfig, eager): " + "; ".join(
            f"{t['task']}: {t['ratios']['torchao_int8_latency_speedup']:.2f}x vs fp32, artifact "
            f"{t['ratios']['torchao_int8_artifact_ratio']:.3f}x, metric cost {t['ratios']['torchao_int8_metric_cost_points']:+.2f} points"
            for t in tasks if "torchao_int8_latency_speedup" in t["ratios"])]  # fmt: skip
    if any("int8_full_range_latency_speedup" in t["ratios"] for t in tasks):
        lines += ["", "8-bit activations (activation_range=full): " + "; ".join(
            f"{t['task']}: {t['ratios']['int8_full_range_latency_speedup']:.2f}x, metric cost "
            f"{t['ratios']['int8_full_range_metric_cost_points']:+.2f} points"
            for t in tasks if "int8_full_range_latency_speedup" in t["ratios"])]  # fmt: skip
    lines += ["", "## Figure 1 — pruning sweep (student)", "", "| task | amount | sparsity of pruned groups | metric | artifact MB |",
              "|---|---:|---:|---:|---:|"]
    for t in tasks:
        for r in t["rows"]:
            if "sparsity" in r:
                amount = r["variant"].split()[-1]
                lines.append(f"| {t['task']} | {amount} | {r['sparsity']:.3f} | {r['metric']:.4f} | {r['artifact_mb']:.2f} |")
    lines += ["", "Published anchors (BERT-base teacher, TinyBERT student): " +
              "; ".join(f"{k}: {v}" for k, v in PUBLISHED.items()), ""]
    notes = [t["task_note"] for t in tasks if t.get("task_note")]
    if notes:
        lines += ["Task notes: " + " | ".join(notes), ""]
    lines.append(f"Total wall time: {result['seconds'] / 60:.1f} min" + (" (runs in parallel)" if len(runs) > 1 else "") + ".")
    return "\n".join(lines) + "\n"


def combine(paths: list[str], out: Path) -> dict[str, Any]:
    """Merge several runs' JSON (e.g. tasks run in parallel with different sizes) into one report."""
    parts = [json.loads(Path(p).read_text(encoding="utf-8")) for p in paths]
    result = {
        "benchmark": "tinybert",
        "runs": [p["settings"] for p in parts],
        "environment": parts[0]["environment"],
        "published": PUBLISHED,
        "tasks": [dict(t, settings=p["settings"]) for p in parts for t in p["tasks"]],
        "seconds": max(p["seconds"] for p in parts),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(markdown(result), encoding="utf-8")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--combine", nargs="+", metavar="JSON", help="merge earlier runs' JSON files and exit")
    parser.add_argument("--tasks", default="sst2,cola,rte,stsb,qnli")
    parser.add_argument("--train-size", type=int, default=3000, help="seeded training subset per task (0 = all)")
    parser.add_argument("--teacher-epochs", type=float, default=3.0)
    parser.add_argument("--teacher-lr", type=float, default=1e-4)
    parser.add_argument("--stage1-epochs", type=float, default=2.0)
    parser.add_argument("--stage2-epochs", type=float, default=3.0)
    parser.add_argument("--distill-lr", type=float, default=1e-4)
    parser.add_argument("--prune-amounts", default="0.1,0.2,0.3,0.4")
    parser.add_argument("--eval-limit", type=int, default=None, help="evaluate the first N dev rows only")
    parser.add_argument("--threads", type=int, default=2, help="threads for evaluation and latency")
    parser.add_argument("--train-threads", type=int, default=1,
                        help="threads for training (1: on a busy shared machine 2 threads ran 6x slower)")
    parser.add_argument("--latency-repeats", type=int, default=10)
    parser.add_argument("--latency-rounds", type=int, default=3)
    parser.add_argument("--full-range", action="store_true", help="also measure int8 with 8-bit activations")
    parser.add_argument("--torchao", action="store_true", help="also measure int8 on the torchao backend")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reduced", action="store_true", help="label the output as a reduced run")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "tinybert"))
    args = parser.parse_args(argv)
    if args.combine:
        print(markdown(combine(args.combine, Path(args.out))))
        return 0
    args.prune_amounts = [float(a) for a in args.prune_amounts.split(",") if a]
    args.train_size = args.train_size or None
    tasks = [t for t in args.tasks.split(",") if t]

    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    import torch

    torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    from core.measure import environment

    started = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-tinybert-") as tmp:
        for task_id in tasks:
            task_dir = Path(tmp) / task_id
            task_dir.mkdir()
            results.append(run_task(Bench(args, task_dir), task_id))
    result = {
        "benchmark": "tinybert",
        "settings": {
            "tasks": tasks,
            "reduced": args.reduced,
            "train_size": args.train_size,
            "teacher_epochs": args.teacher_epochs,
            "teacher_lr": args.teacher_lr,
            "stage1_epochs": args.stage1_epochs,
            "stage2_epochs": args.stage2_epochs,
            "distill_lr": args.distill_lr,
            "prune_amounts": args.prune_amounts,
            "eval_limit": args.eval_limit,
            "threads": args.threads,
            "train_threads": args.train_threads,
            "latency_repeats": args.latency_repeats,
            "latency_rounds": args.latency_rounds,
            "torchao": args.torchao,
            "seed": args.seed,
        },
        "environment": environment(),
        "published": PUBLISHED,
        "tasks": results,
        "seconds": time.perf_counter() - started,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
