"""The "Compressed SQuAD 2.0 model" tables (2-5) re-measured on the packaged MiniLM-L6, run through
the engine.

Each table is a recipe whose first step fine-tunes the default model on the task (the "start");
the recipes of one task share that prefix, so the runner's cache trains it once and the later
recipes reuse it (their rows say ``cached``; the JSON records it):

  Table 2  start -> share_layers(3) -> share_layers(2) -> share_layers(1)  (merge, then fine-tune with
           distillation from the model before the merge; each merge measured)
  Table 3  start -> vocab.reduce(keep_percent: [50, 25, 16, 10])
  Table 4  start -> quantize.linear_nbit(bits: [16, 10, 8, 6, 4])      (per-tensor min/max)
  Table 5  start -> sketch.random(m_attention 256, m_ffn_out 512, epochs: [0, 1])  (m: Settings)

Every figure is what the engine measured and stored (core.run.runner into one results database);
the tables are read back from it (core.store.result_rows) and rendered by benchmarks/report.py.
SQuAD 2.0 uses the bundled dev file split by article (train = first articles, eval = the rest);
training sizes are reduced to fit a shared 2-core CPU and are written into the results.

    python benchmarks/bench_squad.py --parts sst2 squad [--quick]

writes benchmarks/results/bench_squad.json and .md (--name, --out) and the database
benchmarks/results/squad.sqlite (--db), which the SQuAD benches of one suite run share.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.report import section_markdown  # noqa: E402
from benchmarks.study import Study, environment, log, quiet_libraries  # noqa: E402

OUT = ROOT / "benchmarks" / "results"
MODEL = "all-MiniLM-L6-v2"
QA_METRICS = ("f1", "exact", "HasAns_f1", "NoAns_f1", "best_f1", "best_f1_thresh")


@dataclass
class Settings:
    """Everything that shapes the numbers; stored beside them."""

    model: str = MODEL
    seed: int = 0
    threads: int = 2
    sst2_train: int = 4000
    sst2_epochs: float = 1.0
    sst2_max_length: int = 64
    squad_train: int = 3000
    squad_epochs: float = 1.0
    squad_max_length: int = 256
    squad_eval: int = 400
    share_train: int = 1500
    share_epochs: float = 1.0
    sketch_train: int = 1500
    sketch_attention: int = 256  # m of the attention projections' sketch
    sketch_ffn_out: int = 512  # m of the FFN output's sketch
    sketch_init: tuple[str, ...] = ("product",)  # W S^T as published, least_squares (fitted on activations), or both
    sketch_calibration: int = 256  # training rows the least-squares init is fitted on
    batch_size: int = 16
    lr: float = 5e-5
    latency_repeats: int = 10
    bits: tuple[int, ...] = (16, 10, 8, 6, 4)
    vocab: tuple[float, ...] = (100, 50, 25, 16, 10)
    layers: tuple[int, ...] = (3, 2, 1)
    notes: list[str] = field(default_factory=list)


def override(settings: Settings, items: list[str]) -> Settings:
    """Apply ``--set FIELD=VALUE`` items (tuples as comma lists); ValueError names a bad one."""
    for item in items:
        name, _, value = item.partition("=")
        if name not in Settings.__dataclass_fields__ or name == "notes":
            known = ", ".join(k for k in asdict(Settings()) if k != "notes")
            raise ValueError(f"--set {item}: no setting '{name}'; settings: {known}")
        current = getattr(settings, name)
        try:
            if isinstance(current, tuple):
                setattr(settings, name, tuple(type(current[0])(v) for v in value.split(",")))
            else:
                setattr(settings, name, type(current)(value))
        except ValueError:
            raise ValueError(f"--set {item}: '{value}' is not a {type(current).__name__} value") from None
    return settings


# -- recipes ---------------------------------------------------------------------------------------
def _qa(task: str) -> bool:
    return task == "squad_v2"


def training(s: Settings, task: str) -> dict[str, Any]:
    """The training fields every step of a task shares (the start, the merges, the sketch)."""
    qa = _qa(task)
    return {"batch_size": s.batch_size, "lr": 1e-4 if qa else s.lr,
            "max_length": s.squad_max_length if qa else s.sst2_max_length}


def measure(s: Settings, task: str) -> dict[str, Any]:
    """The recipes' measure: block; one per task, so the task's recipes share the start's cache key."""
    qa = _qa(task)
    return {"eval_limit": s.squad_eval if qa else None, "eval_batch_size": 32 if qa else 64,
            "max_length": s.squad_max_length if qa else s.sst2_max_length, "latency_batch_size": 8,
            "latency_seq_len": 128, "latency_warmup": 3, "latency_repeats": s.latency_repeats, "threads": s.threads}


def start_step(s: Settings, task: str) -> dict[str, Any]:
    """The fine-tuned starting model every table compresses."""
    qa = _qa(task)
    return {"step": "finetune", "config": {**training(s, task), "epochs": s.squad_epochs if qa else s.sst2_epochs,
                                           "warmup_ratio": 0.1, "train_size": s.squad_train if qa else s.sst2_train}}


def recipes(s: Settings, task: str, tables: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """One recipe per table: the start, then the table's step (a sweep, or the merges in a row)."""
    train = training(s, task)
    chains: dict[str, list[dict[str, Any]]] = {}
    if "vocab" in tables and [v for v in s.vocab if v != 100]:
        chains["vocab"] = [{"step": "vocab.reduce", "config": {"keep_percent": [float(v) for v in s.vocab if v != 100]}}]
    if "bits" in tables:
        chains["bits"] = [{"step": "quantize.linear_nbit", "config": {"bits": list(s.bits)}}]
    if "sketch" in tables:  # one recipe per init, all from the same start (the prefix cache)
        for init in s.sketch_init:
            chains["sketch" if init == "product" else f"sketch {init}"] = [
                {"step": "sketch.random", "config": {"m_attention": s.sketch_attention, "m_ffn_out": s.sketch_ffn_out,
                                                     "epochs": [0.0, 1.0], "train_size": s.sketch_train, "init": init,
                                                     **({"calibration_rows": s.sketch_calibration}
                                                        if init == "least_squares" else {}), **train}}]
    if "control" in tables:  # the dense start given the fine-tuning a sketch gets: what that budget alone buys
        chains["control"] = [{"step": "finetune", "config": {"epochs": 1.0, "train_size": s.sketch_train, "warmup_ratio": 0.1,
                                                             "early_stopping": False, "max_steps": None, **train}}]
    if "layers" in tables:
        chains["layers"] = [{"step": "share_layers", "config": {"targets": [target], "epochs": s.share_epochs,
                                                                "train_size": s.share_train, "distill": True, **train}}
                            for target in s.layers]
    return {table: {"name": f"SQuAD-system Table {TABLE_NUMBER[table.split()[0]]}"
                            + (f" ({table.split()[1]} init)" if " " in table else "")
                            + (" (control)" if table == "control" else "") + f", {task}", "model": s.model, "task": task,
                    "seed": s.seed, "measure": measure(s, task), "chain": [start_step(s, task), *chain]}
            for table, chain in chains.items()}


TABLE_NUMBER = {"layers": 2, "vocab": 3, "bits": 4, "sketch": 5, "control": 5}


# -- rows ------------------------------------------------------------------------------------------
def _train_examples(task: Any, cap: int) -> int:
    """Examples a training of at most ``cap`` examples sees: the train split may hold fewer."""
    return min(cap, task.load("train").num_rows)


def table_row(study: Study, row: Any, table: str, variant: str, start: Any | None) -> dict[str, Any]:
    """One variant as the tables show it, from its stored ResultRow."""
    metrics = row.task_metrics
    scores = {k: metrics[k] for k in QA_METRICS if k in metrics} if _qa(row.task) else {"accuracy": metrics.get("accuracy")}
    latency = study.latency(row)
    return {"table": table, "task": row.task, "variant": variant, "run": row.run, "variant_id": row.variant,
            "step_id": row.step_id, "label": row.label, "cached": row.cached, "params": row.params,
            "artifact_mb": row.size_mb,
            "smaller_pct": None if start is None or not row.size_mb else 100 * (1 - row.size_mb / start.size_mb),
            "latency_p50_ms": latency["p50_ms"], **scores,
            # the engine's intervals: 95 % bootstrap over the dev examples, paired for the change vs the parent
            "intervals": {k: row.task_intervals.get(k) for k in scores if row.task_intervals.get(k)},
            "delta_vs_parent": row.delta_vs_parent, "delta_ci95": [row.delta_ci_low, row.delta_ci_high],
            "eval_examples": row.eval_examples, "flags": row.flag_codes}


class Bench:
    """The parts of one invocation; every recipe goes through ``study`` into one database."""

    def __init__(self, settings: Settings, study: Study) -> None:
        self.s = settings
        self.study = study
        self.rows: list[dict[str, Any]] = []
        self.prefix_cache: dict[str, Any] = {}
        self.results: dict[tuple[str, str, str], Any] = {}  # (task, table, variant) -> its ResultRow
        self.paired: list[dict[str, Any]] = []  # comparisons of variants that are not parent and child
        self._starts: dict[str, Any] = {}  # task -> the start's ResultRow (first computed)

    def run(self, task_id: str, tables: tuple[str, ...]) -> None:
        from core.tasks import get_task

        task = get_task(task_id)
        for table, recipe in recipes(self.s, task_id, tables).items():
            done = self.study.run(f"{task_id} {table}", recipe)
            start = next(r for r in done.rows if r.step == 1)
            if task_id not in self._starts:
                self._starts[task_id] = start
                self.rows.append(table_row(self.study, start, "start", "fine-tuned fp32", None))
            else:  # the start must come from the prefix cache, not a second training
                self.prefix_cache[f"{task_id} {table}"] = {"run": done.run_id, "start_reused": start.cached,
                                                          "cached": [r.label for r in done.rows if r.cached]}
            self.add_table(task, table.split()[0], done, recipe)
        self.compare(task)

    def compare(self, task: Any) -> None:
        """The least-squares sketch after fine-tuning against the dense start given the same fine-tuning,
        paired on the same dev examples (neither is the other's parent, so the engine's delta does not say)."""
        fitted = self.results.get((task.id, "sketch", "sketched (least-squares init), fine-tuned"))
        control = self.results.get((task.id, "control", "dense, fine-tuned again (control)"))
        if fitted is not None and control is not None:
            self.paired.append({"task": task.id, "row": "sketched (least-squares init), fine-tuned",
                                "reference": "dense, fine-tuned again (control)",
                                **self.study.paired_change(fitted, control, task, self.s.seed)})

    def add_table(self, task: Any, table: str, done: Any, recipe: dict[str, Any]) -> None:
        start = self._starts[task.id]
        chosen = [r for r in done.rows if r.step >= 2]
        if table in ("vocab", "layers"):  # the start is the table's first line: 100 % vocabulary, 6 layers
            first = "100%" if table == "vocab" else "6 layers"
            self.rows.append(table_row(self.study, start, table, first, None))
        for r in chosen:
            config = recipe["chain"][r.step - 1]["config"]
            if table == "vocab":
                row = table_row(self.study, r, table, f"{r.swept['keep_percent']:g}%", start)
                info = self.study.step_info(r)["vocab.reduce"]
                row |= {"vocab_size": info["vocab_after"], "tokens_increase_pct": round(info["tokens_increase_pct"], 2),
                        "unk_rate": info["unk_rate_after"]}
            elif table == "bits":
                row = table_row(self.study, r, table, f"{r.swept['bits']} bits", start)
                row["packed_bytes"] = self.study.step_info(r)["quantize.linear_nbit"]["packed_bytes"]
            elif table == "sketch":
                tuned = r.swept["epochs"] > 0
                init = "" if config["init"] == "product" else f" ({config['init'].replace('_', '-')} init)"
                row = table_row(self.study, r, table, f"sketched{init}" + (", fine-tuned" if tuned else ", no fine-tuning"),
                                start)
                row["tune_examples"] = _train_examples(task, self.s.sketch_train) if tuned else 0
            elif table == "control":
                row = table_row(self.study, r, table, "dense, fine-tuned again (control)", start)
                row["tune_examples"] = _train_examples(task, self.s.sketch_train)
            else:
                row = table_row(self.study, r, table, f"{config['targets'][0]} layers", start)
                row["tune_examples"] = _train_examples(task, self.s.share_train)
            self.rows.append(row)
            self.results[(task.id, table, row["variant"])] = r


PARTS = {  # part -> (task, tables)
    "sst2": ("sst2", ("vocab", "bits")),
    "sst2-structure": ("sst2", ("sketch", "layers")),
    "squad": ("squad_v2", ("vocab", "bits", "sketch", "layers")),
    "squad-sweeps": ("squad_v2", ("vocab", "bits")),
    "squad-share": ("squad_v2", ("layers",)),
    "squad-sketch": ("squad_v2", ("sketch",)),
    "sst2-sketch": ("sst2", ("sketch", "control")),
}


def section_key(name: str, first_part: str) -> str:
    """The report section that renders NAME.md: the suite's bench writing NAME.json, else the first part's."""
    from benchmarks.suite import BENCHES

    for bench in BENCHES:
        if bench.script == "bench_squad.py" and bench.outputs[0] == f"{name}.json":
            return bench.key
    return {"squad-share": "squad-share", "squad-sketch": "squad-sketch", "sst2-sketch": "sketch-init"}.get(
        first_part, "squad")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["sst2", "squad"], choices=list(PARTS))
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the script end to end")
    parser.add_argument("--out", type=Path, default=OUT, help="folder for NAME.json / NAME.md")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="override a Settings field, e.g. --set sst2_train=1500 bits=16,8,4")
    parser.add_argument("--name", default="bench_squad", help="output file stem")
    parser.add_argument("--db", type=Path, default=None,
                        help="results database (default: OUT/squad.sqlite, shared by the SQuAD benches)")
    parser.add_argument("--reuse", action="store_true",
                        help="keep an existing database and reuse its finished variants, e.g. the fine-tuned start "
                             "of an earlier part (rows say 'cached')")
    args = parser.parse_args(argv)

    settings = Settings(threads=args.threads)
    if args.quick:
        settings = Settings(threads=args.threads, sst2_train=200, squad_train=100, squad_eval=40, share_train=50,
                            sketch_train=50, latency_repeats=3, bits=(16, 4), vocab=(100, 25), layers=(3,))
    try:
        override(settings, args.set)
    except ValueError as exc:
        parser.error(str(exc))
    quiet_libraries()
    from core.tasks import get_task

    settings.notes.append("SQuAD 2.0: bundled dev file split by article (train part / eval part); "
                          f"eval on a seeded sample of {settings.squad_eval} eval-part questions")
    squad_questions = _train_examples(get_task("squad_v2"), settings.squad_train)
    settings.notes.append(f"training reduced: SST-2 {settings.sst2_train} examples x {settings.sst2_epochs} epoch; "
                          f"SQuAD {squad_questions} questions x {settings.squad_epochs} epoch; "
                          f"{settings.share_train} questions after each merge")
    args.out.mkdir(parents=True, exist_ok=True)
    study = Study(args.db or args.out / "squad.sqlite", reuse=args.reuse)
    bench = Bench(settings, study)
    started = time.perf_counter()
    stem = args.name + ("_quick" if args.quick else "")
    from core.recipe import MeasureSettings

    for part in args.parts:
        bench.run(*PARTS[part])
        payload = {"benchmark": "squad", "parts": args.parts, "settings": asdict(settings),
                   "squad_train_questions": squad_questions, "environment": environment(),
                   "latency": Study.latency_note(MeasureSettings(**measure(settings, "squad_v2"))),
                   "study": study.summary(), "prefix_cache": bench.prefix_cache, "rows": bench.rows,
                   "paired": bench.paired,
                   "seconds": round(time.perf_counter() - started)}
        (args.out / f"{stem}.json").write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
        key = section_key(args.name, args.parts[0])
        (args.out / f"{stem}.md").write_text(section_markdown(key, payload), encoding="utf-8")
    log(f"wrote {args.out / stem}.json and .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
