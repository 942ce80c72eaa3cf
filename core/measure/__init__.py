"""Measurement: task evaluation, honest size accounting, latency and the machine fingerprint.

Importing this package does not import torch; each function imports it when called.
"""

from core.measure.evaluation import EvalResult, evaluate, subset_indices
from core.measure.machine import environment, machine_fingerprint
from core.measure.size import SizeReport, size_flag, size_report
from core.measure.timing import LatencyReport, latency

__all__ = [
    "EvalResult",
    "LatencyReport",
    "SizeReport",
    "environment",
    "evaluate",
    "latency",
    "machine_fingerprint",
    "size_flag",
    "size_report",
    "subset_indices",
]
