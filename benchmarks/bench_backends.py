"""Deployment backends side by side: torch, ONNX Runtime and OpenVINO, fp32 and int8, in one process.

The packaged MiniLM-L6 is fine-tuned on SST-2 (or a saved fp32 artifact is reused with
--start-dir), saved, and every model below is loaded from its saved file:

- torch fp32 (the workbench artifact) and torch dynamic int8 (quantize.dynamic_int8)
- ONNX Runtime fp32 (export) and static int8 (quantize.static_int8, backend onnxruntime)
- OpenVINO fp32 (export) and static int8 (quantize.static_int8, backend openvino)
- the hand-written NNCF + OpenVINO static int8 of the same fp32 model: the script a user writes
  by following NNCF's documentation (convert_model from the torch module, nncf.quantize with
  model_type=TRANSFORMER and its defaults, save_model with its defaults, compile for the CPU).

Accuracy is measured on the whole SST-2 dev set by running each file (core.measure.evaluate
through the session adapter), latency at batch 1 and batch 8 x 128 tokens with the same threads
and inputs in interleaved rounds (core.backends.timing). OpenVINO sessions are timed twice: with
fp32 compute for the layers left in float (what an fp32 export promises) and with OpenVINO's own
default for this CPU (bf16 on CPUs with AMX/AVX512-BF16), which is what the hand-written script gets.

    python benchmarks/bench_backends.py                  # fine-tunes first (~5 min on 2 quiet cores)
    python benchmarks/bench_backends.py --start-dir DIR  # reuse a saved fp32 SST-2 artifact
    python benchmarks/bench_backends.py --quick          # smoke run: small data, few rounds

Writes benchmarks/results/bench_backends.json and .md (or --out PREFIX).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MB = 1e6


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--start-dir", type=Path, help="a saved fp32 SST-2 artifact of the packaged model to reuse")
    p.add_argument("--save-start", type=Path, help="keep the fine-tuned fp32 artifact in this folder")
    p.add_argument("--train-size", type=int, default=8000)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--calibration-size", type=int, default=300)
    p.add_argument("--eval-limit", type=int, default=None, help="dev rows to score (default: all 872)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="small data and few rounds: checks the script, not the numbers")
    p.add_argument("--out", type=Path, default=None, help="output prefix (default benchmarks/results/bench_backends)")
    args = p.parse_args(argv)
    if args.quick:
        args.train_size = min(args.train_size, 400)
        args.rounds = min(args.rounds, 3)
        args.warmup = min(args.warmup, 1)
        args.calibration_size = min(args.calibration_size, 32)
        args.eval_limit = args.eval_limit or 64
    if args.out is None:
        name = "bench_backends_quick" if args.quick else "bench_backends"
        args.out = ROOT / "benchmarks" / "results" / ("quick" if args.quick else "") / name
    return args


def fp32_start(args: argparse.Namespace, work: Path, task: Any) -> Path:
    """The fine-tuned fp32 artifact's folder: --start-dir, or fine-tune the packaged model now."""
    if args.start_dir:
        return args.start_dir
    import torch

    from core.artifacts import save_artifact
    from core.models import ModelRef, load_model, load_tokenizer
    from core.state import ModelState, StepContext
    from core.steps.base import get_step

    ref = ModelRef.parse("all-MiniLM-L6-v2")
    torch.manual_seed(args.seed)
    state = ModelState(load_model(ref, "classification", 2), load_tokenizer(ref), task.id, task.head)
    step = get_step("finetune")
    last = {"t": 0.0}

    def progress(fraction: float, message: str = "") -> None:
        if time.perf_counter() - last["t"] > 30 or fraction >= 1.0:
            last["t"] = time.perf_counter()
            _log(f"  finetune {fraction:5.1%} {message}")

    ctx = StepContext(seed=args.seed, task=task, scratch=work / "scratch", progress=progress, threads=args.threads)
    started = time.perf_counter()
    _log(f"fine-tuning on {args.train_size} SST-2 sentences, {args.epochs} epoch(s), lr {args.lr}")
    tuned = step(step.config_cls(lr=args.lr, epochs=args.epochs, train_size=args.train_size)).apply(state, ctx)
    _log(f"fine-tuned in {time.perf_counter() - started:.0f} s")
    folder = args.save_start or work / "fp32"
    save_artifact(tuned, folder, base="packaged:all-MiniLM-L6-v2")
    return folder


def hand_written_nncf(fp32_folder: Path, task: Any, out: Path, calibration_rows: list[dict[str, Any]]) -> Path:
    """What a user writes by following NNCF's post-training quantization guide for a BERT classifier."""
    import nncf
    import numpy as np
    import openvino as ov
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(str(fp32_folder)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(fp32_folder))
    example = dict(tokenizer(["an example sentence"], return_tensors="pt"))
    ov_model = ov.convert_model(model, example_input=example)

    def transform_fn(row: dict[str, Any]) -> dict[str, Any]:
        return {k: np.asarray([row[k]], dtype=np.int64) for k in example}

    with torch.no_grad():
        quantized = nncf.quantize(ov_model, nncf.Dataset(calibration_rows, transform_fn),
                                  model_type=nncf.ModelType.TRANSFORMER)  # subset_size: NNCF's default 300
    out.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(out / "model.xml"))  # OpenVINO's defaults (fp16 for the float constants)
    tokenizer.save_pretrained(str(out))
    return out / "model.xml"


def accuracy_ci(predictions: list[int], labels: list[int], seed: int = 0, resamples: int = 2000) -> tuple[float, float]:
    import numpy as np

    correct = np.asarray(predictions) == np.asarray(labels)
    rng = np.random.default_rng(seed)
    means = correct[rng.integers(0, correct.size, (resamples, correct.size))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def paired_delta_ci(a: list[int], b: list[int], labels: list[int], seed: int = 0,
                    resamples: int = 2000) -> tuple[float, float, float]:
    """Accuracy(a) - accuracy(b) in points with a paired 95 % bootstrap interval."""
    import numpy as np

    ca = (np.asarray(a) == np.asarray(labels)).astype(float)
    cb = (np.asarray(b) == np.asarray(labels)).astype(float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, ca.size, (resamples, ca.size))
    deltas = (ca[idx] - cb[idx]).mean(axis=1) * 100
    return float((ca - cb).mean() * 100), float(np.percentile(deltas, 2.5)), float(np.percentile(deltas, 97.5))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from core.artifacts import load_artifact, save_artifact
    from core.backends.artifact import folder_bytes, load_backend_artifact
    from core.backends.deploy import deploy_all
    from core.backends.packages import versions
    from core.backends.quantize import (
        Calibration,
        calibration_rows,
        static_int8_onnxruntime,
        static_int8_openvino,
    )
    from core.backends.session import OpenVinoSession, SessionModel, TorchSession
    from core.backends.timing import TimedSession, paired_ratio, time_sessions
    from core.measure import environment, evaluate
    from core.state import StepContext
    from core.steps.base import get_step
    from core.tasks import get_task

    torch.set_num_threads(args.threads)
    task = get_task("sst2")
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="bench_backends_"))
    fp32_folder = fp32_start(args, work, task)
    fp32 = load_artifact(fp32_folder)
    tokenizer = fp32.tokenizer
    calibration = Calibration(size=args.calibration_size, seed=args.seed)
    rows_for_calibration = calibration_rows(task, tokenizer, calibration)
    timings: dict[str, float] = {}

    # --- every model from its saved file ---------------------------------------------------
    entries: dict[str, dict[str, Any]] = {}

    def add(name: str, kind: str, backend: str, model: Any, session: Any, folder: Path, note: str = "") -> None:
        entries[name] = {"kind": kind, "backend": backend, "model": model, "session": session, "folder": folder,
                         "bytes": folder_bytes(folder), "note": note}

    add("torch fp32", "ours", "torch", fp32.model, TorchSession(fp32.model, "classification", threads=args.threads),
        fp32_folder)
    _log("torch dynamic int8 (quantize.dynamic_int8)")
    t = time.perf_counter()
    ctx = StepContext(seed=args.seed, task=task, scratch=work / "scratch", threads=args.threads)
    step = get_step("quantize.dynamic_int8")
    int8_state = step(step.config_cls()).apply(fp32_from_artifact(fp32, task), ctx)
    save_artifact(int8_state, work / "torch_int8", base="packaged:all-MiniLM-L6-v2")
    int8 = load_artifact(work / "torch_int8")
    timings["torch dynamic int8"] = time.perf_counter() - t
    add("torch dynamic int8", "ours", "torch", int8.model,
        TorchSession(int8.model, "classification", threads=args.threads), work / "torch_int8")
    _log("exports: ONNX Runtime fp32, OpenVINO fp32")
    t = time.perf_counter()
    exported = deploy_all(fp32.model, tokenizer, task, ["onnxruntime", "openvino"], work / "fp32_exports",
                          variant="fp32", threads=args.threads, seed=args.seed)  # fmt: skip
    timings["fp32 exports"] = time.perf_counter() - t
    round_trips = {}
    for backend, v in exported.items():
        round_trips[backend] = v.round_trip.to_dict() if v.round_trip else None
        if not v.ok:
            raise SystemExit(f"{backend} fp32 export failed: {v.message}")
        add(f"{backend} fp32", "ours", backend, v.model, v.session, v.folder, v.message)
    _log("static int8: ONNX Runtime")
    t = time.perf_counter()
    onnx_file = exported["onnxruntime"].folder / "model.onnx"
    ort8 = static_int8_onnxruntime(fp32.model, tokenizer, task, work / "ort_int8", calibration=calibration,
                                   onnx_file=onnx_file)  # fmt: skip
    timings["onnxruntime static int8"] = time.perf_counter() - t
    loaded = load_backend_artifact(ort8.folder, threads=args.threads)
    add("onnxruntime static int8", "ours", "onnxruntime", loaded.model, loaded.session, ort8.folder)
    _log("static int8: OpenVINO (NNCF)")
    t = time.perf_counter()
    ov8 = static_int8_openvino(fp32.model, tokenizer, task, work / "ov_int8", calibration=calibration)
    timings["openvino static int8"] = time.perf_counter() - t
    for precision in ("f32", "default"):
        loaded = load_backend_artifact(ov8.folder, threads=args.threads, precision=precision)
        add(f"openvino static int8 [{precision}]", "ours", "openvino", loaded.model, loaded.session, ov8.folder)
    v = exported["openvino"]
    session = OpenVinoSession(v.folder / "model.xml", "classification", threads=args.threads, precision="default")
    add("openvino fp32 [default]", "ours", "openvino", SessionModel(session), session, v.folder,
        "OpenVINO's default inference precision")
    _log("hand-written NNCF + OpenVINO static int8")
    t = time.perf_counter()
    hand_xml = hand_written_nncf(fp32_folder, task, work / "hand_nncf", rows_for_calibration)
    timings["hand-written nncf"] = time.perf_counter() - t
    session = OpenVinoSession(hand_xml, "classification", threads=args.threads, precision="default")
    add("hand-written NNCF + OpenVINO int8", "hand-written", "openvino", SessionModel(session), session,
        hand_xml.parent, "nncf.quantize defaults (subset 300), save_model defaults, compile_model default precision")

    # --- accuracy on the dev set, each file on its backend --------------------------------------
    labels = list(task.load("dev")["label"])
    if args.eval_limit:
        labels = labels[: args.eval_limit]
    results: dict[str, Any] = {}
    for name, e in entries.items():
        t = time.perf_counter()
        r = evaluate(e["model"], tokenizer, task, "dev", batch_size=32, max_length=128, limit=args.eval_limit,
                     threads=args.threads)  # fmt: skip
        results[name] = r
        _log(f"  {name}: accuracy {r.primary:.4f} ({time.perf_counter() - t:.0f} s)")

    # --- latency: all sessions interleaved, same inputs and threads -------------------------------
    latencies: dict[int, dict[str, Any]] = {}
    for batch in (1, 8):
        _log(f"latency batch {batch} x 128, {args.rounds} interleaved rounds, {args.threads} threads")
        timed = [TimedSession(name, e["session"], tokenizer, variant=name) for name, e in entries.items()]
        out = time_sessions(timed, batch_size=batch, seq_len=128, threads=args.threads, rounds=args.rounds,
                            warmup=args.warmup, seed=args.seed)  # fmt: skip
        latencies[batch] = {r.name: r for r in out}

    # --- table -----------------------------------------------------------------------------------
    base_preds = results["torch fp32"].predictions
    hand = "hand-written NNCF + OpenVINO int8"
    rows = []
    for name, e in entries.items():
        r = results[name]
        low, high = accuracy_ci(r.predictions, labels, seed=args.seed)
        delta = paired_delta_ci(r.predictions, base_preds, labels, seed=args.seed)
        row = {"model": name, "kind": e["kind"], "backend": e["backend"], "accuracy": r.primary,
               "accuracy_ci95": [low, high], "delta_vs_torch_fp32_points": delta[0],
               "delta_ci95_points": [delta[1], delta[2]], "mb": e["bytes"] / MB, "note": e["note"],
               "session": e["session"].info().__dict__}  # fmt: skip
        for batch, lat in latencies.items():
            x = lat[name]
            row[f"b{batch}"] = {"p50_ms": x.p50_ms, "p25_ms": x.p25_ms, "p75_ms": x.p75_ms, "p90_ms": x.p90_ms,
                                "vs_torch_fp32": paired_ratio(lat["torch fp32"], x),
                                "vs_hand_written": paired_ratio(lat[hand], x)}  # fmt: skip
        rows.append(row)
    ours_int8 = [r for r in rows if r["kind"] == "ours" and "int8" in r["model"]]
    verdict = {}
    for batch in (1, 8):
        best = min(ours_int8, key=lambda r, b=batch: r[f"b{b}"]["p50_ms"])
        hand_row = next(r for r in rows if r["model"] == hand)
        verdict[f"b{batch}"] = {
            "fastest_ours_int8": best["model"],
            "p50_ms": best[f"b{batch}"]["p50_ms"],
            "hand_written_p50_ms": hand_row[f"b{batch}"]["p50_ms"],
            "speedup_vs_hand_written": best[f"b{batch}"]["vs_hand_written"],
            "accuracy_points_vs_fp32": best["delta_vs_torch_fp32_points"],
            "hand_written_accuracy_points_vs_fp32": hand_row["delta_vs_torch_fp32_points"],
        }
    report = {
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "environment": environment(),
        "versions": versions(),
        "eval_examples": len(labels),
        "calibration": {"size": len(rows_for_calibration), "split": "train", "seed": args.seed},
        "fp32_round_trips": round_trips,
        "rows": rows,
        "verdict": verdict,
        "build_seconds": timings,
        "total_seconds": time.perf_counter() - started,
    }
    write(report, args.out)
    _log(f"wrote {args.out}.json and .md in {report['total_seconds']:.0f} s")
    return 0


def fp32_from_artifact(loaded: Any, task: Any) -> Any:
    from core.state import ModelState

    return ModelState(loaded.model, loaded.tokenizer, task.id, task.head)


def write(report: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{out}.json").write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    Path(f"{out}.md").write_text(markdown(report), encoding="utf-8")


def _lat(cell: dict[str, Any]) -> str:
    return f"{cell['p50_ms']:.1f} ({cell['p25_ms']:.1f}-{cell['p75_ms']:.1f})"


def _ratio(r: dict[str, float]) -> str:
    return f"{r['ratio']:.2f}x [{r['low']:.2f}, {r['high']:.2f}]"


def markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    env = report["environment"]
    cpu = env.get("cpu", env.get("cpu_model", "")) if isinstance(env, dict) else ""
    lines = [
        "# Deployment backends: torch, ONNX Runtime, OpenVINO (packaged MiniLM-L6, SST-2)",
        "",
        f"Every model loaded from its saved file; accuracy on {report['eval_examples']} SST-2 dev sentences by running "
        f"that file; latency p50 (p25-p75) over {s['rounds']} interleaved rounds, {s['threads']} threads, seq 128, "
        "the same inputs for all. Ratios are per-round paired medians with 95 % bootstrap intervals "
        "(> 1 = this row is faster). int8 calibration: "
        f"{report['calibration']['size']} seeded train sentences.{' **--quick run: not for quoting.**' if s['quick'] else ''}",
        "",
        f"CPU: {cpu}. Versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items() if v) + ".",
        "",
        "| model | backend | MB | accuracy [95 % CI] | vs torch fp32 (points) | b1 p50 ms | b8 p50 ms | b1 speed-up vs torch fp32 | b8 speed-up vs torch fp32 | b8 vs hand-written |",
        "|---|---|---:|---|---|---:|---:|---|---|---|",
    ]
    for r in report["rows"]:
        lo, hi = r["accuracy_ci95"]
        d, dl, dh = r["delta_vs_torch_fp32_points"], *r["delta_ci95_points"]
        lines.append(
            f"| {r['model']} | {r['backend']} | {r['mb']:.1f} | {100 * r['accuracy']:.2f} [{100 * lo:.1f}, {100 * hi:.1f}] "
            f"| {d:+.2f} [{dl:+.2f}, {dh:+.2f}] | {_lat(r['b1'])} | {_lat(r['b8'])} | {_ratio(r['b1']['vs_torch_fp32'])} "
            f"| {_ratio(r['b8']['vs_torch_fp32'])} | {_ratio(r['b8']['vs_hand_written'])} |"
        )
    lines += ["", "## Verdict", ""]
    for batch, v in report["verdict"].items():
        lines.append(
            f"- {batch}: fastest of our int8 variants: **{v['fastest_ours_int8']}**, {v['p50_ms']:.1f} ms vs "
            f"hand-written {v['hand_written_p50_ms']:.1f} ms: {_ratio(v['speedup_vs_hand_written'])} "
            f"(accuracy vs fp32: ours {v['accuracy_points_vs_fp32']:+.2f} points, hand-written "
            f"{v['hand_written_accuracy_points_vs_fp32']:+.2f})"
        )
    rt = report["fp32_round_trips"]
    lines += ["", "fp32 exports, round trip on 64 dev sentences: " + "; ".join(
        f"{b}: {t['agreement']:.1%} agree, max |diff| {t['max_abs_diff']:.1e}" for b, t in rt.items() if t)]
    lines += ["", "Build times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in report["build_seconds"].items()),
              f"Total {report['total_seconds'] / 60:.1f} min.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
