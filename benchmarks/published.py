"""The issues' targets, and the published figures (from core.published) the benchmarks compare with.

They appear only in columns and tables labelled "published" or "target"; nothing here is ever
mixed into a measured column. Sources: /work/shared/DESIGN.md, issue 4 (the TinyBERT study),
issue 5 (the SQuAD system), issue 15 (deployment backends), issues 3, 6 and 7 (engine, cache and GUI targets), issue 14 (fine-tuning that
learns) and issue 20 (teachers, augmentation, sharing and sketching).
"""

from __future__ import annotations

# The papers' figures have one home, core.published (the window draws them too).
from core.published import PUBLISHED_SQUAD, PUBLISHED_TINYBERT, SQUAD_PAPER, TINYBERT_PAPER  # noqa: F401

# Targets from the issues (ratios measured in one run); met / not met is computed from values.
TARGETS = {
    "int8_speedup": 1.7,  # issue 4: int8 vs fp32 latency, batch 8, seq 128
    "int8_artifact_ratio": 0.30,  # issue 4: int8 artifact vs fp32, embeddings int8
    "int8_metric_cost": 1.0,  # issue 4: points of the task metric
    "student_retention_sst2": 0.95,  # issue 4: 3-layer student vs teacher, SST-2 accuracy
    "engine_speedup": 1.5,  # issue 3
    "nbit_within": 0.02,  # issue 5: artifact within 2 % of theory plus headers
    "cache_speedup": 10.0,  # issue 6
    "query_ms": 50.0,  # issue 6
    "launch_s": 1.5,  # issue 7
    "stall_ms": 50.0,  # issue 7
    "redraw_ms": 100.0,  # issue 7 "fluid with 1,000 variants": bench_gui's own threshold
    "pan_ms": 33.0,  # bench_gui's own threshold (30 frames/s)
}
# Issue 14: the packaged model fine-tuned with the shipped finetune defaults (a step with no config).
# task -> (floor of the primary metric, minutes); None = "clearly above its majority class" (the
# model's 95 % interval and the majority predictor's do not overlap). "pairs" is a sentence-pair
# custom data file (a seeded subset of the bundled QNLI file written as CSV, used through `data:`).
FINETUNE_TARGETS: dict[str, tuple[float | None, float]] = {
    "sst2": (0.87, 10.0), "stsb": (0.82, 15.0), "cola": (0.30, 15.0), "rte": (0.60, 15.0), "pairs": (None, 15.0),
}
# Issue 15: deployment backends. Target 1: the workbench's fastest int8 variant no slower than a hand-written
# NNCF + OpenVINO static int8 of the same fp32 model (speed ratio >= 1), within 1 point of fp32 accuracy.
# Target 2: its best chain under a 1-point budget >= 1.5x faster than that hand-written model, <= 0.15x the
# fp32 model's bytes.
BACKEND_TARGETS = {"int8_vs_hand_written": 1.0, "int8_metric_drop": 1.0, "chain_vs_hand_written": 1.5,
                   "chain_bytes_ratio": 0.15, "chain_metric_drop": 1.0}
# Issue 20: the TinyBERT study's teachers (packaged model, whole bundled training splits) and what the
# 3-layer student keeps of its teacher, with and without data augmentation.
TEACHER_TARGETS: dict[str, float] = {"sst2": 0.88, "cola": 0.35, "stsb": 0.85, "rte": 0.62, "qnli": 0.83}
STUDENT_RETENTION = 0.95

# Our reading of issue 5's "qualitative shape": 16 and 10 bits within this many points of the
# start, and the lowest bit width at or below 6 at least this many points below it.
SHAPE_FREE_POINTS = 1.0
SHAPE_DROP_POINTS = 5.0
