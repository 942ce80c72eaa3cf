"""The one training loop every training step shares (fine-tuning, distillation, share-layers repair).

AdamW with a linear warm-up/decay schedule, seeded shuffling and subset selection, gradient
clipping, and an optional teacher whose logits are matched with a temperature-softened loss.
Progress and cancellation are checked every batch. The loop runs inside ``torch.random.fork_rng``
so dropout is seeded by ``ctx.seed`` without disturbing the caller's global RNG.

What makes it learn at desktop budgets (measured on 2 CPU cores, see benchmarks/bench_finetune.py):
a budget in optimizer steps (``max_steps``) capped by epochs, batches of similar lengths (padding
fell from 67 % to 3 % of SST-2 batch tokens, twice the steps per second), a sequence length taken
from the data instead of a fixed 128, and early stopping on a held-out slice of the training split
that acts only on drops beyond noise; the held-out slice also says whether the model learned at all.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from core.errors import ConfigError
from core.state import ModelState, StepContext
from core.tasks.features import MODEL_INPUTS as MODEL_INPUTS  # re-exported: the trainers import it from here
from core.tasks.features import TARGETS as TARGETS

CURVE_POINTS = 400  # at most this many points per training curve series


def train(
    state: ModelState,
    ctx: StepContext,
    *,
    epochs: float,
    lr: float,
    batch_size: int,
    max_length: int,
    warmup_ratio: float,
    train_size: int | None,
    weight_decay: float = 0.01,
    teacher: ModelState | None = None,
    distill_alpha: float = 0.5,
    temperature: float = 1.0,
    max_grad_norm: float = 1.0,
    max_steps: int | None = None,
    early_stopping: EarlyStopping | None = None,
    group_by_length: bool = True,
    layer_lr_decay: float = 1.0,
    head_first: float = 0.0,
    tune_threshold: bool = False,
    consistency: float = 0.0,
) -> dict[str, Any]:
    """Train ``state.model`` in place on ``ctx.task``'s train split; return training statistics.

    With a teacher: loss = alpha * soft + (1 - alpha) * hard, where soft is the soft cross-entropy
    at ``temperature`` (scaled by T^2, Hinton et al.) for classification and QA (start and end
    logits averaged), and the MSE between predictions for regression. ``max_length`` None: from
    the data (see :func:`data_max_length`). ``layer_lr_decay`` < 1 scales each part's learning rate
    by that factor per block below the head (see :func:`layer_lr_scales`). ``head_first`` > 0 first
    trains a head that has not been trained yet alone, the encoder frozen (see :func:`train_head_first`).
    ``tune_threshold`` (binary classification, with early stopping's held-out slice) then moves the
    decision threshold to where the held-out slice scores best (see :func:`tune_decision_threshold`).
    ``consistency`` > 0 (without a teacher) is R-Drop (Liang et al. 2021): each batch passes twice, with
    different dropout, and the loss is the two passes' mean task loss plus ``consistency`` / 2 times
    their symmetric divergence (:func:`dropout_divergence`): the paper's per-example loss, halved (the
    authors' code sums the divergence over the batch). The reported losses then include the divergence.
    """
    import torch

    if "trainable" not in state.traits:
        raise ConfigError("This model cannot be trained any more (it is quantized); put training steps first")
    if temperature <= 0:
        raise ConfigError(f"temperature must be > 0; got {temperature}", field="temperature")
    if not 0.0 <= distill_alpha <= 1.0:
        raise ConfigError(f"distill_alpha must be within 0..1; got {distill_alpha}", field="distill_alpha")
    if not math.isfinite(consistency) or consistency < 0:
        raise ConfigError(f"consistency must be a number >= 0; got {consistency}", field="consistency")
    if consistency > 0 and teacher is not None:
        raise ConfigError("consistency (R-Drop) trains on labels; with a teacher, distillation already regularizes", field="consistency")
    model = state.model
    data = train_data(state, ctx, train_size=train_size, max_length=max_length,
                      holdout=early_stopping.holdout_rows if early_stopping else None)
    loader = batches(state, ctx, data.features, batch_size=batch_size, group_by_length=group_by_length)
    head = state.head
    if teacher is not None:
        teacher.model.eval()

    def loss_fn(batch: dict[str, Any]) -> Any:
        if consistency > 0:
            return _rdrop_loss(model, head, batch, consistency)
        inputs = {k: v for k, v in batch.items() if k in MODEL_INPUTS}
        if teacher is None or distill_alpha < 1.0:
            out = model(**inputs, **{k: v for k, v in batch.items() if k in TARGETS})
            hard = out.loss
        else:
            out = model(**inputs)
            hard = None
        if teacher is None:
            return hard
        with torch.no_grad():
            t_out = teacher.model(**inputs)
        soft = soft_loss(head, out, t_out, temperature)
        if hard is None:
            return soft
        return distill_alpha * soft + (1.0 - distill_alpha) * hard

    held_out = None
    if early_stopping is not None and data.holdout is not None:
        held_out = _HeldOutScorer(state, ctx, data.holdout, data.max_length)
    head_stats = None
    loop_ctx = ctx
    if head_first > 0 and teacher is None and not state.info.get("head_trained"):
        budget = step_budget(epochs, len(loader), max_steps)
        head_cost = head_first_steps(head_first, budget) / 3  # a head step runs no backward pass through the encoder
        split = head_cost / (head_cost + budget)  # one progress bar over both loops, in proportion to their cost
        head_stats = train_head_first(state, ctx.scaled(0.0, split), loader, loss_fn, fraction=head_first, lr=lr,
                                      epochs=epochs, max_steps=max_steps, weight_decay=weight_decay,
                                      max_grad_norm=max_grad_norm)
        loop_ctx = ctx.scaled(split, 1.0)
    stats = run_loop(
        loop_ctx,
        parameters=list(model.named_parameters()),
        modules=[model],
        loader=loader,
        loss_fn=loss_fn,
        epochs=epochs,
        lr=lr,
        warmup_ratio=warmup_ratio,
        weight_decay=weight_decay,
        max_grad_norm=max_grad_norm,
        label="Training",
        max_steps=max_steps,
        evaluate=held_out,
        early_stopping=early_stopping,
        worse=_worse_beyond_noise(ctx) if held_out is not None else None,
        lr_scales=layer_lr_scales(model, layer_lr_decay) if layer_lr_decay != 1.0 else None,
    )
    state.info["head_trained"] = True  # the task head has now seen task labels (or a teacher's)
    if head_stats is not None:
        stats["head_first"] = head_stats
    stats.update(max_length=data.max_length, train_examples=data.train_examples,
                 holdout_examples=len(data.holdout) if data.holdout is not None else 0, training_data=data.source)
    if data.holdout is not None:
        kept = held_out.kept(stats) if held_out is not None else None
        stats["learned"] = learned_summary(state, ctx, data.holdout, data.max_length, scored=kept)
        ctx.log(stats["learned"]["summary"])
        trend = convergence(ctx, stats, held_out.history) if held_out is not None else None
        if trend is not None:
            stats["convergence"] = trend
            ctx.log(trend["summary"])
        if tune_threshold:  # the caller decides: finetune tunes only two-class heads
            stats["decision_threshold"] = tune_decision_threshold(state, ctx, data.holdout, data.max_length)
            ctx.log(stats["decision_threshold"]["summary"])
    return stats


# Metrics that depend on how the predictions split between the classes: on imbalanced data the
# cross-entropy argmax is not their best split (CoLA: 85 % predicted acceptable, 69 % are).
THRESHOLD_METRICS = frozenset({"matthews_correlation", "f1"})


def tune_decision_threshold(state: ModelState, ctx: StepContext, holdout: Any, max_length: int) -> dict[str, Any]:
    """Binary classification: find the logit margin (class 1 over class 0) above which the model best
    scores the task's primary metric on the held-out rows, and move it into the output layer's bias,
    so the saved artifact, every export and every measurement carry it. The candidates are the
    midpoints between the held-out margins and 0 (the argmax); a tie keeps the one nearest 0. The
    held-out score after tuning is optimistic (the rows chose the threshold), so ``learned`` is taken
    before; the dev split tells what it bought."""
    import numpy as np
    import torch

    from core.layers import task_head
    from core.measure.evaluation import binary_margins, predict_with_confidences

    task = ctx.task
    predictions, references, confidences = predict_with_confidences(
        state.model, state.tokenizer, task, holdout, batch_size=64, max_length=max_length, cancelled=ctx.cancelled)
    margins = binary_margins(predictions, confidences)
    cuts = np.unique(margins)
    candidates = sorted({0.0, *((cuts[:-1] + cuts[1:]) / 2).tolist()}, key=abs)  # nearest 0 first: wins ties

    def score(threshold: float) -> float:
        return float(task.score((margins > threshold).astype(int).tolist(), references)[task.primary_metric])

    before = score(0.0)
    best, best_score = 0.0, before
    for threshold in candidates:
        value = score(threshold)
        if value > best_score:
            best, best_score = threshold, value
    output = state.model.get_submodule(task_head(state.model, step="finetune")[-1])
    if output.bias is None:
        raise ConfigError("The task head's output layer has no bias to carry a decision threshold; "
                          "set decision_threshold to argmax", field="decision_threshold")
    with torch.no_grad():
        output.bias[1] -= best  # predicts class 1 when logit 1 - logit 0 > best
    summary = (f"decision threshold: class 1 when its logit margin exceeds {best:+.3f} (was 0, the argmax); held-out "
               f"{task.primary_metric} {before:.4f} -> {best_score:.4f} on {len(references)} rows, optimistic: they chose it")
    return {"margin": best, "metric": task.primary_metric, "held_out_before": before, "held_out_after": best_score,
            "examples": len(references), "summary": summary}


HEAD_FIRST_LR_FACTOR = 10.0  # a lone linear head on frozen features takes a far larger step than the encoder


def train_head_first(state: ModelState, ctx: StepContext, loader: Any, loss_fn: Callable[[dict[str, Any]], Any], *,
                     fraction: float, lr: float, epochs: float, max_steps: int | None, weight_decay: float,
                     max_grad_norm: float) -> dict[str, Any]:
    """Linear probing before fine-tuning (LP-FT, Kumar et al. 2022): train only the task head (the parts
    :func:`core.layers.tensor_parts` calls the head, the pooler included), the encoder frozen, for
    ``fraction`` of the main budget at :data:`HEAD_FIRST_LR_FACTOR` times the rate. The encoder's first
    updates then come from a head that already reads it rather than from random weights. Frozen, the
    encoder runs no backward pass, so a head step costs about a third of a full one."""
    from core.layers import HEAD, tensor_parts

    model = state.model
    named = list(model.named_parameters())
    parts = tensor_parts(model, [n for n, _ in named])
    head = [(n, p) for n, p in named if parts.get(n) == HEAD]
    if not head:
        raise ConfigError("head_first: this model has no task-head parameters to train alone", field="head_first")
    steps = head_first_steps(fraction, step_budget(epochs, len(loader), max_steps))
    frozen = [p for n, p in named if parts.get(n) != HEAD and p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        return run_loop(ctx, parameters=head, modules=[model], loader=loader, loss_fn=loss_fn, epochs=epochs,
                        lr=lr * HEAD_FIRST_LR_FACTOR, warmup_ratio=0.0, weight_decay=weight_decay,
                        max_grad_norm=max_grad_norm, label="Head first", max_steps=steps)
    finally:
        for p in frozen:
            p.requires_grad_(True)


def step_budget(epochs: float, per_epoch: int, max_steps: int | None) -> int:
    """Optimizer steps of a loop: ``epochs`` passes of ``per_epoch`` batches, at most ``max_steps``."""
    total = max(1, math.ceil(epochs * per_epoch))
    return max(1, min(total, max_steps)) if max_steps is not None else total


def head_first_steps(fraction: float, budget: int) -> int:
    return max(1, round(fraction * budget))


def layer_lr_scales(model: Any, decay: float) -> dict[str, float]:
    """Layer-wise learning-rate decay (ELECTRA, Clark et al. 2020): the head trains at the full rate,
    the top block at ``decay``, each block below at one more factor, the embeddings at one more still.
    Parts are found by structure (:func:`core.layers.tensor_parts`), so every encoder family works."""
    from core.layers import EMBEDDINGS, HEAD, tensor_parts

    names = [n for n, _ in model.named_parameters()]
    parts = tensor_parts(model, names)
    blocks = max((p for p in parts.values() if isinstance(p, int)), default=-1) + 1
    depth = {HEAD: 0, EMBEDDINGS: blocks + 1}
    return {n: decay ** (depth[p] if not isinstance(p, int) else blocks - p) for n, p in parts.items()}


@dataclass(frozen=True)
class EarlyStopping:
    """Hold out ``holdout`` of the training subset (at most ``holdout_cap`` rows) and score it ``evals``
    times over the budget and once at its end. A score counts against ``patience`` only when it lies below
    the best beyond noise (the paired 95 % interval of the difference on the held-out rows is below 0), and
    the best weights replace the final ones only when the final ones are below them beyond noise: on a
    small slice (RTE: 249 rows) chance alone moves the score by several points, and acting on that stopped
    runs half-way and rolled them back to barely trained weights (benchmarks/results/candidates/)."""

    holdout: float = 0.1
    holdout_cap: int = 500
    evals: int = 8
    patience: int = 3

    def holdout_rows(self, n: int) -> int:
        return max(1, min(self.holdout_cap, round(n * self.holdout))) if n >= 20 else 0


@dataclass(frozen=True)
class HeldOutScore:
    """One scoring of the held-out slice: the primary metric and the predictions it came from."""

    value: float
    predictions: list[Any]
    references: list[Any]


@dataclass
class TrainData:
    features: Any  # the model-ready training rows
    holdout: Any  # a task-shaped dataset held out of training (None: nothing held out)
    max_length: int
    train_examples: int
    source: dict[str, Any] | None = None  # where the rows came from: the task, or rows a step prepared


def data_max_length(task: Any, tokenizer: Any, dataset: Any, cap: int = 256) -> int:
    """A sequence length that fits the data: the 99th percentile of the tokenized training rows,
    rounded up to a multiple of 8, at most ``cap`` and the model's position limit. SST-2 sentences
    need 64 tokens, not 128: half the work for every batch."""
    import numpy as np

    if task.head == "qa":
        return 384  # question + context windows: the SQuAD convention
    texts = list(dataset["text"])
    pairs = list(dataset["text_pair"]) if task.pair else None
    lengths = [len(ids) for ids in tokenizer(texts, pairs, truncation=True, max_length=512)["input_ids"]]
    limit = min(cap, int(getattr(tokenizer, "model_max_length", 512) or 512))
    p99 = int(np.percentile(lengths, 99)) if lengths else 128
    return int(min(limit, max(16, -(-p99 // 8) * 8)))


def seeded_subset(n: int, train_size: int | None, seed: int) -> list[int]:
    """The rows a seeded ``train_size`` subset of ``n`` takes, in draw order (all of them, shuffled,
    when ``train_size`` is None or at least ``n``). Augmentation and training draw the same rows."""
    import torch

    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return order[:train_size] if train_size is not None and train_size < n else order


def training_split(state: ModelState, ctx: StepContext) -> tuple[Any, list[int], list[bool]]:
    """The rows training reads: ``state.data['train']`` when a step prepared them (augmentation),
    else the task's train split. Returns (dataset, origin of each row, whether each row is an
    original); a prepared row names the original sentence it came from in its ``origin`` field."""
    prepared = state.data.get("train")
    if not prepared:
        dataset = ctx.task.load("train")
        return dataset, list(range(len(dataset))), [True] * len(dataset)
    import datasets

    origins = [int(row.get("origin", i)) for i, row in enumerate(prepared)]
    originals = [not row.get("augmented", False) for row in prepared]
    columns = [c for c in prepared[0] if c not in ("origin", "augmented")]
    return datasets.Dataset.from_list([{c: row[c] for c in columns} for row in prepared]), origins, originals


def train_data(state: ModelState, ctx: StepContext, *, train_size: int | None, max_length: int | None,
               holdout: Callable[[int], int] | None = None) -> TrainData:
    """The seeded training subset as model rows, minus a seeded held-out slice when asked.

    ``train_size`` and the held-out slice count original sentences: with augmented rows, a sentence
    brings its augmentations along, and a held-out sentence's augmentations are not trained on."""
    from core.tasks.features import train_features

    dataset, origins, originals = training_split(state, ctx)
    sentences = sorted(set(origins))
    keep = [sentences[i] for i in seeded_subset(len(sentences), train_size, ctx.seed)]
    held = holdout(len(keep)) if holdout is not None else 0
    held_set, train_set = set(keep[:held]), set(keep[held:])
    train_rows = [i for i, o in enumerate(origins) if o in train_set]
    held_rows = [i for i, o in enumerate(origins) if o in held_set and originals[i]]
    subset = dataset.select(train_rows)
    length = max_length or data_max_length(ctx.task, state.tokenizer, subset)
    features = train_features(ctx.task, state.tokenizer, subset, max_length=length)
    if len(features) == 0:
        raise ConfigError("The training subset is empty; raise the training subset size", field="train_size")
    source = {"from": "prepared rows (" + ", ".join(sorted(state.data)) + ")" if state.data.get("train") else "task",
              "sentences": len(train_set), "rows": len(train_rows)}
    return TrainData(features, dataset.select(held_rows) if held else None, length, len(train_rows), source)


def batches(state: ModelState, ctx: StepContext, features: Any, *, batch_size: int,
            group_by_length: bool = True) -> Any:
    """A DataLoader with seeded shuffling; with ``group_by_length`` its batches hold rows of similar
    lengths (sorted within seeded chunks of 50 batches, the chunks' batches then shuffled), so
    dynamic padding adds little."""
    import torch
    from torch.utils.data import DataLoader

    from core.tasks.features import collate

    shuffler = torch.Generator().manual_seed(ctx.seed + 1)
    if not group_by_length:
        return DataLoader(features, batch_size=batch_size, shuffle=True, generator=shuffler,
                          collate_fn=collate(state.tokenizer))
    return DataLoader(features, batch_sampler=_LengthGrouped([len(r) for r in features["input_ids"]], batch_size,
                                                              ctx.seed + 1), collate_fn=collate(state.tokenizer))


class _LengthGrouped:
    """Batches of similar-length rows, reshuffled every epoch (the iterator is re-created per epoch)."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int, chunk_batches: int = 50) -> None:
        self.lengths, self.batch_size, self.chunk = lengths, batch_size, batch_size * chunk_batches
        self.rng = random.Random(seed)

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)

    def __iter__(self) -> Any:
        order = list(range(len(self.lengths)))
        self.rng.shuffle(order)
        out: list[list[int]] = []
        for start in range(0, len(order), self.chunk):
            chunk = sorted(order[start : start + self.chunk], key=lambda i: self.lengths[i], reverse=True)
            out += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        self.rng.shuffle(out)
        return iter(out)


class _HeldOutScorer:
    """Scores the held-out rows on demand and remembers each score, so that the step's "learned" summary
    reuses the kept weights' score instead of predicting the same rows again."""

    def __init__(self, state: ModelState, ctx: StepContext, holdout: Any, max_length: int) -> None:
        self.state, self.ctx, self.holdout, self.max_length = state, ctx, holdout, max_length
        self.history: list[HeldOutScore] = []

    def __call__(self) -> HeldOutScore:
        from core.measure.evaluation import predict

        predictions, references = predict(self.state.model, self.state.tokenizer, self.ctx.task, self.holdout,
                                          batch_size=64, max_length=self.max_length, cancelled=self.ctx.cancelled)
        value = float(self.ctx.task.score(predictions, references)[self.ctx.task.primary_metric])
        score = HeldOutScore(value, list(predictions), list(references))
        self.history.append(score)
        return score

    def kept(self, stats: dict[str, Any]) -> HeldOutScore | None:
        """The score of the weights the loop kept (its ``kept_step``), if that step was scored."""
        steps = [step for step, _ in stats.get("held_out_scores", [])]
        if "kept_step" not in stats or len(steps) != len(self.history):
            return None
        for step, score in zip(reversed(steps), reversed(self.history), strict=True):
            if step == stats["kept_step"]:
                return score
        return None


def _worse_beyond_noise(ctx: StepContext) -> Callable[[HeldOutScore, HeldOutScore], bool]:
    """Whether a held-out score lies below another beyond noise: the paired 95 % interval of their
    difference on the same rows is entirely below 0."""
    from core.measure import verdicts

    def worse(score: HeldOutScore, than: HeldOutScore) -> bool:
        delta = verdicts.versus_parent(ctx.task, score.predictions, than.predictions, score.references, seed=ctx.seed)
        return delta.high < 0

    return worse


def learned_summary(state: ModelState, ctx: StepContext, holdout: Any, max_length: int,
                    scored: HeldOutScore | None = None) -> dict[str, Any]:
    """Whether the trained model beats the trivial predictor on the held-out rows beyond noise
    (``scored``: the model's held-out score already taken, so the rows are not predicted again)."""
    from core.measure import verdicts
    from core.measure.evaluation import predict

    task = ctx.task
    if scored is None:
        predictions, references = predict(state.model, state.tokenizer, task, holdout, batch_size=64,
                                          max_length=max_length, cancelled=ctx.cancelled)
        value = float(task.score(predictions, references)[task.primary_metric])
    else:
        predictions, references, value = scored.predictions, scored.references, scored.value
    margin = verdicts.learned(task, predictions, references, seed=ctx.seed)
    learned = margin.low > 0
    what = "the trivial predictor" if task.head != "regression" else "no correlation"
    # Not beyond noise on a few held-out rows is no verdict: 20 rows cannot tell 0.70 from chance, and the
    # log said "did not learn" beside a variant whose dev score showed it had.
    verdict = "learned" if learned else "no sign of learning beyond noise"
    summary = (f"{verdict}: held-out {task.primary_metric} {value:.4f} on {len(references)} rows; margin over "
               f"{what} {margin.value:+.4f} [{margin.low:+.4f}, {margin.high:+.4f}] (95 %)"
               + ("" if learned else "; the dev set's measurement says whether it learned"))
    return {"learned": learned, "metric": task.primary_metric, "value": value, "examples": len(references),
            "margin": margin.value, "margin_low": margin.low, "margin_high": margin.high, "summary": summary}


IMPROVING, PLATEAU, DECLINING = "improving", "plateau", "declining"


def convergence(ctx: StepContext, stats: dict[str, Any], history: list[HeldOutScore]) -> dict[str, Any] | None:
    """Whether training was still gaining when its budget ran out, from the loop's ``stats`` (its
    ``held_out_scores`` and what early stopping did) and the held-out predictions of each scoring.

    Run to the end with its final weights kept: the final scoring against the one nearest half-way,
    paired on the same rows. ``improving`` = the second half gained beyond noise (more steps may help);
    ``plateau`` = no gain beyond noise, which on a small slice is no proof that nothing was left to gain.
    Stopped early or rolled back: ``declining``, from the kept (best) scoring to the final one, since
    the budget did not run out. None with fewer than two scorings (or ``stats`` and ``history`` disagree)."""
    from core.measure import verdicts

    steps = [int(step) for step, _ in stats.get("held_out_scores", [])]
    if len(steps) < 2 or len(steps) != len(history):
        return None
    end, final = steps[-1], history[-1]
    past_best = stats.get("stopped_early") or stats.get("kept") == "best"
    if past_best and stats.get("kept_step") in steps[:-1]:
        start = steps.index(stats["kept_step"])
    else:
        past_best = False
        start = min(range(len(steps) - 1), key=lambda i: (abs(steps[i] - end / 2), -steps[i]))
    delta = verdicts.versus_parent(ctx.task, final.predictions, history[start].predictions, final.references,
                                   seed=ctx.seed)
    verdict = DECLINING if past_best or delta.high < 0 else IMPROVING if delta.low > 0 else PLATEAU
    metric = ctx.task.primary_metric
    change = (f"held-out {metric} {history[start].value:.4f} -> {final.value:.4f} from step {steps[start]} to {end}, "
              f"{delta.value:+.4f} [{delta.low:+.4f}, {delta.high:+.4f}] (95 %, paired on {len(final.references)} rows)")
    if past_best:
        summary = (f"past its best: {change}; early stopping kept the weights of step {steps[start]}, so more steps "
                   "would not help")
    else:
        summary = {IMPROVING: f"still improving when the budget ran out: {change}; more steps or epochs may help",
                   PLATEAU: f"no gain beyond noise over the second half of training: {change}",
                   DECLINING: f"lost ground over the second half of training: {change}; fewer steps would do"}[verdict]
    return {"verdict": verdict, "metric": metric, "from_step": steps[start], "to_step": end,
            "from_value": history[start].value, "to_value": final.value, "change": delta.value,
            "change_low": delta.low, "change_high": delta.high, "examples": len(final.references),
            "rolled_back": bool(past_best), "summary": summary}


def _rdrop_loss(model: Any, head: str, batch: dict[str, Any], weight: float) -> Any:
    """R-Drop: the batch twice in one forward pass (dropout differs between the copies), their mean task
    loss plus ``weight`` / 2 times their symmetric divergence."""
    import torch

    doubled = {k: torch.cat([v, v]) for k, v in batch.items() if k in MODEL_INPUTS or k in TARGETS}
    out = model(**doubled)
    n = next(iter(batch.values())).shape[0]
    return out.loss + 0.5 * weight * dropout_divergence(head, out, n)


def dropout_divergence(head: str, out: Any, n: int) -> Any:
    """The symmetric divergence between the first ``n`` rows of ``out`` and the next ``n``: half of
    KL(p1 || p2) + KL(p2 || p1) over the classes (start and end positions averaged for QA), the
    squared difference for regression."""
    import torch.nn.functional as F

    def symmetric_kl(logits: Any) -> Any:
        log_p = F.log_softmax(logits.float(), dim=-1)
        first, second = log_p[:n], log_p[n:]
        kl = (first.exp() * (first - second)).sum(-1) + (second.exp() * (second - first)).sum(-1)
        return 0.5 * kl.mean()

    if head == "regression":
        values = out.logits.float().view(-1)
        return F.mse_loss(values[:n], values[n:])
    if head == "qa":
        return 0.5 * (symmetric_kl(out.start_logits) + symmetric_kl(out.end_logits))
    return symmetric_kl(out.logits)


def soft_loss(head: str, student_out: Any, teacher_out: Any, temperature: float) -> Any:
    """Prediction-layer distillation loss between a student's and a teacher's outputs."""
    import torch.nn.functional as F

    if head == "regression":
        return F.mse_loss(student_out.logits.view(-1), teacher_out.logits.view(-1))
    if head == "qa":
        return 0.5 * (
            soft_cross_entropy(student_out.start_logits, teacher_out.start_logits, temperature)
            + soft_cross_entropy(student_out.end_logits, teacher_out.end_logits, temperature)
        )
    return soft_cross_entropy(student_out.logits, teacher_out.logits, temperature)


def soft_cross_entropy(student_logits: Any, teacher_logits: Any, temperature: float) -> Any:
    """Cross-entropy against the teacher's softened distribution, times T^2 so gradients keep scale."""
    import torch.nn.functional as F

    t = temperature
    targets = F.softmax(teacher_logits.float() / t, dim=-1)
    log_probs = F.log_softmax(student_logits.float() / t, dim=-1)
    return -(targets * log_probs).sum(dim=-1).mean() * (t * t)


def train_loader(state: ModelState, ctx: StepContext, *, batch_size: int, max_length: int | None,
                 train_size: int | None, group_by_length: bool = True) -> Any:
    """A DataLoader over the seeded training subset (for loops other than :func:`train`'s)."""
    data = train_data(state, ctx, train_size=train_size, max_length=max_length)
    loader = batches(state, ctx, data.features, batch_size=batch_size, group_by_length=group_by_length)
    loader.training_data = data.source  # type: ignore[attr-defined]  # for the caller's report
    return loader


def run_loop(
    ctx: StepContext,
    *,
    parameters: list[tuple[str, Any]],
    modules: Iterable[Any],
    loader: Any,
    loss_fn: Callable[[dict[str, Any]], Any],
    epochs: float,
    lr: float,
    warmup_ratio: float,
    weight_decay: float = 0.01,
    max_grad_norm: float = 1.0,
    label: str = "Training",
    max_steps: int | None = None,
    evaluate: Callable[[], HeldOutScore] | None = None,
    early_stopping: EarlyStopping | None = None,
    lr_scales: dict[str, float] | None = None,
    worse: Callable[[HeldOutScore, HeldOutScore], bool] | None = None,
) -> dict[str, Any]:
    """Generic AdamW loop over ``loader`` minimising ``loss_fn(batch)``; shared by every trainer.

    ``parameters`` are (name, tensor) pairs: biases and LayerNorm weights get no weight decay;
    ``lr_scales`` multiplies a name's learning rate (missing names: 1).
    ``modules`` are put in train mode for the loop and back in eval mode afterwards. The budget is
    ``epochs`` passes, or ``max_steps`` optimizer steps when that is fewer. With ``evaluate`` (a
    held-out score, higher is better), ``early_stopping`` and ``worse`` (whether one score is below another
    beyond noise), the loop scores the model at regular steps and at the end, stops after ``patience``
    scores below the best beyond noise, and restores the best weights when the final ones are below them
    beyond noise (:class:`EarlyStopping`).
    """
    import torch

    if epochs <= 0:
        raise ConfigError(f"epochs must be > 0; got {epochs}", field="epochs")
    modules = list(modules)
    per_epoch = len(loader)
    total = step_budget(epochs, per_epoch, max_steps)
    if evaluate and early_stopping and worse is None:
        raise ValueError("run_loop: early stopping needs `worse`, the rule for a score below another beyond noise")
    stopper = _Stopper(evaluate, early_stopping, total, modules, ctx, label, worse) if evaluate and early_stopping and worse else None
    warmup = int(warmup_ratio * total)
    groups: dict[tuple[float, float], list[Any]] = {}
    for name, p in parameters:
        if not p.requires_grad:
            continue
        lname = name.lower()
        wd = 0.0 if lname.endswith("bias") or "norm" in lname else weight_decay
        scale = lr_scales.get(name, 1.0) if lr_scales else 1.0
        groups.setdefault((scale, wd), []).append(p)
    # the full-rate group first: its rate is the one the curve shows
    optimizer = torch.optim.AdamW(
        [{"params": ps, "weight_decay": wd, "lr": lr * scale} for (scale, wd), ps in sorted(groups.items(), reverse=True)],
        lr=lr,
    )

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    all_params = [p for group in optimizer.param_groups for p in group["params"]]
    started, cpu_started = time.perf_counter(), time.process_time()
    step = 0
    every = max(1, math.ceil(total / CURVE_POINTS))
    losses: list[float] = []
    examples = 0
    from core.measure.evaluation import pinned_threads

    with torch.random.fork_rng(devices=[]), pinned_threads(ctx.threads):
        torch.manual_seed(ctx.seed)
        for m in modules:
            m.train()
        try:
            while step < total:
                for batch in loader:
                    if step >= total:
                        break
                    ctx.check_cancelled()
                    loss = loss_fn(batch)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if max_grad_norm:
                        torch.nn.utils.clip_grad_norm_(all_params, max_grad_norm)
                    optimizer.step()
                    used_lr = float(optimizer.param_groups[0]["lr"])  # this step's rate, before the schedule moves on
                    scheduler.step()
                    step += 1
                    losses.append(float(loss.detach()))
                    if step % every == 0 or step == total:
                        ctx.curve(label, "loss", step, losses[-1])
                        ctx.curve(label, "lr", step, used_lr)
                    examples += int(next(iter(batch.values())).shape[0])
                    ctx.progress(step / total, f"{label}: step {step}/{total}, loss {losses[-1]:.4f}")
                    if stopper is not None and stopper.after(step):
                        total = step  # no gain for `patience` held-out scores: stop here
                        break
        finally:
            for m in modules:
                m.eval()
    tail = losses[-max(1, min(len(losses), per_epoch)) :]
    out = {
        "steps": step,
        "epochs": epochs,
        "max_steps": max_steps,
        "examples_seen": examples,
        "epochs_seen": examples / max(1, len(loader.dataset)) if hasattr(loader, "dataset") else None,
        "batches_per_epoch": per_epoch,
        "first_loss": losses[0] if losses else float("nan"),
        "final_loss": losses[-1] if losses else float("nan"),
        "mean_loss_last_epoch": sum(tail) / len(tail) if tail else float("nan"),
        "seconds": time.perf_counter() - started,
        # every thread of this process: on a shared machine the wall time grows with the load, the
        # CPU time much less, so it tells what the training costs on a quiet one
        "cpu_seconds": time.process_time() - cpu_started,
    }
    if stopper is not None:
        out.update(stopper.finish(step))
    return out


class _Stopper:
    """Early stopping on a held-out score that does not act on noise (see :class:`EarlyStopping`)."""

    def __init__(self, evaluate: Callable[[], HeldOutScore], rule: EarlyStopping, total: int, modules: list[Any],
                 ctx: StepContext, label: str, worse: Callable[[HeldOutScore, HeldOutScore], bool]) -> None:
        self.evaluate, self.rule, self.modules, self.ctx, self.label = evaluate, rule, modules, ctx, label
        self.worse = worse
        self.every = max(1, math.ceil(total / max(1, rule.evals)))
        self.best: HeldOutScore | None = None
        self.best_step = 0
        self.best_state: list[dict[str, Any]] | None = None
        self.last: HeldOutScore | None = None
        self.last_step = 0
        self.worse_since_best = 0
        self.scores: list[list[float]] = []
        self.stopped = False

    def after(self, step: int) -> bool:
        if step % self.every:
            return False
        self._score(step)
        self.stopped = self.worse_since_best >= self.rule.patience
        return self.stopped

    def _score(self, step: int) -> None:
        score = self.evaluate()
        for m in self.modules:
            m.train()  # predict() restores eval mode; training continues
        self.scores.append([step, score.value])
        self.ctx.curve(self.label, "held_out", step, score.value)
        self.last, self.last_step = score, step
        if self.best is None or score.value > self.best.value:
            self.best, self.best_step, self.worse_since_best = score, step, 0
            self.best_state = [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in self.modules]
        elif self.worse(score, self.best):
            self.worse_since_best += 1

    def finish(self, step: int) -> dict[str, Any]:
        """Score the final weights when the last scoring was earlier, then keep them unless the best are
        better beyond noise."""
        if step and step != self.last_step:
            self._score(step)
            for m in self.modules:
                m.eval()
        kept = "final"
        if (self.best_state is not None and self.last is not None and self.best is not None
                and self.best_step != self.last_step and self.worse(self.last, self.best)):
            for m, state in zip(self.modules, self.best_state, strict=True):
                m.load_state_dict(state)
            kept = "best"
        best = self.best.value if self.best is not None else -math.inf
        return {"held_out_scores": self.scores, "best_step": self.best_step, "best_held_out": best,
                "stopped_early": self.stopped, "kept": kept,
                "kept_step": self.best_step if kept == "best" else step,
                "kept_held_out": best if kept == "best" else (self.last.value if self.last else None)}
