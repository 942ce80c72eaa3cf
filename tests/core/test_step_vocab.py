"""Vocabulary reduction keeps every text tokenizable and the kept pieces' ids and vectors consistent."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from core.artifacts import load_artifact, save_artifact
from core.models import ModelRef, load_tokenizer
from core.steps.base import get_step
from core.steps.vocab import choose_ids, eval_inputs, mandatory_ids, reduced_tokenizer
from core.tasks import get_task
from tests.core.steps_support import logits, make_ctx, sst2_tiny_state


def _apply(state, tmp_path: Path, **cfg):  # type: ignore[no-untyped-def]
    step_cls = get_step("vocab.reduce")
    return step_cls(step_cls.config_cls(**cfg)).apply(state, make_ctx(tmp_path))


def test_choose_ids_keeps_mandatory_then_most_frequent() -> None:
    import numpy as np

    counts = np.array([0, 5, 9, 9, 1, 7])
    assert choose_ids(counts, {0}, 3) == [0, 2, 3]  # ties broken by lower id
    assert choose_ids(counts, {0, 4}, 4) == [0, 2, 3, 4]
    assert choose_ids(counts, {0, 4}, 1) == [0, 4]  # mandatory pieces are never dropped


def test_frequency_ranking_matches_a_plain_count(tmp_path: Path) -> None:
    state = sst2_tiny_state(tmp_path)
    original = state.tokenizer  # the step builds a new one, never edits this
    out = _apply(state, tmp_path, keep_tokens=len(mandatory_ids(original)) + 5, corpus_limit=3000)
    texts = list(get_task("sst2").load("train").select(range(3000))["text"])
    counter = Counter(i for t in texts for i in original(t, add_special_tokens=False)["input_ids"])
    extra = [i for i, _ in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])) if i not in mandatory_ids(original)][:5]
    kept_tokens = set(out.tokenizer.get_vocab())
    assert {original.convert_ids_to_tokens(i) for i in extra} <= kept_tokens
    assert len(kept_tokens) == len(mandatory_ids(original)) + 5


def test_reduced_model_is_consistent_and_round_trips(tmp_path: Path) -> None:
    state = sst2_tiny_state(tmp_path)
    original_tok = state.tokenizer  # the step builds a new one, never edits this
    original_emb = state.model.get_input_embeddings().weight.detach().clone()
    out = _apply(state, tmp_path, keep_tokens=90, corpus_limit=3000)
    new_tok = out.tokenizer
    assert len(new_tok) == 90 == out.model.config.vocab_size == out.model.get_input_embeddings().num_embeddings
    old_vocab = original_tok.get_vocab()
    new_emb = out.model.get_input_embeddings().weight
    for token, new_id in new_tok.get_vocab().items():
        assert torch.equal(new_emb[new_id], original_emb[old_vocab[token]]), token
    assert new_tok.pad_token_id == 0 and new_tok.convert_ids_to_tokens(new_tok.cls_token_id) == "[CLS]"

    info = out.info["vocab.reduce"]
    assert info["vocab_after"] == 90 and info["params_saved"] == (original_emb.shape[0] - 90) * new_emb.shape[1]
    assert info["tokens_per_example_after"] >= info["tokens_per_example_before"]
    # the same [UNK]s (a rate per piece: more pieces, lower rate)
    unks_after = info["unk_rate_after"] * info["tokens_per_example_after"]
    assert unks_after == pytest.approx(info["unk_rate_before"] * info["tokens_per_example_before"])

    save_artifact(out, tmp_path / "art")
    loaded = load_artifact(tmp_path / "art")
    assert loaded.tokenizer.get_vocab() == new_tok.get_vocab()
    assert torch.equal(logits(out, new_tok), logits(loaded.model, loaded.tokenizer))


def test_minilm_tokenizer_reduced_to_a_quarter_still_tokenizes_every_eval_text(tmp_path: Path) -> None:
    original = load_tokenizer(ModelRef.parse("all-MiniLM-L6-v2"))
    texts = list(get_task("sst2").load("train").select(range(5000))["text"])
    ids = original(texts, add_special_tokens=False)["input_ids"]
    import numpy as np

    counts = np.bincount([i for seq in ids for i in seq], minlength=len(original))
    kept = choose_ids(counts, mandatory_ids(original), len(original) // 4)
    reduced = reduced_tokenizer(original, kept, tmp_path / "tok")
    mapping = {old: new for new, old in enumerate(kept)}
    first, _ = eval_inputs(get_task("sst2"))
    before = original(first)["input_ids"]
    after = reduced(first)["input_ids"]
    all_kept = 0
    for text, old, new in zip(first, before, after, strict=True):
        # nothing becomes unknown: every piece is spelled with the kept ones
        assert new.count(reduced.unk_token_id) == old.count(original.unk_token_id), text
        assert reduced.decode(new, skip_special_tokens=True) == original.decode(old, skip_special_tokens=True)
        if all(i in mapping for i in old):
            all_kept += 1
            assert new == [mapping[i] for i in old], text
    assert all_kept > 100  # the mapped-ids check above really ran (204 of 872 texts at 25 %)


def test_squad_eval_inputs_are_question_and_context() -> None:
    pytest.importorskip("core.tasks.squad")
    first, second = eval_inputs(get_task("squad_v2"), limit=5)
    assert second is not None and len(first) == len(second) == 5


def test_tied_language_model_head_is_gathered_and_stays_tied(tmp_path: Path) -> None:
    from transformers import BertConfig, BertForMaskedLM

    from core.steps.vocab import gather_embeddings

    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                       intermediate_size=32, max_position_embeddings=32))
    old_decoder_bias = model.get_output_embeddings().bias.detach().clone()
    kept = [0, 3, 7, 20, 49]
    gather_embeddings(model, kept)
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert torch.equal(model.get_output_embeddings().bias, old_decoder_bias[kept])
    out = model(input_ids=torch.tensor([[0, 1, 4]]))
    assert out.logits.shape == (1, 3, 5) and model.config.vocab_size == 5


def test_vocab_reduce_after_nbit_keeps_the_artifact_exact(tmp_path: Path) -> None:
    state = sst2_tiny_state(tmp_path)
    cls = get_step("quantize.linear_nbit")
    state = cls(cls.config_cls(bits=5)).apply(state, make_ctx(tmp_path))
    out = _apply(state, tmp_path, keep_tokens=90, corpus_limit=500)
    save_artifact(out, tmp_path / "art")
    loaded = load_artifact(tmp_path / "art")
    assert torch.equal(loaded.model.get_input_embeddings().weight, out.model.get_input_embeddings().weight)
    assert torch.equal(logits(out, out.tokenizer), logits(loaded.model, loaded.tokenizer))
