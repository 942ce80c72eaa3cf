"""Deployment backends side by side (issue 15), through the engine: torch, ONNX Runtime, OpenVINO.

Two recipes run through the runner (benchmarks/study.py) into one results database, sharing their
fine-tuned prefix through the cache, every variant measured with ``measure.backends: [torch,
onnxruntime, openvino]`` (exported, round-trip checked, timed side by side per variant):

    packaged MiniLM-L6 -> finetune (the step's defaults, a step budget of --max-steps) -> quantize.dynamic_int8
    packaged MiniLM-L6 -> finetune (cached)                                             -> quantize.static_int8 (openvino, NNCF)

Then every model is loaded from its saved file and timed in the same interleaved rounds, with the same
threads and inputs, at batch 8 x 128 and 1 x 128 (core.backends.timing):

- torch fp32: the fine-tuned variant's artifact;             torch dynamic int8: the int8 variant's artifact
- OpenVINO fp32: the fine-tuned variant's export kept by the run (its round trip is in the JSON)
- OpenVINO NNCF static int8: the static int8 variant's artifact (its deployable file)
- ONNX Runtime dynamic int8: the engine has no step for it; made here with ONNX Runtime's own
  ``quantize_dynamic`` from the run's ONNX export of the fine-tuned variant
- hand-written NNCF + OpenVINO static int8 of the same fp32 model, as NNCF's guide writes it
  (convert_model, nncf.quantize with model_type=TRANSFORMER and its defaults, save_model), the
  issue's yardstick.

Accuracy: on the whole SST-2 dev set (872 sentences) by running each file, with 95 % bootstrap
intervals; speed ratios vs torch fp32 are per-round paired medians with 95 % bootstrap intervals.
Other jobs may share the machine: the 1-minute load average is recorded before and after each phase.

    python benchmarks/bench_backends.py                    # ~15 min on 2 quiet cores
    python benchmarks/bench_backends.py --quick            # smoke run: small budget and few rounds

Writes benchmarks/results/bench_backends.json and .md (--out FOLDER; --quick: results/quick/).
"""

from __future__ import annotations

import argparse
import json
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

MB = 1e6
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
    args = p.parse_args(argv)
    if args.quick:
        args.max_steps = min(args.max_steps, 20)
        args.rounds = min(args.rounds, 3)
        args.warmup = min(args.warmup, 1)
        args.calibration_size = min(args.calibration_size, 32)
        args.eval_limit = args.eval_limit or 64
    if args.out is None:
        args.out = ROOT / "benchmarks" / "results" / ("quick" if args.quick else "")
    return args


def recipe(args: argparse.Namespace, last: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": 1,
        "name": f"bench_backends: finetune -> {last['step']}",
        "model": "all-MiniLM-L6-v2",
        "task": "sst2",
        "seed": 0,
        "measure": {"eval_limit": args.eval_limit, "eval_batch_size": 32, "max_length": 128,
                    "latency_batch_size": 8, "latency_seq_len": 128, "latency_warmup": args.warmup,
                    "latency_repeats": args.rounds, "threads": args.threads, "backends": BACKENDS},
        "chain": [{"step": "finetune", "config": {"max_steps": args.max_steps}}, last],
    }


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
    """The model file(s) a user ships: model.onnx, or model.xml + model.bin."""
    files = [path] + ([path.with_suffix(".bin")] if path.suffix == ".xml" else [])
    return sum(f.stat().st_size for f in files)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_libraries()
    import torch
    from transformers import AutoConfig, AutoTokenizer

    from core.backends.packages import versions
    from core.backends.session import SessionModel, TorchSession, open_session
    from core.backends.timing import TimedSession, paired_ratio, time_sessions
    from core.measure import verdicts
    from core.measure.evaluation import evaluate
    from core.steps import load_state
    from core.tasks.base import get_task

    started = time.perf_counter()
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

    def add(name: str, backend: str, session: Any, model: Any, nbytes: int, made_by: str, row: Any = None) -> None:
        contenders.append({"name": name, "backend": backend, "session": session, "model": model, "bytes": nbytes,
                           "made_by": made_by, "row": row})

    fp32 = load_state(tuned)
    add("torch fp32", "torch", TorchSession(fp32.model, "classification", threads=threads), fp32.model,
        int(tuned_row.size_mb * MB), "engine: finetune", tuned_row)
    int8 = load_state(Path(dyn_row.artifact_path or ""))
    add("torch dynamic int8", "torch", TorchSession(int8.model, "classification", threads=threads), int8.model,
        int(dyn_row.size_mb * MB), "engine: quantize.dynamic_int8", dyn_row)
    ort = open_session(ort_int8, "onnxruntime", "classification", threads=threads)
    add("ONNX Runtime dynamic int8", "onnxruntime", ort, SessionModel(ort, config), file_bytes(ort_int8),
        "here: onnxruntime.quantization.quantize_dynamic of the run's export")
    ov_fp32 = open_session(exports / "openvino" / "model.xml", "openvino", "classification", threads=threads)
    add("OpenVINO fp32", "openvino", ov_fp32, SessionModel(ov_fp32, config),
        file_bytes(exports / "openvino" / "model.xml"), "engine: measure.backends export of the fine-tuned variant")
    static_state = load_state(Path(static_row.artifact_path or ""), threads=threads)
    add("OpenVINO NNCF static int8", "openvino", static_state.model.session, static_state.model,
        file_bytes(Path(static_row.artifact_path or "") / "model.xml"), "engine: quantize.static_int8 (openvino)",
        static_row)
    if hand is not None:
        hw = open_session(hand, "openvino", "classification", threads=threads, precision="default")
        add("hand-written NNCF + OpenVINO int8", "openvino", hw, SessionModel(hw, config), file_bytes(hand),
            "here: NNCF's guide, OpenVINO defaults")

    log("accuracy of every file on the dev set")
    evaluations = {}
    for c in contenders:
        ev = evaluate(c["model"], tokenizer, task, "dev", batch_size=32, max_length=128, limit=args.eval_limit,
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
        results = time_sessions([TimedSession(c["name"], c["session"], tokenizer) for c in contenders],
                                batch_size=batch, seq_len=128, threads=threads, rounds=args.rounds,
                                warmup=args.warmup, seed=0)
        loads[f"after timing b{batch}"] = load()
        base = results[0]
        timings[f"b{batch}"] = {r.name: {**{k: getattr(r, k) for k in ("p50_ms", "p25_ms", "p75_ms", "p90_ms",
                                                                          "min_ms", "max_ms")},
                                         "speedup_vs_torch_fp32": paired_ratio(base, r),
                                         "settings": r.settings, "times_ms": [round(t, 3) for t in r.times_ms]}
                                for r in results}
        if hand is not None:
            for r in results:
                timings[f"b{batch}"][r.name]["speedup_vs_hand_written"] = paired_ratio(results[-1], r)

    report = {
        "benchmark": "bench_backends",
        "quick": args.quick,
        "command": "python benchmarks/bench_backends.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "settings": {"threads": threads, "rounds": args.rounds, "warmup": args.warmup, "seq_len": 128,
                     "batches": [8, 1], "finetune_max_steps": args.max_steps,
                     "calibration_size": args.calibration_size, "eval_limit": args.eval_limit,
                     "recipes": [dynamic.recipe.to_dict(), static.recipe.to_dict()]},
        "contenders": [{k: v for k, v in c.items() if k not in ("session", "model", "row")} for c in contenders],
        "timings": timings,
        "engine_rows": [r.to_dict() for r in (*dynamic.rows, static_row)],
        "engine_variant_info": {"finetune": study.step_info(tuned_row).get("backends")},
        "build_seconds": build_s,
        "prefix_cached": static.rows[1].cached,  # the second recipe's fine-tuning came from the first's
        "load_average_1m": loads,
        "study": study.summary(),
        "machine": environment(),
        "versions": versions(),
        "torch_threads": torch.get_num_threads(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    for info in (report["engine_variant_info"]["finetune"] or {}).values():
        (info.get("latency") or {}).pop("times_ms", None)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "bench_backends_quick" if args.quick else "bench_backends"
    (out / f"{name}.json").write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    text = markdown(report)
    (out / f"{name}.md").write_text(text, encoding="utf-8")
    print(text)
    tmp.cleanup()
    return 0


def _ci(d: dict[str, float], fmt: str = ".2f", suffix: str = "") -> str:
    return f"{d['value'] if 'value' in d else d['ratio']:{fmt}}{suffix} [{d['low']:{fmt}}, {d['high']:{fmt}}]"


def markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    lines = [
        "# Deployment backends side by side (packaged MiniLM-L6 fine-tuned on SST-2)",
        "",
        f"Command: `{report['command'].strip()}`" + ("  **--quick: checks the script, not for quoting.**"
                                                    if report["quick"] else ""),
        "",
        f"Fine-tuning: the finetune step's defaults with a budget of {s['finetune_max_steps']} steps, through the "
        "runner; every model below loaded from its saved file. Accuracy on "
        f"{report['contenders'][0]['accuracy']['examples']} SST-2 dev sentences by running that file, 95 % bootstrap "
        f"interval; latency: p50 (p25-p75) over {s['rounds']} interleaved rounds ({s['warmup']} warm-up), "
        f"{s['threads']} threads, sequence {s['seq_len']}, the same inputs for all; speed-up = per-round paired "
        "median ratio vs torch fp32 with a 95 % bootstrap interval.",
        "",
        "| model | backend | made by | MB | accuracy % [95 % CI] | vs torch fp32 (points) | b8 p50 ms | b8 speed-up "
        "| b1 p50 ms | b1 speed-up |",
        "|---|---|---|---:|---|---|---:|---|---:|---|",
    ]
    for c in report["contenders"]:
        b8, b1 = report["timings"]["b8"][c["name"]], report["timings"]["b1"][c["name"]]
        acc = {k: 100 * c["accuracy"][k] for k in ("value", "low", "high")}
        lines.append(
            f"| {c['name']} | {c['backend']} | {c['made_by']} | {c['bytes'] / MB:.1f} | {_ci(acc, '.1f')} | "
            f"{_ci(c['accuracy_vs_fp32_points'], '+.1f')} | {b8['p50_ms']:.1f} ({b8['p25_ms']:.1f}-{b8['p75_ms']:.1f}) | "
            f"{_ci(b8['speedup_vs_torch_fp32'], '.2f', 'x')} | {b1['p50_ms']:.1f} ({b1['p25_ms']:.1f}-{b1['p75_ms']:.1f}) "
            f"| {_ci(b1['speedup_vs_torch_fp32'], '.2f', 'x')} |")
    ours = next((c for c in report["contenders"] if c["name"] == "OpenVINO NNCF static int8"), None)
    if ours and "speedup_vs_hand_written" in report["timings"]["b8"][ours["name"]]:
        lines += ["", "## The workbench's OpenVINO int8 vs the hand-written NNCF + OpenVINO int8", ""]
        for b in ("b8", "b1"):
            r = report["timings"][b][ours["name"]]["speedup_vs_hand_written"]
            lines.append(f"- {b}: {r['ratio']:.2f}x [{r['low']:.2f}, {r['high']:.2f}] (> 1: the workbench's is faster)")
    lines += ["", "## The engine's own rows (measure.backends: each variant timed on every backend in its own "
              "interleaved rounds)", "", "| variant | accuracy % | MB | torch p50 ms | onnxruntime p50 ms | openvino p50 ms "
              "| fastest | flags |", "|---|---|---:|---|---|---|---|---|"]
    for r in report["engine_rows"]:
        cells = []
        for b in BACKENDS:
            v = r["backend_latency"].get(b)
            cells.append(f"{v[0]:.1f} [{v[1]:.1f}, {v[2]:.1f}]" if v else "not timed")
        acc = "" if r["metric"] is None else f"{100 * r['metric']:.1f} [{100 * r['metric_ci_low']:.1f}, {100 * r['metric_ci_high']:.1f}]"
        flags = "; ".join(f["code"] for f in r["flags"])
        lines.append(f"| {r['label']} | {acc} | {r['size_mb']:.1f} | {' | '.join(cells)} | {r['fastest_backend'] or ''} "
                     f"| {flags} |")
    m = report["machine"]
    lines += ["", f"Machine: {m.get('cpu_model', '?')}, {m.get('cores', '?')} cores; versions: "
              + ", ".join(f"{k} {v}" for k, v in report["versions"].items()),
              "", "Load average (1 min) while it ran, other jobs sharing the 2 cores: "
              + ", ".join(f"{k} {v}" for k, v in report["load_average_1m"].items()),
              "", f"Total {report['seconds'] / 60:.1f} min (building outside the engine: "
              + ", ".join(f"{k} {v} s" for k, v in report["build_seconds"].items()) + ")."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
