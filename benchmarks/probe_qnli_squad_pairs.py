"""A larger intermediate task for RTE: QNLI-style pairs built from the bundled SQuAD 2.0 dev file.

RTE's teacher starts from a fine-tune on QNLI's bundled train part (``finetune.first_on_task: auto``,
4,381 pairs), and its dev accuracy (0.643 [0.588, 0.697], seed 0) overlaps its majority class's interval
(issue 20). Intermediate-task transfer grows with the intermediate data; QNLI's train file is not bundled,
but GLUE built QNLI from SQuAD, and SQuAD 2.0's dev file is. This probe writes that larger task as a
user's custom data (train and dev TSV files and a one-step recipe), so that the route to test is the one a
user would take: ``workbench-cli run`` the recipe, then fine-tune RTE from the saved variant.

Pairs, GLUE's way (question, context sentence): an answerable question with the sentence holding its
answer (entailment) and with the other sentence of its context sharing the most words (not_entailment);
an unanswerable question (SQuAD 2.0 writes them to look answerable) with its context's sentence sharing
the most words (not_entailment). The negatives are drawn half from each kind, as many as there are
positives (seeded), and our QNLI train part is added. SQuAD questions that are in our QNLI dev part are
left out; other questions on their paragraphs are not, so the intermediate model's score on that dev part is
optimistic (this probe is about RTE, whose data it does not touch), and pairs that QNLI's train part already
holds repeat (the files are kept as measured; see the write-up).

    python benchmarks/probe_qnli_squad_pairs.py --out /tmp/sqp     # writes train.tsv, dev.tsv, recipe.yaml
    workbench-cli run --db /tmp/sqp/run.sqlite /tmp/sqp/recipe.yaml
    python benchmarks/bench_finetune.py --tasks rte --threads 1 --seeds 0 --model <its finetune variant's folder> \\
        --config first_on_task=none --out /tmp/sqp/rte_seed0

Measured: ``benchmarks/results/candidates/README.md`` ("A larger intermediate task from SQuAD 2.0").
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
WORD = re.compile(r"\w+")
# Words every question shares with many sentences: they would rank sentences by chance.
FUNCTION_WORDS = frozenset(["the", "a", "an", "of", "in", "to", "is", "was", "what", "which", "who", "and", "how",
                            "did", "does", "for", "on", "by", "as", "with"])
POSITIVE, NEGATIVE = "entailment", "not_entailment"
SEED = 1  # the negatives' draw; the rows' order is shuffled with seed 0


def sentences(context: str) -> list[tuple[int, int, str]]:
    """(start, end, text) of each sentence of a paragraph."""
    spans, position = [], 0
    for text in SENTENCE_END.split(context):
        start = context.index(text, position)
        spans.append((start, start + len(text), text))
        position = start + len(text)
    return spans


def _content_words(text: str) -> set[str]:
    return {w.lower() for w in WORD.findall(text)} - FUNCTION_WORDS


def squad_pairs(articles: Iterable[dict], skip_questions: set[str]) -> tuple[list, list, list]:
    """(positives, hard negatives of answerable questions, negatives of unanswerable ones)."""
    positives, hard, unanswerable = [], [], []
    for article in articles:
        for paragraph in article["paragraphs"]:
            spans = sentences(paragraph["context"])
            for qa in paragraph["qas"]:
                question = qa["question"].strip()
                if question in skip_questions:
                    continue
                words = _content_words(question)
                ranked = sorted(spans, key=lambda span: -len(words & _content_words(span[2])))
                if qa.get("is_impossible"):
                    unanswerable.append((question, ranked[0][2], NEGATIVE))
                    continue
                start = qa["answers"][0]["answer_start"]
                holding = [span for span in spans if span[0] <= start < span[1]]
                if not holding:
                    continue
                positives.append((question, holding[0][2], POSITIVE))
                others = [span for span in ranked if span is not holding[0]]
                if others:
                    hard.append((question, others[0][2], NEGATIVE))
    return positives, hard, unanswerable


def build(seed: int = SEED) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]], dict[str, int]]:
    """(train rows, dev rows, counts): SQuAD 2.0 pairs, balanced, plus our QNLI train part; dev = our QNLI dev part."""
    from core.tasks.base import datasets_dir
    from core.tasks.glue import _read_tsv, qnli_split_indices

    rows = _read_tsv("qnli/dev.tsv")
    train_rows, dev_rows = qnli_split_indices()
    dev_questions = {rows[i]["question"].strip() for i in dev_rows}
    articles = json.loads((datasets_dir() / "squad_v2" / "dev-v2.0.json").read_text(encoding="utf-8"))["data"]
    positives, hard, unanswerable = squad_pairs(articles, dev_questions)
    pick = random.Random(seed)
    half = len(positives) // 2
    negatives = pick.sample(hard, half) + pick.sample(unanswerable, len(positives) - half)
    qnli_train = [(rows[i]["question"], rows[i]["sentence"], rows[i]["label"]) for i in train_rows]
    train = positives + negatives + qnli_train
    random.Random(0).shuffle(train)
    dev = [(rows[i]["question"], rows[i]["sentence"], rows[i]["label"]) for i in dev_rows]
    counts = {"squad_positives": len(positives), "squad_negatives": len(negatives), "qnli_train": len(qnli_train),
              "train": len(train), "dev": len(dev)}
    return train, dev, counts


RECIPE = """format: 1
name: QNLI + SQuAD 2.0 pairs (an intermediate task for RTE)
model: all-MiniLM-L6-v2
seed: 42
data:
  path: train.tsv
  dev_path: dev.tsv
  text: question
  text_pair: sentence
  label: label
  name: qnli_squad
chain:
- step: finetune
  version: 5
  config: {decision_threshold: argmax, first_on_task: none}
"""


def write(out: Path, seed: int = SEED) -> dict[str, int]:
    train, dev, counts = build(seed)
    out.mkdir(parents=True, exist_ok=True)
    for name, items in (("train.tsv", train), ("dev.tsv", dev)):
        with (out / name).open("w", encoding="utf-8") as fh:  # GLUE-style TSV: no quoting, so no tabs inside
            fh.write("question\tsentence\tlabel\n")
            for question, sentence, label in items:
                fh.write(f"{' '.join(question.split())}\t{' '.join(sentence.split())}\t{label}\n")
    (out / "recipe.yaml").write_text(RECIPE, encoding="utf-8")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for train.tsv, dev.tsv and recipe.yaml")
    args = parser.parse_args(argv)
    print(write(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
