"""The SQuAD 2.0 metric against hand-computed cases; the article split; QA features and decoding."""

from __future__ import annotations

import numpy as np
import pytest

from core.tasks import get_task
from core.tasks.squad import (
    EvalFeatures,
    compute_exact,
    compute_f1,
    normalize_answer,
    postprocess,
    score,
    squad_v2_metrics,
    train_features,
)


def test_normalisation_drops_case_punctuation_articles_and_extra_whitespace() -> None:
    assert normalize_answer("The  Cat,  sat!") == "cat sat"
    assert normalize_answer("An apple a day") == "apple day"
    assert normalize_answer("theatre") == "theatre"  # 'the' only as a whole word
    assert normalize_answer("\tNew-York\n") == "newyork"  # hyphen is punctuation, removed
    assert normalize_answer("the") == ""


def test_exact_and_f1_hand_cases() -> None:
    assert compute_exact("The Eiffel Tower", "eiffel tower.") == 1
    assert compute_exact("Eiffel Tower", "Tower") == 0
    # gold 'eiffel tower' vs pred 'tower in paris': 1 common; P = 1/3, R = 1/2 -> F1 = 0.4
    assert compute_f1("Eiffel Tower", "tower in Paris") == pytest.approx(0.4)
    # repeated tokens count with multiplicity: gold 'a b b'->'b b', pred 'b' -> P=1, R=1/2 -> 2/3
    assert compute_f1("a b b", "b") == pytest.approx(2 / 3)
    assert compute_f1("", "") == 1.0  # both no-answer
    assert compute_f1("", "something") == 0.0
    assert compute_f1("Paris", "") == 0.0


def test_max_over_gold_answers_and_unanswerable_questions() -> None:
    golds = {
        "q1": ["Denver Broncos", "the Broncos", "Broncos"],  # pred matches the 3rd exactly
        "q2": ["in 1990", "1990 and 1991"],  # pred '1990' -> F1 max(2/3, 1/2)... see below
        "q3": [],  # unanswerable, predicted empty: correct
        "q4": [],  # unanswerable, predicted an answer: wrong
    }
    preds = {"q1": "broncos", "q2": "1990", "q3": "", "q4": "Paris"}
    out = squad_v2_metrics(preds, golds)
    # q2: 'in 1990' -> tokens [in, 1990]: P=1, R=1/2 -> 2/3; '1990 and 1991' -> P=1, R=1/3 -> 1/2
    assert out["exact"] == pytest.approx(100 * (1 + 0 + 1 + 0) / 4)
    assert out["f1"] == pytest.approx(100 * (1 + 2 / 3 + 1 + 0) / 4)
    assert out["HasAns_exact"] == pytest.approx(50.0) and out["HasAns_total"] == 2
    assert out["HasAns_f1"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    assert out["NoAns_exact"] == pytest.approx(50.0) and out["NoAns_total"] == 2
    assert "best_f1" not in out  # only with no-answer scores


def test_gold_answers_that_normalise_to_nothing_count_as_no_answer() -> None:
    out = squad_v2_metrics({"q": ""}, {"q": ["the", "."]})
    assert out["exact"] == 100.0  # official: gold answers empty after normalisation -> ['']


def test_best_threshold_hand_case() -> None:
    # q1 answerable, pred right (f1 1), na 0.1; q2 answerable, pred wrong (f1 0), na 0.6;
    # q3 unanswerable, pred 'x' (wrong unless thresholded), na 0.9; q4 unanswerable, pred '', na 0.3.
    golds = {"q1": ["yes"], "q2": ["no"], "q3": [], "q4": []}
    preds = {"q1": "yes", "q2": "maybe", "q3": "x", "q4": ""}
    na = {"q1": 0.1, "q2": 0.6, "q3": 0.9, "q4": 0.3}
    out = squad_v2_metrics(preds, golds, na)
    # threshold t: questions with na > t predict no-answer. Sweep in na order starting at 2 (all empty):
    # after q1 (0.1): +1 -> 3; q4 (0.3): +0 -> 3; q2 (0.6): +0 -> 3; q3 (0.9): -1 -> 2. Best 3 at 0.1.
    assert out["best_f1"] == pytest.approx(75.0) and out["best_f1_thresh"] == pytest.approx(0.1)
    assert out["best_exact"] == pytest.approx(75.0) and out["best_exact_thresh"] == pytest.approx(0.1)
    assert out["f1"] == pytest.approx(50.0)  # the default threshold 1.0 changes nothing here


def test_task_scorer_takes_postprocessed_predictions() -> None:
    preds = [{"id": "a", "text": "Paris", "null_odds": -2.0}, {"id": "b", "text": "", "null_odds": 3.0}]
    refs = [{"text": ["paris"], "answer_start": [0]}, {"text": [], "answer_start": []}]
    out = score(preds, refs)
    assert out["exact"] == 100.0 and out["best_f1"] == 100.0


def test_best_threshold_search_answers_with_the_best_span() -> None:
    # at threshold 0 both questions get "", yet q1's best span is right: the official search over
    # null_odds must be able to answer it (it could not if it only saw the empty texts)
    preds = [{"id": "a", "text": "", "null_odds": 2.0, "span_text": "Paris"},
             {"id": "b", "text": "", "null_odds": 5.0, "span_text": "Rome"}]
    refs = [{"text": ["paris"], "answer_start": [0]}, {"text": [], "answer_start": []}]
    out = score(preds, refs)
    assert out["f1"] == pytest.approx(50.0)
    assert out["best_f1"] == pytest.approx(100.0) and out["best_f1_thresh"] == pytest.approx(2.0)
    without = score([{k: v for k, v in p.items() if k != "span_text"} for p in preds], refs)
    assert without["best_f1"] == pytest.approx(50.0)


def test_article_split_is_deterministic_and_disjoint() -> None:
    task = get_task("squad_v2")
    train, dev, full = task.load("train"), task.load("dev"), task.load("dev_full")
    assert full.num_rows == 11_873
    assert sum(1 for a in full["answers"] if not a["text"]) == 5_945
    assert train.num_rows + dev.num_rows == full.num_rows
    assert set(train["title"]).isdisjoint(dev["title"])
    assert set(train["context"]).isdisjoint(dev["context"])
    assert len(set(full["title"])) == 35 and len(set(train["title"])) == 24
    assert "article split of the official dev file" in task.note


@pytest.fixture(scope="module")
def minilm_tokenizer():  # type: ignore[no-untyped-def]
    from core.models import DEFAULT_MODEL, ModelRef, load_tokenizer

    return load_tokenizer(ModelRef.parse(DEFAULT_MODEL))


def test_train_features_point_at_the_answer_or_cls(minilm_tokenizer) -> None:  # type: ignore[no-untyped-def]
    data = get_task("squad_v2").load("dev").select(range(40))
    feats = train_features(minilm_tokenizer, data, max_length=128, doc_stride=64)
    assert {"input_ids", "attention_mask", "start_positions", "end_positions"} <= set(feats.column_names)
    assert feats.num_rows > data.num_rows  # long contexts make several windows
    # re-tokenize to map windows back to examples and check every labelled span decodes to the answer
    from core.tasks.squad import _tokenize

    enc, _ = _tokenize(minilm_tokenizer, data, 128, 64)
    answered = 0
    for i in range(feats.num_rows):
        s, e = feats[i]["start_positions"], feats[i]["end_positions"]
        ex = data[enc["overflow_to_sample_mapping"][i]]
        if s == 0:
            assert e == 0
            continue
        answered += 1
        span = ex["context"][enc["offset_mapping"][i][s][0] : enc["offset_mapping"][i][e][1]]
        assert normalize_answer(span) == normalize_answer(ex["answers"]["text"][0])
    assert answered > 0


def test_postprocess_picks_best_valid_span_or_null() -> None:
    import datasets

    data = datasets.Dataset.from_dict({"id": ["q1", "q2"], "context": ["alpha beta gamma", "one two"]})
    # window tokens: [CLS] q [SEP] ctx... ; None marks non-context tokens
    offs1 = [None, None, None, (0, 5), (6, 10), (11, 16), None]
    offs2 = [None, None, (0, 3), (4, 7), None]
    feats = EvalFeatures(rows=[{}, {}], example_index=[0, 1], offsets=[offs1, offs2])
    s1 = np.array([0.0, 9, 9, 1, 5, 2, 9])  # 9s are on non-context tokens: never chosen
    e1 = np.array([0.0, 9, 9, 0, 1, 6, 9])  # best: start 4 (beta) + end 5 (gamma) = 11
    s2 = np.array([5.0, 0, 1, 0, 0])
    e2 = np.array([5.0, 0, 0, 1, 0])  # null 10 > best span 2
    out = postprocess(data, feats, [s1, s2], [e1, e2])
    assert out[0] == {"id": "q1", "text": "beta gamma", "null_odds": pytest.approx(0.0 - 11.0), "span_text": "beta gamma"}
    assert out[1]["text"] == "" and out[1]["null_odds"] == pytest.approx(10.0 - 2.0)
    assert out[1]["span_text"] == "one two"  # the best span is kept for the best-threshold search
    capped = postprocess(data, feats, [s1, s2], [e1, e2], max_answer_length=1)
    # one-token spans only: beta..beta = 5 + 1 = 6, gamma..gamma = 2 + 6 = 8 -> gamma
    assert capped[0]["text"] == "gamma" and capped[0]["null_odds"] == pytest.approx(-8.0)
