"""benchmarks/probe_pair_encoding.py: its 'masked' encoding really isolates the two sentences (the
premise's vectors equal the premise encoded alone), and its readouts are fitted on train only."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.probe_pair_encoding import readouts, segment_means
from tests.helpers import tiny_bert_folder

PREMISES = ["the movie was good .", "a film is not very bad", "the good movies !", "bad film , bad movie"]
HYPOTHESES = ["the film was bad", "good", "the movie is a film , not a movie", "a good film"]


def _encode(tmp_path: Path, encoding: str) -> tuple[np.ndarray, np.ndarray]:
    from transformers import AutoModel, AutoTokenizer

    folder = tiny_bert_folder(tmp_path / "bert")
    model = AutoModel.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return segment_means(model, tokenizer, PREMISES, HYPOTHESES, encoding, batch_size=3, max_length=64)


def test_masked_encoding_sees_each_premise_alone(tmp_path: Path) -> None:
    u_masked, v_masked = _encode(tmp_path, "masked")
    u_alone, v_alone = _encode(tmp_path, "separate")
    u_cross, _ = _encode(tmp_path, "cross")
    np.testing.assert_allclose(u_masked, u_alone, atol=1e-5)
    assert np.abs(u_cross - u_alone).max() > 1e-3  # in one sequence the premise attends to the hypothesis
    assert np.abs(v_masked - v_alone).max() > 1e-4  # the hypothesis segment lacks its own [CLS]: close, not equal
    np.testing.assert_allclose(np.linalg.norm(v_masked, axis=1), 1.0, rtol=1e-5)


def test_readouts_learn_the_direction_of_the_cosine_from_train() -> None:
    rng = np.random.default_rng(0)

    def pairs(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        y = rng.integers(0, 2, n)  # 0 = entailment: the hypothesis is near the premise
        u = rng.normal(size=(n, 8))
        v = np.where(y[:, None] == 0, u + 0.3 * rng.normal(size=(n, 8)), rng.normal(size=(n, 8)))
        normalise = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
        return normalise(u), normalise(v), y

    train, (du, dv, dy) = pairs(200), pairs(100)
    out = readouts(train, (du, dv, None), seed=0)
    for readout in ("cosine", "logistic"):
        accuracy = (np.asarray(out[readout]["predictions"]) == dy).mean()
        assert accuracy > 0.9, (readout, accuracy)
    assert 0.0 < out["cosine"]["threshold"] < 1.0


def test_the_siamese_fine_tune_learns_a_pair_task_the_frozen_encoder_cannot_read(tmp_path: Path) -> None:
    """Label 0 when the hypothesis repeats the premise, 1 when it is another sentence: a random tiny encoder
    needs training to tell them apart through [u, v, |u - v|, u * v]."""
    from transformers import AutoModel, AutoTokenizer

    from benchmarks.probe_pair_encoding import finetune_siamese

    folder = tiny_bert_folder(tmp_path / "bert")
    words = ["the", "a", "good", "bad", "movie", "film", "is", "was", "not", "very"]
    rng = np.random.default_rng(0)
    sentences = [" ".join(rng.choice(words, size=5)) for _ in range(96)]
    labels = [i % 2 for i in range(96)]
    pairs = [s if y == 0 else sentences[(i + 7) % 96] for i, (s, y) in enumerate(zip(sentences, labels, strict=True))]
    train = {"text": sentences[:64], "text_pair": pairs[:64], "label": labels[:64]}
    dev = {"text": sentences[64:], "text_pair": pairs[64:], "label": labels[64:]}
    model = AutoModel.from_pretrained(folder)
    before = [p.detach().clone() for p in model.parameters()]
    out = finetune_siamese(model, AutoTokenizer.from_pretrained(folder), train, dev, seed=0, lr=3e-3, epochs=15,
                           batch_size=16, max_length=32)
    assert out["steps"] == 60 and len(out["predictions"]) == 32
    assert np.mean(np.asarray(out["predictions"]) == np.asarray(dev["label"])) >= 0.75  # chance is 0.5 on 32 pairs
    assert any(not np.allclose(b, a.detach()) for b, a in zip(before, model.parameters(), strict=True))  # encoder trained
