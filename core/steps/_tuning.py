"""Fine-tuning fields and call shared by the structure steps (share_layers, sketch.random).

The training loop itself is ``core.steps.training.train`` (owned by the training steps); this module
only carries the config fields and turns a config into that call, importing it lazily.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.params import StepConfig, param


@dataclass(frozen=True)
class TuneConfig(StepConfig):
    """Fields for the fine-tuning a structure step runs after changing the model."""

    epochs: float = param(
        1.0, label="Fine-tuning epochs", help="Epochs of task training after the change; 0 = none.", min=0, max=100
    )
    lr: float = param(5e-5, label="Learning rate", min=0, min_exclusive=True, max=1)
    batch_size: int = param(16, label="Batch size", min=1, max=4096, sweepable=False)
    max_length: int = param(128, label="Max sequence length", min=8, max=4096, unit="tokens", sweepable=False)
    train_size: int | None = param(
        None, label="Training examples", help="Use at most this many training examples (empty = all).", min=1
    )
    warmup_ratio: float = param(0.1, label="Warm-up ratio", min=0, max=1, sweepable=False)


def finetune(state: Any, ctx: Any, cfg: TuneConfig, *, teacher: Any = None, alpha: float = 0.5,
             temperature: float = 1.0) -> dict[str, Any]:
    """Run ``core.steps.training.train`` with the config's fields; {} when epochs is 0."""
    if cfg.epochs <= 0:
        return {}
    from core.steps.training import train

    return train(
        state,
        ctx,
        epochs=cfg.epochs,
        lr=cfg.lr,
        batch_size=cfg.batch_size,
        max_length=cfg.max_length,
        warmup_ratio=cfg.warmup_ratio,
        train_size=cfg.train_size,
        teacher=teacher,
        distill_alpha=alpha,
        temperature=temperature,
    )
