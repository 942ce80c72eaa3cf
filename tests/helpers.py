"""Small real models built from a config in code, for fast unit tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + [
    "the", "a", "good", "bad", "movie", "film", "is", "was", "not", "very", "##s", "##ing", "##ly", ".", ",", "!",
]


# Every letter and digit also as a ## continuation, so any lower-case ASCII word can be spelled
# (as in real BERT vocabularies): for the vocabulary step and tests that tokenize real SST-2 text.
_CHARS = [chr(c) for c in range(ord("a"), ord("z") + 1)] + list("0123456789'-")
SPELLING_VOCAB = list(dict.fromkeys(TINY_VOCAB + _CHARS + ["##" + c for c in _CHARS] + ["movie", "##ie", "and"]))


def tiny_tokenizer(folder: Path, vocab: list[str] = TINY_VOCAB) -> Any:
    from transformers import BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return BertTokenizerFast(vocab=str(folder / "vocab.txt"), do_lower_case=True)  # v5: vocab=, not vocab_file=


def tiny_bert_folder(folder: Path, layers: int = 2, hidden: int = 32, heads: int = 2, seed: int = 0,
                     vocab: list[str] = TINY_VOCAB) -> Path:
    """Write a real (randomly initialised) BertModel folder that ModelRef can load as 'local'."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    tok = tiny_tokenizer(folder, vocab)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden * 2,
        max_position_embeddings=128,
    )
    model = BertModel(config)
    model.save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder
