"""Shared pieces of the step tests: tiny headed models, tiny in-memory tasks, a StepContext.

``ensure_features()`` installs a minimal private stand-in for ``core.tasks.features`` only while
the engine's real module is not on this branch yet; once it is, the real one is used.
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path
from typing import Any

from core.models import ModelRef, load_model, load_tokenizer
from core.steps.base import ModelState, StepContext
from core.tasks.base import Task
from tests.helpers import tiny_bert_folder

POS = ["the good movie", "a very good film !", "good , good", "the film was good", "a good movie ."]
NEG = ["the bad movie", "a very bad film !", "bad , bad", "the film was bad", "not a good movie ."]


def _pairs(n: int) -> tuple[list[str], list[int]]:
    texts, labels = [], []
    for i in range(n):
        if i % 2 == 0:
            texts.append(POS[(i // 2) % len(POS)])
            labels.append(1)
        else:
            texts.append(NEG[(i // 2) % len(NEG)])
            labels.append(0)
    return texts, labels


def _accuracy(predictions: Any, references: Any) -> dict[str, float]:
    return {"accuracy": sum(int(p == r) for p, r in zip(predictions, references, strict=True)) / len(references)}


def tiny_task(head: str = "classification", n: int = 24) -> Task:
    """A task with a few dozen short sentences (no files): classification, regression or qa."""
    import datasets

    def loader(split: str) -> Any:
        texts, labels = _pairs(n if split == "train" else n // 2)
        if head == "classification":
            return datasets.Dataset.from_dict({"text": texts, "label": labels})
        if head == "regression":
            return datasets.Dataset.from_dict({"text": texts, "label": [5.0 * y for y in labels]})
        contexts = [f"{t} and the film is {'good' if y else 'bad'} ." for t, y in zip(texts, labels, strict=True)]
        answers = []
        for c, y in zip(contexts, labels, strict=True):
            word = "good" if y else "bad"
            start = c.rindex(word)
            answers.append({"text": [word], "answer_start": [start]})
        return datasets.Dataset.from_dict(
            {
                "id": [str(i) for i in range(len(texts))],
                "question": ["is the film good or bad ?"] * len(texts),
                "context": contexts,
                "answers": answers,
            }
        )

    return Task(
        id=f"tiny_{head}",
        title=f"tiny {head}",
        family="squad" if head == "qa" else "glue",
        head=head,
        num_labels=1 if head == "regression" else 2,
        metrics=("accuracy",),
        primary_metric="accuracy",
        loader=loader,
        scorer=_accuracy,
    )


def tiny_state(tmp_path: Path, head: str = "classification", *, layers: int = 2, hidden: int = 32,
               heads: int = 2, seed: int = 0, name: str = "tiny") -> ModelState:
    folder = tmp_path / f"{name}_{layers}_{hidden}_{seed}"
    if not (folder / "config.json").exists():
        tiny_bert_folder(folder, layers=layers, hidden=hidden, heads=heads, seed=seed)
        _fix_tokenizer(folder)
    ref = ModelRef.parse(str(folder))
    import torch

    torch.manual_seed(seed)  # the freshly initialised head
    model = load_model(ref, head, num_labels=1 if head == "regression" else 2).eval()
    return ModelState(model=model, tokenizer=load_tokenizer(ref), task=f"tiny_{head}", head=head)


def _fix_tokenizer(folder: Path) -> None:
    """tests.helpers.tiny_tokenizer passes ``vocab_file=``, which transformers 5 ignores (every word
    becomes [UNK]); re-save the folder's tokenizer built from the vocabulary itself."""
    from transformers import BertTokenizerFast

    from tests.helpers import TINY_VOCAB

    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(TINY_VOCAB)}, do_lower_case=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        (folder / name).unlink(missing_ok=True)
    tok.save_pretrained(str(folder))


def make_ctx(tmp_path: Path, task: Task, seed: int = 0, **kw: Any) -> StepContext:
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    return StepContext(seed=seed, task=task, scratch=scratch, **kw)


def sample_batch(tokenizer: Any, head: str = "classification") -> dict[str, Any]:
    if head == "qa":
        return dict(tokenizer(["is the film good ?", "what film ?"], ["the good film is good .", "a bad movie ."],
                              return_tensors="pt", padding=True))
    return dict(tokenizer(["the good movie", "a bad film !", "not very good"], return_tensors="pt", padding=True))


def outputs(model: Any, batch: dict[str, Any]) -> Any:
    """The head's output tensor(s) concatenated, for exact comparisons."""
    import torch

    with torch.inference_mode():
        out = model(**batch)
    if getattr(out, "logits", None) is not None:
        return out.logits
    return torch.cat([out.start_logits, out.end_logits], dim=-1)


# --- a private stand-in for core.tasks.features until the engine's module is merged ---------
def _train_features(task: Task, tokenizer: Any, dataset: Any, *, max_length: int = 128, doc_stride: int = 128) -> Any:
    import datasets

    if task.head == "qa":
        enc = tokenizer(list(dataset["question"]), list(dataset["context"]), truncation="only_second",
                        max_length=max_length, return_offsets_mapping=True)
        starts, ends = [], []
        for i, answers in enumerate(dataset["answers"]):
            s_char = answers["answer_start"][0]
            e_char = s_char + len(answers["text"][0])
            seq = enc.sequence_ids(i)
            s_tok = e_tok = 0
            for t, (a, b) in enumerate(enc["offset_mapping"][i]):
                if seq[t] != 1:
                    continue
                if a <= s_char < b:
                    s_tok = t
                if a < e_char <= b:
                    e_tok = t
            starts.append(s_tok)
            ends.append(e_tok)
        cols = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
        return datasets.Dataset.from_dict({**cols, "start_positions": starts, "end_positions": ends})
    pair = list(dataset["text_pair"]) if "text_pair" in dataset.column_names else None
    enc = tokenizer(list(dataset["text"]), pair, truncation=True, max_length=max_length)
    cols = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
    labels = [float(x) for x in dataset["label"]] if task.head == "regression" else [int(x) for x in dataset["label"]]
    return datasets.Dataset.from_dict({**cols, "labels": labels})


def _collate(tokenizer: Any) -> Any:
    import torch

    def fn(rows: list[dict[str, Any]]) -> dict[str, Any]:
        inputs = [{k: r[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in r} for r in rows]
        batch = dict(tokenizer.pad(inputs, return_tensors="pt"))
        for key in ("labels", "start_positions", "end_positions"):
            if key in rows[0]:
                batch[key] = torch.tensor([r[key] for r in rows])
        return batch

    return fn


def ensure_features() -> None:
    try:
        importlib.import_module("core.tasks.features")
    except ModuleNotFoundError:
        module = types.ModuleType("core.tasks.features")
        module.train_features = _train_features  # type: ignore[attr-defined]
        module.collate = _collate  # type: ignore[attr-defined]
        sys.modules["core.tasks.features"] = module
