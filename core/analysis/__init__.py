"""Analyses of stored variants, beside the runner (same layer as core.run): where the accuracy goes.

- ``sensitivity``: one transform (int8, n-bit, pruning) on one part of a model at a time, measured
  against the untouched variant with paired intervals; maps stored in the database (torch inside).
- ``mixed``: per-layer bit widths (or layers kept in float) chosen from a stored map to meet a size
  or an accuracy budget; pure Python, so the window uses it directly.
- ``disagreements``: the dev examples where two variants' predictions differ, and confusion matrices.
- ``worker``: ``python -m core.analysis.worker`` runs one analysis request for the window.
"""
