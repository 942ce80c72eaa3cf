"""The evaluation loop: length-sorted batches, dynamic padding, pinned threads, official metric.

Rows are tokenized once without padding, sorted by length so each batch holds similar lengths,
padded only to the batch's longest row, and run under ``torch.inference_mode``. Predictions are
put back in the dataset's original order, so they line up with the references and with other
variants' predictions (for a disagreement view).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from core.errors import DataError, StepCancelled

ProgressFn = Callable[[float, str], None]
CancelledFn = Callable[[], bool]


@dataclass
class EvalResult:
    """One evaluation: metrics, the primary one, per-example predictions and the wall time."""

    metrics: dict[str, float]
    primary: float
    predictions: list[Any]
    examples: int
    seconds: float  # wall time of the whole evaluation (tokenize + forward + decode + score)
    note: str = ""
    split: str = "dev"
    threads: int = 0
    batch_size: int = 0
    max_length: int = 0
    references: list[Any] = field(default_factory=list)  # gold labels / answers, aligned with predictions
    indices: list[int] = field(default_factory=list)  # rows of the split that were evaluated
    # How sure the model was of each prediction: classification the largest softmax probability,
    # regression the predicted value, QA the best span's score minus the null score (-null_odds).
    confidences: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def subset_indices(n: int, limit: int | None, sample_seed: int | None) -> list[int]:
    """Rows to evaluate: all, the first ``limit``, or a seeded sample of ``limit`` (kept in order)."""
    if limit is None or limit >= n:
        return list(range(n))
    if limit < 1:
        raise DataError(f"limit must be at least 1, got {limit}")
    if sample_seed is None:
        return list(range(limit))
    return sorted(random.Random(sample_seed).sample(range(n), limit))


@contextmanager
def pinned_threads(threads: int | None) -> Iterator[int]:
    """Run with ``threads`` intra-op threads (or the current count) and restore the old count."""
    import torch

    previous = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            raise DataError(f"threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)


def run_sorted(
    model: Any,
    rows: Sequence[dict[str, Any]],
    *,
    pad_token_id: int,
    batch_size: int,
    outputs: Callable[[Any], Any],
    progress: ProgressFn | None = None,
    cancelled: CancelledFn | None = None,
) -> list[Any]:
    """Forward ``rows`` in length-sorted, dynamically padded batches; per-row outputs in input order.

    ``outputs(model_output)`` turns one batch's model output into a sequence with one numpy
    value per row. Must be called under ``torch.inference_mode`` with the model in eval mode.
    """
    from core.tasks.features import pad_batch

    if batch_size < 1:
        raise DataError(f"batch_size must be at least 1, got {batch_size}")
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]["input_ids"]), reverse=True)
    results: list[Any] = [None] * len(rows)
    for start in range(0, len(order), batch_size):
        if cancelled is not None and cancelled():
            raise StepCancelled("Evaluation cancelled by the user")
        idx = order[start : start + batch_size]
        batch = pad_batch([rows[i] for i in idx], pad_token_id)
        values = outputs(model(**batch))
        for i, value in zip(idx, values, strict=True):
            results[i] = value
        if progress is not None:
            done = min(start + batch_size, len(order))
            progress(done / len(order), f"evaluated {done}/{len(order)}")
    return results


def evaluate(
    model: Any,
    tokenizer: Any,
    task: Any,
    split: str = "dev",
    *,
    batch_size: int = 32,
    max_length: int = 128,
    limit: int | None = None,
    sample_seed: int | None = None,
    threads: int | None = None,
    progress: ProgressFn | None = None,
    cancelled: CancelledFn | None = None,
    doc_stride: int = 128,
) -> EvalResult:
    """Score ``model`` on ``task``'s ``split`` (or a subset of it) with the task's official metric."""

    started = time.perf_counter()
    dataset = task.load(split)
    indices = subset_indices(dataset.num_rows, limit, sample_seed)
    if len(indices) != dataset.num_rows:
        dataset = dataset.select(indices)
    with pinned_threads(threads) as used_threads:
        predictions, references, confidences = predict_with_confidences(
            model, tokenizer, task, dataset, batch_size=batch_size, max_length=max_length, doc_stride=doc_stride,
            progress=progress, cancelled=cancelled)
    scores = task.score(predictions, references)
    note = task.note
    if len(indices) < task.load(split).num_rows:
        how = f"seeded sample (seed {sample_seed})" if sample_seed is not None else "first rows"
        note = "; ".join(filter(None, [note, f"subset: {len(indices)} of {split} ({how})"]))
    return EvalResult(
        metrics=scores,
        primary=float(scores[task.primary_metric]),
        predictions=predictions,
        examples=len(indices),
        seconds=time.perf_counter() - started,
        note=note,
        split=split,
        threads=used_threads,
        batch_size=batch_size,
        max_length=max_length,
        references=list(references),
        indices=indices,
        confidences=confidences,
    )


def predict(model: Any, tokenizer: Any, task: Any, dataset: Any, *, batch_size: int = 32, max_length: int = 128,
            doc_stride: int = 128, progress: ProgressFn | None = None,
            cancelled: CancelledFn | None = None) -> tuple[list[Any], list[Any]]:
    """(predictions, references) of ``model`` on the rows of ``dataset`` (a task-shaped datasets.Dataset),
    in eval mode, restoring the model's mode afterwards."""
    predictions, references, _ = predict_with_confidences(model, tokenizer, task, dataset, batch_size=batch_size,
                                                          max_length=max_length, doc_stride=doc_stride,
                                                          progress=progress, cancelled=cancelled)
    return predictions, references


def predict_with_confidences(model: Any, tokenizer: Any, task: Any, dataset: Any, *, batch_size: int = 32,
                             max_length: int = 128, doc_stride: int = 128, progress: ProgressFn | None = None,
                             cancelled: CancelledFn | None = None) -> tuple[list[Any], list[Any], list[float]]:
    """As :func:`predict`, plus each prediction's confidence (top softmax probability; regression the
    value; QA the span's margin over no answer)."""
    import torch

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            if task.head == "qa":
                predictions, references = _evaluate_qa(model, tokenizer, dataset, pad_id, batch_size, max_length,
                                                       doc_stride, progress, cancelled)
                return predictions, references, [-float(p["null_odds"]) for p in predictions]
            predictions, confidences = _evaluate_text(model, tokenizer, task, dataset, pad_id, batch_size, max_length,
                                                      progress, cancelled)
            return predictions, list(dataset["label"]), confidences
    finally:
        model.train(was_training)


def binary_margins(predictions: Sequence[int], confidences: Sequence[float]) -> Any:
    """Logit 1 - logit 0 of each two-class prediction, given back by its predicted class and confidence
    (the top softmax probability, as :func:`predict_with_confidences` reports it)."""
    import numpy as np

    confidences = np.asarray(confidences, dtype=float)
    p1 = np.clip(np.where(np.asarray(predictions) == 1, confidences, 1.0 - confidences), 1e-7, 1 - 1e-7)
    return np.log(p1) - np.log1p(-p1)


def _logits(output: Any) -> Any:
    return output.logits if hasattr(output, "logits") else output[0]


def _evaluate_text(
    model: Any,
    tokenizer: Any,
    task: Any,
    dataset: Any,
    pad_id: int,
    batch_size: int,
    max_length: int,
    progress: ProgressFn | None,
    cancelled: CancelledFn | None,
) -> tuple[list[Any], list[float]]:
    """Predictions (class ids or values) and their confidences, in the dataset's order."""
    from core.tasks.features import encode_texts

    enc = encode_texts(task, tokenizer, dataset, max_length=max_length)
    keys = list(enc)
    rows = [{k: enc[k][i] for k in keys} for i in range(len(enc["input_ids"]))]
    if task.head == "regression":
        values = run_sorted(
            model, rows, pad_token_id=pad_id, batch_size=batch_size,
            outputs=lambda out: _logits(out)[:, 0].float().tolist(),
            progress=progress, cancelled=cancelled,
        )  # fmt: skip
        return [float(v) for v in values], [float(v) for v in values]

    def _top(out: Any) -> list[tuple[int, float]]:
        probs = _logits(out).float().softmax(dim=-1)
        best, label = probs.max(dim=-1)
        return list(zip(label.tolist(), best.tolist(), strict=True))

    values = run_sorted(
        model, rows, pad_token_id=pad_id, batch_size=batch_size, outputs=_top,
        progress=progress, cancelled=cancelled,
    )  # fmt: skip
    return [int(label) for label, _p in values], [float(p) for _l, p in values]


def _evaluate_qa(
    model: Any,
    tokenizer: Any,
    dataset: Any,
    pad_id: int,
    batch_size: int,
    max_length: int,
    doc_stride: int,
    progress: ProgressFn | None,
    cancelled: CancelledFn | None,
) -> tuple[list[Any], list[Any]]:
    from core.tasks import squad

    feats = squad.eval_features(tokenizer, dataset, max_length=max_length, doc_stride=doc_stride)

    def _spans(out: Any) -> list[Any]:
        start = out.start_logits.float().numpy()
        end = out.end_logits.float().numpy()
        return list(zip(start, end, strict=True))

    spans = run_sorted(
        model, feats.rows, pad_token_id=pad_id, batch_size=batch_size,
        outputs=_spans, progress=progress, cancelled=cancelled,
    )  # fmt: skip
    predictions = squad.postprocess(dataset, feats, [s for s, _ in spans], [e for _, e in spans])
    return predictions, list(dataset["answers"])
