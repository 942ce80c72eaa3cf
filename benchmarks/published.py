"""The issues' targets, and the published figures (from core.published) the benchmarks compare with.

They appear only in columns and tables labelled "published" or "target"; nothing here is ever
mixed into a measured column. Sources: /work/shared/DESIGN.md, issue 4 (the TinyBERT study),
issue 5 (the SQuAD system), issues 3, 6 and 7 (engine, cache and GUI targets).
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
# Our reading of issue 5's "qualitative shape": 16 and 10 bits within this many points of the
# start, and the lowest bit width at or below 6 at least this many points below it.
SHAPE_FREE_POINTS = 1.0
SHAPE_DROP_POINTS = 5.0
