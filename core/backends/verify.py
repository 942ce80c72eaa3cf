"""Round-trip check: the reloaded exported file against the torch model, on real dev rows.

A seeded probe of the task's dev split runs through both; the report gives the largest logit
difference and the share of rows whose prediction agrees (classification: the arg-max class;
regression: the score within ``regression_tolerance``; QA: both the start and the end arg-max).
Below ``min_agreement`` the export is flagged: it is not that variant, and it must not be timed
or scored as if it were.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from core.backends.support import title

MIN_AGREEMENT = 0.995
REGRESSION_TOLERANCE = 0.01  # label units (STS-B scores run 0-5)
PROBE_SIZE = 64


@dataclass
class RoundTrip:
    """How an exported file compares with the torch model it came from."""

    backend: str
    passed: bool
    agreement: float  # fraction of probe rows with the same prediction
    max_abs_diff: float  # largest |backend - torch| over real (unpadded) output positions
    mean_abs_diff: float
    examples: int
    min_agreement: float
    tolerance: str  # what "agree" means for this head
    reason: str  # one sentence for the user
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def probe_batches(task: Any, tokenizer: Any, *, size: int = PROBE_SIZE, seed: int = 0, max_length: int = 128,
                  batch_size: int = 16, split: str = "dev") -> list[dict[str, Any]]:
    """Padded batches of a seeded sample of ``split`` (varied lengths, so padding is exercised)."""
    from core.measure.evaluation import subset_indices
    from core.tasks.features import encode_texts, pad_batch

    dataset = task.load(split)
    indices = subset_indices(dataset.num_rows, size, seed)
    dataset = dataset.select(indices)
    if task.head == "qa":
        from core.tasks import squad

        rows = squad.eval_features(tokenizer, dataset, max_length=max_length, doc_stride=max(16, max_length // 2)).rows
        rows = rows[:size]
    else:
        enc = encode_texts(task, tokenizer, dataset, max_length=max_length)
        rows = [{k: enc[k][i] for k in enc} for i in range(len(enc["input_ids"]))]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return [pad_batch(rows[i : i + batch_size], pad_id) for i in range(0, len(rows), batch_size)]


def compare(reference: Any, candidate: Any, batches: list[dict[str, Any]], head: str, *, backend: str,
            min_agreement: float = MIN_AGREEMENT, regression_tolerance: float = REGRESSION_TOLERANCE) -> RoundTrip:
    """Run ``batches`` through two sessions and compare their outputs (see the module doc)."""
    import numpy as np

    started = time.perf_counter()
    agree = total = 0
    max_diff = 0.0
    diff_sum = diff_count = 0.0
    for batch in batches:
        ref = reference.run(batch)
        got = candidate.run(batch)
        mask = np.asarray(batch["attention_mask"]).astype(bool)
        for name, ref_value in ref.items():
            value = got[name]
            if value.shape != ref_value.shape:
                return _shape_mismatch(backend, name, value.shape, ref_value.shape, min_agreement)
            diff = np.abs(value.astype(np.float64) - ref_value.astype(np.float64))
            if head == "qa":
                diff = diff[mask]
            max_diff = max(max_diff, float(diff.max(initial=0.0)))
            diff_sum += float(diff.sum())
            diff_count += diff.size
        if head == "classification":
            same = ref["logits"].argmax(-1) == got["logits"].argmax(-1)
        elif head == "regression":
            same = np.abs(ref["logits"][:, 0] - got["logits"][:, 0]) <= regression_tolerance
        else:
            same = (ref["start_logits"].argmax(-1) == got["start_logits"].argmax(-1)) & (
                ref["end_logits"].argmax(-1) == got["end_logits"].argmax(-1)
            )
        agree += int(same.sum())
        total += int(same.size)
    agreement = agree / total if total else 0.0
    tolerance = {
        "classification": "same arg-max class",
        "regression": f"|score difference| <= {regression_tolerance:g}",
        "qa": "same arg-max start and end token",
    }[head]
    passed = total > 0 and agreement >= min_agreement
    name = title(backend)
    if not total:
        reason = f"{name}: no probe rows to compare"
    elif passed:
        reason = (f"{name} export agrees with the torch model on {agree}/{total} probe rows "
                  f"(largest output difference {max_diff:.2e})")
    else:
        reason = (f"{name} export disagrees with the torch model: {agree}/{total} probe rows agree "
                  f"({agreement:.1%} < {min_agreement:.1%}; largest output difference {max_diff:.3g}); "
                  "it is flagged and not measured as this variant")
    return RoundTrip(
        backend=backend, passed=passed, agreement=agreement, max_abs_diff=max_diff,
        mean_abs_diff=diff_sum / diff_count if diff_count else 0.0, examples=total, min_agreement=min_agreement,
        tolerance=tolerance, reason=reason, seconds=time.perf_counter() - started,
    )  # fmt: skip


def _shape_mismatch(backend: str, name: str, got: Any, want: Any, min_agreement: float) -> RoundTrip:
    return RoundTrip(
        backend=backend, passed=False, agreement=0.0, max_abs_diff=float("inf"), mean_abs_diff=float("inf"),
        examples=0, min_agreement=min_agreement, tolerance="same output shapes",
        reason=f"{title(backend)} export returns {name} of shape {tuple(got)}, the torch model {tuple(want)}; "
        "it is flagged and not measured as this variant",
    )  # fmt: skip


def check_round_trip(model: Any, session: Any, tokenizer: Any, task: Any, *, probe_size: int = PROBE_SIZE,
                     seed: int = 0, max_length: int = 128, min_agreement: float = MIN_AGREEMENT,
                     regression_tolerance: float = REGRESSION_TOLERANCE) -> RoundTrip:
    """Compare ``session`` (a reloaded exported file) with the torch ``model`` on ``task``'s dev rows."""
    from core.backends.session import TorchSession

    reference = TorchSession(model, task.head, threads=session.threads, input_names=session.input_names)
    batches = probe_batches(task, tokenizer, size=probe_size, seed=seed, max_length=max_length)
    return compare(reference, session, batches, task.head, backend=session.backend, min_agreement=min_agreement,
                   regression_tolerance=regression_tolerance)
