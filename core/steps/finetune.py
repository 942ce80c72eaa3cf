"""Fine-tune the encoder and its task head on the task's training split.

Classification, regression and extractive QA heads all train through ``core.steps.training.train``;
the head decides the loss (cross-entropy, MSE, start/end cross-entropy). Values change, storage
does not, so no codec is needed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from core.errors import ConfigError
from core.params import StepConfig, param
from core.pooling import FIRST_TOKEN, MEAN, POOLED_HEADS, POOLINGS, pooling_of, set_pooling
from core.state import FLOAT, TRAINABLE, ModelState, StepContext
from core.steps.base import TRAINING_RESOURCES, Step, register

TRAINED_HEADS = frozenset({"classification", "regression", "qa"})


AUTO, TUNED, ARGMAX = "auto", "tuned", "argmax"
NO_TASK = "none"
# first_on_task's auto, chosen by measurement (benchmarks/results/bench_finetune.*): the packaged MiniLM
# learns little entailment from RTE's 2,490 pairs, and QNLI's bundled pairs carry the same two labels.
FIRST_ON_TASK_AUTO = {"rte": "qnli"}


def _bundled_tasks() -> tuple[str, ...]:
    """The tasks whose data ships with the workbench, for ``first_on_task`` (a user's custom data
    task is registered later, in the run)."""
    from core.tasks import all_tasks

    return tuple(t.id for t in all_tasks() if t.family != "custom")


@dataclass(frozen=True)
class FinetuneConfig(StepConfig):
    """Defaults chosen by measurement on 2 CPU cores (benchmarks/bench_finetune.py): the packaged
    MiniLM reaches its SST-2 target within the 1,000-step budget; small data sets (RTE, CoLA) stop at
    the epoch cap or earlier on the held-out slice. The rate, 5e-5 since version 5, against 1e-4:
    benchmarks/results/candidates/README.md."""

    version = 5
    lr: float = param(5e-5, label="Learning rate", help="Peak AdamW learning rate; 5e-5 measured better than 1e-4 and 2e-4 on the packaged MiniLM's small tasks (CoLA, RTE; see benchmarks/RESULTS.md) and lies in BERT-base's usual 2e-5 to 5e-5", min=0.0, max=1.0, min_exclusive=True)
    max_steps: int | None = param(1000, label="Step budget", help="Optimizer steps at most (the epochs below cap it on small data); empty = epochs only", min=1)
    epochs: float = param(3.0, label="Epochs", help="Passes over the training subset at most (fractions allowed)", min=0.0, max=100.0, min_exclusive=True)
    batch_size: int = param(32, label="Batch size", min=1, max=1024)
    max_length: int | None = param(None, label="Max length", help="Tokens per example, longer inputs truncated; empty = from the data (99th percentile of the training rows)", min=8, max=4096, unit="tokens")
    warmup_ratio: float = param(0.1, label="Warm-up", help="Fraction of steps with a linearly rising learning rate, then linear decay to 0", min=0.0, max=0.9)
    train_size: int | None = param(None, label="Training subset", help="Examples drawn (seeded) from the train split; empty = all", min=1)
    early_stopping: bool = param(True, label="Early stopping", help="Hold out 10 % of the training subset (at most 500 rows) and score it 8 times and at the end; stop after 3 scores below the best beyond noise (paired 95 % interval) and keep the best weights only when the final ones are below them beyond noise; it also tells whether the model learned", sweepable=False)
    group_by_length: bool = param(True, label="Group by length", help="Batch rows of similar lengths: far less padding, about twice the speed", sweepable=False)
    weight_decay: float = param(0.01, label="Weight decay", help="AdamW decoupled weight decay (not on biases or LayerNorm)", min=0.0, max=1.0)
    pooling: str = param(MEAN, label="Pooling", help="What a new classification or regression head reads: mean = the average of the sentence's token vectors (how sentence encoders such as the packaged MiniLM were trained; better on its small tasks, see benchmarks/RESULTS.md), first_token = [CLS] as in Hugging Face's heads. A head trained before keeps the pooling it learned with", choices=POOLINGS)
    layer_lr_decay: float = param(1.0, label="Layer-wise LR decay", help="Each block below the head learns at this factor of the one above (ELECTRA's layer-wise decay); 1 = one rate for all", min=0.0, max=1.0, min_exclusive=True)
    head_first: float = param(0.0, label="Head first", help="Before fine-tuning, train a new task head alone, the encoder frozen, for this fraction of the step budget at 10x the rate (LP-FT, Kumar et al. 2022): the encoder's first updates then come from a head that reads it, not from random weights; 0 = off", min=0.0, max=1.0)
    decision_threshold: str = param(AUTO, label="Decision threshold", help="Two-class tasks: tuned = predict class 1 above the logit margin that scores best on the early-stopping held-out slice, stored in the head's bias so the artifact carries it; argmax = the larger logit; auto = tuned when the task's metric is MCC or F1, which depend on how predictions split between the classes (see benchmarks/RESULTS.md), else argmax", choices=(AUTO, TUNED, ARGMAX), sweepable=False)
    first_on_task: str = param(AUTO, label="First on task", help="Intermediate-task transfer (Phang et al. 2018, STILTs): first fine-tune on this other bundled task, with these same settings, then on the run's task; it needs the same head and labels. auto = QNLI before RTE (both entailment / not entailment; measured at lr 1e-4: RTE 0.626 mean over three seeds instead of 0.590, see benchmarks/RESULTS.md), no other task; none = the run's task only", choices=(AUTO, NO_TASK, *_bundled_tasks()), sweepable=False)
    consistency: float = param(0.0, label="Consistency (R-Drop)", help="R-Drop (Liang et al. 2021): each batch passes twice with different dropout; the loss is the two passes' mean task loss plus half this weight times their symmetric KL divergence per example (MSE for regression), which is the paper's loss halved. The authors' code sums the divergence over the batch, about batch size / 2 times this weight. The loss curve then includes the divergence. Regularizes small data sets at about twice the cost per step; 0 = off", min=0.0, max=100.0)
    seed_offset: int = param(0, label="Seed offset", help="Added to the run seed, e.g. to repeat training with other shuffles", min=0, max=1_000_000, sweepable=True)

    def validate(self) -> None:
        if self.decision_threshold == TUNED and not self.early_stopping:
            raise ConfigError("Decision threshold (decision_threshold) tuned needs the held-out slice of early "
                              "stopping: turn early_stopping on, or choose argmax", field="decision_threshold")


@register
class Finetune(Step):
    id = "finetune"
    title = "Fine-tune"
    category = "Training"
    description = "Train the encoder and task head (AdamW, linear warm-up and decay)."
    config_cls = FinetuneConfig
    requires = frozenset({FLOAT, TRAINABLE})
    resources = TRAINING_RESOURCES
    heads = TRAINED_HEADS
    compresses = False

    @classmethod
    def migrate(cls, config: dict[str, Any], from_version: int) -> dict[str, Any]:
        """Version 1 recipes ran every epoch at a fixed 128 tokens, without early stopping; versions 1 and 2
        read the first token; versions 1 to 3 predicted the larger logit; versions 2 to 4 trained at
        1e-4: keep that."""
        if from_version < 2:
            config = {"max_steps": None, "max_length": 128, "early_stopping": False, "group_by_length": False,
                      "lr": 5e-5, **config}
        if from_version < 3:
            config = {"pooling": FIRST_TOKEN, **config}
        if from_version < 4:
            config = {"decision_threshold": ARGMAX, **config}
        if from_version < 5:
            config = {"lr": 1e-4, **config}  # version 1's 5e-5, set above, stays
        return config

    def training_work(self, train_rows: int, task_id: str = "") -> float | None:
        """Each optimizer step a forward and a backward pass (3 forwards) of a batch, and the held-out
        slice predicted at each of its scorings; the head-only steps of ``head_first`` cost about a third;
        with ``first_on_task``, the same again for that task's rows."""
        first = self._first_task_rows(task_id)
        return self._work(train_rows) + (self._work(first) if first is not None else 0.0)

    def _work(self, train_rows: int) -> float:
        import math

        from core.steps.training import EarlyStopping, step_budget

        cfg: FinetuneConfig = self.config  # type: ignore[assignment]
        rows = min(train_rows, cfg.train_size or train_rows)
        stopping = EarlyStopping()
        held_out = stopping.holdout_rows(rows) if cfg.early_stopping else 0
        steps = step_budget(cfg.epochs, math.ceil((rows - held_out) / cfg.batch_size), cfg.max_steps)
        passes = 2 if cfg.consistency > 0 else 1  # R-Drop runs each batch twice
        return 3.0 * steps * cfg.batch_size * passes * (1 + cfg.head_first / 3) + held_out * (stopping.evals + 1)

    def reads(self, task_id: str) -> dict[str, Any]:
        """The first task's data too: its rows train the model."""
        from core.tasks import get_task

        first = self._first_task_id(task_id)
        return {**super().reads(task_id), **({"first_on_task": get_task(first)} if first is not None else {})}

    def _first_task_id(self, task_id: str) -> str | None:
        cfg: FinetuneConfig = self.config  # type: ignore[assignment]
        chosen = FIRST_ON_TASK_AUTO.get(task_id, NO_TASK) if cfg.first_on_task == AUTO else cfg.first_on_task
        return None if chosen == NO_TASK else chosen

    def _first_task_rows(self, task_id: str) -> int | None:
        from core.tasks import get_task

        first = self._first_task_id(task_id)
        return None if first is None else len(get_task(first).load("train"))

    def _first_task(self, state: ModelState, ctx: StepContext) -> Any:
        """The task to train on first, checked against the run's: the same head, and for a classifier
        the same labels in the same order (the head's outputs carry over)."""
        from core.tasks import get_task, head_carry_over_problem

        chosen = self._first_task_id(ctx.task.id)
        if chosen is None:
            return None
        first, task = get_task(chosen), ctx.task
        problem = None
        if first.id == task.id:
            problem = f"it is the run's task itself; choose another task or {NO_TASK}"
        elif first.head != state.head:
            problem = f"{first.title} trains a {first.head} head and this model has a {state.head} head"
        else:
            problem = head_carry_over_problem(first.id, first.num_labels, task)
        if problem:
            raise ConfigError(f"First on task (first_on_task) {first.id}: {problem}", field="first_on_task", step=self.id)
        return first

    def apply(self, state: ModelState, ctx: StepContext) -> ModelState:
        from core.steps.training import EarlyStopping, train

        cfg: FinetuneConfig = self.config  # type: ignore[assignment]
        if state.head not in TRAINED_HEADS:
            raise ConfigError(
                f"finetune needs a task head (classification, regression or qa); this model has '{state.head}'",
                step=self.id,
            )
        ctx.check_cancelled()
        model = copy.deepcopy(state.model)
        new = state.derive(model)
        pooling = self._pool(model, state, ctx)
        import dataclasses

        run_ctx = dataclasses.replace(ctx, seed=ctx.seed + cfg.seed_offset)
        settings = dict(epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size, max_length=cfg.max_length,
                        warmup_ratio=cfg.warmup_ratio, train_size=cfg.train_size, weight_decay=cfg.weight_decay,
                        max_steps=cfg.max_steps, group_by_length=cfg.group_by_length,
                        layer_lr_decay=cfg.layer_lr_decay, head_first=cfg.head_first, consistency=cfg.consistency)
        tune_threshold = self._tunes_threshold(state, ctx)
        first = self._first_task(state, ctx)
        first_stats = None
        if first is not None:
            # as a finetune on the first task whose saved variant a second finetune starts from (the
            # decision threshold aside: it is tuned for the run's task only)
            first_rows, rows = len(first.load("train")), len(new.data.get("train") or ctx.task.load("train"))
            split = self._work(first_rows) / (self._work(first_rows) + self._work(rows))
            first_state = new.derive(model, data={}, task=first.id)  # its own split, not rows prepared for the run's task
            first_ctx = dataclasses.replace(run_ctx.scaled(0.0, split, f"First on {first.id}: "), task=first)
            first_stats = train(first_state, first_ctx, early_stopping=EarlyStopping() if cfg.early_stopping else None,
                                tune_threshold=False, **settings)
            new.info["head_trained"] = True
            ctx.log(f"finetune: first on {first.title}: {first_stats['steps']} steps, final loss "
                    f"{first_stats['final_loss']:.4f}" + (f"; {first_stats['learned']['summary']}" if "learned" in first_stats else ""))
            run_ctx = run_ctx.scaled(split, 1.0)
        stats = train(new, run_ctx, early_stopping=EarlyStopping() if cfg.early_stopping else None,
                      tune_threshold=tune_threshold, **settings)
        if first_stats is not None:
            stats["first_on_task"] = {"task": first.id, **first_stats}
        new.info[self.id] = {**stats, "pooling": pooling}
        ctx.log(f"finetune: {stats['steps']} steps at {stats['max_length']} tokens, final loss {stats['final_loss']:.4f}, "
                f"{stats['seconds']:.1f} s" + (", stopped early" if stats.get("stopped_early") else ""))
        return new

    def _tunes_threshold(self, state: ModelState, ctx: StepContext) -> bool:
        from core.steps.training import THRESHOLD_METRICS

        cfg: FinetuneConfig = self.config  # type: ignore[assignment]
        binary = state.head == "classification" and ctx.task.num_labels == 2
        if cfg.decision_threshold == TUNED and not binary:
            raise ConfigError(f"Decision threshold (decision_threshold) tuned needs a two-class task; {ctx.task.title} "
                              f"has {'a ' + state.head + ' head' if state.head != 'classification' else str(ctx.task.num_labels) + ' classes'}: "
                              "choose argmax or auto", field="decision_threshold", step=self.id)
        if cfg.decision_threshold == AUTO:
            return binary and cfg.early_stopping and ctx.task.primary_metric in THRESHOLD_METRICS
        return cfg.decision_threshold == TUNED

    def _pool(self, model: Any, state: ModelState, ctx: StepContext) -> str | None:
        """Set the configured pooling on a head that has not learned yet; a trained head keeps its own."""
        cfg: FinetuneConfig = self.config  # type: ignore[assignment]
        if state.head not in POOLED_HEADS:
            return None
        if not state.info.get("head_trained"):
            set_pooling(model, cfg.pooling)
            return cfg.pooling
        current = pooling_of(model.config)
        if current != cfg.pooling:
            ctx.log(f"finetune: the task head was trained reading {current}; it keeps that pooling "
                    f"(pooling: {cfg.pooling} applies to a head that has not been trained)")
        return current
