"""A benchmark study through the engine: its recipes run with core.run.runner.run_recipe into one
results database, and its tables are read back from that database (core.store.result_rows).

Recipes of one study that share a prefix (e.g. fine-tune -> distil, then prune or quantize) reuse
the prefix through the runner's cache, so nothing trains twice; every reused row says ``cached``.
Latency is read in one place, :meth:`Study.latency`, so a later re-timing phase of the engine
plugs in there without touching the tables.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class StudyError(RuntimeError):
    """A recipe of the study did not finish; the message names the recipe and the engine's error."""


def quiet_libraries() -> None:
    """Offline hub, no tokenizer threads, no progress bars or deprecation noise in the logs."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class RecipeRun:
    """One recipe of the study as the engine ran it."""

    key: str
    recipe: Any  # core.recipe.Recipe
    run_id: int
    seconds: float
    rows: list[Any] = field(default_factory=list)  # core.store.ResultRow, baseline first
    cpu_seconds: float | None = None  # this process's CPU time (every thread) while the recipe ran
    load: dict[str, float] = field(default_factory=dict)  # the machine's 1-min load average meanwhile

    def summary(self) -> dict[str, Any]:
        return {"key": self.key, "name": self.recipe.name, "run_id": self.run_id, "seconds": round(self.seconds, 1),
                "cpu_seconds": None if self.cpu_seconds is None else round(self.cpu_seconds, 1), "load": self.load,
                "variants": len(self.rows), "cached": [r.label for r in self.rows if r.cached],
                "recipe": self.recipe.to_dict()}


class LoadSampler:
    """The machine's 1-minute load average, sampled every ``every`` seconds while a block runs: on a
    shared machine a wall time means little without it."""

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self._stop.wait(self.every):
                return

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(os.getloadavg()[0])

    def summary(self) -> dict[str, float]:
        s = self.samples
        return {"start": round(s[0], 2), "end": round(s[-1], 2), "mean": round(sum(s) / len(s), 2),
                "max": round(max(s), 2), "samples": len(s)} if s else {}


class Study:
    """The recipes of one benchmark run and the database they write into.

    Without ``reuse`` the database and its artifacts are removed first, so every figure is
    measured by this run (shared prefixes are still computed once, within the run). With
    ``reuse`` an existing database is kept and any variant with the same cache key (same model,
    data, settings, steps and code) is reused from it; such rows say ``cached``.
    """

    def __init__(self, db: Path, *, reuse: bool = False) -> None:
        self.db = Path(db).resolve()
        self.artifacts = self.db.parent / f"{self.db.stem}-artifacts"
        self.reuse = reuse
        self.runs: list[RecipeRun] = []
        if not reuse:
            for path in (self.db, Path(f"{self.db}-wal"), Path(f"{self.db}-shm")):
                path.unlink(missing_ok=True)
            shutil.rmtree(self.artifacts, ignore_errors=True)
        self.db.parent.mkdir(parents=True, exist_ok=True)

    # -- running ------------------------------------------------------------------------------
    def run(self, key: str, recipe: Any) -> RecipeRun:
        """Run one recipe to the end; StudyError if it fails or is cancelled."""
        from core.protocol import Log, Progress, RunFinished, StepFinished, StepStarted
        from core.recipe import Recipe
        from core.run.runner import run_recipe
        from core.store import open_store, result_rows

        if isinstance(recipe, dict):
            recipe = Recipe.from_dict(recipe)
        shown = {"at": 0.0}

        def emit(event: Any) -> None:
            if isinstance(event, StepStarted):
                log(f"  {key}: {event.label}")
            elif isinstance(event, Progress) and (time.monotonic() - shown["at"] > 30 or event.fraction >= 1.0):
                shown["at"] = time.monotonic()
                log(f"    {event.fraction:5.1%} {event.message}")
            elif isinstance(event, Log) and event.level in ("warning", "error"):
                log(f"    {event.level}: {event.message}")
            elif isinstance(event, StepFinished):
                row = event.row
                metric = row.get("metric")
                log(f"  {key}: {row.get('label')} done in {event.seconds:.0f} s"
                    f"{' (cached)' if event.cached else ''}: {row.get('metric_name')} "
                    f"{'—' if metric is None else f'{metric:.4f}'}, {row.get('size_mb') or 0:.2f} MB")

        log(f"{key}: running recipe '{recipe.name}' ({len(recipe.chain)} steps) into {self.db}")
        started, cpu = time.perf_counter(), time.process_time()
        with LoadSampler() as load:
            terminal = run_recipe(recipe, db_url_or_path=self.db, artifacts_dir=self.artifacts, emit=emit)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        if not isinstance(terminal, RunFinished):
            error = getattr(terminal, "error", "cancelled")
            raise StudyError(f"recipe '{recipe.name}' ({key}) did not finish: {error}")
        with open_store(self.db) as store:
            rows = result_rows(store, run_ids=[terminal.run_id])
        done = RecipeRun(key, recipe, terminal.run_id, seconds, rows, cpu, load.summary())
        log(f"{key}: {seconds:.0f} s wall, {cpu:.0f} s CPU, load average {done.load.get('mean')} "
            f"(max {done.load.get('max')})")
        self.runs.append(done)
        return done

    # -- reading ------------------------------------------------------------------------------
    def step_info(self, row: Any) -> dict[str, Any]:
        """What the step reported for this variant (statistics, timings, curves), as stored."""
        from core.store import open_store, variant_info

        with open_store(self.db) as store:
            return variant_info(store, row.variant)

    def _stored_predictions(self, row: Any) -> dict[str, Any]:
        from core.store import open_store, variant_predictions

        with open_store(self.db) as store:
            stored = variant_predictions(store, row.variant)
        if stored is None:
            raise StudyError(f"variant {row.variant} ({row.label}) has no stored dev predictions")
        return stored

    def dev_predictions(self, row: Any, task: Any) -> tuple[list[Any], list[Any]]:
        """A variant's stored dev predictions and the dev references of the same examples."""
        stored = self._stored_predictions(row)
        dev = task.load("dev")
        return list(stored["predictions"]), [dev[int(i)]["label"] for i in stored["indices"]]

    def versus_trivial(self, row: Any, task: Any, seed: int) -> dict[str, Any]:
        """The majority-class (constant) predictor on the same dev rows: its metric and interval, and
        the paired margin of the model over it (STS-B: a constant has no correlation, so no majority)."""
        from core.measure import verdicts
        from core.measure.intervals import metric_interval

        predictions, references = self.dev_predictions(row, task)
        out: dict[str, Any] = {"examples": len(references)}
        if task.head != "regression":
            trivial = verdicts.trivial_predictions(task, len(references))
            base = metric_interval(task.primary_metric, trivial, references, task.score, task.resample, seed=seed)
            out["majority"] = {"value": base.value, "low": base.low, "high": base.high}
        margin = verdicts.learned(task, predictions, references, seed=seed)
        out["margin"] = {"value": margin.value, "low": margin.low, "high": margin.high}
        return out

    def paired_change(self, row: Any, reference: Any, task: Any, seed: int) -> dict[str, Any]:
        """``row``'s metric minus ``reference``'s on the same dev examples, with its paired 95 % interval."""
        from core.measure.intervals import paired_delta_interval

        if self._stored_predictions(row)["indices"] != self._stored_predictions(reference)["indices"]:
            raise StudyError(f"variants {row.variant} and {reference.variant} were scored on different dev examples")
        predictions, references = self.dev_predictions(row, task)
        baseline, _ = self.dev_predictions(reference, task)
        delta = paired_delta_interval(task.primary_metric, predictions, baseline, references, task.score,
                                      task.resample, seed=seed)
        return {"value": delta.value, "low": delta.low, "high": delta.high, "examples": len(references)}

    def threshold_change(self, row: Any, task: Any, seed: int, tuned: dict[str, Any]) -> dict[str, Any]:
        """What a fine-tune's tuned decision threshold (``tuned``: the step's report) bought on dev, paired:
        the stored predictions against the argmax's on the same weights, which the stored confidences
        give back (the tuned margin z - m > 0 is the argmax's z > 0 shifted by m)."""
        import numpy as np

        from core.measure.evaluation import binary_margins
        from core.measure.intervals import paired_delta_interval

        stored = self._stored_predictions(row)
        margins = binary_margins(stored["predictions"], stored["confidences"])
        argmax = (margins + tuned["margin"] > 0).astype(int).tolist()
        predictions, references = self.dev_predictions(row, task)
        delta = paired_delta_interval(task.primary_metric, predictions, argmax, references, task.score,
                                      task.resample, seed=seed)
        return {"margin": tuned["margin"], "held_out_before": tuned["held_out_before"],
                "held_out_after": tuned["held_out_after"], "held_out_examples": tuned["examples"],
                "dev_argmax": float(task.score(argmax, references)[task.primary_metric]),
                "dev_change": {"value": delta.value, "low": delta.low, "high": delta.high},
                "dev_predicted_1": float(np.mean(predictions)), "dev_argmax_predicted_1": float(np.mean(argmax)),
                "dev_true_1": float(np.mean(references))}

    @staticmethod
    def latency(row: Any) -> dict[str, float | None]:
        """p50 / p90 of one variant: the one place tables read latency from.

        For now the engine's own timing, taken when the variant was measured (a cached row
        carries the timing of the variant it reuses)."""
        return {"p50_ms": row.latency_p50_ms, "p90_ms": row.latency_p90_ms}

    @staticmethod
    def latency_note(measure: Any) -> str:
        """How the latencies in the tables were measured, in words, for the Markdown."""
        threads = measure.threads or "torch's default number of"
        return (f"Latency: timed by the engine (core.measure.latency) when each variant was measured: batch "
                f"{measure.latency_batch_size} x sequence {measure.latency_seq_len}, {measure.latency_warmup} "
                f"warm-up + {measure.latency_repeats} timed forward passes, p50 / p90, on {threads} thread(s). "
                "Variants are timed one after another, not interleaved, so load on a shared machine between "
                "two timings shows in their ratio; a cached row carries the timing of the variant it reuses.")

    def summary(self) -> dict[str, Any]:
        """The database, and each recipe with its run id and which of its variants were reused."""
        return {"database": str(self.db), "artifacts": str(self.artifacts), "reused_database": self.reuse,
                "recipes": [r.summary() for r in self.runs]}


def parse_config(items: list[str]) -> dict[str, Any]:
    """``lr=2e-4 epochs=5`` -> finetune config overrides (JSON values; bare words stay strings)."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{item}: expected FIELD=VALUE")
        try:
            out[name] = json.loads(value)
        except json.JSONDecodeError:
            out[name] = value
    return out


def environment() -> dict[str, Any]:
    from core.measure import environment as env

    return env()
