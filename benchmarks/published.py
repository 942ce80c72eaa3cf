"""Published figures and the issues' targets: constants with their sources, nothing else.

They appear only in columns and tables labelled "published" or "target"; nothing here is ever
mixed into a measured column. Sources: /work/shared/DESIGN.md, issue 4 (the TinyBERT study),
issue 5 (the SQuAD system), issues 3, 6 and 7 (engine, cache and GUI targets), issue 14 (fine-tuning that
learns) and issue 20 (teachers, augmentation, sharing and sketching).
"""

from __future__ import annotations

from typing import Any

TINYBERT_PAPER = 'the "further compression of TinyBERT" study (BERT-base teacher, TinyBERT student)'
SQUAD_PAPER = '"Compressed SQuAD 2.0 model with BERT" (BERT-base start, CS224N dev split)'

# The TinyBERT study (issue 4). Sizes in decimal MB, as the study reports them.
PUBLISHED_TINYBERT: dict[str, Any] = {
    "bert_base_mb": 437.98,
    "tinybert_mb": 58.39,
    "tinybert_int8_mb": 43.74,
    "pruned_mb": 58.39,  # the pruned model was stored densely: no smaller on disk
    "int8_faster_pct": (10, 15),  # "about 10-15 % faster" inference from int8
    "pruning": "10-30 % pruning costs nothing and sometimes helps",
}
PUBLISHED_TINYBERT["int8_vs_fp32_artifact_ratio"] = PUBLISHED_TINYBERT["tinybert_int8_mb"] / PUBLISHED_TINYBERT["tinybert_mb"]
PUBLISHED_TINYBERT["student_vs_teacher_artifact_ratio"] = PUBLISHED_TINYBERT["tinybert_mb"] / PUBLISHED_TINYBERT["bert_base_mb"]

# The compressed SQuAD 2.0 system (issue 5).
PUBLISHED_SQUAD: dict[str, Any] = {
    "layers": "12 -> 6 -> 3 layers at F1 76.8 / 72.7",
    "f1_6_of_12_layers": 76.8,
    "f1_3_of_12_layers": 72.7,
    "vocab_25_f1": 70.2,
    "bits": {16: "free (no loss)", 10: "free (no loss)", 8: "F1 -0.8 vs start", 6: "F1 -16 vs start", 4: "collapse"},
    "sketch": "with fine-tuning: no loss",
    "final_mb": (21, 58),
    "share_points_per_halving": 4.0,  # 76.8 at 6 of 12 layers, 72.7 at 3: about 4 F1 points per halving
}

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
# Issue 20: the TinyBERT study's teachers (packaged model, whole bundled training splits) and what the
# 3-layer student keeps of its teacher, with and without data augmentation.
TEACHER_TARGETS: dict[str, float] = {"sst2": 0.88, "cola": 0.35, "stsb": 0.85, "rte": 0.62, "qnli": 0.83}
STUDENT_RETENTION = 0.95

# Our reading of issue 5's "qualitative shape": 16 and 10 bits within this many points of the
# start, and the lowest bit width at or below 6 at least this many points below it.
SHAPE_FREE_POINTS = 1.0
SHAPE_DROP_POINTS = 5.0
