"""Shared pieces of the step tests: tiny headed models, tiny in-memory tasks, a StepContext."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from core.models import ModelRef, load_model, load_tokenizer
from core.state import ModelState, StepContext
from core.tasks import get_task
from core.tasks.base import Task
from tests.helpers import SPELLING_VOCAB, TINY_VOCAB, tiny_bert_folder

# Tiny models run fastest on one thread, and the test machine is shared: no thread contention.
torch.set_num_threads(1)

POS = ["the good movie", "a very good film !", "good , good", "the film was good", "a good movie ."]
NEG = ["the bad movie", "a very bad film !", "bad , bad", "the film was bad", "not a good movie ."]
TEXTS = ["the good movie", "a bad film !", "not very good , was it", "movies and films"]


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
               heads: int = 2, seed: int = 0, name: str = "tiny", vocab: list[str] = TINY_VOCAB,
               task: str | None = None) -> ModelState:
    """A tiny BERT with a fresh ``head``; its task id is ``task`` or the in-memory ``tiny_<head>``."""
    folder = tmp_path / f"{name}_{layers}_{hidden}_{seed}"
    if not (folder / "config.json").exists():
        tiny_bert_folder(folder, layers=layers, hidden=hidden, heads=heads, seed=seed, vocab=vocab)
    ref = ModelRef.parse(str(folder))
    torch.manual_seed(seed)  # the freshly initialised head
    model = load_model(ref, head, num_labels=1 if head == "regression" else 2).eval()
    return ModelState(model=model, tokenizer=load_tokenizer(ref), task=task or f"tiny_{head}", head=head)


def sst2_tiny_state(tmp_path: Path, *, layers: int = 2, hidden: int = 32, seed: int = 0) -> ModelState:
    """A tiny SST-2 classifier whose vocabulary can spell any sentence of the real task."""
    return tiny_state(tmp_path, layers=layers, hidden=hidden, seed=seed, name="spelling", vocab=SPELLING_VOCAB,
                      task="sst2")


def minilm_state(head: str = "classification") -> ModelState:
    """The packaged default model with a fresh SST-2 or SQuAD head."""
    ref = ModelRef.parse("all-MiniLM-L6-v2")
    model = load_model(ref, head, num_labels=2).eval()
    return ModelState(model=model, tokenizer=load_tokenizer(ref), task="sst2" if head == "classification" else "squad_v2",
                      head=head)


def make_ctx(tmp_path: Path, task: Task | str = "sst2", seed: int = 0, **kw: Any) -> StepContext:
    """A StepContext on ``task`` (a Task, or the id of a registered one) with a scratch folder."""
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    return StepContext(seed=seed, task=task if isinstance(task, Task) else get_task(task), scratch=scratch, **kw)


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


def logits(state_or_model: Any, tokenizer: Any, texts: list[str] = TEXTS) -> Any:
    """Classification logits, or a QA model's start logits, on ``texts``."""
    model = getattr(state_or_model, "model", state_or_model)
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    with torch.inference_mode():
        out = model(**batch)
    return out.logits if hasattr(out, "logits") else out.start_logits
