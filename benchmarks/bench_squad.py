"""The "Compressed SQuAD 2.0 model" tables (2-5) re-measured on the packaged MiniLM-L6.

Starting from the default model fine-tuned on the task, each table applies one step family and
reports distinct parameters, the bytes of the saved, reloadable artifact, % smaller than the
fine-tuned starting artifact, and the task metric:

  Table 2  layers 6/3/2/1 after progressive sharing (fine-tuning + distillation after each merge)
  Table 3  vocabulary 100/50/25/16/10 %            (SQuAD F1/EM and SST-2 accuracy)
  Table 4  bits 16/10/8/6/4 (per-tensor min/max)   (SQuAD F1/EM and SST-2 accuracy)
  Table 5  sketched (m=256 attention, 512 FFN out) or not, with and without fine-tuning

SQuAD 2.0 uses the bundled dev file split by article (train = first articles, eval = the rest);
training sizes are reduced to fit a shared 2-core CPU and are written into the results.

    PYTHONPATH=. python benchmarks/bench_squad.py --parts sst2 squad [--quick]

writes benchmarks/results/bench_squad.json and benchmarks/results/bench_squad.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

OUT = ROOT / "benchmarks" / "results"


@dataclass
class Settings:
    """Everything that shapes the numbers; stored beside them."""

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
    batch_size: int = 16
    lr: float = 5e-5
    bits: tuple[int, ...] = (16, 10, 8, 6, 4)
    vocab: tuple[float, ...] = (100, 50, 25, 16, 10)
    layers: tuple[int, ...] = (3, 2, 1)
    notes: list[str] = field(default_factory=list)


def _ctx(task: Any, seed: int, scratch: Path, label: str) -> Any:
    from core.state import StepContext

    last = [0.0]

    def progress(fraction: float, message: str = "") -> None:
        if fraction - last[0] >= 0.1 or fraction >= 1.0:
            last[0] = fraction
            print(f"  [{label}] {fraction:4.0%} {message}", flush=True)

    scratch.mkdir(parents=True, exist_ok=True)
    return StepContext(seed=seed, task=task, scratch=scratch, progress=progress, log=lambda m: print(f"  [{label}] {m}"))


def _run_step(state: Any, step_id: str, ctx: Any, **config: Any) -> Any:
    from core.steps.base import get_step

    cls = get_step(step_id)
    return cls(cls.config_cls.from_dict(config, step=step_id)).apply(state, ctx)


def _clone(state: Any) -> Any:
    from core.state import ModelState

    return ModelState(
        model=copy.deepcopy(state.model),
        tokenizer=state.tokenizer,
        task=state.task,
        head=state.head,
        transforms=copy.deepcopy(state.transforms),
        traits=state.traits,
        info=dict(state.info),
    )


class Bench:
    def __init__(self, settings: Settings, work: Path, start_dir: Path | None = None) -> None:
        self.s = settings
        self.work = work
        self.start_dir = start_dir
        self.rows: list[dict[str, Any]] = []

    # -- measuring --------------------------------------------------------------------------
    def evaluate(self, state: Any, task: Any) -> dict[str, float]:
        from core.measure import evaluate

        if task.head == "qa":
            result = evaluate(state.model, state.tokenizer, task, "dev", batch_size=32,
                              max_length=self.s.squad_max_length, limit=self.s.squad_eval, sample_seed=0,
                              threads=self.s.threads)
            # the official script's breakdown too: with little training the null answer wins at threshold 0,
            # and only HasAns F1 / best-threshold F1 still show what compression does to span quality
            keys = ("f1", "exact", "HasAns_f1", "NoAns_f1", "best_f1", "best_f1_thresh")
            return {k: result.metrics[k] for k in keys if k in result.metrics} | {"examples": result.examples}
        result = evaluate(state.model, state.tokenizer, task, "dev", batch_size=64,
                          max_length=self.s.sst2_max_length, threads=self.s.threads)
        return {"accuracy": result.metrics["accuracy"], "examples": result.examples}

    def measure(self, table: str, variant: str, state: Any, task: Any, base_bytes: int | None,
                extra: dict[str, Any] | None = None) -> dict[str, Any]:
        import torch

        from core.artifacts import load_artifact, save_artifact

        folder = self.work / "artifacts" / f"{table}-{task.id}-{variant}".replace(" ", "_").replace("%", "pct")
        size = save_artifact(state, folder)
        # the artifact must reload to the model that was measured
        loaded = load_artifact(folder)
        batch = state.tokenizer(["a quick check of the reloaded artifact"], return_tensors="pt")
        with torch.inference_mode():
            a, b = state.model(**batch), loaded.model(**batch)
        key = "start_logits" if task.head == "qa" else "logits"
        same = bool(torch.allclose(getattr(a, key), getattr(b, key), atol=1e-5))
        started = time.perf_counter()
        metrics = self.evaluate(state, task)
        row = {
            "table": table,
            "task": task.id,
            "variant": variant,
            "params": sum(p.numel() for p in state.model.parameters()),
            "artifact_mb": size / 1e6,
            "smaller_pct": None if base_bytes is None else 100 * (1 - size / base_bytes),
            "reload_identical": same,
            "eval_seconds": round(time.perf_counter() - started, 1),
            **metrics,
            **(extra or {}),
        }
        self.rows.append(row)
        print(json.dumps(row), flush=True)
        shutil.rmtree(folder, ignore_errors=True)
        return row | {"bytes": size}

    # -- starting models --------------------------------------------------------------------
    def finetuned(self, task_id: str) -> Any:
        import torch

        from core.artifacts import load_artifact, save_artifact
        from core.models import ModelRef, load_model, load_tokenizer
        from core.state import ModelState
        from core.steps.training import train
        from core.tasks import get_task

        task = get_task(task_id)
        qa = task.head == "qa"
        recipe = {"epochs": self.s.squad_epochs if qa else self.s.sst2_epochs, "lr": 1e-4 if qa else self.s.lr,
                  "batch_size": self.s.batch_size, "max_length": self.s.squad_max_length if qa else self.s.sst2_max_length,
                  "warmup_ratio": 0.1, "train_size": self.s.squad_train if qa else self.s.sst2_train}
        # a fine-tuned start is reused by a later run with the same recipe (an hour of SQuAD training)
        saved = None
        if self.start_dir is not None:
            saved = self.start_dir / (f"{task_id}-seed{self.s.seed}-" + "-".join(f"{k}{v}" for k, v in recipe.items()))
            if (saved / "manifest.json").is_file():
                loaded = load_artifact(saved)
                print(f"reusing the fine-tuned {task_id} start in {saved}", flush=True)
                return ModelState(model=loaded.model, tokenizer=loaded.tokenizer, task=task.id, head=task.head)
        ref = ModelRef.parse("all-MiniLM-L6-v2")
        torch.manual_seed(self.s.seed)  # the new task head is initialised from the global RNG
        state = ModelState(model=load_model(ref, task.head, num_labels=task.num_labels), tokenizer=load_tokenizer(ref),
                           task=task.id, head=task.head)
        started = time.perf_counter()
        stats = train(state, _ctx(task, self.s.seed, self.work / "scratch", f"finetune {task_id}"), **recipe)
        state.model.eval()
        print(f"fine-tuned {task_id} in {time.perf_counter() - started:.0f}s: {stats}", flush=True)
        if saved is not None:
            save_artifact(state, saved)
        return state

    # -- tables -----------------------------------------------------------------------------
    def sweeps(self, start: Any, task: Any, base: dict[str, Any]) -> None:
        for pct in self.s.vocab:
            if pct == 100:
                self.rows.append({**{k: v for k, v in base.items() if k != "bytes"}, "table": "vocab", "variant": "100%"})
                continue
            state = _run_step(_clone(start), "vocab.reduce", _ctx(task, self.s.seed, self.work / "scratch", "vocab"),
                              keep_percent=float(pct))
            info = state.info["vocab.reduce"]
            self.measure("vocab", f"{pct:g}%", state, task, base["bytes"], {
                "vocab_size": info["vocab_after"], "tokens_increase_pct": round(info["tokens_increase_pct"], 2),
                "unk_rate": info["unk_rate_after"]})
        for bits in self.s.bits:
            state = _run_step(_clone(start), "quantize.linear_nbit", _ctx(task, self.s.seed, self.work / "scratch", "nbit"),
                              bits=bits)
            self.measure("bits", f"{bits} bits", state, task, base["bytes"])

    def run_sst2(self) -> None:
        from core.tasks import get_task

        task = get_task("sst2")
        start = self.finetuned("sst2")
        base = self.measure("start", "fine-tuned fp32", start, task, None)
        self.sweeps(start, task, base)

    def run_squad(self, sweeps: bool = True, sketch: bool = True, share: bool = True) -> None:
        from core.tasks import get_task

        task = get_task("squad_v2")
        start = self.finetuned("squad_v2")
        base = self.measure("start", "fine-tuned fp32", start, task, None)
        if sweeps:
            self.sweeps(start, task, base)
        self.structure(start, task, base, sketch=sketch, share=share)

    def run_sst2_structure(self) -> None:
        """Tables 2 and 5 on SST-2 (where training data is plentiful)."""
        from core.tasks import get_task

        task = get_task("sst2")
        start = self.finetuned("sst2")
        base = self.measure("start", "fine-tuned fp32", start, task, None)
        self.structure(start, task, base)

    def structure(self, start: Any, task: Any, base: dict[str, Any], sketch: bool = True, share: bool = True) -> None:
        qa = task.head == "qa"
        train = {"batch_size": self.s.batch_size, "lr": 1e-4 if qa else self.s.lr,
                 "max_length": self.s.squad_max_length if qa else self.s.sst2_max_length}
        if sketch:
            for epochs in (0.0, 1.0):
                state = _run_step(_clone(start), "sketch.random", _ctx(task, self.s.seed, self.work / "scratch", "sketch"),
                                  m_attention=256, m_ffn_out=512, epochs=epochs, train_size=self.s.sketch_train, **train)
                self.measure("sketch", "sketched" + (", fine-tuned" if epochs else ", no fine-tuning"), state, task,
                             base["bytes"], {"tune_examples": _train_examples(task, self.s.sketch_train) if epochs else 0})
        if share:
            self.rows.append({**{k: v for k, v in base.items() if k != "bytes"}, "table": "layers", "variant": "6 layers"})
            state = _clone(start)
            for target in self.s.layers:
                state = _run_step(state, "share_layers", _ctx(task, self.s.seed, self.work / "scratch", f"share {target}"),
                                  targets=[target], epochs=self.s.share_epochs, train_size=self.s.share_train,
                                  distill=True, **train)
                state.model.eval()
                self.measure("layers", f"{target} layers", state, task, base["bytes"],
                             {"tune_examples": _train_examples(task, self.s.share_train)})


def _train_examples(task: Any, cap: int) -> int:
    """Examples a training of at most ``cap`` examples sees: the train split may hold fewer."""
    return min(cap, task.load("train").num_rows)


def _qa_metric(row: dict[str, Any]) -> str:
    """F1 / EM (official, null threshold 0), then HasAns F1 and the best-threshold F1 when recorded."""
    text = f"F1 {row['f1']:.1f} / EM {row['exact']:.1f}"
    if row.get("HasAns_f1") is not None:
        text += f" · HasAns F1 {row['HasAns_f1']:.1f}"
    if row.get("best_f1") is not None:
        text += f" · best-threshold F1 {row['best_f1']:.1f}"
    return text


def markdown(rows: list[dict[str, Any]], settings: Settings) -> str:
    lines = ["# Compressed SQuAD 2.0 tables on all-MiniLM-L6-v2 (reduced training)", ""]
    lines.append("Settings: " + ", ".join(f"{k}={v}" for k, v in asdict(settings).items() if k != "notes"))
    lines += [f"- {n}" for n in settings.notes] + [""]
    titles = {"start": "Starting models", "layers": "Table 2: layers after sharing", "vocab": "Table 3: vocabulary",
              "bits": "Table 4: n-bit quantization", "sketch": "Table 5: random sketching"}
    for table, title in titles.items():
        chosen = [r for r in rows if r["table"] == table]
        if not chosen:
            continue
        lines += [f"## {title}", "", "| task | variant | params | artifact MB | % smaller | metric | reload identical |",
                  "|---|---|---|---|---|---|---|"]
        for r in chosen:
            metric = (_qa_metric(r) if "f1" in r else f"acc {100 * r['accuracy']:.1f}")
            smaller = "" if r.get("smaller_pct") is None else f"{r['smaller_pct']:.1f}"
            variant = r["variant"]
            if "vocab_size" in r:
                variant += f" ({r['vocab_size']:,} pieces, +{r['tokens_increase_pct']:.1f} % tokens/example)"
            lines.append(f"| {r['task']} | {variant} | {r['params']:,} | {r['artifact_mb']:.1f} | {smaller} | "
                         f"{metric} | {r.get('reload_identical', '')} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["sst2", "squad"], choices=["sst2", "sst2-structure", "squad", "squad-sweeps", "squad-share", "squad-sketch"])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the script end to end")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="override a Settings field, e.g. --set sst2_train=1500 bits=16,8,4")
    parser.add_argument("--from-log", type=Path, nargs="*", default=None,
                        help="rebuild the tables from the JSON rows printed in earlier runs' logs (partial runs)")
    parser.add_argument("--name", default="bench_squad", help="output file stem")
    parser.add_argument("--start-dir", type=Path, default=None,
                        help="keep fine-tuned starting models here and reuse them when the training settings match")
    args = parser.parse_args(argv)

    import torch

    settings = Settings(threads=args.threads)
    if args.quick:
        settings = Settings(threads=args.threads, sst2_train=200, squad_train=100, squad_eval=40, share_train=50,
                            sketch_train=50, bits=(16, 4), vocab=(100, 25), layers=(3,))
    for item in args.set:
        name, _, value = item.partition("=")
        current = getattr(settings, name)
        if isinstance(current, tuple):
            setattr(settings, name, tuple(type(current[0])(v) for v in value.split(",")))
        else:
            setattr(settings, name, type(current)(value))
    torch.set_num_threads(settings.threads)
    settings.notes.append("SQuAD 2.0: bundled dev file split by article (train part / eval part); "
                          f"eval on a seeded sample of {settings.squad_eval} eval-part questions")
    from core.tasks import get_task

    squad_questions = _train_examples(get_task("squad_v2"), settings.squad_train)
    settings.notes.append(f"training reduced: SST-2 {settings.sst2_train} examples x {settings.sst2_epochs} epoch; "
                          f"SQuAD {squad_questions} questions x {settings.squad_epochs} epoch; "
                          f"{settings.share_train} questions after each merge")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.from_log is not None:
        rows = [json.loads(line) for log in args.from_log for line in log.read_text(encoding="utf-8").splitlines()
                if line.startswith("{")]
        payload = {"settings": asdict(settings), "rows": rows, "logs": [str(p) for p in args.from_log]}
        (args.out / f"{args.name}.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        (args.out / f"{args.name}.md").write_text(markdown(rows, settings) + "\n", encoding="utf-8")
        return 0
    work = Path(tempfile.mkdtemp(prefix="bench_squad_"))
    bench = Bench(settings, work, args.start_dir)
    started = time.perf_counter()
    try:
        for part in args.parts:
            if part == "sst2":
                bench.run_sst2()
            elif part == "sst2-structure":
                bench.run_sst2_structure()
            elif part == "squad":
                bench.run_squad()
            elif part == "squad-sweeps":
                bench.run_squad(sketch=False, share=False)
            elif part == "squad-share":
                bench.run_squad(sweeps=False, sketch=False)
            elif part == "squad-sketch":
                bench.run_squad(sweeps=False, share=False)
            stem = args.name + ("_quick" if args.quick else "")
            payload = {"settings": asdict(settings), "squad_train_questions": squad_questions, "rows": bench.rows,
                       "seconds": round(time.perf_counter() - started), "torch": torch.__version__}
            (args.out / f"{stem}.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
            (args.out / f"{stem}.md").write_text(markdown(bench.rows, settings) + "\n", encoding="utf-8")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
