"""Shared builders for the steps2 tests (tiny models, contexts, artifact round trips)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.models import ModelRef, load_model, load_tokenizer
from core.steps.base import ModelState, StepContext
from core.tasks import get_task
from tests.helpers import TINY_VOCAB

# A complete little WordPiece vocabulary: every letter and digit also as a ## continuation, so
# any lower-case ASCII word can be spelled (as in real BERT vocabularies).
_CHARS = [chr(c) for c in range(ord("a"), ord("z") + 1)] + list("0123456789'-")
RICH_VOCAB = list(dict.fromkeys(TINY_VOCAB + _CHARS + ["##" + c for c in _CHARS] + ["movie", "##ie", "and"]))


def tiny_bert_folder(folder: Path, layers: int = 2, hidden: int = 32, heads: int = 2, seed: int = 0) -> Path:
    """A real, randomly initialised BertModel folder with :data:`RICH_VOCAB`."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(RICH_VOCAB) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab=str(folder / "vocab.txt"), do_lower_case=True)
    config = BertConfig(vocab_size=len(RICH_VOCAB), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=hidden * 2, max_position_embeddings=128)
    BertModel(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder

TEXTS = ["the good movie", "a bad film !", "not very good , was it", "movies and films"]


def tiny_state(tmp_path: Path, layers: int = 2, hidden: int = 32, seed: int = 0) -> ModelState:
    ref = ModelRef.parse(str(tiny_bert_folder(tmp_path / f"tiny{layers}x{hidden}", layers=layers, hidden=hidden, seed=seed)))
    model = load_model(ref, "classification", num_labels=2).eval()
    return ModelState(model=model, tokenizer=load_tokenizer(ref), task="sst2", head="classification")


def minilm_state(head: str = "classification") -> ModelState:
    ref = ModelRef.parse("all-MiniLM-L6-v2")
    model = load_model(ref, head, num_labels=2).eval()
    task = "sst2" if head == "classification" else "squad_v2"
    return ModelState(model=model, tokenizer=load_tokenizer(ref), task=task, head=head)


def context(tmp_path: Path, task: str = "sst2", seed: int = 0, **kw: Any) -> StepContext:
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    return StepContext(seed=seed, task=get_task(task), scratch=scratch, **kw)


def logits(state_or_model: Any, tokenizer: Any, texts: list[str] = TEXTS) -> Any:
    import torch

    model = getattr(state_or_model, "model", state_or_model)
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    with torch.inference_mode():
        out = model(**batch)
    return out.logits if hasattr(out, "logits") else out.start_logits
