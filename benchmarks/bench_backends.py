"""Deployment backends side by side (issue 15), through the engine: torch, ONNX Runtime, OpenVINO.

Three recipes run through the runner (benchmarks/study.py) into one results database, sharing their
fine-tuned prefix through the cache, every variant measured with ``measure.backends: [torch,
onnxruntime, openvino]`` (exported, round-trip checked, timed side by side per variant):

    packaged MiniLM-L6 -> finetune (the step's defaults, a step budget of --max-steps) -> quantize.dynamic_int8
    packaged MiniLM-L6 -> finetune (cached)                                             -> quantize.static_int8 (openvino, NNCF)
    packaged MiniLM-L6 -> finetune (cached) -> distill (3 layers) -> vocab.reduce -> quantize.static_int8 (openvino)
                                                       with the recipe's accuracy budget {metric_drop: 1.0}

Then every model is loaded from its saved file and timed in the same interleaved rounds, with the same
threads and input shapes, at batch 8 x 128 and 1 x 128 (core.backends.timing):

- torch fp32: the fine-tuned variant's artifact;             torch dynamic int8: the int8 variant's artifact
- OpenVINO fp32: the fine-tuned variant's export kept by the run (its round trip is in the JSON)
- OpenVINO NNCF static int8: the static int8 variant's artifact (its deployable file)
- the chain (issue 15's second target): the last variant of the third recipe, its deployable file
- ONNX Runtime dynamic int8: the engine has no step for it; made here with ONNX Runtime's own
  ``quantize_dynamic`` from the run's ONNX export of the fine-tuned variant
- hand-written NNCF + OpenVINO static int8 of the same fp32 model, as NNCF's guide writes it
  (convert_model, nncf.quantize with model_type=TRANSFORMER and its defaults, save_model), the
  issue's yardstick.

Accuracy: on the SST-2 dev set (all 872 sentences, or a seeded --eval-limit subset) by running each
file, with 95 % bootstrap intervals; speed ratios are per-round paired medians with 95 % bootstrap
intervals. Size: the bytes of the folder a user ships (model file(s), tokenizer, config). Other jobs
may share the machine: the 1-minute load average is recorded before and after each phase. The
Markdown is rendered by benchmarks/report.py (the same section as in RESULTS.md).

    python benchmarks/bench_backends.py                    # ~45 min on 2 cores (AMD EPYC), 35 of them distilling
    python benchmarks/bench_backends.py --quick            # smoke run: small budget and few rounds

Writes bench_backends.json and .md into --out (default benchmarks/results; --quick: results/quick/).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.study import Study, environment, log, quiet_libraries  # noqa: E402

BACKENDS = ["torch", "onnxruntime", "openvino"]


def load() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--max-steps", type=int, default=250, help="the finetune step budget (250 x 32 = 8,000 sentences)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--calibration-size", type=int, default=300)
    p.add_argument("--eval-limit", type=int, default=None, help="dev rows to score (default: all 872)")
    p.add_argument("--no-hand-written", action="store_true", help="skip the hand-written NNCF + OpenVINO reference")
    p.add_argument("--quick", action="store_true", help="small budget and few rounds: checks the script, not the numbers")
    p.add_argument("--db", type=Path, default=None, help="keep the results database here (default: a temporary one)")
    p.add_argument("--reuse", action="store_true", help="keep --db and reuse its variants with the same cache key")
    p.add_argument("--out", type=Path, default=None, help="output folder (default benchmarks/results)")
    p.add_argument("--no-chain", action="store_true", help="skip the distil -> vocab -> static int8 chain (target 2)")
    p.add_argument("--student-layers", type=int, default=3, help="the chain's distilled student depth")
    p.add_argument("--distill-train-size", type=int, default=32000, help="training sentences the distillation sees")
    p.add_argument("--distill-max-length", type=int, default=64, help="tokens per sentence while distilling")
    p.add_argument("--stage1-epochs", type=float, default=2.0, help="distill: intermediate-layer epochs")
    p.add_argument("--stage2-epochs", type=float, default=2.0, help="distill: prediction-layer epochs")
    p.add_argument("--distill-lr", type=float, default=1e-4, help="distill: learning rate of both stages")
    p.add_argument("--keep-percent", type=float, default=50.0, help="vocab: share of the vocabulary kept")
    p.add_argument("--budget-points", type=float, default=1.0, help="the chain recipe's budget: metric_drop")
    args = p.parse_args(argv)
    if args.quick:
        args.max_steps = min(args.max_steps, 20)
        args.rounds = min(args.rounds, 3)
        args.warmup = min(args.warmup, 1)
        args.calibration_size = min(args.calibration_size, 32)
        args.eval_limit = args.eval_limit or 64
        args.distill_train_size = min(args.distill_train_size, 64)
        args.stage1_epochs = min(args.stage1_epochs, 1.0)
        args.stage2_epochs = min(args.stage2_epochs, 1.0)
    if args.out is None:
        args.out = ROOT / "benchmarks" / "results" / ("quick" if args.quick else "")
    return args


def recipe(args: argparse.Namespace, *after: dict[str, Any], budget: dict[str, float] | None = None) -> dict[str, Any]:
    """A recipe of this study: the shared fine-tuning, then ``after``; the measure settings are the
    same for all (they are part of the cache key, so the fine-tuned prefix is computed once)."""
    out = {
        "format": 1,
        "name": "bench_backends: finetune -> " + " -> ".join(step["step"] for step in after),
        "model": "all-MiniLM-L6-v2",
        "task": "sst2",
        "seed": 0,
        "measure": {"eval_limit": args.eval_limit, "eval_batch_size": 32, "max_length": 128,
                    "latency_batch_size": 8, "latency_seq_len": 128, "latency_warmup": args.warmup,
                    "latency_repeats": args.rounds, "threads": args.threads, "backends": BACKENDS},
        "chain": [{"step": "finetune", "config": {"max_steps": args.max_steps}}, *after],
    }
    if budget is not None:
        out["budget"] = budget
    return out


def chain_steps(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Issue 15's second target as a user's chain: distil to a few layers, shrink the vocabulary,
    then static int8 on OpenVINO (the fastest backend of the first target)."""
    return [
        {"step": "distill", "config": {"student": "teacher_layers", "student_layers": args.student_layers,
                                       "train_size": args.distill_train_size, "max_length": args.distill_max_length,
                                       "intermediate_epochs": args.stage1_epochs, "prediction_epochs": args.stage2_epochs,
                                       "intermediate_lr": args.distill_lr, "lr": args.distill_lr}},
        {"step": "vocab.reduce", "config": {"keep_percent": args.keep_percent}},
        {"step": "quantize.static_int8", "config": {"backend": "openvino", "calibration_size": args.calibration_size}},
    ]


def ort_dynamic_int8(onnx_file: Path, out: Path) -> Path:
    """ONNX Runtime's dynamic int8 of an fp32 ONNX file (its documented defaults: int8 weights, uint8
    activations quantized at run time), with the tokenizer and config beside it."""
    import shutil

    from onnxruntime.quantization import QuantType, quantize_dynamic

    out.mkdir(parents=True, exist_ok=True)
    quantize_dynamic(str(onnx_file), str(out / "model.onnx"), weight_type=QuantType.QInt8)
    for f in onnx_file.parent.iterdir():
        if f.is_file() and f.suffix != ".onnx" and f.name != "manifest.json":
            shutil.copy(f, out / f.name)
    return out / "model.onnx"


def hand_written_nncf(fp32_folder: Path, task: Any, out: Path, size: int, seed: int) -> Path:
    """What a user writes by following NNCF's post-training quantization guide for a BERT classifier."""
    import nncf
    import numpy as np
    import openvino as ov
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from core.measure.evaluation import subset_indices

    model = AutoModelForSequenceClassification.from_pretrained(str(fp32_folder)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(fp32_folder))
    train = task.load("train")
    texts = list(train.select(subset_indices(len(train), size, seed))["text"])
    rows = [dict(tokenizer(t, truncation=True, max_length=128)) for t in texts]
    example = dict(tokenizer(["an example sentence"], return_tensors="pt"))
    ov_model = ov.convert_model(model, example_input=example)

    def transform_fn(row: dict[str, Any]) -> dict[str, Any]:
        return {k: np.asarray([row[k]], dtype=np.int64) for k in example}

    with torch.no_grad():
        quantized = nncf.quantize(ov_model, nncf.Dataset(rows, transform_fn), subset_size=size,
                                  model_type=nncf.ModelType.TRANSFORMER)
    out.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(out / "model.xml"))  # OpenVINO's defaults (fp16 for the float constants)
    tokenizer.save_pretrained(str(out))
    model.config.save_pretrained(str(out))
    return out / "model.xml"


def file_bytes(path: Path) -> int:
    """The model file(s) alone: model.onnx, or model.xml + model.bin."""
    files = [path] + ([path.with_suffix(".bin")] if path.suffix == ".xml" else [])
    return sum(f.stat().st_size for f in files)




def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_libraries()
    import torch
    from transformers import AutoConfig, AutoTokenizer

    from benchmarks.report import write_section
    from core.backends.artifact import folder_bytes  # what a user ships: model file(s), tokenizer, config
    from core.backends.packages import versions
    from core.backends.session import SessionModel, TorchSession, open_session
    from core.backends.timing import TimedSession, paired_ratio, time_sessions
    from core.measure import verdicts
    from core.measure.evaluation import evaluate
    from core.steps import load_state
    from core.store.rows import OVER_BUDGET
    from core.tasks.base import get_task

    started, cpu_started = time.perf_counter(), time.process_time()
    loads: dict[str, Any] = {"start": load()}
    task = get_task("sst2")
    tmp = tempfile.TemporaryDirectory()
    db = args.db or Path(tmp.name) / "bench_backends.sqlite"
    study = Study(db, reuse=args.reuse)
    dynamic = study.run("torch int8", recipe(args, {"step": "quantize.dynamic_int8", "config": {}}))
    loads["after torch int8 recipe"] = load()
    static = study.run("openvino int8", recipe(args, {"step": "quantize.static_int8", "config": {
        "backend": "openvino", "calibration_size": args.calibration_size}}))
    loads["after openvino int8 recipe"] = load()
    chain = None
    if not args.no_chain:
        chain = study.run("chain", recipe(args, *chain_steps(args), budget={"metric_drop": args.budget_points}))
        loads["after chain recipe"] = load()
    tuned_row, dyn_row = dynamic.rows[1], dynamic.rows[2]
    static_row = static.rows[2]
    tuned = Path(tuned_row.artifact_path or "")
    exports = tuned.parent / "exports" / tuned.name
    work = Path(tmp.name) / "made-here"

    log("ONNX Runtime dynamic int8 of the run's ONNX export")
    clock = time.perf_counter()
    ort_int8 = ort_dynamic_int8(exports / "onnxruntime" / "model.onnx", work / "ort-dynamic-int8")
    build_s = {"onnxruntime dynamic int8": round(time.perf_counter() - clock, 1)}
    hand = None
    if not args.no_hand_written:
        log("hand-written NNCF + OpenVINO static int8")
        clock = time.perf_counter()
        hand = hand_written_nncf(tuned, task, work / "hand-written", args.calibration_size, seed=0)
        build_s["hand-written nncf"] = round(time.perf_counter() - clock, 1)
    loads["after building"] = load()

    threads = args.threads
    tokenizer = AutoTokenizer.from_pretrained(str(tuned))
    config = AutoConfig.from_pretrained(str(tuned))
    contenders: list[dict[str, Any]] = []

    def add(name: str, role: str, backend: str, session: Any, model: Any, folder: Path, model_file: Path | None,
            made_by: str, row: Any = None, tok: Any = None) -> None:
        contenders.append({"name": name, "role": role, "backend": backend, "session": session, "model": model,
                           "bytes": folder_bytes(folder),
                           "model_bytes": None if model_file is None else file_bytes(model_file),
                           "made_by": made_by, "row": row, "tokenizer": tok or tokenizer})

    fp32 = load_state(tuned)
    add("torch fp32", "fp32", "torch", TorchSession(fp32.model, "classification", threads=threads), fp32.model,
        tuned, tuned / "model.safetensors", "engine: finetune", tuned_row)
    int8_folder = Path(dyn_row.artifact_path or "")
    int8 = load_state(int8_folder)
    add("torch dynamic int8", "engine int8", "torch", TorchSession(int8.model, "classification", threads=threads),
        int8.model, int8_folder, None, "engine: quantize.dynamic_int8", dyn_row)
    ort = open_session(ort_int8, "onnxruntime", "classification", threads=threads)
    add("ONNX Runtime dynamic int8", "other", "onnxruntime", ort, SessionModel(ort, config), ort_int8.parent, ort_int8,
        "here: onnxruntime.quantization.quantize_dynamic of the run's export")
    ov_fp32 = open_session(exports / "openvino" / "model.xml", "openvino", "classification", threads=threads)
    add("OpenVINO fp32", "other", "openvino", ov_fp32, SessionModel(ov_fp32, config), exports / "openvino",
        exports / "openvino" / "model.xml", "engine: measure.backends export of the fine-tuned variant")
    static_folder = Path(static_row.artifact_path or "")
    static_state = load_state(static_folder, threads=threads)
    add("OpenVINO NNCF static int8", "engine int8", "openvino", static_state.model.session, static_state.model,
        static_folder, static_folder / "model.xml", "engine: quantize.static_int8 (openvino)", static_row)
    chain_info: dict[str, Any] | None = None
    recipes_extra: list[Any] = []
    if chain is not None:
        last = chain.rows[-1]
        over = [{"label": r.label, "text": f["text"]} for r in chain.rows for f in r.flags if f["code"] == OVER_BUDGET]
        finished = last.step_id == "quantize.static_int8"
        chain_info = {"recipe": chain.recipe.to_dict(), "budget": {"metric_drop": args.budget_points},
                      "reached_the_end": finished, "over_budget": over, "shipped": last.label if finished else None,
                      "rows": [r.to_dict() for r in chain.rows]}
        if finished:
            chain_folder = Path(last.artifact_path or "")
            chain_state = load_state(chain_folder, threads=threads)
            steps = " -> ".join(s["step"] for s in chain_steps(args))
            add(f"chain: {args.student_layers} layers, vocab {args.keep_percent:g} %, OpenVINO int8", "chain", "openvino",
                chain_state.model.session, chain_state.model, chain_folder, chain_folder / "model.xml",
                f"engine: finetune -> {steps}", last, chain_state.tokenizer)
        else:  # how far the rest of the chain would get: the same recipe without its budget (the prefix cached)
            log(f"the chain stopped at {last.label}: {over or 'no budget flag'}; running it again without a budget")
            free = study.run("chain without budget", recipe(args, *chain_steps(args)))
            loads["after chain without budget"] = load()
            recipes_extra.append(free)
            chain_info["without_budget"] = {"recipe": free.recipe.to_dict(), "rows": [r.to_dict() for r in free.rows]}
            last = free.rows[-1]
            chain_folder = Path(last.artifact_path or "")
            chain_state = load_state(chain_folder, threads=threads)
            add(f"chain without its budget: {args.student_layers} layers, vocab {args.keep_percent:g} %, OpenVINO int8",
                "chain over budget", "openvino", chain_state.model.session, chain_state.model, chain_folder,
                chain_folder / "model.xml", "engine: the same recipe without budget", last, chain_state.tokenizer)
    if hand is not None:
        hw = open_session(hand, "openvino", "classification", threads=threads, precision="default")
        add("hand-written NNCF + OpenVINO int8", "hand-written", "openvino", hw, SessionModel(hw, config), hand.parent,
            hand, "here: NNCF's guide, OpenVINO defaults")

    log("accuracy of every file on the dev set")
    evaluations = {}
    for c in contenders:
        ev = evaluate(c["model"], c["tokenizer"], task, "dev", batch_size=32, max_length=128, limit=args.eval_limit,
                      sample_seed=0, threads=threads)
        ci = verdicts.intervals(task, ev.predictions, ev.references, seed=0)["accuracy"]
        evaluations[c["name"]] = ev
        c["accuracy"] = {"value": ev.metrics["accuracy"], "low": ci.low, "high": ci.high, "examples": ev.examples}
        if c["row"] is not None:  # the engine measured the same file on the same rows: it must agree
            c["engine_accuracy"] = c["row"].metric
    reference = evaluations["torch fp32"]
    for c in contenders:
        delta = verdicts.versus_parent(task, evaluations[c["name"]].predictions, reference.predictions,
                                       reference.references, seed=0)
        c["accuracy_vs_fp32_points"] = {"value": 100 * delta.value, "low": 100 * delta.low, "high": 100 * delta.high}
    loads["after accuracy"] = load()

    timings: dict[str, Any] = {}
    for batch in (8, 1):
        log(f"timing every file side by side at batch {batch} x 128, {threads} threads, {args.rounds} rounds")
        loads[f"before timing b{batch}"] = load()
        results = time_sessions([TimedSession(c["name"], c["session"], c["tokenizer"]) for c in contenders],
                                batch_size=batch, seq_len=128, threads=threads, rounds=args.rounds,
                                warmup=args.warmup, seed=0)
        loads[f"after timing b{batch}"] = load()
        by_name = {r.name: r for r in results}
        base, yardstick = by_name["torch fp32"], by_name.get("hand-written NNCF + OpenVINO int8")
        timings[f"b{batch}"] = {r.name: {**{k: getattr(r, k) for k in ("p50_ms", "p25_ms", "p75_ms", "p90_ms",
                                                                          "min_ms", "max_ms")},
                                         "speedup_vs_torch_fp32": paired_ratio(base, r),
                                         **({"speedup_vs_hand_written": paired_ratio(yardstick, r)} if yardstick else {}),
                                         "settings": r.settings, "times_ms": [round(t, 3) for t in r.times_ms]}
                                for r in results}

    recipes = [dynamic, static] + ([chain] if chain is not None else []) + recipes_extra
    report = {
        "benchmark": "bench_backends",
        "quick": args.quick,
        "command": "python benchmarks/bench_backends.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "settings": {"threads": threads, "rounds": args.rounds, "warmup": args.warmup, "seq_len": 128,
                     "batches": [8, 1], "finetune_max_steps": args.max_steps,
                     "calibration_size": args.calibration_size, "eval_limit": args.eval_limit,
                     "recipes": [r.recipe.to_dict() for r in recipes],
                     "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "nice": os.nice(0)},
        "contenders": [{k: v for k, v in c.items() if k not in ("session", "model", "row", "tokenizer")}
                       for c in contenders],
        "timings": timings,
        "chain": chain_info,
        "engine_rows": [r.to_dict() for r in (*dynamic.rows, static_row, *(chain.rows[2:] if chain else []))],
        "engine_variant_info": {"finetune": study.step_info(tuned_row).get("backends")},
        "build_seconds": build_s,
        "prefix_cached": static.rows[1].cached,  # the second recipe's fine-tuning came from the first's
        "load_average_1m": loads,
        "study": study.summary(),
        "environment": environment(),
        "versions": versions(),
        "torch_threads": torch.get_num_threads(),
        "seconds": round(time.perf_counter() - started, 1),
        "cpu_seconds": round(time.process_time() - cpu_started, 1),
    }
    for info in (report["engine_variant_info"]["finetune"] or {}).values():
        (info.get("latency") or {}).pop("times_ms", None)
    text = write_section("backends", report, Path(args.out) / "bench_backends.json")
    print(text)
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
