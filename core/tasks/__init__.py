"""Tasks: data loading, preprocessing and official metrics, one module per family."""

from core.tasks.base import Task, all_tasks, datasets_dir, get_task, head_carry_over_problem, register_task

__all__ = ["Task", "all_tasks", "datasets_dir", "get_task", "head_carry_over_problem", "register_task"]
