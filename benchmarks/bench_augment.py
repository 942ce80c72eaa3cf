"""What TinyBERT's data augmentation adds: the 3-layer student distilled with and without it, on SST-2,
through the engine (benchmarks/study.py: one results database, the teacher trained once).

    teacher:            finetune (SST-2, --teacher-train sentences, --teacher-steps steps)
    plain:              teacher -> distill (3 layers, --sentences sentences)
    augmented:          teacher -> augment.tinybert (the same sentences, N rewrites each) -> distill (same config)
    plain, same steps:  teacher -> distill on the same sentences for as many optimizer steps as 'augmented' took
                        (more epochs): does augmentation help beyond training longer?

Each arm's wall time, CPU time (this process, all threads) and the machine's load (`uptime`, before and
after) are recorded: the machine is shared. The paired difference of each student against the plain one
is a bootstrap over the same dev sentences (core.measure.verdicts).

    python benchmarks/bench_augment.py                     # writes benchmarks/results/augment.{json,md}
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.study import Study, environment, log, quiet_libraries  # noqa: E402

MODEL = "all-MiniLM-L6-v2"


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def recipes(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    teacher = {"step": "finetune", "config": {"train_size": args.teacher_train, "max_steps": args.teacher_steps,
                                              "epochs": 1.0}}
    distill = {"student": "teacher_layers", "student_layers": 3, "intermediate_epochs": args.epochs,
               "intermediate_lr": 1e-4, "prediction_epochs": args.epochs, "lr": 1e-4, "batch_size": 32,
               "max_length": 64}
    augment = {"step": "augment.tinybert", "config": {"per_sentence": args.n, "replace_prob": 0.4, "candidates": 15,
                                                      "train_size": args.sentences}}
    measure = {"eval_limit": None, "eval_batch_size": 32, "max_length": 64, "latency_batch_size": 8,
               "latency_seq_len": 64, "latency_warmup": 3, "latency_repeats": 10, "threads": None}

    def recipe(name: str, chain: list[dict[str, Any]]) -> dict[str, Any]:
        return {"name": f"Augmentation study: {name}", "model": args.model, "task": "sst2", "seed": args.seed,
                "measure": measure, "chain": [teacher, *chain]}

    return {
        "plain": recipe("plain", [{"step": "distill", "config": {**distill, "train_size": args.sentences}}]),
        "augmented": recipe("augmented", [augment, {"step": "distill", "config": distill}]),
    }


def paired(study: Study, row: Any, other: Any) -> dict[str, float] | None:
    """row's metric minus other's on the same dev sentences, with a 95 % paired bootstrap interval."""
    from core.measure import verdicts
    from core.store import open_store, variant_predictions
    from core.tasks import get_task

    task = get_task("sst2")
    with open_store(study.db) as store:
        a, b = variant_predictions(store, row.variant), variant_predictions(store, other.variant)
    if not a or not b or a["indices"] != b["indices"]:
        return None
    dev = task.load("dev")
    references = [dev[i]["label"] for i in a["indices"]]
    d = verdicts.versus_parent(task, a["predictions"], b["predictions"], references, seed=0)
    return {"value": d.value, "low": d.low, "high": d.high}


def describe(study: Study, row: Any) -> dict[str, Any]:
    info = study.step_info(row).get(row.step_id) or {}
    out = {"variant": row.variant, "label": row.label, "cached": row.cached, "metric": row.metric,
           "ci": [row.metric_ci_low, row.metric_ci_high], "size_mb": row.size_mb, "params": row.params}
    if row.step_id == "distill":
        out["training"] = {stage: {k: (info.get(stage) or {}).get(k) for k in ("steps", "examples_seen", "seconds",
                                                                                 "first_loss", "final_loss")}
                           for stage in ("stage1", "stage2")}
        out["training_data"] = info.get("training_data")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--teacher-train", type=int, default=8000, help="teacher: seeded SST-2 sentences")
    parser.add_argument("--teacher-steps", type=int, default=250, help="teacher: optimizer steps at most")
    parser.add_argument("--sentences", type=int, default=1000, help="student: seeded SST-2 sentences (both arms)")
    parser.add_argument("--n", type=int, default=8, help="augment: rewrites per sentence (TinyBERT: 20)")
    parser.add_argument("--epochs", type=float, default=1.0, help="distill: epochs of each stage")
    parser.add_argument("--same-steps", action="store_true", help="also the plain student trained as many steps")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "augment"))
    parser.add_argument("--reuse", action="store_true")
    args = parser.parse_args(argv)
    quiet_libraries()
    out = Path(args.out)
    study = Study(out.with_suffix(".sqlite"), reuse=args.reuse)
    arms: dict[str, Any] = {}
    started = time.perf_counter()
    todo = recipes(args)
    for key in ("plain", "augmented", "plain-same-steps"):
        if key == "plain-same-steps":
            if not args.same_steps:
                continue
            steps = arms["augmented"]["student"]["training"]["stage1"]["steps"]
            per_epoch = -(-args.sentences // 32)
            epochs = round(steps / per_epoch, 2)  # stage 1's steps of the augmented arm, in plain epochs
            todo[key] = json.loads(json.dumps(todo["plain"]))
            todo[key]["name"] += f", {epochs} epochs per stage (the augmented arm's steps)"
            todo[key]["chain"][-1]["config"].update(intermediate_epochs=epochs, prediction_epochs=epochs)
        load_before, cpu0, wall0 = uptime(), time.process_time(), time.perf_counter()
        run = study.run(key, todo[key])
        by_step = {r.step_id: r for r in run.rows}
        arms[key] = {"wall_s": round(time.perf_counter() - wall0, 1), "cpu_s": round(time.process_time() - cpu0, 1),
                     "uptime_before": load_before, "uptime_after": uptime(), "run": run.run_id,
                     "teacher": describe(study, by_step["finetune"]), "student": describe(study, by_step["distill"]),
                     "recipe": todo[key]}
        if "augment.tinybert" in by_step:
            arms[key]["augment"] = study.step_info(by_step["augment.tinybert"]).get("augment.tinybert")
        arms[key]["row"] = by_step["distill"]
        log(f"{key}: student {by_step['distill'].metric:.4f} in {arms[key]['wall_s']} s wall, "
            f"{arms[key]['cpu_s']} s CPU; {arms[key]['uptime_after']}")
    for key, arm in arms.items():
        if key != "plain":
            arm["versus_plain"] = paired(study, arm["row"], arms["plain"]["row"])
    for arm in arms.values():
        arm.pop("row")
    result = {"benchmark": "augment", "settings": vars(args), "environment": environment(), "arms": arms,
              "study": study.summary(), "seconds": round(time.perf_counter() - started, 1)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    text = markdown(result)
    out.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)
    return 0


def markdown(result: dict[str, Any]) -> str:
    s, arms = result["settings"], result["arms"]
    teacher = arms["plain"]["teacher"]
    lines = [
        "## TinyBERT data augmentation (SST-2, 3-layer student)", "",
        f"Teacher: {s['model']} fine-tuned on {s['teacher_train']:,} seeded SST-2 sentences, at most "
        f"{s['teacher_steps']} steps: accuracy {teacher['metric']:.4f} [{teacher['ci'][0]:.4f}, {teacher['ci'][1]:.4f}] "
        "on the 872 dev sentences. Students: its layers 2, 4, 6, distilled (stage 1 intermediate layers, stage 2 "
        f"prediction layer, {s['epochs']:g} epoch(s) each, lr 1e-4, batch 32) on the same {s['sentences']:,} seeded "
        f"sentences; 'augmented' adds augment.tinybert's rewrites of them (N = {s['n']}, p_t = 0.4, K = 15; "
        "word-piece embedding neighbours of the teacher, no masked-LM: the packaged model ships none). "
        "Intervals: 95 % bootstrap over the dev sentences; the change is paired on the same sentences.", "",
        "| student | training rows | steps (stage 1 + 2) | accuracy [95 % CI] | vs plain [95 % CI] | wall | CPU | load (1-min avg) before -> after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, arm in arms.items():
        st = arm["student"]
        rows = (st.get("training_data") or {}).get("rows") or s["sentences"]
        steps = " + ".join(str((st["training"].get(x) or {}).get("steps")) for x in ("stage1", "stage2"))
        vs = arm.get("versus_plain")
        vs_text = "—" if not vs else f"{vs['value'] * 100:+.1f} pts [{vs['low'] * 100:+.1f}, {vs['high'] * 100:+.1f}]"
        load = f"{_load(arm['uptime_before'])} -> {_load(arm['uptime_after'])}"
        lines.append(f"| {key} | {rows:,} | {steps} | {st['metric']:.4f} [{st['ci'][0]:.4f}, {st['ci'][1]:.4f}] | "
                     f"{vs_text} | {arm['wall_s']:.0f} s | {arm['cpu_s']:.0f} s | {load} |")
    aug = arms.get("augmented", {}).get("augment")
    if aug:
        lines += ["", f"Augmentation: {aug['sentences']:,} sentences -> {aug['rows']:,} rows ({aug['augmented_rows']:,} "
                  f"rewrites) in {aug['seconds']} s; words replaced from the masked LM {aug['words']['mlm']:,}, from "
                  f"embedding neighbours {aug['words']['embedding']:,}. Sources: {aug['sources']['embedding_neighbours']}.",
                  "", "Examples:", ""]
        lines += [f"- `{e['original']}` -> `{e['rewrite']}`" for e in aug["examples"][:3]]
    lines += ["", "Wall and CPU include the teacher in the first arm only (the others reuse it from the cache) and "
              "each arm's evaluation on the 872 dev sentences and latency. Command: `python benchmarks/bench_augment.py"
              + (" --same-steps" if s.get("same_steps") else "") + "`.", ""]
    return "\n".join(lines)


def _load(text: str) -> str:
    return text.rsplit("load average:", 1)[-1].split(",")[0].strip() if "load average" in text else "?"


if __name__ == "__main__":
    sys.exit(main())
