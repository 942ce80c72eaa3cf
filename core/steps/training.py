"""The one training loop every training step shares (fine-tuning, distillation, share-layers repair).

AdamW with a linear warm-up/decay schedule, seeded shuffling and subset selection, gradient
clipping, and an optional teacher whose logits are matched with a temperature-softened loss.
Progress and cancellation are checked every batch. The loop runs inside ``torch.random.fork_rng``
so dropout is seeded by ``ctx.seed`` without disturbing the caller's global RNG.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Any

from core.errors import ConfigError
from core.state import ModelState, StepContext

# Forward kwargs a training batch may carry; anything else a feature set holds is dropped.
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
TARGETS = ("labels", "start_positions", "end_positions")
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
) -> dict[str, Any]:
    """Train ``state.model`` in place on ``ctx.task``'s train split; return training statistics.

    With a teacher: loss = alpha * soft + (1 - alpha) * hard, where soft is the soft cross-entropy
    at ``temperature`` (scaled by T^2, Hinton et al.) for classification and QA (start and end
    logits averaged), and the MSE between predictions for regression.
    """
    import torch

    if "trainable" not in state.traits:
        raise ConfigError("This model cannot be trained any more (it is quantized); put training steps first")
    if temperature <= 0:
        raise ConfigError(f"temperature must be > 0; got {temperature}", field="temperature")
    if not 0.0 <= distill_alpha <= 1.0:
        raise ConfigError(f"distill_alpha must be within 0..1; got {distill_alpha}", field="distill_alpha")
    model = state.model
    loader = train_loader(state, ctx, batch_size=batch_size, max_length=max_length, train_size=train_size)
    head = state.head
    if teacher is not None:
        teacher.model.eval()

    def loss_fn(batch: dict[str, Any]) -> Any:
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

    stats = run_loop(
        ctx,
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
    )
    state.info["head_trained"] = True  # the task head has now seen task labels (or a teacher's)
    return stats


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


def train_loader(
    state: ModelState, ctx: StepContext, *, batch_size: int, max_length: int, train_size: int | None
) -> Any:
    """A DataLoader over the task's train features: seeded subset, seeded shuffling."""
    import torch
    from torch.utils.data import DataLoader

    from core.tasks.features import collate, train_features

    dataset = ctx.task.load("train")
    n = len(dataset)
    if train_size is not None and train_size < n:
        g = torch.Generator().manual_seed(ctx.seed)
        keep = torch.randperm(n, generator=g)[:train_size].sort().values.tolist()
        dataset = dataset.select(keep)
    features = train_features(ctx.task, state.tokenizer, dataset, max_length=max_length)
    if len(features) == 0:
        raise ConfigError("The training subset is empty; raise the training subset size", field="train_size")
    shuffler = torch.Generator().manual_seed(ctx.seed + 1)
    return DataLoader(
        features,
        batch_size=batch_size,
        shuffle=True,
        generator=shuffler,
        collate_fn=collate(state.tokenizer),
    )


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
) -> dict[str, Any]:
    """Generic AdamW loop over ``loader`` minimising ``loss_fn(batch)``; shared by every trainer.

    ``parameters`` are (name, tensor) pairs: biases and LayerNorm weights get no weight decay.
    ``modules`` are put in train mode for the loop and back in eval mode afterwards.
    """
    import torch

    if epochs <= 0:
        raise ConfigError(f"epochs must be > 0; got {epochs}", field="epochs")
    modules = list(modules)
    per_epoch = len(loader)
    total = max(1, math.ceil(epochs * per_epoch))
    warmup = int(warmup_ratio * total)
    decay, no_decay = [], []
    for name, p in parameters:
        if not p.requires_grad:
            continue
        lname = name.lower()
        (no_decay if lname.endswith("bias") or "norm" in lname else decay).append(p)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=lr
    )

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    all_params = [p for group in optimizer.param_groups for p in group["params"]]
    started = time.perf_counter()
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
        finally:
            for m in modules:
                m.eval()
    tail = losses[-max(1, min(len(losses), per_epoch)) :]
    return {
        "steps": step,
        "epochs": epochs,
        "examples_seen": examples,
        "batches_per_epoch": per_epoch,
        "first_loss": losses[0] if losses else float("nan"),
        "final_loss": losses[-1] if losses else float("nan"),
        "mean_loss_last_epoch": sum(tail) / len(tail) if tail else float("nan"),
        "seconds": time.perf_counter() - started,
    }
