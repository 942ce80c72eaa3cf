"""TinyBERT's task data augmentation (Jiao et al. 2020, section 3.3 and algorithm 1).

Each training sentence is rewritten ``per_sentence`` (N) times: every valid word (alphabetic, not a
stop word) gets a list of ``candidates`` (K) replacements, and in each rewrite takes one of them,
drawn at random, with probability ``replace_prob`` (p_t). A rewrite seen already for the sentence is
dropped, so a sentence brings at most N new rows. The replacements of a word:

- a word the masked-language model reads as one word piece: the K whole words its MLM head predicts
  at that position, with the word masked (TinyBERT used BERT-base);
- any other word (and every word when no MLM is named): its K nearest whole words by cosine
  similarity in a word-embedding space. TinyBERT used GloVe; no package on PyPI ships GloVe (or any
  BERT-family model with a trained MLM head) for offline use, so the space here is the input
  embedding table of the model entering this step: a word is the mean of its word pieces' vectors,
  and the neighbours are the vocabulary's whole-word tokens.

The rows (originals first, each followed by its rewrites, labels kept) go to ``ModelState.data``,
which the training steps after it read instead of the task's train split (core.steps.training);
each row names the original it came from, so a training subset or a held-out slice counts
sentences, not rewrites. Pair tasks: the first text is rewritten, the second kept.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from core.errors import ConfigError
from core.params import StepConfig, param
from core.state import FLOAT, ModelState, StepContext
from core.steps.base import Step, register

STEP_ID = "augment.tinybert"
MLM_BATCH = 64  # masked copies of sentences per forward pass


@dataclass(frozen=True)
class TinyBertAugmentConfig(StepConfig):
    per_sentence: int = param(20, label="Rewrites per sentence (N)", help="New rows made from each training sentence (at most; duplicates are dropped). TinyBERT: 20", min=1, max=200)
    replace_prob: float = param(0.4, label="Replacement probability (p_t)", help="Chance that a valid word is replaced in one rewrite. TinyBERT: 0.4", min=0.0, max=1.0, min_exclusive=True)
    candidates: int = param(15, label="Candidates per word (K)", help="Replacements considered for each word. TinyBERT: 15", min=1, max=200)
    mlm_model: str = param("", label="Masked-LM model", help="Folder or hub id of a model with a trained masked-language-model head, for single-piece words; empty = none (the packaged model has no MLM head): every word takes embedding neighbours", sweepable=False, model_ref=True)
    train_size: int | None = param(None, label="Sentences", help="Training sentences drawn (seeded, the same draw as the training steps') and augmented; empty = all", min=1)
    max_words: int = param(64, label="Words per sentence", help="Only the first this many words of a sentence may be replaced (bounds the MLM work on long texts)", min=1, max=512)


@register
class TinyBertAugment(Step):
    id = STEP_ID
    title = "Data augmentation (TinyBERT)"
    category = "Distillation"
    description = ("Rewrite each training sentence N times with words from a masked-language model and from "
                   "embedding neighbours; the steps after it (distillation) train on the rewrites too.")
    config_cls = TinyBertAugmentConfig
    requires = frozenset({FLOAT})
    heads = frozenset({"classification", "regression"})
    compresses = False

    def apply(self, state: ModelState, ctx: StepContext) -> ModelState:
        cfg: TinyBertAugmentConfig = self.config  # type: ignore[assignment]
        from core.steps.training import seeded_subset, training_split

        started = time.perf_counter()
        ctx.progress(0.0, "Reading the training sentences")
        dataset, _, _ = training_split(state, ctx)
        if state.data.get("train"):
            raise ConfigError("The model entering augment.tinybert already carries prepared training rows (an "
                              "earlier augmentation step); keep one augmentation step per chain", step=self.id)
        chosen = sorted(seeded_subset(len(dataset), cfg.train_size, ctx.seed))
        rows = [dict(dataset[i]) for i in chosen]
        sentences = [str(r["text"]).split() for r in rows]
        ctx.check_cancelled()
        space = EmbeddingSpace(state.model, state.tokenizer)
        mlm = MaskedLM.load(cfg.mlm_model, self.id) if cfg.mlm_model.strip() else None
        ctx.progress(0.05, "Finding replacement candidates")
        candidates, counts = find_candidates(sentences, cfg, space, mlm, ctx)
        ctx.progress(0.95, "Writing the rewrites")
        rng = random.Random(ctx.seed)
        out: list[dict[str, Any]] = []
        made = 0
        examples: list[dict[str, str]] = []
        for origin, (row, words, cands) in enumerate(zip(rows, sentences, candidates, strict=True)):
            out.append({**row, "origin": chosen[origin], "augmented": False})
            for new in rewrites(words, cands, cfg.per_sentence, cfg.replace_prob, rng):
                out.append({**row, "text": new, "origin": chosen[origin], "augmented": True})
                made += 1
                if len(examples) < 5 and new != row["text"]:
                    examples.append({"original": str(row["text"]), "rewrite": new})
        info = {
            "sentences": len(rows), "augmented_rows": made, "rows": len(out),
            "per_sentence": cfg.per_sentence, "replace_prob": cfg.replace_prob, "candidates": cfg.candidates,
            "sources": {
                "mlm": f"masked-LM head of {cfg.mlm_model.strip()} ({type(mlm.model).__name__})" if mlm else None,
                "embedding_neighbours": (f"input embedding table of the model entering the step "
                                         f"({space.vocab_words:,} whole-word tokens of {space.vocab_size:,})"),
            },
            "words": counts, "examples": examples, "seconds": round(time.perf_counter() - started, 1),
        }
        ctx.log(f"augmented {len(rows):,} sentences into {len(out):,} rows ({made:,} rewrites; words: "
                f"{counts['mlm']:,} by the masked LM, {counts['embedding']:,} by embedding neighbours)")
        ctx.progress(1.0, "Augmented")
        return state.derive(state.model, info={**state.info, self.id: info}, data={**state.data, "train": out})


STOP_WORDS: frozenset[str] | None = None


def stop_words() -> frozenset[str]:
    """scikit-learn's English stop words (TinyBERT kept its own list of the same kind)."""
    global STOP_WORDS
    if STOP_WORDS is None:
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        STOP_WORDS = frozenset(ENGLISH_STOP_WORDS)
    return STOP_WORDS


def valid_word(word: str) -> bool:
    """A word TinyBERT may replace: letters only, not a stop word."""
    return word.isalpha() and word.lower() not in stop_words()


def rewrites(words: list[str], candidates: dict[int, list[str]], n: int, p: float, rng: random.Random) -> list[str]:
    """TinyBERT's loop: N tries, each word replaced by a random candidate with probability p; a
    sentence already made (or the original) is not repeated. Draw order as in TinyBERT's code."""
    seen = {" ".join(words)}
    out: list[str] = []
    for _ in range(n):
        new = list(words)
        for index in sorted(candidates):
            choice = rng.choice(candidates[index])
            if rng.random() < p:
                new[index] = choice
        text = " ".join(new)
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def word_pieces(tokenizer: Any, words: list[str]) -> list[list[int]]:
    """Each word's token ids as it reads in the middle of a sentence (after a space), for any
    family: BERT/MPNet 'word' / '##piece', RoBERTa 'Ġword', SentencePiece '▁word'."""
    if not words:
        return []
    prefix = tokenizer("a", add_special_tokens=False)["input_ids"]
    encoded = tokenizer([f"a {w}" for w in words], add_special_tokens=False)["input_ids"]
    return [ids[len(prefix):] if ids[: len(prefix)] == prefix else ids for ids in encoded]


def whole_word_tokens(tokenizer: Any) -> tuple[list[int], list[str]]:
    """The vocabulary's tokens that are a whole alphabetic word on their own (id, word)."""
    vocab = tokenizer.get_vocab()
    special = set(tokenizer.all_special_ids)
    ids = sorted(i for i in vocab.values() if i not in special)
    texts = [tokenizer.convert_tokens_to_string([tokenizer.convert_ids_to_tokens(i)]).strip() for i in ids]
    keep = [(i, t) for i, t in zip(ids, texts, strict=True) if t.isalpha()]
    pieces = word_pieces(tokenizer, [t for _, t in keep])
    out = [(i, t) for (i, t), p in zip(keep, pieces, strict=True) if p == [i]]
    return [i for i, _ in out], [t for _, t in out]


class EmbeddingSpace:
    """Nearest whole words by cosine similarity in a model's input embedding table."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        import torch

        self.tokenizer = tokenizer
        table = model.base_model.get_input_embeddings().weight.detach().float()
        self.table = table
        self.vocab_size = int(table.shape[0])
        ids, self.words = whole_word_tokens(tokenizer)
        self.vocab_words = len(ids)
        if not ids:
            raise ConfigError("augment.tinybert: the model's vocabulary has no whole-word tokens to replace words with",
                              step=STEP_ID)
        self.normed = torch.nn.functional.normalize(table[torch.tensor(ids)], dim=1)

    def neighbours(self, words: list[str], k: int) -> list[list[str]]:
        """The k nearest whole words of each word (itself excluded, case-insensitively)."""
        import torch

        out: list[list[str]] = []
        if not words:
            return out
        pieces = word_pieces(self.tokenizer, words)
        for start in range(0, len(words), 512):
            chunk = pieces[start: start + 512]
            vectors = torch.stack([self.table[torch.tensor(p)].mean(dim=0) if p else self.table.new_zeros(
                self.table.shape[1]) for p in chunk])
            scores = torch.nn.functional.normalize(vectors, dim=1) @ self.normed.T
            top = scores.topk(min(k + 1, scores.shape[1]), dim=1).indices.tolist()
            for word, row in zip(words[start: start + 512], top, strict=True):
                out.append([self.words[j] for j in row if self.words[j].lower() != word.lower()][:k])
        return out


@dataclass
class MaskedLM:
    model: Any
    tokenizer: Any
    ids: Any  # tensor of whole-word token ids the predictions are taken from
    words: list[str]

    @staticmethod
    def load(reference: str, step: str) -> MaskedLM:
        """A model with a *trained* MLM head; ConfigError naming mlm_model when it has none."""
        import torch
        from transformers import AutoModelForMaskedLM

        from core.errors import ModelLoadError
        from core.models import ModelRef, load_tokenizer, quiet_loading, resolve_source

        ref = ModelRef.parse(reference)
        try:
            source = resolve_source(ref)
            with quiet_loading():
                model, loading = AutoModelForMaskedLM.from_pretrained(source, output_loading_info=True,
                                                                      use_safetensors=True)
        except (OSError, ValueError, ModelLoadError) as exc:
            raise ConfigError(f"Masked-LM model (mlm_model) {reference!r} cannot be loaded as a masked-language "
                              f"model: {exc}", step=step, field="mlm_model") from exc
        missing = [k for k in loading.get("missing_keys", []) if not k.startswith(model.base_model_prefix + ".")]
        if missing:
            raise ConfigError(f"Masked-LM model (mlm_model) {reference!r} has no trained masked-language-model head "
                              f"(missing {', '.join(sorted(missing)[:3])}); name a checkpoint saved with its MLM head, "
                              "or leave it empty to use embedding neighbours for every word", step=step,
                              field="mlm_model")
        tokenizer = load_tokenizer(ref)
        if tokenizer.mask_token_id is None:
            raise ConfigError(f"Masked-LM model (mlm_model) {reference!r}: its tokenizer has no mask token",
                              step=step, field="mlm_model")
        ids, words = whole_word_tokens(tokenizer)
        return MaskedLM(model.eval(), tokenizer, torch.tensor(ids), words)

    def single_piece(self, words: list[str]) -> list[bool]:
        return [len(p) == 1 for p in word_pieces(self.tokenizer, words)]

    def predict(self, queries: list[tuple[list[str], int]], k: int) -> list[list[str]]:
        """For each (sentence words, position): the k likeliest whole words at that position masked."""
        import torch

        mask = self.tokenizer.mask_token
        out: list[list[str]] = []
        for start in range(0, len(queries), MLM_BATCH):
            chunk = queries[start: start + MLM_BATCH]
            texts = [" ".join([*w[:i], mask, *w[i + 1:]]) for w, i in chunk]
            batch = self.tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=256)
            with torch.inference_mode():
                logits = self.model(**batch).logits
            for row, (words, index) in enumerate(chunk):
                where = (batch["input_ids"][row] == self.tokenizer.mask_token_id).nonzero()
                if len(where) == 0:  # truncated away
                    out.append([])
                    continue
                scores = logits[row, int(where[0, 0])][self.ids]
                top = scores.topk(min(k + 1, len(self.words))).indices.tolist()
                out.append([self.words[j] for j in top if self.words[j].lower() != words[index].lower()][:k])
        return out


def find_candidates(sentences: list[list[str]], cfg: TinyBertAugmentConfig, space: EmbeddingSpace,
                    mlm: MaskedLM | None, ctx: StepContext) -> tuple[list[dict[int, list[str]]], dict[str, int]]:
    """Each sentence's {word position: K replacements}; single-piece words from the MLM (when one is
    named), the others from embedding neighbours (computed once per distinct word)."""
    positions = [[i for i, w in enumerate(words[: cfg.max_words]) if valid_word(w)] for words in sentences]
    distinct = sorted({words[i] for words, idx in zip(sentences, positions, strict=True) for i in idx})
    single = dict(zip(distinct, mlm.single_piece(distinct), strict=True)) if mlm else dict.fromkeys(distinct, False)
    by_embedding = [w for w in distinct if not single[w]]
    neighbours = dict(zip(by_embedding, space.neighbours(by_embedding, cfg.candidates), strict=True))
    out: list[dict[int, list[str]]] = [{} for _ in sentences]
    counts = {"mlm": 0, "embedding": 0, "none": 0}
    queries: list[tuple[int, int]] = []
    for s, (words, idx) in enumerate(zip(sentences, positions, strict=True)):
        for i in idx:
            if single[words[i]]:
                queries.append((s, i))
            elif neighbours[words[i]]:
                out[s][i] = neighbours[words[i]]
                counts["embedding"] += 1
            else:
                counts["none"] += 1
    if mlm is not None:
        for start in range(0, len(queries), MLM_BATCH * 8):
            ctx.check_cancelled()
            chunk = queries[start: start + MLM_BATCH * 8]
            predicted = mlm.predict([(sentences[s], i) for s, i in chunk], cfg.candidates)
            for (s, i), words in zip(chunk, predicted, strict=True):
                if words:
                    out[s][i] = words
                    counts["mlm"] += 1
                else:
                    counts["none"] += 1
            ctx.progress(0.05 + 0.9 * min(1.0, (start + len(chunk)) / len(queries)),
                         f"Masked-LM predictions: {start + len(chunk):,}/{len(queries):,} words")
    return out, counts
