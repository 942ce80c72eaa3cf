"""augment.tinybert: TinyBERT's replacement rules, determinism per seed, the two candidate sources
checked against plain reference computations, the rows feeding distillation, and bad configs."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from core.artifacts import DATA_DIR, folder_bytes, save_artifact
from core.errors import ConfigError
from core.recipe import Recipe
from core.recipe.validate import validate_recipe
from core.steps import load_state
from core.steps.augment import EmbeddingSpace, MaskedLM, rewrites, valid_word, whole_word_tokens, word_pieces
from core.steps.base import get_step
from core.steps.training import EarlyStopping, seeded_subset, train_data
from tests.core.steps_support import make_ctx, tiny_state, tiny_task
from tests.helpers import TINY_VOCAB, tiny_tokenizer

STEP = get_step("augment.tinybert")
# whole words the tiny vocabulary can offer as replacements (letters are words too)
WORDS = ["the", "a", "good", "bad", "movie", "film", "is", "was", "not", "very"]


def _augment(tmp_path: Path, seed: int = 0, **cfg: object):
    state = tiny_state(tmp_path)
    out = STEP(STEP.config_cls(**{"per_sentence": 4, **cfg})).apply(state, make_ctx(tmp_path, tiny_task(), seed=seed))
    return state, out


# --- the replacement rules --------------------------------------------------------------------------
def test_rewrites_follow_tinyberts_loop() -> None:
    words = ["the", "good", "movie", "was", "long"]
    candidates = {1: ["great", "fine"], 2: ["film", "picture"]}
    made = rewrites(words, candidates, 50, 0.4, random.Random(3))
    assert len(made) == len(set(made)) and " ".join(words) not in made  # no repeats, never the original
    assert 1 <= len(made) <= 8  # at most the 2 x 2 + 2 + 2 sentences the candidates allow, minus the original
    for text in made:
        new = text.split()
        assert len(new) == len(words)
        for i, (old, w) in enumerate(zip(words, new, strict=True)):
            assert w == old or w in candidates.get(i, []), (i, w)  # only candidate positions change, to candidates
    assert rewrites(words, candidates, 50, 0.4, random.Random(3)) == made  # seeded
    # p = 1: every candidate word is replaced in every rewrite
    assert all(t.split()[1] != "good" and t.split()[2] != "movie" for t in rewrites(words, candidates, 20, 1.0, random.Random(0)))


def test_replacement_probability_is_p() -> None:
    words = [f"w{i}" for i in range(400)]
    candidates = {i: [f"x{i}"] for i in range(400)}
    (text,) = rewrites(words, candidates, 1, 0.4, random.Random(7))
    replaced = sum(a != b for a, b in zip(words, text.split(), strict=True)) / 400
    assert abs(replaced - 0.4) < 4 * (0.4 * 0.6 / 400) ** 0.5  # binomial, 4 standard deviations


def test_only_alphabetic_non_stop_words_are_replaced() -> None:
    assert valid_word("movie") and valid_word("Charming")
    assert not any(valid_word(w) for w in ("the", "was", "not", "very", ",", "!", "1999", "it's", "n't"))


# --- the candidate sources against reference computations -----------------------------------------
def test_embedding_neighbours_match_a_plain_cosine_search(tmp_path: Path) -> None:
    state = tiny_state(tmp_path)
    space = EmbeddingSpace(state.model, state.tokenizer)
    table = state.model.base_model.get_input_embeddings().weight.detach().numpy()
    vocab = state.tokenizer.get_vocab()
    assert set(space.words) == {w for w in TINY_VOCAB if w.isalpha()}  # whole words only: no ##, no [MASK]
    # single piece ("good") and multi-piece ("goods" = good + ##s: the mean of its pieces)
    for word, vector in (("good", table[vocab["good"]]), ("goods", table[[vocab["good"], vocab["##s"]]].mean(0))):
        cand = np.array([vocab[w] for w in space.words])
        rows = table[cand] / np.linalg.norm(table[cand], axis=1, keepdims=True)
        order = np.argsort(-(rows @ (vector / np.linalg.norm(vector))), kind="stable")
        reference = [space.words[j] for j in order if space.words[j] != word][:5]
        assert space.neighbours([word], 5)[0] == reference


def _mlm_folder(tmp_path: Path, family: str = "bert", head: bool = True) -> Path:
    import transformers as T

    folder = tmp_path / f"mlm-{family}-{head}"
    tok = tiny_tokenizer(folder)
    common = {"vocab_size": len(TINY_VOCAB), "max_position_embeddings": 64, "hidden_size": 16,
              "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32}
    torch.manual_seed(5)
    config = T.BertConfig(**common)
    (T.BertForMaskedLM if head else T.BertModel)(config).save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder


def test_single_piece_words_take_the_masked_lms_top_k(tmp_path: Path) -> None:
    folder = _mlm_folder(tmp_path)
    mlm = MaskedLM.load(str(folder), "augment.tinybert")
    words = ["the", "good", "movie"]
    (got,) = mlm.predict([(words, 1)], 3)
    # reference: the MLM's logits at the masked position, over whole-word tokens, the word itself left out
    batch = mlm.tokenizer(["the [MASK] movie"], return_tensors="pt")
    with torch.inference_mode():
        scores = mlm.model(**batch).logits[0, 2]
    vocab = mlm.tokenizer.get_vocab()
    ranked = sorted((w for w in mlm.words if w != "good"), key=lambda w: -float(scores[vocab[w]]))
    assert got == ranked[:3]
    assert mlm.single_piece(["good", "goods"]) == [True, False]
    _, out = _augment(tmp_path, mlm_model=str(folder))
    words_by = out.info["augment.tinybert"]["words"]
    assert words_by["mlm"] > 0 and words_by["embedding"] == 0  # every valid tiny word is one piece
    assert "BertForMaskedLM" in out.info["augment.tinybert"]["sources"]["mlm"]


def test_a_model_without_an_mlm_head_is_refused_by_name(tmp_path: Path) -> None:
    folder = _mlm_folder(tmp_path, head=False)
    with pytest.raises(ConfigError, match="no trained masked-language-model head") as err:
        MaskedLM.load(str(folder), "augment.tinybert")
    assert err.value.field == "mlm_model"
    with pytest.raises(ConfigError, match="mlm_model"):
        MaskedLM.load(str(tmp_path / "nowhere"), "augment.tinybert")


@pytest.mark.parametrize("family", ["bert", "roberta", "distilbert", "mpnet"])
def test_every_family_gives_neighbours(family: str, tmp_path: Path) -> None:
    from tests.core.test_layers import tiny_model

    model = tiny_model(family)
    tokenizer = tiny_tokenizer(tmp_path / "tok")
    space = EmbeddingSpace(model, tokenizer)
    (near,) = space.neighbours(["movie"], 3)
    assert len(near) == 3 and "movie" not in near and set(near) <= set(space.words)


def test_byte_level_bpe_words_are_read_as_mid_sentence_pieces(tmp_path: Path) -> None:
    """RoBERTa's tokenizer: a word after a space is 'Ġword', and that is the piece a rewrite uses."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(["the good movie was a good film", "a bad movie", "goods and films"] * 20,
                            vocab_size=300, min_frequency=1, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save(str(tmp_path / "tokenizer.json"))
    tok = RobertaTokenizerFast(tokenizer_file=str(tmp_path / "tokenizer.json"))
    (pieces,) = word_pieces(tok, ["movie"])
    assert tok.convert_ids_to_tokens(pieces) == ["Ġmovie"]
    ids, words = whole_word_tokens(tok)
    assert "movie" in words and tok.convert_ids_to_tokens(ids[words.index("movie")]) == "Ġmovie"


# --- the step: determinism, rows, recording ---------------------------------------------------------
def test_same_seed_same_rows_other_seed_other_rows(tmp_path: Path) -> None:
    _, a = _augment(tmp_path, seed=1)
    _, b = _augment(tmp_path, seed=1)
    _, c = _augment(tmp_path, seed=2)
    assert a.data["train"] == b.data["train"]
    assert a.data["train"] != c.data["train"]


def test_rows_keep_labels_and_name_their_origin(tmp_path: Path) -> None:
    state, out = _augment(tmp_path, per_sentence=3, train_size=10)
    rows = out.data["train"]
    task = tiny_task()
    original = task.load("train")
    info = out.info["augment.tinybert"]
    assert info["sentences"] == 10 and info["rows"] == len(rows) == 10 + info["augmented_rows"]
    assert 0 < info["augmented_rows"] <= 30
    assert sum(not r["augmented"] for r in rows) == 10
    for r in rows:
        source = original[r["origin"]]
        assert r["label"] == source["label"]
        assert len(r["text"].split()) == len(source["text"].split())
        if r["augmented"]:
            assert r["text"] != source["text"]
    assert out.model is state.model  # the model passes through untouched
    assert info["sources"]["mlm"] is None and "embedding table" in info["sources"]["embedding_neighbours"]


def test_rows_survive_the_artifact_and_are_not_counted_as_shipped(tmp_path: Path) -> None:
    state, out = _augment(tmp_path)
    save_artifact(state, tmp_path / "plain")
    save_artifact(out, tmp_path / "augmented")
    assert (tmp_path / "augmented" / DATA_DIR / "train.jsonl").is_file()
    assert load_state(tmp_path / "augmented").data == out.data
    every_file = sum(p.stat().st_size for p in (tmp_path / "augmented").rglob("*") if p.is_file())
    rows_file = (tmp_path / "augmented" / DATA_DIR / "train.jsonl").stat().st_size
    assert folder_bytes(tmp_path / "augmented") == every_file - rows_file
    assert load_state(tmp_path / "plain").data == {}


def test_training_counts_sentences_and_holds_out_whole_sentences(tmp_path: Path) -> None:
    _, out = _augment(tmp_path, per_sentence=3)
    ctx = make_ctx(tmp_path, tiny_task())
    data = train_data(out, ctx, train_size=10, max_length=32)
    rows = out.data["train"]
    assert data.source["sentences"] == 10
    assert data.train_examples == data.source["rows"] > 10
    held = train_data(out, ctx, train_size=None, max_length=32, holdout=EarlyStopping(holdout=0.25).holdout_rows)
    held_origins = set(seeded_subset(24, None, ctx.seed)[:6])  # the draw train_data makes
    original = tiny_task().load("train")
    assert list(held.holdout["text"]) == [original[i]["text"] for i in sorted(held_origins)]  # originals only
    assert held.train_examples == sum(1 for r in rows if r["origin"] not in held_origins)  # no rewrite of them
    assert held.train_examples < len(rows)


def test_distillation_trains_on_the_augmented_rows(tmp_path: Path) -> None:
    teacher, out = _augment(tmp_path, per_sentence=3)
    distill = get_step("distill")
    cfg = distill.config_cls(student_layers=1, batch_size=8, max_length=32, intermediate_epochs=1,
                             prediction_epochs=1)
    ctx = make_ctx(tmp_path, tiny_task())
    student = distill(cfg).apply(out, ctx)
    plain = distill(cfg).apply(teacher, ctx)
    rows = len(out.data["train"])
    report = student.info["distill"]
    assert report["stage1"]["training_data"]["rows"] == rows == report["stage2"]["train_examples"]
    assert report["training_data"]["augmented"] and report["training_data"]["prepared_by"] == ["augment.tinybert"]
    assert plain.info["distill"]["stage2"]["train_examples"] == 24 and not plain.info["distill"]["training_data"]["augmented"]
    assert student.data == out.data  # the rows stay with the chain


# --- bad input --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("field", "value", "says"), [
    ("per_sentence", 0, "per_sentence"), ("replace_prob", 0.0, "> 0"), ("replace_prob", 1.5, "<= 1"),
    ("candidates", 0, "candidates"), ("train_size", 0, "train_size"), ("per_sentence", 2.5, "must be a whole number"),
])
def test_bad_values_are_refused_with_the_field_named(field: str, value: object, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as err:
        STEP.config_cls.from_dict({field: value}, step=STEP.id)
    assert err.value.field == field


def test_a_qa_task_is_refused_before_running() -> None:
    recipe = Recipe.from_dict({"format": 1, "name": "x", "model": "all-MiniLM-L6-v2", "task": "squad_v2",
                               "chain": [{"step": "augment.tinybert", "config": {}}]})
    problems = validate_recipe(recipe, check_files=False)
    assert any(p.step == "augment.tinybert" and "classification" in p.message and "qa task" in p.message
               for p in problems)


def test_a_second_augmentation_in_one_chain_is_refused(tmp_path: Path) -> None:
    _, out = _augment(tmp_path)
    with pytest.raises(ConfigError, match="one augmentation step"):
        STEP(STEP.config_cls()).apply(out, make_ctx(tmp_path, tiny_task()))
