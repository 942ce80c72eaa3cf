"""The SQuAD 2.0 -> QNLI-style pairs builder of benchmarks/probe_qnli_squad_pairs.py."""

from collections import Counter

from benchmarks import probe_qnli_squad_pairs as probe

CONTEXT = ("The castle was built in 1120 by Henry. Its walls are made of red stone. "
           "Henry built the castle walls to hold the valley.")
ARTICLE = {"paragraphs": [{"context": CONTEXT, "qas": [
    {"question": "When was the castle built?", "is_impossible": False,
     "answers": [{"text": "1120", "answer_start": CONTEXT.index("1120")}]},
    {"question": "Who painted the castle walls?", "is_impossible": True, "answers": []},
    {"question": "What are its walls made of?", "is_impossible": False,
     "answers": [{"text": "red stone", "answer_start": CONTEXT.index("red stone")}]},
]}]}


def test_sentences_cover_the_paragraph_with_their_offsets():
    spans = probe.sentences(CONTEXT)
    assert [text for *_, text in spans] == ["The castle was built in 1120 by Henry.", "Its walls are made of red stone.",
                                            "Henry built the castle walls to hold the valley."]
    assert all(CONTEXT[start:end] == text for start, end, text in spans)


def test_pairs_follow_glue_qnli_and_skip_the_dev_questions():
    positives, hard, unanswerable = probe.squad_pairs([ARTICLE], skip_questions={"What are its walls made of?"})
    assert positives == [("When was the castle built?", "The castle was built in 1120 by Henry.", "entailment")]
    # the other sentence sharing most content words (castle, built) is the hard negative
    assert hard == [("When was the castle built?", "Henry built the castle walls to hold the valley.", "not_entailment")]
    assert unanswerable == [("Who painted the castle walls?", "Henry built the castle walls to hold the valley.",
                             "not_entailment")]


def test_built_task_is_balanced_and_keeps_the_qnli_dev_part_out_of_train():
    from core.tasks.glue import _read_tsv, qnli_split_indices

    train, dev, counts = probe.build()
    rows = _read_tsv("qnli/dev.tsv")
    train_part, dev_part = qnli_split_indices()
    assert len(dev) == len(dev_part) == counts["dev"]
    assert counts["train"] == len(train) == counts["squad_positives"] + counts["squad_negatives"] + len(train_part)
    assert counts["squad_positives"] == counts["squad_negatives"] > 5000
    assert not {q for q, *_ in train} & {rows[i]["question"] for i in dev_part}
    labels = Counter(label for *_, label in train)
    assert abs(labels["entailment"] - labels["not_entailment"]) < 0.02 * len(train)
