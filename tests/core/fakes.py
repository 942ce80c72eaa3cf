"""Test-only steps (never shipped) and, until the engine's core.measure lands, a small real stand-in.

Importing this module registers the steps below in the step registry. Worker subprocesses get them
through :data:`WORKER_COMMAND`, which imports this module before running ``core.worker.main``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.params import StepConfig, param
from core.steps import base
from core.steps.base import FLOAT, TRAINABLE, ModelState, Step, StepContext

ROOT = Path(__file__).resolve().parents[2]
WORKER_COMMAND = [
    sys.executable,
    "-c",
    f"import sys; sys.path.insert(0, {str(ROOT)!r}); import tests.core.fakes as f; f.install();"
    " from core.worker import main; sys.exit(main())",
]


@dataclass(frozen=True)
class ScaleConfig(StepConfig):
    factor: float = param(0.5, label="Factor", min=0.0, max=10.0, help="multiply every weight")


@dataclass(frozen=True)
class SlowConfig(StepConfig):
    seconds: float = param(1.0, label="Seconds", min=0.0)
    chatter: bool = param(True, label="Print to stdout", help="stray prints must not corrupt events")
    release_file: str = param("", label="Release file", help="stop sleeping as soon as this file exists")


@dataclass(frozen=True)
class EmptyConfig(StepConfig):
    pass


@dataclass(frozen=True)
class FailConfig(StepConfig):
    message: str = param("boom", label="Message")


@dataclass(frozen=True)
class RenamedConfig(StepConfig):
    version = 2
    amount: float = param(0.1, label="Amount", min=0.0, max=1.0)

    def validate(self) -> None:
        if self.amount == 0.5:
            raise ConfigError("Amount (amount) must not be exactly 0.5 in this test step", field="amount")


class ScaleWeights(Step):
    id = "test.scale"
    title = "Scale weights (test)"
    category = "Test"
    config_cls = ScaleConfig

    def apply(self, state: ModelState, ctx: StepContext) -> ModelState:
        import torch

        with torch.no_grad():
            for p in state.model.parameters():
                p.mul_(self.config.factor)
        ctx.progress(1.0, "scaled")
        state.info["scaled_by"] = self.config.factor
        return state


class Slow(Step):
    id = "test.slow"
    title = "Sleep (test)"
    category = "Test"
    config_cls = SlowConfig

    def apply(self, state: ModelState, ctx: StepContext) -> ModelState:
        import os

        end = time.monotonic() + self.config.seconds
        if self.config.chatter:
            print("stray print from a step", flush=True)
            os.write(1, b"stray bytes on fd 1\n")
        release = Path(self.config.release_file) if self.config.release_file else None
        while time.monotonic() < end and not (release is not None and release.exists()):
            ctx.check_cancelled()
            ctx.progress(1 - (end - time.monotonic()) / max(self.config.seconds, 1e-9), "sleeping")
            time.sleep(0.05)
        return state


class Train(Step):
    id = "test.train"
    title = "Train (test)"
    category = "Training"
    config_cls = EmptyConfig
    requires = frozenset({FLOAT, TRAINABLE})

    def apply(self, state: ModelState, ctx: StepContext) -> ModelState:
        return state


class Freeze(Step):
    """Like int8 quantization for validation purposes: the model is no longer trainable."""

    id = "test.freeze"
    title = "Freeze (test)"
    category = "Test"
    config_cls = EmptyConfig
    removes = frozenset({TRAINABLE})
    adds = frozenset({"frozen"})

    def apply(self, state: ModelState, ctx: StepContext) -> ModelState:
        state.traits = (state.traits - self.removes) | self.adds
        return state


class Distil(Step):
    id = "test.distil"
    title = "Distil (test)"
    category = "Distillation"
    config_cls = EmptyConfig
    requires = frozenset({FLOAT, TRAINABLE})
    needs_teacher = True

    def apply(self, state: ModelState, ctx: StepContext) -> ModelState:
        if ctx.teacher is None or ctx.teacher.model is state.model:
            raise RuntimeError("the runner must give a separate teacher")
        state.info["teacher_layers"] = ctx.teacher.model.config.num_hidden_layers
        return state


class QAOnly(Step):
    id = "test.qa_only"
    title = "QA only (test)"
    category = "Test"
    config_cls = EmptyConfig
    heads = frozenset({"qa"})

    def apply(self, state: ModelState, ctx: StepContext) -> ModelState:
        return state


class Fail(Step):
    id = "test.fail"
    title = "Fail (test)"
    category = "Test"
    config_cls = FailConfig

    def apply(self, state: ModelState, ctx: StepContext) -> ModelState:
        raise RuntimeError(self.config.message)


class Renamed(Step):
    """Registered under a new id; recipes with the old id and config version 1 still load."""

    id = "test.renamed"
    title = "Renamed (test)"
    category = "Test"
    config_cls = RenamedConfig
    replaces = ("test.old_name",)

    @classmethod
    def migrate(cls, config: dict[str, Any], from_version: int) -> dict[str, Any]:
        config = dict(config)
        if from_version < 2 and "percent" in config:
            config["amount"] = config.pop("percent") / 100
        return config


STEPS = (ScaleWeights, Slow, Train, Freeze, Distil, QAOnly, Fail, Renamed)
for _cls in STEPS:
    if _cls.id not in base._REGISTRY:
        base.register(_cls)


# ------------------------------------------------------------------------------------------
# Stand-in measurement (only when the engine's core.measure is not there yet)


def _fake_measure() -> Any:
    import types
    from dataclasses import asdict

    @dataclass
    class EvalResult:
        metrics: dict[str, float]
        primary: float
        predictions: list
        examples: int
        seconds: float
        note: str = ""

        def to_dict(self) -> dict[str, Any]:
            return asdict(self)

    @dataclass
    class SizeReport:
        params: int
        nonzero_params: int
        artifact_bytes: int | None
        weights_bytes: int | None

        def to_dict(self) -> dict[str, Any]:
            return asdict(self)

    @dataclass
    class LatencyReport:
        p50_ms: float
        p90_ms: float
        mean_ms: float
        batch_size: int
        seq_len: int
        threads: int
        repeats: int

        def to_dict(self) -> dict[str, Any]:
            return asdict(self)

    def evaluate(model: Any, tokenizer: Any, task: Any, split: str = "dev", *, batch_size: int = 32,
                 max_length: int = 128, limit: int | None = None, sample_seed: int | None = None,
                 threads: int | None = None, progress: Any = None, cancelled: Any = None) -> EvalResult:
        import torch

        start = time.perf_counter()
        data = task.load(split)
        n = len(data) if limit is None else min(limit, len(data))
        rows = data.select(range(n))
        enc = tokenizer(list(rows["text"]), truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        with torch.no_grad():
            preds = model(**enc).logits.argmax(-1).tolist()
        labels = list(rows["label"])
        acc = sum(int(p == y) for p, y in zip(preds, labels, strict=True)) / max(n, 1)
        if progress:
            progress(1.0, "evaluated")
        return EvalResult({"accuracy": acc}, acc, preds, n, time.perf_counter() - start, "stand-in")

    def size_report(model: Any, artifact_folder: Any = None) -> SizeReport:
        from core.artifacts import folder_bytes, state_tensors, weights_bytes

        tensors, _ = state_tensors(model)
        params = sum(t.numel() for t in tensors.values())
        nonzero = sum(int((t != 0).sum()) for t in tensors.values())
        if artifact_folder is None:
            return SizeReport(params, nonzero, None, None)
        return SizeReport(params, nonzero, folder_bytes(Path(artifact_folder)), weights_bytes(Path(artifact_folder)))

    def size_flag(parent: SizeReport, child: SizeReport) -> str | None:
        known = parent.artifact_bytes is not None and child.artifact_bytes is not None
        if known and child.artifact_bytes >= parent.artifact_bytes:
            return f"not smaller on disk than its parent ({child.artifact_bytes} >= {parent.artifact_bytes} bytes)"
        return None

    def latency(model: Any, tokenizer: Any, *, batch_size: int = 8, seq_len: int = 128, warmup: int = 3,
                repeats: int = 20, threads: int | None = None) -> LatencyReport:
        import statistics

        import torch

        ids = torch.randint(5, model.config.vocab_size, (batch_size, seq_len))
        times = []
        with torch.no_grad():
            for i in range(warmup + repeats):
                t0 = time.perf_counter()
                model(input_ids=ids)
                if i >= warmup:
                    times.append((time.perf_counter() - t0) * 1000)
        times.sort()
        return LatencyReport(statistics.median(times), times[max(0, -(-9 * len(times) // 10) - 1)], statistics.fmean(times),
                             batch_size, seq_len, torch.get_num_threads(), repeats)

    def environment() -> dict[str, Any]:
        import platform

        return {"python": platform.python_version(), "machine": platform.machine(), "stand_in": True}

    module = types.ModuleType("core.measure")
    module.__dict__.update(
        EvalResult=EvalResult, SizeReport=SizeReport, LatencyReport=LatencyReport, evaluate=evaluate,
        size_report=size_report, size_flag=size_flag, latency=latency, environment=environment,
    )
    return module


def real_measure_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("core.measure") is not None


def install() -> None:
    """Make ``import core.measure`` work: the real one when present, else the stand-in."""
    if "core.measure" in sys.modules or real_measure_available():
        return
    import core

    module = _fake_measure()
    sys.modules["core.measure"] = module
    core.measure = module  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------------
# Recipes


def tiny_recipe(model_folder: Path, chain: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A recipe dict on the tiny model and SST-2, measured quickly."""
    return {
        "format": 1,
        "model": str(model_folder),
        "task": "sst2",
        "seed": 0,
        "measure": {"eval_limit": 8, "eval_batch_size": 8, "max_length": 16, "latency_batch_size": 2,
                    "latency_seq_len": 8, "latency_warmup": 0, "latency_repeats": 2, "threads": 1},
        "chain": chain,
        **extra,
    }
