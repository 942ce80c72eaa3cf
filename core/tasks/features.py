"""Turn a task's normalised dataset into model inputs, and pad batches dynamically.

``train_features`` returns a ``datasets.Dataset`` whose columns are exactly the model's forward
kwargs (input_ids, attention_mask, token_type_ids when the tokenizer makes them, and labels or
start/end positions). ``collate`` pads each batch only to its own longest row. torch and
datasets are imported inside the functions so the GUI can import this module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
TARGETS = ("labels", "start_positions", "end_positions")


def encode_texts(task: Any, tokenizer: Any, dataset: Any, *, max_length: int = 128) -> dict[str, list[Any]]:
    """Tokenize a classification/regression dataset without padding (truncated to max_length)."""
    texts = list(dataset["text"])
    pairs = list(dataset["text_pair"]) if task.pair else None
    enc = tokenizer(texts, pairs, truncation=True, max_length=max_length, padding=False)
    return {k: list(enc[k]) for k in MODEL_INPUTS if k in enc}


def train_features(task: Any, tokenizer: Any, dataset: Any, *, max_length: int = 128, doc_stride: int = 128) -> Any:
    """Model-ready training rows for ``task``; QA rows are windows with start/end positions.

    ``doc_stride`` is the token overlap between consecutive windows of a long context (QA only).
    """
    if task.head == "qa":
        from core.tasks import squad

        return squad.train_features(tokenizer, dataset, max_length=max_length, doc_stride=doc_stride)
    import datasets

    columns: dict[str, list[Any]] = encode_texts(task, tokenizer, dataset, max_length=max_length)
    if task.head == "regression":
        columns["labels"] = [float(x) for x in dataset["label"]]
    else:
        columns["labels"] = [int(x) for x in dataset["label"]]
    return datasets.Dataset.from_dict(columns)


def pad_batch(rows: Sequence[dict[str, Any]], pad_token_id: int) -> dict[str, Any]:
    """Pad ``rows`` (dicts of token lists) to the longest one and stack into int64 tensors."""
    import numpy as np
    import torch

    keys = [k for k in MODEL_INPUTS if k in rows[0]]
    longest = max(len(r["input_ids"]) for r in rows)
    out: dict[str, Any] = {}
    for key in keys:
        fill = pad_token_id if key == "input_ids" else 0
        arr = np.full((len(rows), longest), fill, dtype=np.int64)
        for i, r in enumerate(rows):
            seq = r[key]
            arr[i, : len(seq)] = seq
        out[key] = torch.from_numpy(arr)
    return out


def collate(tokenizer: Any) -> Callable[[list[dict[str, Any]]], dict[str, Any]]:
    """A collate_fn for DataLoader: dynamic padding of inputs, targets stacked as tensors."""
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def _collate(rows: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        batch = pad_batch(rows, pad_id)
        for key in TARGETS:
            if key in rows[0]:
                values = [r[key] for r in rows]
                dtype = torch.float32 if isinstance(values[0], float) else torch.long
                batch[key] = torch.tensor(values, dtype=dtype)
        return batch

    return _collate
