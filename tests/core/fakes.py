"""Test-only steps (never shipped) and tiny recipes for the store, worker and CLI tests.

Importing this module registers the steps below in the step registry. Worker subprocesses get them
through :data:`WORKER_COMMAND`, which imports this module before running ``core.run.worker.main``.
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.params import StepConfig, param
from core.state import FLOAT, TRAINABLE, ModelState, StepContext
from core.steps import base
from core.steps.base import Step

ROOT = Path(__file__).resolve().parents[2]
WORKER_COMMAND = [
    sys.executable,
    "-c",
    f"import sys; sys.path.insert(0, {str(ROOT)!r}); import tests.core.fakes;"
    " from core.run.worker import main; sys.exit(main())",
]


@dataclass(frozen=True)
class ScaleConfig(StepConfig):
    factor: float = param(0.5, label="Factor", min=0.0, max=10.0, help="multiply every weight")


@dataclass(frozen=True)
class SlowConfig(StepConfig):
    seconds: float = param(1.0, label="Seconds", min=0.0)
    chatter: bool = param(True, label="Print to stdout", help="stray prints must not corrupt events")
    release_file: str = param("", label="Release file", help="stop sleeping as soon as this file exists")
    chatter_every: float = param(0.0, label="Print every", min=0.0, unit="s",
                                 help="keep printing to stdout and stderr while sleeping (0: never)")


@dataclass(frozen=True)
class EmptyConfig(StepConfig):
    pass


@dataclass(frozen=True)
class ConstantConfig(StepConfig):
    label: int = param(1, label="Label", min=0, max=1, help="the class every example is given")


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
            # As a C library writes: it ignores EPIPE. (Python's os.write raises BrokenPipeError instead, and
            # a client killed before this line made the step fail: test_kill_9_of_the_cli... under load.)
            with contextlib.suppress(BrokenPipeError):
                os.write(1, b"stray bytes on fd 1\n")
        release = Path(self.config.release_file) if self.config.release_file else None
        said = time.monotonic()
        while time.monotonic() < end and not (release is not None and release.exists()):
            if self.config.chatter_every and time.monotonic() - said >= self.config.chatter_every:
                # Between safe points, like a training loop's log lines: before the cancel check.
                print("still sleeping", flush=True)
                print("still sleeping (stderr)", file=sys.stderr, flush=True)
                said = time.monotonic()
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


class Constant(Step):
    """A 'trained' classifier that answers one class everywhere: a metric known in advance (the share
    of that class in the evaluated rows), for the accuracy-budget tests."""

    id = "test.constant"
    title = "Constant answer (test)"
    category = "Test"
    config_cls = ConstantConfig

    def apply(self, state: ModelState, ctx: StepContext) -> ModelState:
        import torch

        head = state.model.classifier
        with torch.no_grad():
            head.weight.zero_()
            head.bias.zero_()
            head.bias[self.config.label] = 10.0
        state.info["head_trained"] = True
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


STEPS = (ScaleWeights, Slow, Train, Freeze, Distil, QAOnly, Constant, Fail, Renamed)
for _cls in STEPS:
    if not base.is_registered(_cls.id):
        base.register(_cls)


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


# ------------------------------------------------------------------------------------------
# Pausing a worker at a phase, to kill it there (tests/core/test_faults.py)

PAUSE_ENV = "WORKBENCH_TEST_PAUSE"


def _pause(marker: str) -> None:
    """Say where we are (the marker file) and wait to be killed; give up after five minutes."""
    import os

    Path(marker).write_text(str(os.getpid()), encoding="utf-8")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        time.sleep(0.05)


def _install_pause() -> None:
    """``WORKBENCH_TEST_PAUSE=<phase>:<node>:<marker file>`` in a worker's environment pauses it
    inside that phase of that node (the 3-digit number its artifact folder starts with):
    ``load`` (loading the baseline), ``save`` (the weights written into ``<folder>.partial``, the
    manifest not yet), ``evaluate`` (after the first evaluation batch; the artifact is saved, its
    row not yet written)."""
    import functools
    import os

    spec = os.environ.get(PAUSE_ENV)
    if not spec:
        return
    phase, node, marker = spec.split(":", 2)
    if phase == "load":  # every way of loading a model from a reference resolves its source first
        import core.models

        real_resolve = core.models.resolve_source

        @functools.wraps(real_resolve)
        def resolve_source(*args: Any, **kwargs: Any) -> Any:
            _pause(marker)
            return real_resolve(*args, **kwargs)

        core.models.resolve_source = resolve_source
    elif phase == "save":
        import safetensors.torch

        real_save = safetensors.torch.save_file

        @functools.wraps(real_save)
        def save_file(tensors: Any, filename: str, *args: Any, **kwargs: Any) -> Any:
            result = real_save(tensors, filename, *args, **kwargs)
            folder = Path(filename).parent.name
            if folder.startswith(f"{node}-") and folder.endswith(".partial"):
                _pause(marker)
            return result

        safetensors.torch.save_file = save_file
    elif phase == "evaluate":
        import core.measure.variant

        real_measure = core.measure.variant.measure_variant

        @functools.wraps(real_measure)
        def measure_variant(state: Any, folder: Path, *args: Any, progress: Any = None, **kwargs: Any) -> Any:
            def report(fraction: float, message: str = "") -> None:
                if Path(folder).name.startswith(f"{node}-") and message.startswith("evaluated"):
                    _pause(marker)
                if progress is not None:
                    progress(fraction, message)

            return real_measure(state, folder, *args, progress=report, **kwargs)

        core.measure.variant.measure_variant = measure_variant
    else:
        raise ValueError(f"{PAUSE_ENV}: unknown phase {phase!r}")


_install_pause()
