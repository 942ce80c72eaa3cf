"""Small real models built from a config in code, for fast unit tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + [
    "the", "a", "good", "bad", "movie", "film", "is", "was", "not", "very", "##s", "##ing", "##ly", ".", ",", "!",
]


def tiny_tokenizer(folder: Path) -> Any:
    from transformers import BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(TINY_VOCAB) + "\n", encoding="utf-8")
    return BertTokenizerFast(vocab=str(folder / "vocab.txt"), do_lower_case=True)  # v5: vocab=, not vocab_file=


def tiny_bert_folder(folder: Path, layers: int = 2, hidden: int = 32, heads: int = 2, seed: int = 0) -> Path:
    """Write a real (randomly initialised) BertModel folder that ModelRef can load as 'local'."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    tok = tiny_tokenizer(folder)
    config = BertConfig(
        vocab_size=len(TINY_VOCAB),
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
