"""Tiny models of the four encoder families sharing one WordPiece tokenizer, and a trained tiny classifier."""

from __future__ import annotations

from pathlib import Path

import torch

from core.state import ModelState
from core.steps.base import get_step
from tests.core.steps_support import make_ctx, tiny_state, tiny_task
from tests.helpers import TINY_VOCAB, tiny_tokenizer

FAMILIES = ("bert", "roberta", "distilbert", "mpnet")


def family_state(tmp_path: Path, family: str, head: str = "classification") -> ModelState:
    """A randomly initialised tiny ``family`` model with a ``head``, and the tiny BERT tokenizer
    (ids are ids: every family embeds them; RoBERTa/MPNet are told the tokenizer's pad id)."""
    import transformers as tf

    tokenizer = tiny_tokenizer(tmp_path / f"tok_{family}")
    size = dict(vocab_size=len(TINY_VOCAB), num_hidden_layers=2, num_attention_heads=2, hidden_size=32,
                intermediate_size=64)  # fmt: skip
    pad = {"pad_token_id": tokenizer.pad_token_id}
    labels = {"num_labels": 1 if head == "regression" else 2}
    configs = {
        "bert": lambda: tf.BertConfig(**size, max_position_embeddings=128, **labels),
        "roberta": lambda: tf.RobertaConfig(**size, max_position_embeddings=130, **pad, **labels),
        "distilbert": lambda: tf.DistilBertConfig(vocab_size=size["vocab_size"], dim=32, n_layers=2, n_heads=2,
                                                  hidden_dim=64, max_position_embeddings=128, **pad, **labels),
        "mpnet": lambda: tf.MPNetConfig(**size, max_position_embeddings=130, **pad, **labels),
    }
    config = configs[family]()
    torch.manual_seed(0)
    cls = tf.AutoModelForQuestionAnswering if head == "qa" else tf.AutoModelForSequenceClassification
    model = cls.from_config(config).eval()
    return ModelState(model=model, tokenizer=tokenizer, task=f"tiny_{head}", head=head)


def trained_tiny_state(tmp_path: Path) -> ModelState:
    """The tiny BERT fine-tuned on the tiny sentiment task: confident predictions for int8 checks."""
    state = tiny_state(tmp_path, hidden=64)
    step = get_step("finetune")
    return step(step.config_cls(lr=3e-3, epochs=20, batch_size=8, train_size=None)).apply(
        state, make_ctx(tmp_path, tiny_task(n=32))
    )
