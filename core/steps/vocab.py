"""Vocabulary reduction: keep the most frequent WordPieces, rebuild tokenizer and embeddings together.

Pieces are ranked by how often the current tokenizer produces them on a corpus (default: the
task's training text). Special tokens and every single-character piece with its ``##`` form are
always kept, so any text the old tokenizer could spell still tokenizes (into more, shorter
pieces). The kept pieces keep their relative order; the embedding matrix is gathered by old id,
so a kept piece's vector is unchanged. Works on WordPiece (BERT-family) tokenizers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.params import StepConfig, param
from core.state import FLOAT, ModelState, StepContext
from core.steps.base import Step, register


@dataclass(frozen=True)
class VocabConfig(StepConfig):
    keep_percent: float = param(
        25.0,
        label="Keep (% of vocabulary)",
        help="Share of the vocabulary to keep, most frequent first. The paper kept 25 % at a small cost.",
        min=0,
        min_exclusive=True,
        max=100,
        unit="%",
    )
    keep_tokens: int | None = param(
        None,
        label="Keep (pieces)",
        help="Exact vocabulary size to keep; overrides the percentage when set.",
        min=1,
    )
    corpus_limit: int | None = param(
        None,
        label="Corpus examples",
        help="Count piece frequencies on at most this many training examples (empty = all).",
        min=1,
        sweepable=False,
    )


def corpus_texts(task: Any, split: str, limit: int | None = None) -> list[str]:
    """The texts of a task split the model reads: text (+ pair), or question + context for QA."""
    data = task.load(split)
    if limit is not None:
        data = data.select(range(min(limit, len(data))))
    columns = set(data.column_names)
    if {"question", "context"} <= columns:
        contexts = list(dict.fromkeys(data["context"]))  # each paragraph once, in order
        return list(data["question"]) + contexts
    texts = list(data["text"])
    if "text_pair" in columns:
        texts += [t for t in data["text_pair"] if t]
    return texts


def eval_inputs(task: Any, limit: int | None = None) -> tuple[list[str], list[str] | None]:
    """(first texts, second texts or None): the evaluation inputs as the model sees them."""
    data = task.load("dev")
    if limit is not None:
        data = data.select(range(min(limit, len(data))))
    columns = set(data.column_names)
    if {"question", "context"} <= columns:
        return list(data["question"]), list(data["context"])
    return list(data["text"]), (list(data["text_pair"]) if "text_pair" in columns else None)


def token_counts(tokenizer: Any, texts: list[str]) -> Any:
    """How often each id occurs when ``tokenizer`` splits ``texts`` (no special tokens)."""
    import numpy as np

    counts = np.zeros(max(len(tokenizer), max(tokenizer.get_vocab().values()) + 1), dtype=np.int64)
    for start in range(0, len(texts), 2048):
        ids = tokenizer(texts[start : start + 2048], add_special_tokens=False)["input_ids"]
        flat = np.fromiter((i for seq in ids for i in seq), dtype=np.int64)
        counts += np.bincount(flat, minlength=len(counts))[: len(counts)]
    return counts


def mandatory_ids(tokenizer: Any) -> set[int]:
    """Special tokens and every single-character piece and its ## continuation."""
    vocab = tokenizer.get_vocab()
    keep = {vocab[t] for t in tokenizer.all_special_tokens if t in vocab}
    for token, index in vocab.items():
        if len(token) == 1 or (token.startswith("##") and len(token) == 3):
            keep.add(index)
    return keep


def choose_ids(counts: Any, mandatory: set[int], size: int, valid: set[int] | None = None) -> list[int]:
    """The kept old ids, ascending: the mandatory ones, then the most frequent (ties: lower id).

    ``valid`` are the ids the vocabulary really uses (a vocab file with a duplicate line leaves a gap).
    """
    import numpy as np

    order = np.lexsort((np.arange(len(counts)), -counts))  # by count desc, then id asc
    chosen = set(mandatory)
    for index in order.tolist():
        if len(chosen) >= size:
            break
        if valid is None or index in valid:
            chosen.add(index)
    return sorted(chosen)


def _remap_json(node: Any, mapping: dict[int, int]) -> Any:
    """Rewrite token ids inside a tokenizer.json post-processor (TemplateProcessing / BertProcessing)."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "ids" and isinstance(value, list):
                out[key] = [mapping[i] for i in value]
            elif key in ("sep", "cls") and isinstance(value, list) and len(value) == 2 and isinstance(value[1], int):
                out[key] = [value[0], mapping[value[1]]]
            else:
                out[key] = _remap_json(value, mapping)
        return out
    if isinstance(node, list):
        return [_remap_json(v, mapping) for v in node]
    return node


def reduced_tokenizer(tokenizer: Any, kept: list[int], folder: Path) -> Any:
    """A tokenizer whose vocabulary is ``kept`` (old ids, ascending), renumbered 0..k-1."""
    from transformers import AutoTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(folder))
    path = folder / "tokenizer.json"
    if not path.is_file():
        raise ConfigError("vocab.reduce needs a fast tokenizer (tokenizer.json)", step="vocab.reduce")
    spec = json.loads(path.read_text(encoding="utf-8"))
    if spec.get("model", {}).get("type") != "WordPiece":
        raise ConfigError(
            f"vocab.reduce supports WordPiece (BERT-family) tokenizers; this one is {spec.get('model', {}).get('type')}",
            step="vocab.reduce",
        )
    mapping = {old: new for new, old in enumerate(kept)}
    id_to_token = {i: t for t, i in tokenizer.get_vocab().items()}
    spec["model"]["vocab"] = {id_to_token[old]: new for old, new in mapping.items()}
    spec["added_tokens"] = [
        {**tok, "id": mapping[tok["id"]]} for tok in spec.get("added_tokens", []) if tok["id"] in mapping
    ]
    spec["post_processor"] = _remap_json(spec.get("post_processor"), mapping)
    path.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    vocab_txt = folder / "vocab.txt"
    if vocab_txt.is_file():
        vocab_txt.write_text("".join(id_to_token[old] + "\n" for old in kept), encoding="utf-8")
    new = AutoTokenizer.from_pretrained(str(folder))
    expected = {id_to_token[old]: new_id for old, new_id in mapping.items()}
    if new.get_vocab() != expected:
        raise ConfigError("The rebuilt tokenizer does not have the reduced vocabulary", step="vocab.reduce")
    return new


def gather_embeddings(model: Any, kept: list[int]) -> None:
    """Keep only the rows ``kept`` (old ids) of the input embeddings, and of a tied/untied LM head."""
    import torch
    from torch import nn

    index = torch.tensor(kept, dtype=torch.long)
    mapping = {old: new for new, old in enumerate(kept)}
    old = model.get_input_embeddings()
    pad = old.padding_idx if old.padding_idx is not None and old.padding_idx in mapping else None
    new = nn.Embedding(len(kept), old.embedding_dim, padding_idx=None if pad is None else mapping[pad])
    with torch.no_grad():
        new.weight = nn.Parameter(old.weight.detach()[index].clone(), requires_grad=old.weight.requires_grad)
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    model.set_input_embeddings(new)
    if out is not None:
        tied = out.weight is old.weight
        with torch.no_grad():
            out.weight = new.weight if tied else nn.Parameter(out.weight.detach()[index].clone())
            if getattr(out, "bias", None) is not None and out.bias.shape[0] == old.num_embeddings:
                out.bias = nn.Parameter(out.bias.detach()[index].clone())
        out.out_features = len(kept)
    model.config.vocab_size = len(kept)
    if getattr(model.config, "pad_token_id", None) is not None:
        model.config.pad_token_id = mapping.get(model.config.pad_token_id, 0)


def _lengths_and_unk(tokenizer: Any, first: list[str], second: list[str] | None) -> tuple[float, float]:
    """(mean tokens per example, share of [UNK] pieces) with special tokens, untruncated."""
    import numpy as np

    ids = tokenizer(first, second, add_special_tokens=True, verbose=False)["input_ids"]  # untruncated on purpose
    lengths = np.array([len(x) for x in ids])
    unk = tokenizer.unk_token_id
    unks = sum(seq.count(unk) for seq in ids) if unk is not None else 0
    return float(lengths.mean()) if len(ids) else 0.0, unks / max(1, int(lengths.sum()))


@register
class VocabReduce(Step):
    id = "vocab.reduce"
    title = "Vocabulary reduction"
    category = "Structure"
    description = (
        "Keeps the most frequent WordPieces of the task's training text (plus special tokens and all "
        "single characters, so everything still tokenizes) and shrinks the embedding matrix to match. "
        "Texts become a little longer; the artifact carries the reduced tokenizer."
    )
    config_cls = VocabConfig
    requires = frozenset({FLOAT})

    @classmethod
    def vocabulary_after(cls, config: dict[str, Any], incoming: Any, facts: Any) -> Any:
        return None  # which pieces stay depends on the training text: known only after running

    def apply(self, state: ModelState, ctx: StepContext) -> ModelState:
        cfg: VocabConfig = self.config  # type: ignore[assignment]
        tokenizer = state.tokenizer
        before = len(tokenizer)
        size = cfg.keep_tokens if cfg.keep_tokens is not None else max(1, round(before * cfg.keep_percent / 100))
        ctx.progress(0.0, "counting pieces in the training text")
        texts = corpus_texts(ctx.task, "train", cfg.corpus_limit)
        ctx.check_cancelled()
        counts = token_counts(tokenizer, texts)
        mandatory = mandatory_ids(tokenizer)
        if size < len(mandatory):
            ctx.log(
                f"asked for {size} pieces, but special tokens and single characters alone are {len(mandatory)}: "
                f"keeping {len(mandatory)}"
            )
        kept = choose_ids(counts, mandatory, max(size, len(mandatory)), set(tokenizer.get_vocab().values()))
        ctx.check_cancelled()
        ctx.progress(0.4, f"rebuilding the tokenizer with {len(kept)} pieces")
        new_tokenizer = reduced_tokenizer(tokenizer, kept, ctx.scratch / "vocab_reduce_tokenizer")
        embeddings = state.model.get_input_embeddings()
        rows, dim, element = embeddings.num_embeddings, embeddings.embedding_dim, embeddings.weight.element_size()
        gather_embeddings(state.model, kept)
        ctx.check_cancelled()
        ctx.progress(0.7, "measuring token counts on the evaluation text")
        first, second = eval_inputs(ctx.task)
        len_before, unk_before = _lengths_and_unk(tokenizer, first, second)
        len_after, unk_after = _lengths_and_unk(new_tokenizer, first, second)
        total = int(counts.sum())
        report = {
            "vocab_before": before,
            "vocab_after": len(kept),
            "mandatory_pieces": len(mandatory),
            "params_saved": (rows - len(kept)) * dim,
            "bytes_saved": (rows - len(kept)) * dim * element,
            "corpus_texts": len(texts),
            "corpus_coverage": float(counts[kept].sum()) / total if total else 1.0,
            "tokens_per_example_before": len_before,
            "tokens_per_example_after": len_after,
            "tokens_increase_pct": 100 * (len_after / len_before - 1) if len_before else 0.0,
            "unk_rate_before": unk_before,
            "unk_rate_after": unk_after,
        }
        ctx.log(
            f"vocabulary {before} -> {len(kept)}; tokens per example {len_before:.1f} -> {len_after:.1f}; "
            f"[UNK] rate {unk_before:.4%} -> {unk_after:.4%}"
        )
        ctx.progress(1.0, "vocabulary reduced")
        return state.derive(state.model, tokenizer=new_tokenizer, info={**state.info, self.id: report})
