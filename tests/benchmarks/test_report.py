"""The benchmark report: our values in, published figures beside them, verdicts computed, gaps said.

Feeds benchmarks/report.py small JSON files shaped like each benchmark script's output (field
names copied from the scripts) and reads the Markdown back; runs benchmarks/suite.py's runner on
fake scripts.
"""

from __future__ import annotations

import importlib.util
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


from benchmarks import published, report, suite  # noqa: E402

ENV = {"cpu_model": "Test CPU 9000", "cores": 2, "cores_available": 2, "machine": "x86_64",
       "torch_cpu_capability": "AVX512", "torch_quantized_engine": "x86", "cpu_flags": ["avx2"],
       "platform": "Linux-test", "python": "3.11.7", "versions": {"torch": "2.13.0+cpu", "transformers": "5.23.0"}}


# --- synthetic outputs, shaped like each script's JSON -----------------------------------------
def tinybert(speedup_int8: float = 1.93, int8_mb: float = 6.1, student_acc: float = 0.874) -> dict[str, Any]:
    def row(variant: str, metric: float, mb: float, p50: float, **extra: Any) -> dict[str, Any]:
        return {"variant": variant, "metric": metric, "metrics": {"accuracy": metric}, "eval_examples": 872,
                "artifact_mb": mb, "weights_mb": mb - 0.7, "params": 17_000_000, "nonzero_params": 16_000_000,
                "latency_p50_ms": p50, "latency_p90_ms": p50 * 1.1, **extra}

    student_p50 = 101.0
    rows = [row("teacher (MiniLM-L6)", 0.9011, 90.87, 187.0), row("student (3 layers)", student_acc, 45.55, student_p50),
            row("student pruned 10%", 0.8761, 41.2, student_p50, sparsity=0.1),
            row("student pruned 40%", 0.8412, 30.3, student_p50, sparsity=0.4),
            row("student int8", student_acc - 0.0046, int8_mb, student_p50 / speedup_int8)]
    return {"benchmark": "tinybert",
            "settings": {"tasks": ["sst2"], "reduced": True, "train_size": 321, "teacher_epochs": 1.0, "teacher_lr": 1e-4,
                         "stage1_epochs": 1.0, "stage2_epochs": 1.0, "distill_lr": 1e-4, "prune_amounts": [0.1, 0.4],
                         "eval_limit": 300, "threads": 2, "train_threads": 1, "latency_repeats": 5,
                         "latency_rounds": 2, "seed": 0},
            "environment": ENV, "published": {}, "seconds": 100.0,
            "tasks": [{"task": "sst2", "metric_name": "accuracy", "task_note": "", "rows": rows, "seconds": 99.0,
                       "training": {},
                       "ratios": {"int8_vs_fp32_latency_speedup": speedup_int8,
                                  "int8_vs_fp32_artifact_ratio": int8_mb / 45.55,
                                  "int8_metric_cost_points": 0.46,
                                  "student_vs_teacher_metric_retention": student_acc / 0.9011,
                                  "student_vs_teacher_artifact_ratio": 45.55 / 90.87,
                                  "student_vs_teacher_latency_speedup": 187.0 / student_p50}}]}


START_PARAMS = 22_713_986
START_BYTES = 91_581_187  # fp32: 4 x params + 725,243 bytes of tokenizer, config, manifest, header


def squad(bits8_bytes: float | None = None) -> dict[str, Any]:
    overhead = START_BYTES - 4 * START_PARAMS
    theory8 = START_PARAMS + overhead
    b8 = theory8 * 1.001 if bits8_bytes is None else bits8_bytes

    def row(table: str, variant: str, mb: float, task: str = "squad_v2", **metric: Any) -> dict[str, Any]:
        return {"table": table, "task": task, "variant": variant, "params": START_PARAMS, "artifact_mb": mb,
                "smaller_pct": None if table == "start" else 100 * (1 - mb / (START_BYTES / 1e6)),
                "reload_identical": True, "eval_seconds": 1.0, **metric}

    rows = [row("start", "fine-tuned fp32", START_BYTES / 1e6, f1=61.37, exact=58.0, examples=40),
            row("vocab", "100%", START_BYTES / 1e6, f1=61.37, exact=58.0),
            row("vocab", "25%", 80.5, f1=55.55, exact=52.0, vocab_size=7600),
            row("bits", "16 bits", (2 * START_PARAMS + overhead) * 1.0005 / 1e6, f1=61.30, exact=58.0),
            row("bits", "10 bits", (1.25 * START_PARAMS + overhead) * 1.0008 / 1e6, f1=61.0, exact=57.5),
            row("bits", "8 bits", b8 / 1e6, f1=60.2, exact=57.0),
            row("bits", "4 bits", (0.5 * START_PARAMS + overhead) * 1.002 / 1e6, f1=12.4, exact=10.0),
            row("sketch", "sketched, fine-tuned", 70.0, f1=59.9, exact=56.0),
            row("layers", "6 layers", START_BYTES / 1e6, f1=61.37, exact=58.0),
            row("layers", "3 layers", 60.12, f1=57.77, exact=54.0),
            row("start", "fine-tuned fp32", START_BYTES / 1e6, task="sst2", accuracy=0.85),
            row("bits", "16 bits", (2 * START_PARAMS + overhead) / 1e6, task="sst2", accuracy=0.851),
            row("bits", "4 bits", (0.5 * START_PARAMS + overhead) / 1e6, task="sst2", accuracy=0.83)]
    return {"settings": {"seed": 0, "threads": 2, "sst2_train": 200, "sst2_epochs": 1.0, "squad_train": 100,
                         "squad_epochs": 1.0, "squad_max_length": 256, "squad_eval": 40, "share_train": 50,
                         "notes": ["training reduced"]}, "rows": rows, "seconds": 300, "torch": "2.13.0+cpu"}


def squad_share() -> dict[str, Any]:
    """The same start, merged to 3 layers with the whole train part of fine-tuning."""
    data = squad()
    rows = [r for r in data["rows"] if r["task"] == "squad_v2" and r["table"] == "start"]
    rows.append({**rows[0], "table": "layers", "variant": "3 layers", "artifact_mb": 60.12, "f1": 59.25, "exact": 56.0,
                 "tune_examples": 7572})
    return data | {"rows": rows, "squad_train_questions": 7572}


def squad_sketch() -> dict[str, Any]:
    data = squad()
    rows = [r for r in data["rows"] if r["task"] == "squad_v2" and r["table"] in ("start", "sketch")]
    rows = [{**r, "tune_examples": 7572} if r["table"] == "sketch" else r for r in rows]
    return data | {"rows": rows, "squad_train_questions": 7572}


def sketch_init(fitted_delta: tuple[float, float, float] = (-0.011, -0.030, 0.008)) -> dict[str, Any]:
    """bench_squad.py --parts sst2-sketch with both inits: a start and four sketched rows."""
    def row(variant: str, acc: float, delta: tuple[float, float, float] | None, table: str = "sketch") -> dict[str, Any]:
        return {"table": table, "task": "sst2", "variant": variant, "params": 19_175_042 if table == "sketch" else 22_713_602,
                "artifact_mb": 77.43 if table == "sketch" else 91.58, "accuracy": acc,
                "intervals": {"accuracy": [acc - 0.025, acc + 0.024]}, "eval_examples": 872,
                "delta_vs_parent": delta and delta[0], "delta_ci95": list(delta[1:]) if delta else [None, None],
                "flags": ["did_not_learn"] if acc < 0.55 else []}
    rows = [row("fine-tuned fp32", 0.842, None, "start"),
            row("sketched, no fine-tuning", 0.490, (-0.352, -0.39, -0.31)),
            row("sketched, fine-tuned", 0.511, (-0.331, -0.37, -0.29)),
            row("sketched (least-squares init), no fine-tuning", 0.781, (-0.061, -0.085, -0.038)),
            row("sketched (least-squares init), fine-tuned", 0.842 + fitted_delta[0], fitted_delta),
            row("dense, fine-tuned again (control)", 0.851, (0.009, -0.004, 0.022), table="control")]
    paired = [{"task": "sst2", "row": "sketched (least-squares init), fine-tuned",
               "reference": "dense, fine-tuned again (control)", "value": -0.020, "low": -0.035, "high": -0.004,
               "examples": 872}]
    return {"benchmark": "squad", "parts": ["sst2-sketch"], "rows": rows, "paired": paired, "study": {"database": "benchmarks/results/sketch_init.sqlite", "recipes": []},
            "prefix_cache": {},
            "settings": {"sst2_train": 4000, "sst2_epochs": 1.0, "lr": 5e-5, "sst2_max_length": 64,
                         "sketch_attention": 256, "sketch_ffn_out": 512, "sketch_calibration": 256, "sketch_train": 800}}


def squad_sketch_ls(fitted: tuple[float, float, float] = (-1.2, -4.0, 1.5), has_ans: float = 41.0) -> dict[str, Any]:
    """bench_squad.py --parts squad-sketch with sketch_init=least_squares: a start and two sketched rows
    (F1 and its change in points)."""
    def row(variant: str, f1: float, delta: tuple[float, float, float] | None, table: str = "sketch",
            answered: float = 40.0) -> dict[str, Any]:
        return {"table": table, "task": "squad_v2", "variant": variant, "params": 19_027_202, "artifact_mb": 76.84,
                "f1": f1, "exact": f1 - 2, "HasAns_f1": answered, "intervals": {"f1": [f1 - 5.0, f1 + 5.0]},
                "delta_vs_parent": delta and delta[0], "delta_ci95": list(delta[1:]) if delta else [None, None],
                "tune_examples": 7572 if "fine-tuned" in variant else 0, "flags": []}
    rows = [row("fine-tuned fp32", 58.0, None, "start", 45.2),
            row("sketched (least-squares init), no fine-tuning", 40.0, (-18.0, -23.0, -13.0), answered=20.0),
            row("sketched (least-squares init), fine-tuned", 58.0 + fitted[0], fitted, answered=has_ans)]
    return {"benchmark": "squad", "parts": ["squad-sketch"], "rows": rows, "paired": [], "prefix_cache": {},
            "study": {"database": "benchmarks/results/squad.sqlite", "recipes": []}, "squad_train_questions": 7572,
            "settings": {"squad_epochs": 2.0, "squad_eval": 300, "squad_max_length": 192, "sketch_attention": 256,
                         "sketch_ffn_out": 512, "sketch_calibration": 256, "sketch_init": ["least_squares"]}}


def eval_speed(engine: float = 40.0, naive: float = 127.0) -> dict[str, Any]:
    return {"benchmark": "SST-2 dev evaluation", "model": "packaged:all-MiniLM-L6-v2", "examples": 200,
            "batch_size": 32, "max_length": 128, "threads": 2, "rounds": 1, "accuracy": 0.5,
            "predictions_identical": True, "engine_seconds": [engine], "naive_seconds": [naive],
            "engine_median_s": engine, "naive_median_s": naive, "speedup": 99.0, "target": 1.5,
            "meets_target": True, "environment": ENV}


def cache(cold: float = 120.0, warm: float = 6.0) -> dict[str, Any]:
    return {"benchmark": "bench_cache", "target_speedup": 10.0, "startup_seconds": 4.2,
            "recipe": {"chain": [{"step": "finetune", "config": {"train_size": 200}}]},
            "results": {"cold": {"seconds": cold, "cached": [False] * 4, "step_seconds": [1, 2, 3]},
                        "warm: step 3 changed": {"seconds": warm, "cached": [True, True, True, False],
                                                 "step_seconds": [0, 0, 3]},
                        "warm: identical": {"seconds": 2.0, "cached": [True] * 4, "step_seconds": [0, 0, 0]}},
            "meets_target": True, "machine": {}}


def queries() -> dict[str, Any]:
    return {"benchmark": "bench_queries", "target_ms": 50.0,
            "database": {"runs": 277, "variants": 10000, "metrics": 120000, "largest_run": 1000, "median_run": 33},
            "build_seconds": 20.0, "machine": {},
            "results": {"run_variants (typical run, 33 variants)": {"median_ms": 0.52, "p90_ms": 0.6, "min_ms": 0.5},
                        "variants_of_model (2681 variants)": {"median_ms": 116.3, "p90_ms": 130.0, "min_ms": 90.0}}}


def gui(launch: float = 0.99, gap: float | None = 31.5) -> dict[str, Any]:
    stall = {"skipped": "--no-run"} if gap is None else {
        "run_seconds": 20.0, "outcome": "finished", "outcome_message": "", "ticks": 1800, "max_gap_ms": gap,
        "p99_gap_ms": 12.0, "median_gap_ms": 10.0, "target_max_gap_ms": 50}
    return {"machine": "x86_64", "cores": 2, "python": "3.11.7", "date": "2026-11-22 03:00 UTC",
            "launch": {"median_s": launch, "min_s": launch - 0.05, "max_s": launch + 0.1,
                       "interpreter_start_median_s": 0.03, "repeats": 3, "target_s": 1.5},
            "charts": {"variants": 1000, "full_redraw_median_ms": 74.7, "full_redraw_max_ms": 90.0,
                       "pan_zoom_median_ms": 36.3, "table_fill_sort_charts_ms": 948.2, "repeats": 10},
            "run_stall": stall}


def finetune() -> dict[str, Any]:
    return {"benchmark": "finetune", "settings": {"shipped_defaults": True}, "environment": ENV, "seconds": 600.0,
            "tasks": [finetune_task("sst2", 0.884, 0.861, 0.905, 500.0, 900.0)]}


def sketch_error() -> dict[str, Any]:
    layer = {"role": "ffn_out", "n": 1536, "m": 512, "out": 384, "tokens": 900, "spread": 15.7,
             "rel_frobenius_mean": 0.69, "rel_frobenius_sd": 0.01, "rel_frobenius_rms": 0.69,
             "rel_frobenius_expected": 0.70, "rel_frobenius_bound": 0.98, "op_error_rel_mean": 1.8,
             "op_sts_minus_i_mean": 6.38, "op_sts_minus_i_mp": 6.46, "best_trained_rel": 0.31}
    return {"settings": {"model": "all-MiniLM-L6-v2", "sentences": 64, "seeds": 10},
            "layers": {"encoder.layer.0.output.dense": layer},
            "drift": {"paper: attention m=256 + FFN output m=512": {"rel_error": 1.94, "cosine_mean": 0.011,
                                                                     "cosine_min": -0.16}},
            "wall_s": 385.0, "cpu_s": 44.0}


def backends(chain_b8: float = 1.9, chain_mb: float = 9.2, chain_points: float = -0.6,
             over_budget: bool = False) -> dict[str, Any]:
    """Shaped like bench_backends.py's JSON (the fields the report reads, names copied from a real run)."""
    def ratio(value: float) -> dict[str, float]:
        return {"ratio": value, "low": value * 0.9, "high": value * 1.1}

    def contender(name: str, role: str, backend: str, mb: float, points: float) -> dict[str, Any]:
        return {"name": name, "role": role, "backend": backend, "bytes": int(mb * 1e6), "model_bytes": int(mb * 1e6) - 700_000,
                "made_by": "engine: x", "accuracy": {"value": 0.838 + points / 100, "low": 0.806, "high": 0.87,
                                                     "examples": 500},
                "accuracy_vs_fp32_points": {"value": points, "low": points - 1.0, "high": min(points + 1.0, 0.0)}}

    hand_b8, hand_b1 = 99.2, 19.1
    chain_name = "chain: 3 layers, vocab 25 %, OpenVINO int8"
    # name -> (role, backend, MB, points, speed-up vs hand-written at b8, at b1)
    rows = {"torch fp32": ("fp32", "torch", 91.58, 0.0, 0.27, 0.28),
            "torch dynamic int8": ("engine int8", "torch", 23.79, -0.6, 0.53, 0.57),
            "OpenVINO NNCF static int8": ("engine int8", "openvino", 24.2, -0.4, 1.01, 1.05),
            chain_name: ("chain", "openvino", chain_mb, chain_points, chain_b8, 1.7),
            "hand-written NNCF + OpenVINO int8": ("hand-written", "openvino", 24.2, -0.4, 1.0, 1.0)}
    if over_budget:  # the script then runs the same recipe without its budget and times that file
        rows = {(n.replace("chain:", "chain without its budget:") if n == chain_name else n):
                (("chain over budget", *v[1:]) if n == chain_name else v) for n, v in rows.items()}
    contenders = [contender(n, role, b, mb, pts) for n, (role, b, mb, pts, _, _) in rows.items()]
    timings = {b: {n: {"p50_ms": base / v[4 if b == "b8" else 5], "p25_ms": 1.0, "p75_ms": 2.0, "p90_ms": 3.0,
                       "min_ms": 1.0, "max_ms": 3.0, "speedup_vs_torch_fp32": ratio(1.0 / 0.27),
                       "speedup_vs_hand_written": ratio(v[4 if b == "b8" else 5]), "settings": {}, "times_ms": [1.0]}
                   for n, v in rows.items()}
               for b, base in (("b8", hand_b8), ("b1", hand_b1))}

    def row(label: str, metric: float, mb: float, flags: list[dict[str, str]]) -> dict[str, Any]:
        return {"label": label, "cached": label in ("baseline", "finetune"), "metric": metric, "metric_ci_low": metric - 0.03,
                "metric_ci_high": metric + 0.03, "delta_vs_parent": -0.004, "delta_ci_low": -0.01, "delta_ci_high": 0.0,
                "size_mb": mb, "flags": flags, "backend_latency": {"openvino": [75.9, 72.6, 81.2]},
                "fastest_backend": "openvino"}

    over = [{"code": "over_budget", "text": "accuracy 80.2 is 3.6 points below the reference"}]
    chain_rows = [row("baseline", 0.542, 91.58, []), row("finetune", 0.838, 91.58, []),
                  row("distill", 0.802 if over_budget else 0.834, 70.3, over if over_budget else [])]
    if not over_budget:
        chain_rows += [row("vocab", 0.834, 58.1, []), row("quantize.static_int8", 0.832, chain_mb, [])]
    return {"benchmark": "bench_backends", "quick": False,
            "command": "python benchmarks/bench_backends.py --max-steps 120 --eval-limit 500",
            "settings": {"threads": 2, "rounds": 20, "warmup": 3, "seq_len": 128, "batches": [8, 1],
                         "finetune_max_steps": 120, "calibration_size": 300, "eval_limit": 500, "recipes": []},
            "contenders": contenders, "timings": timings,
            "chain": {"recipe": {"name": "bench_backends: finetune -> distill -> vocab -> quantize.static_int8",
                                 "chain": [{"step": "finetune", "config": {"max_steps": 120}},
                                           {"step": "distill", "config": {"student_layers": 3}},
                                           {"step": "vocab", "config": {"keep_percent": 25.0}},
                                           {"step": "quantize.static_int8", "config": {"backend": "openvino"}}]},
                      "budget": {"metric_drop": 1.0}, "reached_the_end": not over_budget,
                      "over_budget": [{"label": "distill", "text": over[0]["text"]}] if over_budget else [],
                      "shipped": None if over_budget else "quantize.static_int8", "rows": chain_rows},
            "engine_rows": chain_rows, "build_seconds": {"hand-written nncf": 26.9},
            "load_average_1m": {"start": 3.7, "after timing b1": 4.2}, "environment": ENV,
            "versions": {"openvino": "2026.4.1", "nncf": "3.4.0"}, "seconds": 1800.0, "cpu_seconds": 2400.0}


def write(folder: Path, **outputs: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    names = {"tinybert": "tinybert.json", "squad": "bench_squad.json", "squad_share": "bench_squad_share.json",
             "squad_sketch": "bench_squad_sketch.json", "squad_sketch_ls": "bench_squad_sketch_ls.json",
             "sketch_error": "sketch_error.json",
             "sketch_init": "bench_sst2_sketch_init.json",
             "eval": "eval_speed.json",
             "cache": "bench_cache.json", "queries": "bench_queries.json", "gui": "gui.json",
             "finetune": "bench_finetune.json", "backends": "bench_backends.json"}
    for key, data in outputs.items():
        (folder / names[key]).write_text(json.dumps(data), encoding="utf-8")
    return folder


def manifest(mode: str = "quick", **benches: dict[str, Any]) -> dict[str, Any]:
    return {"mode": mode, "command": "python benchmarks/run_all.py --quick", "results_dir": "benchmarks/results/quick",
            "started": "2026-11-22 03:45:00 UTC", "finished": "2026-11-22 04:00:00 UTC", "environment": ENV,
            "load_average": {"start": 3.0, "end": 2.5}, "benches": benches}


def entry(written: bool = True, status: str = "finished") -> dict[str, Any]:
    return {"command": "python benchmarks/x.py", "mode": "quick", "sizes": "as recorded 4242", "status": status,
            "seconds": 12.0,
            "output_written": written, "exit_code": 0 if written else 1, "log": "benchmarks/results/quick/logs/x.log"}


def summary(md: str) -> dict[str, str]:
    """target text -> verdict, from the 'Targets from the issues' table."""
    part = md.split("## Targets from the issues", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in part.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] not in ("area", "---"):
            rows[f"{cells[0]} / {cells[1]}"] = cells[3]
    return rows


def section(md: str, title_start: str) -> str:
    return md.split(f"## {title_start}", 1)[1].split("\n## ", 1)[0]


def verdict_of(rows: dict[str, str], contains: str) -> str:
    matches = [v for k, v in rows.items() if contains in k]
    assert len(matches) == 1, (contains, rows)
    return matches[0]


# --- tests -------------------------------------------------------------------------------------
def test_full_report_carries_our_values_published_column_and_header(tmp_path: Path) -> None:
    folder = write(tmp_path, tinybert=tinybert(), squad=squad(), squad_share=squad_share(), squad_sketch=squad_sketch(),
                   squad_sketch_ls=squad_sketch_ls(), sketch_error=sketch_error(), sketch_init=sketch_init(), eval=eval_speed(),
                   cache=cache(), queries=queries(), gui=gui(), finetune=finetune(), backends=backends())
    md = report.render(folder, manifest())
    # header: quick run labelled, machine, date, command
    assert "QUICK RUN" in md
    assert "Test CPU 9000" in md and "2026-11-22 03:45:00 UTC" in md and "run_all.py --quick" in md
    # our values
    tb = section(md, "TinyBERT study")
    assert "87.4" in tb  # student accuracy x100
    assert "| sst2 | student int8 | 6.10 |" in tb  # our int8 artifact MB, in our column
    assert "1.93x" in tb and "training subset 321 examples" in tb
    sq = section(md, "SQuAD system")
    assert "F1 57.8 / EM 54.0" in sq and "F1 55.5" in sq  # 3 layers, vocab 25 %
    assert "12.4" in sq  # 4-bit F1
    assert "3.17x" in section(md, "Engine throughput")  # 127 / 40, from the medians, not the stored "speedup"
    assert "20.0x" in section(md, "Prefix cache")
    assert "116.3" in section(md, "Store queries")
    assert "0.99 s" in section(md, "GUI") and "31.5 ms" in section(md, "GUI")
    assert "0.884 [0.861, 0.905]" in section(md, "Fine-tuning")
    # published figures in their own columns / table, named
    assert "## Published figures" in md and "Compressed SQuAD 2.0 model with BERT" in md
    assert "| student int8 | 6.10 | 43.74 (TinyBERT int8) |" in tb
    assert "437.98 (BERT-base)" in tb and "0.749" in tb
    assert "F1 76.8 (12->6 layers, half depth)" in sq and "F1 70.2" in sq and "F1 -0.8 vs start" in sq
    four = next(r for r in squad()["rows"] if r["task"] == "squad_v2" and r["variant"] == "4 bits")
    assert f"| 4 bits | {four['params']:,} | {four['artifact_mb']:.2f} |" in sq and "collapse" in sq
    assert "smallest squad_v2 within 1 point of its start: bits 10 bits" in sq  # 8 bits lost 1.17
    share = section(md, "SQuAD system: Table 2 with the whole train part")
    assert "F1 59.2 / EM 56.0" in share and "then 7572 questions" in share and "-2.1" in share
    sketch = section(md, "SQuAD system: Table 5 with the whole train part")
    assert "then 7572 questions x 1.0 epoch" in sketch and "F1 59.9 / EM 56.0" in sketch
    assert "| sketched (least-squares init), fine-tuned | 56.8 [51.8, 61.8] | 41.0 |" in section(md, "SQuAD system: Table 5 again")
    errors = section(md, "Random sketching: why")
    assert "| ffn_out | 1536 | 512 | 15.7 [15.7-15.7] | 0.69 [0.69-0.69] |" in errors and "cosine 0.011" in errors
    init = section(md, "Random sketching end to end")
    assert "| sketched (least-squares init), fine-tuned | 19,175,042 | 77.43 | 83.1 [80.6, 85.5] | -1.1 [-3.0, +0.8] " \
           "(within noise) | — |" in init
    assert "| sketched, fine-tuned | 19,175,042 | 77.43 | 51.1 [48.6, 53.5] | -33.1 [-37.0, -29.0] | did_not_learn |" in init
    assert "consistent with the published 'no loss after fine-tuning'" in init and "on 256 training rows" in init
    assert "(a loss of more than 3.0 points is ruled out)" in init
    assert "The dense start given the same fine-tuning (the control row) reaches 85.1, +0.9 [-0.4, +2.2] " \
           "(within noise) points against the start: at an equal training budget the sketched model is -2.0 " \
           "[-3.5, -0.4] points from the dense one (paired on the same 872 sentences; beyond noise)" in init
    assert "not run" not in md


def test_the_squad_least_squares_sketch_reading_follows_its_paired_interval_and_answers() -> None:
    held = report.section_markdown("squad-sketch-ls", squad_sketch_ls())
    lost = report.section_markdown("squad-sketch-ls", squad_sketch_ls(fitted=(-9.7, -14.0, -5.5), has_ans=0.0))
    assert "| sketched (least-squares init), fine-tuned | 56.8 [51.8, 61.8] | 41.0 | -1.2 [-4.0, +1.5] (within noise) |" in held
    assert "answers (HasAns F1 41.0)" in held and "no loss beyond noise" in held
    assert "still answers nothing (HasAns F1 0)" in lost and "a loss beyond noise" in lost
    assert verdict_of(summary(held), "least-squares init: no loss vs the start") == "met (within noise)"
    assert verdict_of(summary(lost), "least-squares init: no loss vs the start") == "**not met** (a loss beyond noise)"
    unlearned = squad_sketch_ls()
    unlearned["rows"][0]["flags"] = ["did_not_learn"]
    weak = report.section_markdown("squad-sketch-ls", unlearned)
    assert "HasAns F1 41.0 against the start's 45.2" in weak and "cannot confirm the paper's claim" in weak
    assert verdict_of(summary(weak), "least-squares init: no loss vs the start") == "inconclusive: the start did not learn"


def test_the_sketch_init_reading_follows_the_paired_interval() -> None:
    held = report.section_markdown("sketch-init", sketch_init())
    lost = report.section_markdown("sketch-init", sketch_init(fitted_delta=(-0.05, -0.07, -0.03)))
    gained = report.section_markdown("sketch-init", sketch_init(fitted_delta=(0.03, 0.01, 0.05)))
    assert "consistent with the published" in held and "beyond noise." not in held
    assert "a loss of 5.0 points beyond noise" in lost and "consistent with" not in lost
    assert "a gain of 3.0 points beyond noise" in gained and "loss of" not in gained
    assert verdict_of(summary(held), "no loss vs the start") == "met (within noise)"
    assert verdict_of(summary(lost), "no loss vs the start") == "**not met** (a loss beyond noise)"
    assert verdict_of(summary(gained), "no loss vs the start") == "met (a gain beyond noise)"
    assert verdict_of(summary(held), "dense start given the same fine-tuning") == "**a loss beyond noise**"


def test_missing_output_is_not_run_with_the_command(tmp_path: Path) -> None:
    folder = write(tmp_path, eval=eval_speed(), queries=queries())
    md = report.render(folder, manifest(eval=entry(), queries=entry()))
    gui_part = section(md, "GUI")
    assert "**not run**" in gui_part
    assert "bench_gui.py --repeats 3" in gui_part and "run_all.py --quick --only gui" in gui_part
    assert "**not run**" in section(md, "TinyBERT study") and "**not run**" in section(md, "SQuAD system")
    assert re.search(r"\| GUI \| — \| not run \| n/a \|", md)
    assert "3.17x" in md  # what did run is still there
    assert "as recorded 4242" in md  # the sizes the run used, not today's suite definition


def test_stale_output_of_a_failed_run_is_not_reported(tmp_path: Path) -> None:
    """A JSON left from an earlier run must not stand in for a benchmark that failed this time."""
    folder = write(tmp_path, cache=cache(cold=777.0))
    md = report.render(folder, manifest(cache=entry(written=False, status="failed (exit code 1)")))
    part = section(md, "Prefix cache")
    assert "**not run**" in part and "failed (exit code 1)" in part
    assert "777" not in md


@pytest.mark.parametrize(("value", "expected"), [(1.93, "met"), (1.2, "**not met**")])
def test_int8_speed_verdict_follows_the_value(tmp_path: Path, value: float, expected: str) -> None:
    md = report.render(write(tmp_path, tinybert=tinybert(speedup_int8=value)), manifest())
    assert verdict_of(summary(md), "int8 vs fp32 latency") == expected
    assert verdict_of(summary(md), "int8 speed-up beats the published") == ("met" if value > 1.18 else "**not met**")


@pytest.mark.parametrize(("int8_mb", "expected"), [(6.1, "met"), (40.0, "**not met**")])
def test_int8_size_verdict_follows_the_value(tmp_path: Path, int8_mb: float, expected: str) -> None:
    md = report.render(write(tmp_path, tinybert=tinybert(int8_mb=int8_mb)), manifest())
    assert verdict_of(summary(md), "int8 artifact <=") == expected
    assert verdict_of(summary(md), "int8/fp32 size beats the published") == ("met" if int8_mb / 45.55 < 0.749 else
                                                                             "**not met**")


@pytest.mark.parametrize(("student", "expected"), [(0.874, "met"), (0.80, "**not met**")])
def test_student_retention_verdict(tmp_path: Path, student: float, expected: str) -> None:
    md = report.render(write(tmp_path, tinybert=tinybert(student_acc=student)), manifest())
    assert verdict_of(summary(md), "3-layer student keeps") == expected


def test_threshold_verdicts_for_engine_cache_queries_gui(tmp_path: Path) -> None:
    md = report.render(write(tmp_path, eval=eval_speed(engine=100.0, naive=120.0), cache=cache(cold=100.0, warm=20.0),
                              queries=queries(), gui=gui(launch=2.4, gap=80.0)), manifest())
    rows = summary(md)
    assert verdict_of(rows, "Engine /") == "**not met**"  # 1.2x < 1.5x although the stored 'speedup' says 99
    assert verdict_of(rows, "Prefix cache /") == "**not met**"  # 5x < 10x
    assert verdict_of(rows, "run_variants (typical") == "met"
    assert verdict_of(rows, "variants_of_model") == "**not met**"
    assert verdict_of(rows, "launch to interactive") == "**not met**"
    assert verdict_of(rows, "GUI-thread stall") == "**not met**"
    md = report.render(write(tmp_path, eval=eval_speed(), cache=cache(), gui=gui(gap=None)), manifest())
    rows = summary(md)
    assert verdict_of(rows, "Engine /") == "met" and verdict_of(rows, "Prefix cache /") == "met"
    assert verdict_of(rows, "launch to interactive") == "met"
    assert verdict_of(rows, "GUI-thread stall") == "n/a"  # skipped: no verdict invented


def test_nbit_size_vs_theory(tmp_path: Path) -> None:
    overhead = START_BYTES - 4 * START_PARAMS
    theory8 = START_PARAMS + overhead
    assert report.nbit_theory_bytes({"variant": "8 bits", "params": START_PARAMS},
                                     {"artifact_mb": START_BYTES / 1e6, "params": START_PARAMS}) == pytest.approx(theory8)
    md = report.render(write(tmp_path, squad=squad(bits8_bytes=theory8 * 1.001)), manifest())
    assert verdict_of(summary(md), "squad_v2 / every n-bit artifact within") == "met"
    assert "1.0010" in section(md, "SQuAD system")
    md = report.render(write(tmp_path, squad=squad(bits8_bytes=theory8 * 1.05)), manifest())
    assert verdict_of(summary(md), "squad_v2 / every n-bit artifact within") == "**not met**"
    assert "worst 1.0500x (8 bits)" in md


def test_nbit_shape_check(tmp_path: Path) -> None:
    md = report.render(write(tmp_path, squad=squad()), manifest())
    rows = summary(md)
    assert verdict_of(rows, "squad_v2 / n-bit shape: 16/10-bit") == "met"
    assert verdict_of(rows, "squad_v2 / n-bit shape: lowest") == "met"  # 4-bit F1 12.4 vs 61.4
    assert verdict_of(rows, "sst2 / n-bit shape: lowest") == "**not met**"  # 83.0 vs 85.0: only 2 points


def test_a_qa_model_that_never_answers_gets_no_shape_verdict(tmp_path: Path) -> None:
    data = squad()
    for row in data["rows"]:
        if row["task"] == "squad_v2":
            row["HasAns_f1"] = 0.0  # abstains everywhere: every width scores the no-answer share
    rows = summary(report.render(write(tmp_path, squad=data), manifest()))
    assert verdict_of(rows, "squad_v2 / n-bit shape: 16/10-bit").startswith("n/a (the starting QA model answers")
    assert verdict_of(rows, "squad_v2 / n-bit shape: lowest").startswith("n/a")
    assert verdict_of(rows, "sst2 / n-bit shape: lowest") == "**not met**"  # other tasks keep their verdicts


def test_combined_tinybert_file_with_settings_per_task(tmp_path: Path) -> None:
    """bench_tinybert.py --combine: no top-level settings, one per task, tasks of different variants."""
    a, b = tinybert(), tinybert(speedup_int8=1.2)
    b["tasks"][0]["task"], b["tasks"][0]["metric_name"] = "cola", "matthews"
    b["settings"]["train_size"] = 777
    b["settings"]["teacher"] = {"train_size": 777, "epochs": 6.0, "consistency": 1.0}  # --teacher-config consistency=1.0
    b["settings"]["measure"] = {"max_length": 256}
    del b["tasks"][0]["rows"][2]  # cola without the 10 % pruned row
    combined = {"benchmark": "tinybert", "runs": [a["settings"], b["settings"]], "environment": ENV, "published": {},
                "tasks": [dict(a["tasks"][0], settings=a["settings"]), dict(b["tasks"][0], settings=b["settings"])],
                "seconds": 1.0}
    md = report.render(write(tmp_path, tinybert=combined), manifest())
    tb = section(md, "TinyBERT study")
    assert "- sst2: training subset 321 examples" in tb and "- cola: training subset 777 examples" in tb
    # each part's sequence length: a file without one was run at 128
    sst2_line, cola_line = (next(line for line in tb.splitlines() if line.startswith(f"- {t}:")) for t in ("sst2", "cola"))
    assert "rows of at most 128 tokens" in sst2_line and "rows of at most 256 tokens" in cola_line
    assert "consistency 1.0" in cola_line and "consistency" not in sst2_line
    assert "teacher 6.0 epochs" in cola_line  # read from the config the teacher ran with
    assert "| student pruned 10% | 87.6 | — |" in tb
    rows = summary(md)
    assert rows["TinyBERT sst2 / int8 vs fp32 latency >= 1.7x (batch 8, seq 128)"] == "met"
    assert rows["TinyBERT cola / int8 vs fp32 latency >= 1.7x (batch 8, seq 128)"] == "**not met**"


def test_a_constant_predictor_gets_no_metric_verdict(tmp_path: Path) -> None:
    data = tinybert()
    for row in data["tasks"][0]["rows"]:
        row["metric"] = 0.5167  # a teacher that never learned: every variant predicts the majority class
    rows = summary(report.render(write(tmp_path, tinybert=data), manifest()))
    assert verdict_of(rows, "int8 costs <=").startswith("n/a (every variant scores the same")
    assert verdict_of(rows, "3-layer student keeps").startswith("n/a")
    assert verdict_of(rows, "int8 artifact <=") == "met"  # size does not depend on learning


def test_tinybert_ratios_come_from_the_rows_shown() -> None:
    task = tinybert(speedup_int8=2.0, int8_mb=9.11)["tasks"][0]
    task["ratios"] = {k: 123.0 for k in task["ratios"]}  # the script's own figures, deliberately wrong
    q = report.tinybert_ratios(task)
    assert q["int8_vs_fp32_latency_speedup"] == pytest.approx(2.0)
    assert q["int8_vs_fp32_artifact_ratio"] == pytest.approx(9.11 / 45.55)
    assert q["int8_metric_cost_points"] == pytest.approx(0.46)
    assert q["student_vs_teacher_metric_retention"] == pytest.approx(0.874 / 0.9011)
    del task["rows"][-1]  # no int8 row: only then the script's figure is used
    assert report.tinybert_ratios(task)["int8_vs_fp32_latency_speedup"] == 123.0


def table(md: str, header_start: str) -> list[dict[str, str]]:
    """The Markdown table whose header line starts with ``header_start``, as dicts by column."""
    lines = md.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    names = [c.strip() for c in lines[at].strip().strip("|").split("|")]
    rows = []
    for line in lines[at + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(names, (c.strip() for c in line.strip().strip("|").split("|")), strict=True)))
    return rows


def test_published_figures_fill_only_the_published_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Changing a published constant changes the published cells and nothing we measured."""
    folder = write(tmp_path, tinybert=tinybert(), squad=squad())
    before = report.render(folder, manifest())
    changed = dict(published.PUBLISHED_TINYBERT, tinybert_int8_mb=12.34, bert_base_mb=999.5)
    changed["int8_vs_fp32_artifact_ratio"] = changed["tinybert_int8_mb"] / changed["tinybert_mb"]
    changed["student_vs_teacher_artifact_ratio"] = changed["tinybert_mb"] / changed["bert_base_mb"]
    monkeypatch.setattr(report, "PUBLISHED_TINYBERT", changed)
    monkeypatch.setattr(report, "PUBLISHED_SQUAD", dict(published.PUBLISHED_SQUAD, vocab_25_f1=11.1))
    after = report.render(folder, manifest())
    header = "| task | variant | artifact MB | published MB |"
    old, new = table(before, header), table(after, header)
    rows = tinybert()["tasks"][0]["rows"]
    assert [r["artifact MB"] for r in new] == [f"{r['artifact_mb']:.2f}" for r in rows]  # ours, from the JSON
    assert [r["artifact MB"] for r in new] == [r["artifact MB"] for r in old]
    by = {r["variant"]: r["published MB"] for r in new}
    assert by["student int8"] == "12.34 (TinyBERT int8)" and by["teacher (MiniLM-L6)"] == "999.5 (BERT-base)"
    assert {r["variant"]: r["published MB"] for r in old}["student int8"] == "43.74 (TinyBERT int8)"
    ratios = table(after, "| task | int8/fp32 speed-up |")[0]
    assert ratios["int8/fp32 artifact"] == f"{6.1 / 45.55:.3f}"  # measured: unchanged
    assert ratios["published"] == f"{58.39 / 999.5:.3f}"  # the last published column: student/teacher size
    assert "12.34" not in before and "F1 11.1" in section(after, "SQuAD system")
    squad_old = table(before, "| task | variant | params | artifact MB |")
    squad_new = table(after, "| task | variant | params | artifact MB |")
    assert [{k: v for k, v in r.items() if k != "published"} for r in squad_new] == \
        [{k: v for k, v in r.items() if k != "published"} for r in squad_old]


def test_published_numbers_have_one_home() -> None:
    """The papers' figures are typed once, in core/published.py (the window draws them, the benchmarks
    compare with them), and nowhere else in benchmarks/, core/ or workbench/."""
    figures = ("437.98", "58.39", "43.74", "76.8", "72.7", "70.2")
    home = ROOT / "core" / "published.py"
    for folder in ("benchmarks", "core", "workbench"):
        for path in (ROOT / folder).rglob("*.py"):
            if path == home:
                continue
            text = path.read_text(encoding="utf-8")
            assert not [f for f in figures if f in text], path.name
    text = home.read_text(encoding="utf-8")
    assert all(f in text for f in figures)


def test_missing_script_is_recorded_not_invented(tmp_path: Path) -> None:
    bench = suite.Bench("ghost", "bench_ghost_does_not_exist.py", "Ghost", ("ghost.json",), quick=(), full=(),
                          sizes={})
    out = suite.run_one(bench, "quick", tmp_path, tmp_path / "logs")
    assert out["status"] == "missing script" and out["output_written"] is False


def test_every_flag_of_both_modes_is_one_the_script_accepts() -> None:
    """The suite's flags must exist in each script's argparse (checked against its --help)."""
    for bench in suite.BENCHES:
        script = ROOT / "benchmarks" / bench.script
        assert script.is_file(), f"the suite names {bench.script}, which does not exist"
        flags = {a for a in (*bench.quick, *bench.full) if a.startswith("--")}
        flags |= {a for a in bench.out_flags(Path("x")) if a.startswith("--")}
        help_text = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True,
                                   cwd=ROOT, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                                                               "QT_QPA_PLATFORM": "offscreen"}).stdout
        missing = [f for f in flags if not re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", help_text)]
        assert not missing, f"{bench.script} does not accept {missing}"


def _fake_suite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> Any:
    """A one-script suite in tmp; like the real scripts it writes to benchmarks/results unless given --out."""
    bench_dir, default = tmp_path / "benchmarks", tmp_path / "benchmarks" / "results"
    default.mkdir(parents=True)
    (bench_dir / "bench_fake.py").write_text(body, encoding="utf-8")
    monkeypatch.setattr(suite, "BENCH_DIR", bench_dir)
    monkeypatch.setattr(suite, "DEFAULT_RESULTS", default)
    return suite.Bench("fake", "bench_fake.py", "Fake", ("fake.json", "fake.md"), quick=("--n", "1"), full=(),
                         sizes={}, env={"FAKE_DEFAULT": str(default)})


def test_quick_outputs_go_to_the_quick_folder_and_the_full_results_stay(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    body = ("import argparse, json, os, sys, pathlib\n"
            "parser = argparse.ArgumentParser()\n"
            "parser.add_argument('--n')\n"
            "parser.add_argument('--out', type=pathlib.Path, default=pathlib.Path(os.environ['FAKE_DEFAULT']))\n"
            "args = parser.parse_args()\n"
            "args.out.mkdir(parents=True, exist_ok=True)\n"
            "(args.out / 'fake.json').write_text(json.dumps({'argv': sys.argv[1:]}))\n"
            "(args.out / 'fake.md').write_text('quick')\n")
    bench = _fake_suite(tmp_path, monkeypatch, body)
    full = suite.DEFAULT_RESULTS / "fake.json"
    full.write_text('{"from": "the full run"}')
    quick = tmp_path / "quick"
    out = suite.run_one(bench, "quick", quick, quick / "logs")
    assert out["status"] == "finished" and out["output_written"] is True, out
    assert json.loads((quick / "fake.json").read_text())["argv"][:3] == ["--n", "1", "--out"]
    assert json.loads(full.read_text()) == {"from": "the full run"}  # untouched
    assert not (suite.DEFAULT_RESULTS / "fake.md").exists()


def test_a_benchmark_over_its_time_is_stopped_and_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bench = _fake_suite(tmp_path, monkeypatch, "import time\ntime.sleep(120)\n")
    monkeypatch.setattr(suite, "MIN_START_S", 0)
    started = time.monotonic()
    out = suite.run_one(bench, "quick", tmp_path / "quick", tmp_path / "logs", timeout_s=1)
    assert time.monotonic() - started < 30
    assert out["status"].startswith("timeout") and out["output_written"] is False
    monkeypatch.setattr(suite, "MIN_START_S", 30)
    out = suite.run_one(bench, "quick", tmp_path / "quick", tmp_path / "logs", timeout_s=5)
    assert out["status"] == "skipped: time budget spent"


def _flag_values(args: tuple[str, ...], flag: str) -> list[str]:
    """The values after ``flag`` up to the next --option."""
    rest = list(args[args.index(flag) + 1 :])
    return rest[: next((i for i, a in enumerate(rest) if a.startswith("--")), len(rest))]


def test_squad_parts_and_settings_fields_exist() -> None:
    """--parts choices and --set FIELD names are checked by the script only at run time: check them here."""
    script = ROOT / "benchmarks" / "bench_squad.py"
    spec = importlib.util.spec_from_file_location("bench_squad_for_test", script)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    fields = set(module.Settings.__dataclass_fields__)
    help_text = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, cwd=ROOT,
                               timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}).stdout
    for flags in (f for key in ("squad", "squad-share", "squad-sketch", "squad-sketch-ls") for f in (suite.BY_KEY[key].quick, suite.BY_KEY[key].full)):
        parts = _flag_values(flags, "--parts")
        assert parts and all(re.search(rf"[{{,]{re.escape(p)}[,}}]", help_text) for p in parts), parts
        names = [a.split("=", 1)[0] for a in _flag_values(flags, "--set")]
        assert names and set(names) <= fields, set(names) - fields


def _study(*reused: bool) -> dict[str, Any]:
    """A study block as benchmarks/study.py writes it: the first recipe computes, the others may reuse."""
    chain = [{"step": "finetune", "config": {"train_size": 321}}, {"step": "distill", "config": {}}]
    recipes = [{"key": "sst2 prune", "name": "p", "run_id": 1, "seconds": 50.0, "variants": 5, "cached": [],
                "recipe": {"chain": [*chain, {"step": "prune.global_magnitude", "config": {"amount": [0.1, 0.4]}}]}}]
    for i, ok in enumerate(reused):
        recipes.append({"key": f"sst2 other{i}", "name": "q", "run_id": 2 + i, "seconds": 5.0, "variants": 4,
                        "cached": ["baseline", "finetune", "distill"] if ok else ["baseline"],
                        "recipe": {"chain": [*chain, {"step": "quantize.dynamic_int8", "config": {}}]}})
    return {"database": "/tmp/x/tinybert.sqlite", "artifacts": "/tmp/x/tinybert-artifacts", "reused_database": False,
            "recipes": recipes}


@pytest.mark.parametrize("reused", [True, False])
def test_prefix_cache_verdict_follows_the_recorded_rows(tmp_path: Path, reused: bool) -> None:
    data = tinybert()
    data["study"] = _study(reused)
    data["latency"] = "Latency: timed by the engine, 7 timed forward passes."
    data["tasks"][0]["prefix_cache"] = {"int8": {"run": 2, "cached": data["study"]["recipes"][1]["cached"],
                                                 "teacher_and_student_reused": reused}}
    sq = squad()
    sq["prefix_cache"] = {"squad_v2 bits": {"run": 7, "start_reused": reused, "cached": ["baseline"]}}
    md = report.render(write(tmp_path, tinybert=data, squad=sq), manifest())
    rows = summary(md)
    expected = "met" if reused else "**not met**"
    assert verdict_of(rows, "recipe 'int8' reuses the teacher and student") == expected
    assert verdict_of(rows, "recipe 'squad_v2 bits' reuses the fine-tuned start") == expected
    tb = section(md, "TinyBERT study")
    assert "7 timed forward passes" in tb  # how latency was measured, from the JSON
    assert "sst2 other0 (run 2, 5 s): the first recipe's first 2 step(s), then quantize.dynamic_int8" in tb
    assert ("3 of 4 variants reused from the cache" in tb) == reused


def test_a_missing_json_is_not_run_even_without_a_manifest(tmp_path: Path) -> None:
    md = report.render(write(tmp_path, queries=queries()), {})
    for title in report.TITLES.values():
        part = section(md, title)
        assert ("**not run**" in part) == (title != report.TITLES["queries"]), title
    assert "no tinybert.json in" in section(md, report.TITLES["tinybert"])


def test_a_benchmark_section_alone_matches_the_report(tmp_path: Path) -> None:
    """The scripts write their .md with the report's renderer: the same table, the same verdicts."""
    data = eval_speed(engine=50.0, naive=100.0)
    alone = report.section_markdown("eval", data)
    full = report.render(write(tmp_path, eval=data), manifest())
    assert "| engine (sorted, dynamic padding) | 50.00 | 4.0 |" in alone
    assert "| engine (sorted, dynamic padding) | 50.00 | 4.0 |" in section(full, report.TITLES["eval"])
    assert summary(alone) == {k: v for k, v in summary(full).items() if k.startswith("Engine")}


def test_a_quick_report_goes_to_the_quick_folder_not_over_the_full_report(tmp_path: Path) -> None:
    from benchmarks import run_all

    folder = write(tmp_path / "quick", queries=queries())
    (folder / suite.MANIFEST).write_text(json.dumps(manifest()), encoding="utf-8")
    full = report.REPORT.read_text(encoding="utf-8")
    assert run_all.main(["--quick", "--report-only", "--results", str(folder)]) == 0
    assert "116.3" in (folder / "RESULTS.md").read_text(encoding="utf-8")
    assert report.REPORT.read_text(encoding="utf-8") == full


def finetune_task(task: str, metric: float | None, low: float, high: float, seconds: float, cpu: float,
                  majority_high: float = 0.53) -> dict[str, Any]:
    """One task of bench_finetune.py's JSON (field names copied from the script)."""
    return {"task": task, "metric_name": "accuracy", "metric": metric, "ci_low": low, "ci_high": high,
            "steps": 1000, "epochs_seen": 0.5, "max_length": 66, "stopped_early": False, "best_step": 875,
            "finetune_seconds": seconds, "finetune_cpu_seconds": cpu, "quiet_minutes_estimate": cpu / 2 / 60,
            "load": {"mean": 9.5, "max": 15.0}, "learned": {"summary": "learned: held-out accuracy 0.88"},
            "versus_trivial": {"majority": {"value": 0.5, "low": 0.47, "high": majority_high},
                               "margin": {"value": 0.38, "low": 0.35, "high": 0.41}}}


@pytest.mark.parametrize(("metric", "low", "high", "expected"), [
    (0.884, 0.861, 0.905, "met (point estimate; the interval reaches below)"),
    (0.884, 0.871, 0.905, "met (whole interval above)"),
    (0.866, 0.843, 0.889, "**not met** (the interval reaches the target)"),
    (0.80, 0.77, 0.83, "**not met**")])
def test_finetune_metric_verdict_follows_value_and_interval(metric: float, low: float, high: float,
                                                            expected: str) -> None:
    md = report.section_markdown("finetune", {"settings": {}, "tasks": [finetune_task("sst2", metric, low, high,
                                                                                      500.0, 900.0)]})
    assert verdict_of(summary(md), "sst2: accuracy >= 0.87") == expected


@pytest.mark.parametrize(("seconds", "cpu", "expected"), [(500.0, 900.0, "met"), (1500.0, 500.0, "met on a quiet"),
                                                          (1500.0, 1000.0, "likely on a quiet machine, not shown"),
                                                          (1500.0, 1400.0, "**not met**")])
def test_finetune_time_verdict_uses_wall_time_then_the_cpu_estimate(seconds: float, cpu: float, expected: str) -> None:
    md = report.section_markdown("finetune", {"settings": {}, "tasks": [finetune_task("sst2", 0.88, 0.86, 0.9,
                                                                                      seconds, cpu)]})
    assert verdict_of(summary(md), "sst2: within 10 minutes").startswith(expected)


@pytest.mark.parametrize(("majority_high", "expected"), [(0.53, "met"), (0.62, "**not met**")])
def test_custom_pairs_verdict_needs_intervals_apart(majority_high: float, expected: str) -> None:
    task = finetune_task("pairs", 0.70, 0.60, 0.80, 300.0, 500.0, majority_high=majority_high)
    md = report.section_markdown("finetune", {"settings": {}, "tasks": [task]})
    assert verdict_of(summary(md), "pairs: accuracy clearly above").startswith(expected)


def _seeded(task: str, values: list[float], walls: list[float]) -> dict[str, Any]:
    """A task entry as bench_finetune.over_seeds makes it from one run per seed."""
    from benchmarks.bench_finetune import over_seeds

    runs = [{**finetune_task(task, v, v - 0.06, v + 0.06, wall, wall * 1.5), "seed": seed}
            for seed, (v, wall) in enumerate(zip(values, walls, strict=True))]
    return over_seeds(runs)


def test_the_seeds_named_are_the_ones_each_task_ran_with() -> None:
    from benchmarks.bench_finetune import over_seeds

    three = [{**finetune_task("sst2", 0.88, 0.86, 0.9, 300.0, 500.0), "seed": 3}]
    md = report.section_markdown("finetune", {"settings": {"seed": 0}, "tasks": three})
    assert ", seed 3, " in md and "seed 0" not in md
    pair = over_seeds([{**finetune_task("rte", 0.6, 0.55, 0.65, 300.0, 500.0), "seed": s} for s in (1, 2)])
    md = report.section_markdown("finetune", {"settings": {"seed": 0}, "tasks": [*three, pair]})
    assert ", seeds sst2 3; rte 1, 2, " in md


def test_the_small_tasks_get_three_seeds_unless_told() -> None:
    import argparse

    from benchmarks.bench_finetune import seeds_of

    shipped = argparse.Namespace(seed=5, seeds=None)
    assert [seeds_of(shipped, t) for t in ("sst2", "cola", "rte")] == [[5], [5, 6, 7], [5, 6, 7]]
    assert seeds_of(argparse.Namespace(seed=0, seeds=[3, 1]), "sst2") == [3, 1]


def test_several_seeds_are_judged_on_their_mean_and_shown_one_by_one() -> None:
    from benchmarks.bench_finetune import over_seeds

    entry = _seeded("cola", [0.286, 0.340, 0.252], [360.0, 500.0, 380.0])
    assert entry["metric"] == pytest.approx(0.29267, abs=1e-5) and entry["seeds"] == [0, 1, 2]
    assert entry["metric_sd"] == pytest.approx(statistics.stdev([0.286, 0.340, 0.252]))
    assert entry["finetune_seconds"] == 500.0  # the slowest seed: each fine-tune must fit the budget
    md = report.section_markdown("finetune", {"settings": {"seed": 0}, "tasks": [entry]})
    rows = summary(md)
    assert verdict_of(rows, "cola: accuracy >= 0.3") == "**not met** (mean of 3 seeds; 1 of 3 reach it alone)"
    assert verdict_of(rows, "cola: within 15 minutes") == "met (the worst of 3 seeds)"
    assert "mean 0.293 ± 0.044 sd over 3 seeds (seed 0: 0.286 [0.226, 0.346]; seed 1: 0.340" in md
    assert "all-MiniLM" not in md and ", seeds 0, 1, 2, " in md and md.count("learned: held-out") == 3
    # The time verdict is the worst seed's, not the slowest wall's: seed 1 is faster on the wall but its CPU time
    # shows a quiet machine could not be shown to fit; seed 0's wall is longer but its CPU time fits.
    runs = [{**finetune_task("cola", 0.3, 0.25, 0.35, 1200.0, 840.0), "seed": 0},
            {**finetune_task("cola", 0.3, 0.25, 0.35, 1140.0, 1380.0), "seed": 1}]
    md = report.section_markdown("finetune", {"settings": {}, "tasks": [over_seeds(runs)]})
    assert verdict_of(summary(md), "cola: within 15 minutes").startswith("likely on a quiet machine")
    assert verdict_of(summary(md), "cola: within 15 minutes").endswith("(the worst of 2 seeds)")
    above = _seeded("cola", [0.31, 0.33, 0.29], [300.0, 300.0, 300.0])
    md = report.section_markdown("finetune", {"settings": {}, "tasks": [above]})
    assert verdict_of(summary(md), "cola: accuracy >= 0.3") == "met (mean of 3 seeds; 2 of 3 reach it alone)"


@pytest.mark.parametrize(("majority_highs", "expected"), [((0.53, 0.53), "met (intervals apart in 2 of 2 seeds)"),
                                                          ((0.53, 0.70), "**not met** (intervals apart in 1 of 2 seeds)")])
def test_pairs_over_seeds_need_intervals_apart_in_every_seed(majority_highs: tuple[float, float],
                                                             expected: str) -> None:
    from benchmarks.bench_finetune import over_seeds

    runs = [{**finetune_task("pairs", 0.70, 0.65, 0.75, 300.0, 500.0, majority_high=high), "seed": seed}
            for seed, high in enumerate(majority_highs)]
    md = report.section_markdown("finetune", {"settings": {}, "tasks": [over_seeds(runs)]})
    assert verdict_of(summary(md), "pairs: accuracy clearly above") == expected


def test_backends_section_renders_both_issue_15_targets(tmp_path: Path) -> None:
    data = backends()
    md = report.render(write(tmp_path, backends=data), manifest())
    part = section(md, report.TITLES["backends"])
    assert "| OpenVINO NNCF static int8 | openvino | engine: x | 24.20 |" in part
    assert "budget: {\"metric_drop\": 1.0}" in part and "every variant of the chain within it" in part
    rows = summary(md)
    # The chain kept its budget, so its int8 file is the workbench's fastest int8 variant within 1 point.
    assert verdict_of(rows, "no slower than a hand-written NNCF + OpenVINO int8, batch 8") == "met"
    assert "1.90x [1.71, 2.09] (chain: 3 layers" in md
    assert verdict_of(rows, "same depth only (no distillation): fastest int8 vs the hand-written one, batch 8") == \
        "met (point estimate; the interval reaches below)"  # shown beside: 1.01x, the OpenVINO int8
    assert verdict_of(rows, "that int8 variant within 1 point") == "met (point estimate; the interval reaches above)"
    over = summary(report.section_markdown("backends", backends(over_budget=True)))  # then only same-depth files
    assert verdict_of(over, "no slower than a hand-written NNCF + OpenVINO int8, batch 8") == \
        "met (point estimate; the interval reaches below)"  # 1.01x [0.91, 1.11]: the OpenVINO int8, the faster one
    assert "1.01x [0.91, 1.11] (OpenVINO NNCF static int8)" in report.section_markdown("backends",
                                                                                       backends(over_budget=True))
    assert verdict_of(rows, ">= 1.5x faster than the hand-written OpenVINO int8, batch 8") == "met"
    assert verdict_of(rows, "<= 0.15x the fp32 model's bytes") == "met"
    assert "9.20 / 91.58 MB = 0.100x" in md
    assert verdict_of(rows, "budget: within 1 point") == "met (point estimate; the interval reaches above)"
    alone = report.section_markdown("backends", data)  # the script's own .md: the same renderer, same verdicts
    assert summary(alone) == {k: v for k, v in summary(md).items() if k.startswith("Deployment backends")}


@pytest.mark.parametrize(("kwargs", "target", "expected"), [
    ({"chain_b8": 1.4}, ">= 1.5x faster than the hand-written OpenVINO int8, batch 8", "**not met** (the interval"),
    ({"chain_b8": 1.2}, ">= 1.5x faster than the hand-written OpenVINO int8, batch 8", "**not met**"),
    ({"chain_mb": 15.0}, "<= 0.15x the fp32 model's bytes", "**not met**"),
    ({"chain_points": -1.6}, "budget: within 1 point of the fp32", "**not met** (the interval reaches the target)"),
])
def test_backends_target_2_verdicts_follow_the_values(kwargs: dict[str, Any], target: str, expected: str) -> None:
    md = report.section_markdown("backends", backends(**kwargs))
    assert verdict_of(summary(md), target).startswith(expected)


def test_a_chain_stopped_by_its_budget_misses_target_2_and_says_why() -> None:
    md = report.section_markdown("backends", backends(over_budget=True))
    rows = summary(md)
    assert verdict_of(rows, "target 2") == "**not met**"
    assert "did not reach its end (distill: accuracy 80.2 is 3.6 points below" in md
    assert "**distill over budget**" in md
    # what the rest of the chain would give, from the file of the same recipe run without its budget
    assert verdict_of(rows, "without its budget >= 1.5x faster than the hand-written OpenVINO int8, batch 8") == \
        "met (its file breaks the budget)"
    assert verdict_of(rows, "without its budget <= 0.15x").endswith("(its file breaks the budget)")
    assert verdict_of(rows, "no slower than a hand-written NNCF + OpenVINO int8, batch 1").startswith("met")


def test_each_committed_benchmark_markdown_is_the_rendering_of_its_json() -> None:
    # A script writes both files at once; a Markdown file written by an older script version (or edited by
    # hand) would show other words than RESULTS.md, which is rendered from the same JSON.
    from benchmarks import suite

    results = Path(report.__file__).parent / "results"
    checked = []
    for bench in suite.BENCHES:
        for name in (o for o in bench.outputs if o.endswith(".json")):
            data = results / name
            if data.exists():
                rendered = report.section_markdown(bench.key, json.loads(data.read_text(encoding="utf-8")))
                assert data.with_suffix(".md").read_text(encoding="utf-8") == rendered, f"{name}: re-render its .md"
                checked.append(name)
    assert len(checked) >= 10, checked


def test_a_file_not_run_by_this_invocation_is_dated_by_its_own_stamp_not_its_file_time(tmp_path: Path) -> None:
    import os

    folder = tmp_path / "results"
    report.write_section("finetune", finetune(), folder / "bench_finetune.json")
    stamp = json.loads((folder / "bench_finetune.json").read_text(encoding="utf-8"))["written_at"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", stamp)
    os.utime(folder / "bench_finetune.json", (0, 0))  # what a fresh clone does to file times
    md = report.render(folder, manifest())
    assert f"`(written {stamp} on Test CPU 9000 (2 cores))" in md.replace("` (", "`(") and "1970" not in md


def test_the_sharing_table_shows_what_each_merge_cost() -> None:
    data = squad()
    layers = [r for r in data["rows"] if r["table"] == "layers"]
    data["rows"].append({**layers[-1], "variant": "2 layers", "f1": 50.27})
    md = report.section_markdown("squad", data)
    table = md.split("Table 2 — layers", 1)[1].split("###", 1)[0]
    assert "change vs the row before (points)" in table
    rows = [line for line in table.splitlines() if line.startswith("| squad_v2 |")]
    # start F1 61.37 -> 6 layers 61.37 -> 3 layers 57.77 -> 2 layers 50.27: each merge against the one before
    assert [r.split("|")[7].strip() + " " + r.split("|")[8].strip() for r in rows] == \
        ["+0.0 +0.0", "-3.6 -3.6", "-11.1 -7.5"]
    assert "change vs the row before" not in md.split("Table 3", 1)[1]  # only the progressive schedule has it


def _with_teachers(teacher: tuple[float, float, float], majority: tuple[float, float, float],
                   student_change: tuple[float, float, float], augmented_change: tuple[float, float, float]) -> dict:
    """A TinyBERT task carrying issue 20's comparisons (as bench_tinybert.teachers_and_students writes them)."""
    def iv(v: tuple[float, float, float]) -> dict[str, float]:
        return {"value": v[0], "low": v[1], "high": v[2]}

    student = tuple(teacher[0] + d for d in student_change)
    data = tinybert()
    data["tasks"][0]["teacher_and_students"] = {
        "metric": "accuracy", "teacher": iv(teacher),
        "teacher_vs_trivial": {"majority": iv(majority), "margin": iv(tuple(x - majority[0] for x in teacher))},
        "student": iv(student), "student_vs_teacher": iv(student_change),
        "augmented": iv(tuple(s + a for s, a in zip(student, augmented_change, strict=True))),
        "augmented_vs_teacher": iv(tuple(s + a for s, a in zip(student_change, augmented_change, strict=True))),
        "augmented_vs_student": iv(augmented_change)}
    data["tasks"][0]["training"] = {"distill": {"stage2": {"examples_seen": 4800, "training_data": {"sentences": 2490}}}}
    return data


def test_teachers_and_students_verdicts_follow_the_intervals(tmp_path: Path) -> None:
    # a teacher above its 0.88 target and apart from the majority; the student keeps 98 % of it (interval
    # 96-100 %), the augmented student 93 % (interval reaching above 95 %), augmentation's change within noise
    data = _with_teachers((0.90, 0.87, 0.92), (0.51, 0.48, 0.54), (-0.018, -0.036, 0.0), (-0.045, -0.07, 0.01))
    md = report.render(write(tmp_path, tinybert=data), manifest())
    rows = summary(md)
    assert verdict_of(rows, "teacher accuracy >= 0.88") == "met (point estimate; the interval reaches below)"
    assert verdict_of(rows, "teacher clearly beats its majority class") == "met"
    assert verdict_of(rows, "of its teacher, without augmentation") == "met"
    assert verdict_of(rows, "of its teacher, with augmentation") == \
        "**not met** (the interval reaches the target)"
    assert "3-layer student keeps >= 95% of teacher accuracy" not in md  # judged above, with its interval
    table = section(md, "TinyBERT study").split("### Teachers and students", 1)[1].split("###", 1)[0]
    assert "| sst2 | accuracy | 0.900 [0.870, 0.920] | 0.88 | met (point estimate; the interval reaches below) |" \
        in table
    assert "98.0% [96.0%, 100.0%]" in table and "-0.045 [-0.070, +0.010] within noise" in table
    assert table.rstrip().endswith("| 4,800 / 2,490 = 1.93 |")  # how often the budget shows each sentence
    # a teacher whose interval overlaps the majority's did not learn: what a student keeps of it is no verdict
    data = _with_teachers((0.55, 0.50, 0.60), (0.51, 0.48, 0.54), (0.0, -0.02, 0.02), (0.01, -0.01, 0.03))
    rows = summary(report.render(write(tmp_path, tinybert=data), manifest()))
    assert verdict_of(rows, "teacher clearly beats its majority class") == "**not met**"
    assert verdict_of(rows, "teacher accuracy >= 0.88") == "**not met**"
    assert verdict_of(rows, "of its teacher, without augmentation") == "n/a (the teacher did not learn)"


def test_a_disturbed_timing_gives_no_speed_up_verdict(tmp_path: Path) -> None:
    data = tinybert(speedup_int8=0.8)  # int8 "slower" than fp32 ...
    student = next(row for row in data["tasks"][0]["rows"] if row["variant"] == "student (3 layers)")
    student["latency_p90_ms"] = 2.5 * student["latency_p50_ms"]  # ... because the fp32 timing was interrupted
    rows = summary(report.render(write(tmp_path, tinybert=data), manifest()))
    assert verdict_of(rows, "int8 vs fp32 latency") == \
        "n/a (timing disturbed: student (3 layers) p90 2.50x its p50)"
    assert verdict_of(rows, "int8 speed-up beats the published").startswith("n/a (timing disturbed")
    assert verdict_of(rows, "int8 artifact <=") == "met"  # sizes do not depend on timing
    steady = tinybert(speedup_int8=0.8)
    assert verdict_of(summary(report.render(write(tmp_path, tinybert=steady), manifest())),
                      "int8 vs fp32 latency") == "**not met**"


@pytest.mark.parametrize(("fields", "expected"), [
    ({"stopped_early": False, "kept": "final", "kept_step": 1000}, "ran to the end, kept the final weights"),
    ({"stopped_early": True, "steps": 500, "kept": "best", "kept_step": 250}, "stopped at 500, kept step 250 (best)"),
    ({"stopped_early": True, "kept": None}, "step 875 (stopped)"),  # a run from before the rule said what it kept
])
def test_the_early_stopping_column_says_which_weights_were_kept(fields: dict[str, Any], expected: str) -> None:
    md = report.section_markdown("finetune", {"settings": {}, "tasks": [{**finetune_task("sst2", 0.88, 0.86, 0.9,
                                                                                          300.0, 500.0), **fields}]})
    row = next(line for line in md.splitlines() if line.startswith("| sst2 |"))
    assert f"| {expected} |" in row


def test_the_decision_threshold_table_says_what_the_tuned_threshold_bought_and_whether_it_is_noise() -> None:
    def threshold(change: float, low: float, high: float) -> dict[str, Any]:
        return {"margin": 1.53, "held_out_before": 0.376, "held_out_after": 0.435, "held_out_examples": 500,
                "dev_argmax": 0.321, "dev_change": {"value": change, "low": low, "high": high},
                "dev_predicted_1": 0.643, "dev_argmax_predicted_1": 0.814, "dev_true_1": 0.691}

    runs = [{**finetune_task("cola", 0.352, 0.29, 0.41, 500.0, 900.0), "seed": 1,
             "decision_threshold": threshold(0.031, -0.019, 0.087)},
            {**finetune_task("cola", 0.40, 0.33, 0.46, 500.0, 900.0), "seed": 2,
             "decision_threshold": threshold(0.079, 0.012, 0.140)}]
    task = {**runs[0], "metric": 0.376, "per_seed": runs}
    md = report.section_markdown("finetune", {"settings": {}, "tasks": [task, finetune_task("sst2", 0.88, 0.86, 0.9,
                                                                                             500.0, 900.0)]})
    assert "| cola (1) | +1.53 | 0.376 -> 0.435 (500 rows) | 0.321 -> 0.352 | +0.031 [-0.019, +0.087] (within noise) |" in md
    assert "| cola (2) |" in md and "+0.079 [+0.012, +0.140] (beyond noise)" in md
    assert "81.4% -> 64.3% (69.1%)" in md and "Mean dev change over these 2 runs: +0.055." in md
    assert "| sst2 (" not in md  # a task whose threshold was not tuned has no row


def test_each_teachers_training_says_its_budget_and_whether_it_converged(tmp_path: Path) -> None:
    def teacher(convergence: dict[str, Any] | None, first: dict[str, Any] | None = None) -> dict[str, Any]:
        out = {"steps": 1000, "epochs_seen": 0.48, "seconds": 600.0, "cpu_seconds": 480.0,
               "held_out_scores": [[500, 0.88], [1000, 0.92]]}
        return {**out, **({"convergence": convergence} if convergence else {}),
                **({"first_on_task": first} if first else {})}

    improving = {"verdict": "improving", "from_step": 500, "to_step": 1000, "from_value": 0.88, "to_value": 0.92,
                 "change": 0.04, "change_low": 0.01, "change_high": 0.07}
    flat = {**improving, "verdict": "plateau", "change_low": -0.01}
    data = tinybert()

    def render(tf: dict[str, Any]) -> str:
        data["tasks"][0]["training"] = {"teacher_finetune": tf}
        return report.render(write(tmp_path, tinybert=data), manifest())

    target = "teacher no longer gaining beyond noise"
    md = render(teacher(flat, first={"task": "qnli", "steps": 400, "seconds": 300.0, "cpu_seconds": 240.0,
                                     "convergence": improving}))
    table = section(md, "TinyBERT study").split("### Teachers' training", 1)[1].split("###", 1)[0]
    assert "| 1,000 (0.48) after 400 on qnli | 15.0 / 12.0 | 500: 0.880, 1000: 0.920 |" in table  # both stages' time
    assert ("0.880 -> 0.920 (steps 500 -> 1000), +0.040 [-0.010, +0.070]; first on qnli: 0.880 -> 0.920 (steps "
            "500 -> 1000), +0.040 [+0.010, +0.070] | no gain beyond noise; first on qnli: **yes**, still improving |") in table
    assert verdict_of(summary(md), target) == "**not met** (still improving)"  # the first stage was still rising
    md = render(teacher(flat))
    assert verdict_of(summary(md), target) == "met" and "| no gain beyond noise |" in md
    md = render(teacher({**improving, "verdict": "declining", "rolled_back": True, "from_step": 750,
                         "change": -0.05, "change_low": -0.09, "change_high": -0.01}))
    assert "| no: past its best, rolled back to step 750 |" in md and verdict_of(summary(md), target) == "met"
    md = render({**teacher(None), "epochs_seen": None})  # recorded before the check existed
    assert "| 1,000 | 10.0 / 8.0 |" in md and "| not recorded | not checked (run predates the check) |" in md
    assert not any(target in key for key in summary(md))


def test_the_finetune_summary_says_whether_each_run_and_its_first_task_converged() -> None:
    run = {**finetune_task("rte", 0.64, 0.59, 0.70, 600.0, 700.0),
           "learned": {"summary": "learned: held-out accuracy 0.6"},
           "convergence": {"summary": "converged within the budget: held-out accuracy 0.58 -> 0.60"},
           "first_on_task": {"task": "qnli", "steps": 411, "learned": {"summary": "learned: held-out accuracy 0.8"},
                             "convergence": {"summary": "still improving when the budget ran out"}}}
    md = report.section_markdown("finetune", {"settings": {}, "tasks": [run]})
    assert ("- rte: learned: held-out accuracy 0.6; converged within the budget: held-out accuracy 0.58 -> 0.60 "
            "(first on qnli, 411 steps: learned: held-out accuracy 0.8; still improving when the budget ran out)") in md
    plain = report.section_markdown("finetune", {"settings": {}, "tasks": [
        {**finetune_task("sst2", 0.88, 0.86, 0.9, 300.0, 500.0), "learned": {"summary": "learned: x"}}]})
    assert "- sst2: learned: x\n" in plain  # a run from before the check: its summary only
