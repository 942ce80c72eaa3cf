"""Compression steps. Each module registers its steps with :func:`core.steps.base.register`."""

from core.steps.base import (
    FLOAT,
    INITIAL_TRAITS,
    TRAINABLE,
    ModelState,
    Step,
    StepContext,
    all_steps,
    get_step,
    register,
)

__all__ = [
    "FLOAT",
    "INITIAL_TRAITS",
    "TRAINABLE",
    "ModelState",
    "Step",
    "StepContext",
    "all_steps",
    "get_step",
    "register",
]
