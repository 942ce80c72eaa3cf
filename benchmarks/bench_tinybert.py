"""The "further compression of TinyBERT" study (Tables 1 and 2, Figure 1) on the packaged MiniLM-L6,
run through the engine.

For each task, recipes that share a prefix run with core.run.runner into one results database:

    prune:  finetune (teacher) -> distill (3-layer student: teacher layers 2, 4, 6) -> prune.global_magnitude [sweep]
    int8:   finetune (teacher) -> distill (student) -> quantize.dynamic_int8
    (--torchao, --full-range: the same prefix -> quantize.dynamic_int8 on another backend / 8-bit activations)
    augmented (--augment N): finetune (teacher) -> augment.tinybert (N rewrites per sentence) -> distill

The teacher is the packaged model fine-tuned with the shipped finetune defaults on the whole bundled
training split (issue 20: teachers that learned), or with ``--teacher-ready`` a model folder already
fine-tuned on the one task given (RTE's model soup, benchmarks/probe_rte_soup.py): the chains then start
at the student, and the teacher row is that model as loaded (the runs' baseline). Both distillation stages stop at ``--distill-steps``
optimizer steps, so the students with and without augmented rows get the same training budget and
the difference between them is what augmentation adds. The runner's prefix cache trains the teacher
and the student once; the later recipes reuse them (their rows say ``cached``, and the JSON records
it). For each task the JSON also holds the teacher against its majority class and each student
against its teacher, paired on the stored dev predictions with 95 % bootstrap intervals. Every figure is what the engine measured and
stored for the variant: task metric on the dev split, bytes of the saved artifact, latency. The
tables are read back from the database (core.store.result_rows) and rendered by
benchmarks/report.py, the same code that writes RESULTS.md.

    python benchmarks/bench_tinybert.py --torchao             # all five tasks (about 2 hours on 2 cores)
    python benchmarks/bench_tinybert.py --tasks rte --out /tmp/rte        # one task; then --combine the JSONs
    python benchmarks/bench_tinybert.py --tasks sst2 --train-size 500 --teacher-epochs 2 --distill-steps 16 --reduced

Writes benchmarks/results/tinybert.json and tinybert.md (or --out PREFIX), and the database
PREFIX.sqlite (its artifacts in PREFIX-artifacts/).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.report import tinybert_ratios, write_section  # noqa: E402
from benchmarks.study import Study, environment, log, parse_config, quiet_libraries  # noqa: E402

MODEL = "all-MiniLM-L6-v2"
TEACHER = "teacher (MiniLM-L6)"
STUDENT = "student (3 layers)"
AUGMENTED = "student (3 layers, augmented)"
# the quantized students: recipe key -> (row name, extra config of quantize.dynamic_int8)
INT8 = {
    "int8": ("student int8", {}),
    "int8-torchao": ("student int8 (torchao)", {"backend": "torchao"}),
    "int8-full": ("student int8 (8-bit activations)", {"activation_range": "full"}),
}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """The recipes' measure: block (the same for every recipe, so their prefixes share cache keys)."""
    return {"eval_limit": args.eval_limit, "eval_batch_size": 32, "max_length": args.max_length, "latency_batch_size": 8,
            "latency_seq_len": 128, "latency_warmup": 3, "latency_repeats": args.latency_repeats,
            "threads": args.threads}


def teacher_config(args: argparse.Namespace) -> dict[str, Any]:
    """The teacher's finetune config: the shipped defaults (an empty config, whole training split)
    unless the command line overrides them (a reduced run)."""
    config: dict[str, Any] = {}
    if args.train_size:
        config["train_size"] = args.train_size
    if args.teacher_epochs is not None:
        config["epochs"] = args.teacher_epochs
    if args.teacher_lr is not None:
        config["lr"] = args.teacher_lr
    return {**config, **args.teacher_config}


def distill_config(args: argparse.Namespace) -> dict[str, Any]:
    """TinyBERT's two stages into teacher layers 2, 4, 6, each stage capped by ``--distill-steps``
    optimizer steps, so the students with and without augmented rows get the same training budget."""
    return {"student": "teacher_layers", "keep_layers": "2,4,6", "intermediate_epochs": args.stage1_epochs,
            "intermediate_lr": args.distill_lr, "prediction_epochs": args.stage2_epochs, "lr": args.distill_lr,
            "temperature": 1.0, "alpha": 1.0, "batch_size": 32, "max_length": args.max_length, "train_size": args.train_size,
            "max_steps": args.distill_steps}


def recipes(args: argparse.Namespace, task: str) -> dict[str, dict[str, Any]]:
    """The study's recipes for one task: one per branch after the shared teacher -> student prefix,
    and (``--augment N``) the teacher -> augmentation -> student branch."""
    teacher = [] if args.teacher_ready else [{"step": "finetune", "config": teacher_config(args)}]
    prefix = [*teacher, {"step": "distill", "config": distill_config(args)}]

    def recipe(name: str, chain: list[dict[str, Any]]) -> dict[str, Any]:
        return {"name": f"TinyBERT study, {task}: {name}", "model": args.model, "task": task, "seed": args.seed,
                "measure": measure(args), "chain": chain}

    out = {"prune": recipe("pruning sweep", [*prefix, {"step": "prune.global_magnitude",
                                                       "config": {"amount": list(args.prune_amounts)}}])}
    for key, (name, extra) in INT8.items():
        if key == "int8" or (key == "int8-torchao" and args.torchao) or (key == "int8-full" and args.full_range):
            out[key] = recipe(name, [*prefix, {"step": "quantize.dynamic_int8", "config": extra}])
    if args.augment:
        augment = {"step": "augment.tinybert", "config": {"per_sentence": args.augment, "train_size": args.train_size}}
        out["augmented"] = recipe(AUGMENTED, [*teacher, augment, prefix[-1]])
    return out


def teacher_step_id(args: argparse.Namespace) -> str:
    """The step whose variant is the teacher: the fine-tune, or (``--teacher-ready``) the model as loaded."""
    return "baseline" if args.teacher_ready else "finetune"


def table_row(study: Study, row: Any, name: str) -> dict[str, Any]:
    """One variant as the tables show it, from its stored ResultRow."""
    latency = study.latency(row)
    return {"variant": name, "run": row.run, "variant_id": row.variant, "step_id": row.step_id, "label": row.label,
            "cached": row.cached, "metric": row.metric, "metrics": row.task_metrics, "artifact_mb": row.size_mb,
            "params": row.params, "nonzero_params": row.nonzero_params, "latency_p50_ms": latency["p50_ms"],
            "latency_p90_ms": latency["p90_ms"]}


def run_task(study: Study, args: argparse.Namespace, task_id: str) -> dict[str, Any]:
    from core.tasks import get_task

    task = get_task(task_id)
    started = time.perf_counter()
    runs = {key: study.run(f"{task_id} {key}", recipe) for key, recipe in recipes(args, task_id).items()}
    first = runs["prune"]
    by_step = {r.step_id: r for r in first.rows}
    teacher_step = teacher_step_id(args)
    teacher, student = by_step[teacher_step], by_step["distill"]
    rows = [table_row(study, teacher, TEACHER), table_row(study, student, STUDENT)]
    for r in first.rows:
        if r.step_id == "prune.global_magnitude":
            row = table_row(study, r, f"student pruned {r.swept['amount']:.0%}")
            row["sparsity"] = study.step_info(r)["prune.global_magnitude"]["sparsity"]
            rows.append(row)
    for key, (name, _) in INT8.items():
        if key in runs:
            rows.append(table_row(study, next(r for r in runs[key].rows if r.step_id == "quantize.dynamic_int8"), name))
    augmented = next((r for r in runs["augmented"].rows if r.step_id == "distill"), None) if "augmented" in runs else None
    if augmented is not None:
        rows.append(table_row(study, augmented, AUGMENTED))
    # the prefix cache: every later recipe must reuse the teacher and the student, not train them again
    # (the augmented branch reuses the teacher only: its student learns from other rows)
    reuse = {key: {"run": run.run_id, "cached": [r.label for r in run.rows if r.cached],
                   "teacher_and_student_reused": all(r.cached for r in run.rows if r.step_id in (teacher_step, "distill"))}
             for key, run in runs.items() if key not in ("prune", "augmented")}
    if "augmented" in runs:
        reuse["augmented"] = {"run": runs["augmented"].run_id,
                              "cached": [r.label for r in runs["augmented"].rows if r.cached],
                              "teacher_reused": all(r.cached for r in runs["augmented"].rows if r.step_id == teacher_step)}
    teacher_info, student_info = study.step_info(teacher), study.step_info(student)
    result = {
        "task": task_id,
        "metric_name": task.primary_metric,
        "task_note": task.note,
        "rows": rows,
        "prefix_cache": reuse,
        "training": {"teacher_finetune": teacher_info.get("finetune"),
                     **({"teacher_ready": ready_teacher(args.model)} if args.teacher_ready else {}),
                     "distill": _distill_summary(student_info),
                     **({"augment": _augment_summary(study, runs["augmented"]),
                         "distill_augmented": _distill_summary(study.step_info(augmented))} if augmented else {})},
        "teacher_and_students": teachers_and_students(study, task, args.seed, teacher, student, augmented),
        "seconds": time.perf_counter() - started,
    }
    result["ratios"] = tinybert_ratios(result)
    return result


def _augment_summary(study: Study, run: Any) -> dict[str, Any] | None:
    """What augment.tinybert reported (rows made, where replacements came from), without its examples."""
    row = next((r for r in run.rows if r.step_id == "augment.tinybert"), None)
    info = study.step_info(row).get("augment.tinybert") if row is not None else None
    return {k: v for k, v in info.items() if k != "examples"} if info else None


def _distill_summary(info: dict[str, Any]) -> dict[str, Any]:
    distill = info.get("distill") or {}
    keep = {k: v for k, v in distill.items() if k in ("layer_mapping", "training_data")}
    for stage in ("stage1", "stage2"):  # without the loss curves, which the database keeps
        if stage in distill:
            keep[stage] = {k: v for k, v in distill[stage].items() if k not in ("curve", "curves")}
    return keep


def teachers_and_students(study: Study, task: Any, seed: int, teacher: Any, student: Any,
                          augmented: Any | None) -> dict[str, Any]:
    """Each model's dev metric with its 95 % interval; the teacher against the majority class (did it
    learn?); each student against its teacher (paired), and the augmented student against the plain one."""
    def scored(row: Any) -> dict[str, Any]:
        return {"value": row.metric, "low": row.metric_ci_low, "high": row.metric_ci_high,
                "examples": row.eval_examples}

    out: dict[str, Any] = {"metric": task.primary_metric, "teacher": scored(teacher),
                           "teacher_vs_trivial": study.versus_trivial(teacher, task, seed),
                           "student": scored(student),
                           "student_vs_teacher": study.paired_change(student, teacher, task, seed)}
    if augmented is not None:
        out["augmented"] = scored(augmented)
        out["augmented_vs_teacher"] = study.paired_change(augmented, teacher, task, seed)
        out["augmented_vs_student"] = study.paired_change(augmented, student, task, seed)
    return out


def ready_teacher(model: str) -> dict[str, Any]:
    """A --teacher-ready teacher: its folder and, when it is a soup (probe_rte_soup.py), the soup's record
    (members, their training, their shared start)."""
    manifest = Path(model) / "manifest.json"
    data = json.loads(manifest.read_text(encoding="utf-8")) if manifest.is_file() else {}
    info = data.get("info", {})
    return {"ready": model, "task": data.get("task"), "head_trained": bool(info.get("head_trained")),
            "soup": info.get("soup")}


def ready_summary(model: str) -> dict[str, Any]:
    """The settings' line for a ready teacher: its folder, and its soup's method and members."""
    soup = ready_teacher(model)["soup"]
    return {"ready": model, "soup": {"method": soup["method"], "members": soup["members"]} if soup else None}


def settings(args: argparse.Namespace, tasks: list[str]) -> dict[str, Any]:
    from core.steps.finetune import FinetuneConfig

    return {"model": args.model, "tasks": tasks, "reduced": args.reduced, "train_size": args.train_size,
            "teacher": (ready_summary(args.model) if args.teacher_ready else teacher_config(args) or "shipped finetune defaults"),
            "teacher_epochs": args.teacher_epochs,
            "teacher_defaults": {"version": FinetuneConfig.version, "lr": FinetuneConfig().lr},
            "teacher_lr": args.teacher_lr, "stage1_epochs": args.stage1_epochs, "stage2_epochs": args.stage2_epochs,
            "distill_steps": args.distill_steps, "distill_lr": args.distill_lr, "augment": args.augment, "prune_amounts": args.prune_amounts,
            "eval_limit": args.eval_limit, "threads": args.threads, "latency_repeats": args.latency_repeats,
            "torchao": args.torchao, "full_range": args.full_range, "seed": args.seed, "measure": measure(args)}


def write(result: dict[str, Any], out: Path) -> str:
    return write_section("tinybert", result, out.with_suffix(".json"))


def combine(paths: list[str], out: Path) -> dict[str, Any]:
    """Merge several runs' JSON (e.g. tasks run in parallel with different sizes) into one report."""
    parts = [json.loads(Path(p).read_text(encoding="utf-8")) for p in paths]
    result = {
        "benchmark": "tinybert",
        "runs": [p["settings"] for p in parts],
        "environment": parts[0]["environment"],
        "latency": parts[0].get("latency"),
        "studies": [p.get("study") for p in parts],
        "tasks": [dict(t, settings=p["settings"]) for p in parts for t in p["tasks"]],
        "seconds": max(p["seconds"] for p in parts),
    }
    write(result, out)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--combine", nargs="+", metavar="JSON", help="merge earlier runs' JSON files and exit")
    parser.add_argument("--tasks", default="sst2,cola,rte,stsb,qnli")
    parser.add_argument("--model", default=MODEL, help="the model to fine-tune as the teacher (6 layers or more)")
    parser.add_argument("--train-size", type=int, default=0,
                        help="seeded training subset per task for every training step (0 = the whole bundled split)")
    parser.add_argument("--teacher-epochs", type=float, default=None, help="override the shipped finetune default")
    parser.add_argument("--teacher-lr", type=float, default=None, help="override the shipped finetune default")
    parser.add_argument("--teacher-ready", action="store_true",
                        help="--model is already fine-tuned on the task (e.g. a model soup): no finetune step, the teacher "
                             "is the model as loaded")
    parser.add_argument("--teacher-config", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="other finetune fields for the teacher, e.g. consistency=1.0 (JSON values)")
    parser.add_argument("--stage1-epochs", type=float, default=20.0, help="cap on stage 1 (the step budget binds first)")
    parser.add_argument("--stage2-epochs", type=float, default=20.0, help="cap on stage 2 (the step budget binds first)")
    parser.add_argument("--distill-steps", type=int, default=300,
                        help="optimizer steps per distillation stage, the same with and without augmentation")
    parser.add_argument("--augment", type=int, default=4, metavar="N",
                        help="also distil a student on TinyBERT-augmented rows, N rewrites per sentence (0 = no)")
    parser.add_argument("--distill-lr", type=float, default=1e-4)
    parser.add_argument("--max-length", type=int, default=128,
                        help="tokens per row when evaluating and distilling; longer rows are truncated (RTE: 256, "
                             "as 33 of its 277 dev pairs are longer than 128 and its teacher trains at about 200)")
    parser.add_argument("--prune-amounts", default="0.1,0.2,0.3,0.4")
    parser.add_argument("--eval-limit", type=int, default=None,
                        help="evaluate a seeded sample of N dev rows (default: the whole dev split)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for training, evaluation and latency")
    parser.add_argument("--latency-repeats", type=int, default=20, help="timed forward passes per variant")
    parser.add_argument("--full-range", action="store_true", help="also measure int8 with 8-bit activations")
    parser.add_argument("--torchao", action="store_true", help="also measure int8 on the torchao backend")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reduced", action="store_true", help="label the output as a reduced run")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "tinybert"),
                        help="output prefix: PREFIX.json, PREFIX.md, and the database PREFIX.sqlite")
    parser.add_argument("--db", type=Path, default=None, help="results database (default: PREFIX.sqlite)")
    parser.add_argument("--reuse", action="store_true",
                        help="keep an existing database and reuse its finished variants (rows say 'cached')")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.combine:
        combine(args.combine, out)
        print(out.with_suffix(".md").read_text(encoding="utf-8"))
        return 0
    try:
        args.teacher_config = parse_config(args.teacher_config)
    except ValueError as exc:
        parser.error(f"--teacher-config {exc}")
    for field, option in (("train_size", "--train-size"), ("epochs", "--teacher-epochs"), ("lr", "--teacher-lr")):
        if field in args.teacher_config:
            parser.error(f"--teacher-config {field}: use {option}, which the report reads")
    if args.teacher_ready:
        if args.teacher_config or args.teacher_epochs is not None or args.teacher_lr is not None:
            parser.error("--teacher-ready trains no teacher: drop --teacher-config, --teacher-epochs and --teacher-lr")
        if len([t for t in args.tasks.split(",") if t]) != 1:
            parser.error("--teacher-ready: a ready teacher is fine-tuned for one task; give exactly one in --tasks")
        ready = ready_teacher(args.model)
        if not ready["head_trained"]:
            parser.error(f"--teacher-ready: {args.model} is not a model folder whose task head was trained (a stored "
                         "fine-tune or a soup of them, with its manifest.json)")
        if ready["task"] != args.tasks.strip(","):
            parser.error(f"--teacher-ready: {args.model} was fine-tuned for {ready['task']}, not {args.tasks}")
    args.prune_amounts = [float(a) for a in args.prune_amounts.split(",") if a]
    args.train_size = args.train_size or None
    tasks = [t for t in args.tasks.split(",") if t]
    quiet_libraries()

    from core.recipe import MeasureSettings

    started = time.perf_counter()
    study = Study(args.db or out.with_suffix(".sqlite"), reuse=args.reuse)
    results = [run_task(study, args, task_id) for task_id in tasks]
    result = {
        "benchmark": "tinybert",
        "settings": settings(args, tasks),
        "environment": environment(),
        "latency": Study.latency_note(MeasureSettings(**measure(args))),
        "study": study.summary(),
        "tasks": results,
        "seconds": time.perf_counter() - started,
    }
    print(write(result, out))
    log(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
