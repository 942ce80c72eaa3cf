"""The benchmark suite: which scripts run, with which flags in each mode, and the subprocess
runner that runs one of them within a time budget.

Each benchmark script runs as its own subprocess with the flags of the chosen mode (``BENCHES``:
every reduced size is stated there and copied into the report) and writes its JSON into the
results folder; benchmarks/report.py turns those files into RESULTS.md.
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "benchmarks"
DEFAULT_RESULTS = BENCH_DIR / "results"
QUICK_RESULTS = DEFAULT_RESULTS / "quick"
MANIFEST = "run_all.json"
MIN_START_S = 30  # with less time than this left in the budget, a benchmark is not started


@dataclass(frozen=True)
class Bench:
    key: str
    script: str
    title: str
    outputs: tuple[str, ...]  # files the script writes; the first is the JSON the report reads
    quick: tuple[str, ...]
    full: tuple[str, ...]
    sizes: dict[str, str]  # mode -> the reduced sizes, in words, for the report
    out_flags: Callable[[Path], list[str]] = field(default=lambda d: ["--out", str(d)])  # where it writes
    env: dict[str, str] = field(default_factory=dict)
    timeout_s: dict[str, int] = field(default_factory=lambda: {"quick": 1200, "full": 4 * 3600})


# The four SQuAD benches write into one database (bench_squad.py's default OUT/squad.sqlite): "squad"
# starts it afresh and trains the fine-tuned start (51 min in a full run); "squad-share", "squad-sketch"
# and "squad-sketch-ls" run with --reuse and the same start and measure settings, so the runner's cache gives
# them that start. Ends with --set; each bench appends its own fields.
SQUAD_START = ("--set", "squad_train=8000", "squad_epochs=2", "squad_max_length=192", "squad_eval=300")
SQUAD_START_QUICK = ("--set", "squad_train=100", "squad_eval=40", "latency_repeats=3")

# cheap ones first, so a --budget-minutes run loses the long ones, not everything after them
BENCHES: tuple[Bench, ...] = (
    Bench(
        "queries", "bench_queries.py", "Store queries", ("bench_queries.json", "bench_queries.md"),
        quick=("--variants", "10000", "--repeats", "5"),
        full=("--variants", "10000", "--repeats", "15"),
        sizes={"quick": "10,000 variants, 5 repeats", "full": "10,000 variants, 15 repeats"},
    ),
    Bench(
        "gui", "bench_gui.py", "GUI", ("gui.json", "gui.md"),
        quick=("--repeats", "3"),
        full=("--repeats", "5"),
        sizes={"quick": "launch 3 times; run stall on a 2-layer tiny model", "full": "launch 5 times; run stall on "
               "a 2-layer tiny model"},
        env={"QT_QPA_PLATFORM": "offscreen"},
    ),
    Bench(
        "eval", "bench_eval.py", "Engine evaluation vs a plain loop", ("eval_speed.json", "eval_speed.md"),
        quick=("--limit", "200", "--rounds", "1"),
        full=("--rounds", "3"),
        sizes={"quick": "SST-2 dev, first 200 examples, 1 round", "full": "SST-2 dev, all 872 examples, 3 rounds"},
    ),
    Bench(
        "finetune", "bench_finetune.py", "Fine-tuning targets (issue 14)", ("bench_finetune.json", "bench_finetune.md"),
        quick=("--tasks", "pairs", "--config", "max_steps=60"),
        full=(),
        sizes={"quick": "the custom pairs task only, 60 steps (a smoke run: not the shipped defaults)",
               "full": "SST-2, STS-B, CoLA, RTE and the custom pairs file with the shipped finetune defaults: whole "
                       "training splits, whole dev sets; CoLA and RTE over 3 seeds (judged on their mean)"},
        out_flags=lambda d: ["--out", str(d / "bench_finetune")],
    ),
    Bench(
        "backends", "bench_backends.py", "Deployment backends (issue 15)", ("bench_backends.json", "bench_backends.md"),
        quick=("--quick",),
        full=(),
        sizes={"quick": "finetune 20 steps, distillation on 64 sentences, 32 calibration sentences, 64 dev sentences, "
                        "3 timed rounds (a smoke run)",
               "full": "finetune 250 steps x 32 sentences; the chain distils to 3 layers on 32,000 sentences at 64 "
                       "tokens, 2 + 2 epochs, then keeps 50 % of the vocabulary; 300 calibration sentences; all 872 "
                       "dev sentences; 20 interleaved timed rounds at batch 8 and 1 x 128"},
        timeout_s={"quick": 1800, "full": 3 * 3600},
    ),
    Bench(
        "tinybert", "bench_tinybert.py", "TinyBERT study", ("tinybert.json", "tinybert.md"),
        quick=("--tasks", "sst2", "--train-size", "500", "--teacher-epochs", "2", "--distill-steps", "16",
               "--augment", "2", "--eval-limit", "300", "--latency-repeats", "10", "--torchao", "--reduced"),
        full=("--tasks", "sst2,cola,rte,stsb,qnli", "--distill-steps", "150", "--augment", "4", "--threads", "2",
              "--latency-repeats", "30", "--torchao"),
        sizes={"quick": "SST-2 only; 500 training examples; teacher 2 epochs, distillation 16 steps per stage, "
                        "with and without 2 augmented rewrites per sentence; a seeded sample of 300 dev examples; "
                        "latency 10 timed passes per variant",
               "full": "SST-2, CoLA, RTE, STS-B, QNLI; teachers fine-tuned with the shipped defaults on the whole "
                       "bundled training splits; 3-layer students distilled 150 steps per stage, with and without "
                       "4 augmented rewrites per sentence; full dev sets; latency 30 timed passes per variant, "
                       "2 threads"},
        out_flags=lambda d: ["--out", str(d / "tinybert")],
    ),
    Bench(
        "squad", "bench_squad.py", "SQuAD system", ("bench_squad.json", "bench_squad.md"),
        quick=("--parts", "squad", *SQUAD_START_QUICK, "share_train=50", "sketch_train=50", "bits=16,10,8,6,4",
               "vocab=100,25", "layers=3"),
        full=("--parts", "squad", "sst2", "sst2-structure", *SQUAD_START, "sst2_train=4000", "share_train=800",
              "sketch_train=800", "bits=16,10,8,6,4", "vocab=100,50,25,16,10", "layers=3,2,1"),
        sizes={"quick": "SQuAD part only (no SST-2 sweeps); 100 training questions, 40 evaluation questions; "
                        "50 questions of fine-tuning after a merge / a sketch; vocabulary 100/25 %; layers 6/3; "
                        "latency 3 timed passes per variant",
               "full": "SQuAD: every train-part question (7,572; BERT's paper used 130k) x 2 epochs at 192 tokens, "
                       "300 evaluation questions, 800 questions of fine-tuning after each merge / a sketch; SST-2 "
                       "4,000 training examples x 1 epoch, same 800 after a merge / a sketch; latency 10 timed "
                       "passes per variant. Starts a fresh results/squad.sqlite, which the two benches below reuse"},
    ),
    Bench(
        "squad-share", "bench_squad.py", "SQuAD sharing, full fine-tuning", ("bench_squad_share.json", "bench_squad_share.md"),
        quick=("--parts", "squad-share", "--name", "bench_squad_share", "--reuse", *SQUAD_START_QUICK,
               "share_train=100", "layers=3"),
        full=("--parts", "squad-share", "--name", "bench_squad_share", "--reuse", *SQUAD_START, "share_train=8000",
              "layers=3"),
        sizes={"quick": "the start of the 'squad' benchmark (reused from its database when it ran first: 100 "
                        "training questions), 40 evaluation questions; 100 questions after the merge to 3 layers",
               "full": "the SQuAD start of the 'squad' benchmark (reused from results/squad.sqlite), merged "
                       "6 -> 3 layers and fine-tuned with distillation on every train-part question (7,572) x 1 epoch"},
    ),
    Bench(
        "squad-sketch", "bench_squad.py", "SQuAD sketching, full fine-tuning",
        ("bench_squad_sketch.json", "bench_squad_sketch.md"),
        quick=("--parts", "squad-sketch", "--name", "bench_squad_sketch", "--reuse", *SQUAD_START_QUICK,
               "sketch_train=100"),
        full=("--parts", "squad-sketch", "--name", "bench_squad_sketch", "--reuse", *SQUAD_START, "sketch_train=8000"),
        sizes={"quick": "the start of the 'squad' benchmark (reused from its database when it ran first: 100 "
                        "training questions), 40 evaluation questions; 100 questions after sketching",
               "full": "the SQuAD start of the 'squad' benchmark (reused from results/squad.sqlite), sketched "
                       "and fine-tuned on every train-part question (7,572) x 1 epoch"},
    ),
    Bench(
        "squad-sketch-ls", "bench_squad.py", "SQuAD sketching from a least-squares init, full fine-tuning",
        ("bench_squad_sketch_ls.json", "bench_squad_sketch_ls.md"),
        quick=("--parts", "squad-sketch", "--name", "bench_squad_sketch_ls", "--reuse", *SQUAD_START_QUICK,
               "sketch_train=100", "sketch_calibration=64", "sketch_init=least_squares"),
        full=("--parts", "squad-sketch", "--name", "bench_squad_sketch_ls", "--reuse", *SQUAD_START, "sketch_train=8000",
              "sketch_init=least_squares"),
        sizes={"quick": "the start of the 'squad' benchmark (reused from its database when it ran first: 100 "
                        "training questions), 40 evaluation questions; sketched with the least-squares init (64 "
                        "calibration rows), then 100 questions",
               "full": "the SQuAD start of the 'squad' benchmark (reused from results/squad.sqlite), sketched with the "
                       "least-squares init (256 calibration rows) and fine-tuned on every train-part question (7,572) "
                       "x 1 epoch"},
    ),
    Bench(
        "sketch-init", "bench_squad.py", "Random sketching end to end: W S^T against a least-squares init",
        ("bench_sst2_sketch_init.json", "bench_sst2_sketch_init.md"),
        quick=("--parts", "sst2-sketch", "--name", "bench_sst2_sketch_init", "--set", "sst2_train=200", "sketch_train=50",
               "sketch_calibration=128", "latency_repeats=3", "sketch_init=product,least_squares"),
        full=("--parts", "sst2-sketch", "--name", "bench_sst2_sketch_init", "--set", "sst2_train=4000",
              "sketch_train=4000", "sketch_init=product,least_squares"),
        sizes={"quick": "SST-2 start on 200 examples; sketched with both inits (128 calibration rows), 50 examples "
                        "of fine-tuning, and the dense start given the same",
               "full": "SST-2 start on 4,000 examples x 1 epoch; sketched with both inits (256 calibration rows), "
                       "4,000 examples x 1 epoch of fine-tuning, and the dense start given the same; whole dev set"},
        out_flags=lambda d: ["--out", str(d), "--db", str(d / "sketch_init.sqlite")],  # not the SQuAD benches' database
    ),
    Bench(
        "sketch-error", "sketch_error.py", "Random sketching: error against theory",
        ("sketch_error.json", "sketch_error.md"),
        quick=("--sentences", "16", "--seeds", "3"),
        full=("--sentences", "64", "--seeds", "10"),
        sizes={"quick": "activations of 16 SST-2 dev sentences, 3 sketches per layer",
               "full": "activations of 64 SST-2 dev sentences (the next 64 calibrate), 10 sketches per layer"},
        out_flags=lambda d: ["--out", str(d / "sketch_error")],
    ),
    Bench(
        "cache", "bench_cache.py", "Prefix cache", ("bench_cache.json", "bench_cache.md"),
        quick=("--train-size", "200"),
        full=("--train-size", "2000"),
        sizes={"quick": "finetune on 200 SST-2 examples", "full": "finetune on 2,000 SST-2 examples"},
    ),
)
BY_KEY = {b.key: b for b in BENCHES}


def command(bench: Bench, mode: str, results: Path) -> list[str]:
    """The argv that runs one benchmark (relative script path, for the report and for humans)."""
    flags = list(bench.quick if mode == "quick" else bench.full)
    if results.resolve() != DEFAULT_RESULTS.resolve():
        flags += bench.out_flags(rel(results))
    return ["python", str(rel(BENCH_DIR / bench.script)), *flags]


def rel(path: Path) -> Path:
    try:
        return path.resolve().relative_to(ROOT)
    except ValueError:
        return path.resolve()


def _mtime(path: Path) -> float | None:
    return path.stat().st_mtime if path.exists() else None


def run_one(bench: Bench, mode: str, results: Path, logs: Path, timeout_s: float | None = None) -> dict[str, Any]:
    """Run one script in its own process group, writing into ``results``."""
    argv = command(bench, mode, results)
    entry: dict[str, Any] = {"command": shlex.join(argv), "started": now(), "mode": mode,
                             "sizes": bench.sizes.get(mode, "")}
    script = BENCH_DIR / bench.script
    timeout_s = bench.timeout_s[mode] if timeout_s is None else min(timeout_s, bench.timeout_s[mode])
    if timeout_s < MIN_START_S:
        return entry | {"status": "skipped: time budget spent", "exit_code": None, "seconds": 0.0,
                        "output_written": False}
    if not script.exists():
        return entry | {"status": "missing script", "exit_code": None, "seconds": 0.0, "output_written": False}
    before = _mtime(results / bench.outputs[0])
    env = {**os.environ, **bench.env, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{bench.key}.log"
    started = time.perf_counter()
    status = "finished"
    with log_path.open("w", encoding="utf-8") as log:
        proc = subprocess.Popen([sys.executable, *argv[1:]], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
        try:
            code: int | None = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            status = "timeout"
            _stop(proc)
            code = proc.returncode
    seconds = time.perf_counter() - started
    after = _mtime(results / bench.outputs[0])
    written = after is not None and (before is None or after > before)
    if status == "timeout":
        status = f"timeout after {timeout_s:.0f} s"
    elif code != 0:
        status = f"finished with exit code {code}" if written else f"failed (exit code {code})"
    return entry | {"status": status, "exit_code": code, "seconds": round(seconds, 1), "finished": now(),
                    "output_written": written, "log": str(rel(log_path))}


def _stop(proc: subprocess.Popen[Any]) -> None:
    """Terminate the benchmark's own process group (it may have spawned workers), then kill it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=15)
            return
        except subprocess.TimeoutExpired:
            continue


def environment() -> dict[str, Any]:
    """core.measure.environment() of this machine (imports torch for its CPU capability)."""
    sys.path.insert(0, str(ROOT))
    from core.measure import environment as env

    return env()


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
