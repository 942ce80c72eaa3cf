"""Latency: warm-up, repeated timed forward passes with pinned threads, p50/p90/mean.

Inputs are fixed-shape random token ids (seeded) so every variant of a model sees the same work;
ratios between variants are only meaningful when measured in the same run on the same machine.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from core.errors import DataError


@dataclass
class LatencyReport:
    p50_ms: float
    p90_ms: float
    mean_ms: float
    batch_size: int
    seq_len: int
    threads: int
    repeats: int
    warmup: int = 0
    min_ms: float = 0.0
    max_ms: float = 0.0
    times_ms: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def random_token_ids(model: Any, tokenizer: Any, batch_size: int, seq_len: int, seed: int) -> Any:
    """Seeded random ids inside both the tokenizer's vocabulary and the model's embedding table (a
    vocabulary-reduced model has fewer rows), above every special id when those come first (BERT); where a
    special id sits at the end (RoBERTa's and MPNet's <mask>) the whole range is drawn from."""
    import torch

    vocab = len(tokenizer)
    with contextlib.suppress(AttributeError, NotImplementedError, TypeError):
        vocab = min(vocab, int(model.get_input_embeddings().num_embeddings))
    special = set(tokenizer.all_special_ids)
    low = max(special, default=0) + 1 if max(special, default=0) + 1 < vocab else 0
    return torch.randint(low, vocab, (batch_size, seq_len), generator=torch.Generator().manual_seed(seed))


def probe_batch(model: Any, tokenizer: Any, *, batch_size: int, seq_len: int, seed: int) -> dict[str, Any]:
    """A fixed-shape batch of seeded random token ids (with [CLS]/[SEP] where the tokenizer has them)."""
    import torch

    ids = random_token_ids(model, tokenizer, batch_size, seq_len, seed)
    if tokenizer.cls_token_id is not None and tokenizer.sep_token_id is not None and seq_len >= 2:
        ids[:, 0] = tokenizer.cls_token_id
        ids[:, -1] = tokenizer.sep_token_id
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if "token_type_ids" in tokenizer.model_input_names:
        batch["token_type_ids"] = torch.zeros_like(ids)
    return batch


def latency(
    model: Any,
    tokenizer: Any,
    *,
    batch_size: int = 8,
    seq_len: int = 128,
    warmup: int = 3,
    repeats: int = 20,
    threads: int | None = None,
    seed: int = 0,
) -> LatencyReport:
    """Time ``repeats`` forward passes on a (batch_size, seq_len) batch after ``warmup`` untimed ones."""
    import numpy as np
    import torch

    from core.measure.evaluation import pinned_threads

    if batch_size < 1 or seq_len < 1 or repeats < 1 or warmup < 0:
        raise DataError("latency needs batch_size, seq_len and repeats >= 1 and warmup >= 0")
    batch = probe_batch(model, tokenizer, batch_size=batch_size, seq_len=seq_len, seed=seed)
    was_training = model.training
    model.eval()
    times: list[float] = []
    try:
        with pinned_threads(threads) as used, torch.inference_mode():
            for _ in range(warmup):
                model(**batch)
            for _ in range(repeats):
                start = time.perf_counter()
                model(**batch)
                times.append((time.perf_counter() - start) * 1000.0)
    finally:
        model.train(was_training)
    arr = np.asarray(times)
    return LatencyReport(
        p50_ms=float(np.percentile(arr, 50)),
        p90_ms=float(np.percentile(arr, 90)),
        mean_ms=float(arr.mean()),
        batch_size=batch_size,
        seq_len=seq_len,
        threads=used,
        repeats=repeats,
        warmup=warmup,
        min_ms=float(arr.min()),
        max_ms=float(arr.max()),
        times_ms=[float(t) for t in times],
    )
