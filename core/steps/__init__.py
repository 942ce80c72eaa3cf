"""Compression steps. Each module registers its steps with :func:`core.steps.base.register`;
``training`` is the loop the training steps share."""

from core.steps.base import Step, all_steps, discover, get_step, is_registered, load_state, register

__all__ = ["Step", "all_steps", "discover", "get_step", "is_registered", "load_state", "register"]
