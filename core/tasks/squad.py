"""SQuAD 2.0: extractive QA features, n-best decoding with a null answer, and the official metric.

Only the official dev file is bundled. Train and eval parts are a deterministic split of it by
article (the first 24 of its 35 articles train, the other 11 evaluate), so no context appears on
both sides; ``SQUAD_V2.note`` says so and every result carries that note.

The metric is a port of the official ``evaluate-v2.0.py``: answer normalisation (lower case,
punctuation, articles, whitespace), exact match and token F1 with the max over gold answers,
the empty string as the only gold answer of an unanswerable question, HasAns/NoAns breakdowns
and the best no-answer threshold.
"""

from __future__ import annotations

import collections
import functools
import json
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from core.errors import DataError
from core.tasks.base import Task, datasets_dir, register_task

DEV_FILE = "squad_v2/dev-v2.0.json"
TRAIN_ARTICLES = 24  # of 35: ~70 % of articles (7,572 of 11,873 questions) to train
NO_SPAN_ODDS = 1e9  # null_odds when no window offers a valid span (finite: results are JSON)
MAX_QUERY_TOKENS = 64
N_BEST = 20
MAX_ANSWER_TOKENS = 30


# --------------------------------------------------------------------------- official metric


def normalize_answer(s: str) -> str:
    """Lower text and remove punctuation, articles and extra whitespace (official definition)."""

    def remove_articles(text: str) -> str:
        return re.sub(r"\b(a|an|the)\b", " ", text, flags=re.UNICODE)

    def white_space_fix(text: str) -> str:
        return " ".join(text.split())

    def remove_punc(text: str) -> str:
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    return white_space_fix(remove_articles(remove_punc(s.lower())))


def get_tokens(s: str) -> list[str]:
    if not s:
        return []
    return normalize_answer(s).split()


def compute_exact(a_gold: str, a_pred: str) -> int:
    return int(normalize_answer(a_gold) == normalize_answer(a_pred))


def compute_f1(a_gold: str, a_pred: str) -> float:
    gold_toks = get_tokens(a_gold)
    pred_toks = get_tokens(a_pred)
    common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
    num_same = sum(common.values())
    if len(gold_toks) == 0 or len(pred_toks) == 0:
        # If either is no-answer, then F1 is 1 if they agree, 0 otherwise
        return float(gold_toks == pred_toks)
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_toks)
    recall = num_same / len(gold_toks)
    return (2 * precision * recall) / (precision + recall)


def gold_texts(answers: Any) -> list[str]:
    """Gold answers as the official script sees them: non-empty after normalisation, else ['']."""
    texts = answers.get("text", []) if isinstance(answers, dict) else list(answers)
    gold = [a for a in texts if normalize_answer(a)]
    return gold or [""]


def _find_best_thresh(
    preds: dict[str, str], scores: dict[str, float], na_probs: dict[str, float], has_ans: dict[str, bool]
) -> tuple[float, float]:
    num_no_ans = sum(1 for k in has_ans if not has_ans[k])
    cur_score = float(num_no_ans)
    best_score = cur_score
    best_thresh = 0.0
    for qid in sorted(na_probs, key=lambda k: na_probs[k]):
        if qid not in scores:
            continue
        diff = scores[qid] if has_ans[qid] else -1 if preds[qid] else 0
        cur_score += diff
        if cur_score > best_score:
            best_score = cur_score
            best_thresh = na_probs[qid]
    return 100.0 * best_score / len(scores), float(best_thresh)


def _raw_scores(preds: dict[str, str], golds: dict[str, list[str]]) -> tuple[dict[str, float], dict[str, float]]:
    exact_raw: dict[str, float] = {}
    f1_raw: dict[str, float] = {}
    for qid, texts in golds.items():
        if qid not in preds:
            raise DataError(f"SQuAD scoring: no prediction for question {qid}")
        gold = gold_texts(texts)
        exact_raw[qid] = max(compute_exact(a, preds[qid]) for a in gold)
        f1_raw[qid] = max(compute_f1(a, preds[qid]) for a in gold)
    return exact_raw, f1_raw


def _thresholded(exact_raw: dict[str, float], f1_raw: dict[str, float], has_ans: dict[str, bool],
                 probs: dict[str, float], na_prob_thresh: float) -> tuple[dict[str, float], dict[str, float]]:
    """Per-question EM and F1 after the no-answer threshold (the official script's apply_no_ans_threshold)."""

    def threshold(scores: dict[str, float]) -> dict[str, float]:
        return {q: float(not has_ans[q]) if probs[q] > na_prob_thresh else s for q, s in scores.items()}

    return threshold(exact_raw), threshold(f1_raw)


def squad_v2_metrics(
    preds: dict[str, str],
    golds: dict[str, list[str]],
    na_probs: dict[str, float] | None = None,
    na_prob_thresh: float = 1.0,
    span_preds: dict[str, str] | None = None,
) -> dict[str, float]:
    """The official SQuAD 2.0 evaluation. ``golds`` maps question id -> raw gold texts ([] = no answer).

    ``na_probs`` (a no-answer score per question, higher = more likely unanswerable) enables the
    thresholding and the best-threshold search exactly as ``--na-prob-file`` does officially.
    ``span_preds`` (each question's best non-null span) are what the search answers with below
    the threshold; without them it can only withhold answers that ``preds`` already gave.
    """
    has_ans = {qid: bool(texts) for qid, texts in golds.items()}
    exact_raw, f1_raw = _raw_scores(preds, golds)
    probs = na_probs if na_probs is not None else {k: 0.0 for k in preds}
    exact, f1 = _thresholded(exact_raw, f1_raw, has_ans, probs, na_prob_thresh)

    def block(qids: list[str], prefix: str) -> dict[str, float]:
        if not qids:
            return {}
        return {
            f"{prefix}exact": 100.0 * sum(exact[k] for k in qids) / len(qids),
            f"{prefix}f1": 100.0 * sum(f1[k] for k in qids) / len(qids),
            f"{prefix}total": float(len(qids)),
        }

    out = block(list(exact), "")
    out |= block([k for k, v in has_ans.items() if v], "HasAns_")
    out |= block([k for k, v in has_ans.items() if not v], "NoAns_")
    if na_probs is not None:
        search = preds if span_preds is None else span_preds
        exact_s, f1_s = (exact_raw, f1_raw) if span_preds is None else _raw_scores(span_preds, golds)
        out["best_exact"], out["best_exact_thresh"] = _find_best_thresh(search, exact_s, probs, has_ans)
        out["best_f1"], out["best_f1_thresh"] = _find_best_thresh(search, f1_s, probs, has_ans)
    return out


def _inputs(predictions: Sequence[Any], references: Sequence[Any]) -> tuple[
        dict[str, str], dict[str, list[str]], dict[str, float] | None, dict[str, str] | None]:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} questions")
    preds: dict[str, str] = {}
    golds: dict[str, list[str]] = {}
    na_probs: dict[str, float] | None = {}
    span_preds: dict[str, str] | None = {}
    for i, (pred, ref) in enumerate(zip(predictions, references, strict=True)):
        qid = pred.get("id", str(i)) if isinstance(pred, dict) else str(i)
        preds[qid] = pred["text"] if isinstance(pred, dict) else str(pred)
        golds[qid] = list(ref["text"]) if isinstance(ref, dict) else list(ref)
        if na_probs is not None and isinstance(pred, dict) and "null_odds" in pred:
            na_probs[qid] = float(pred["null_odds"])
        else:
            na_probs = None
        if span_preds is not None and isinstance(pred, dict) and "span_text" in pred:
            span_preds[qid] = str(pred["span_text"])
        else:
            span_preds = None
    return preds, golds, na_probs, span_preds


def score(predictions: Sequence[Any], references: Sequence[Any]) -> dict[str, float]:
    """Task scorer: predictions from ``postprocess`` (or plain strings), references = answers."""
    preds, golds, na_probs, span_preds = _inputs(predictions, references)
    return squad_v2_metrics(preds, golds, na_probs, span_preds=span_preds)


def per_example(predictions: Sequence[Any], references: Sequence[Any]) -> dict[str, list[float]]:
    """Each question's EM and F1 (0-100, after the no-answer threshold), in order: ``exact`` and
    ``f1`` are their means, so a bootstrap resamples these."""
    preds, golds, na_probs, _ = _inputs(predictions, references)
    has_ans = {qid: bool(texts) for qid, texts in golds.items()}
    exact, f1 = _thresholded(*_raw_scores(preds, golds), has_ans, na_probs or dict.fromkeys(preds, 0.0), 1.0)
    return {"exact": [100.0 * exact[q] for q in golds], "f1": [100.0 * f1[q] for q in golds]}


def resample(predictions: Sequence[Any], references: Sequence[Any], idx: Any) -> dict[str, Any]:
    """EM and F1 on each resample: means of the per-question scores."""
    import numpy as np

    return {k: np.asarray(v)[idx].mean(axis=1) for k, v in per_example(predictions, references).items()}


# --------------------------------------------------------------------------- data


@functools.lru_cache(maxsize=1)
def _articles() -> list[dict[str, Any]]:
    path = datasets_dir() / DEV_FILE
    if not path.is_file():
        raise DataError(f"Bundled data file {path} is missing; reinstall the workbench")
    return json.loads(path.read_text(encoding="utf-8"))["data"]


def split_articles() -> tuple[list[str], list[str]]:
    """Titles of the articles in our train part and our eval ('dev') part, in file order."""
    titles = [a["title"] for a in _articles()]
    return titles[:TRAIN_ARTICLES], titles[TRAIN_ARTICLES:]


def flatten(articles: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    cols: dict[str, list[Any]] = {k: [] for k in ("id", "title", "context", "question", "answers")}
    for article in articles:
        for para in article["paragraphs"]:
            for qa in para["qas"]:
                cols["id"].append(qa["id"])
                cols["title"].append(article["title"])
                cols["context"].append(para["context"])
                cols["question"].append(qa["question"])
                cols["answers"].append(
                    {
                        "text": [a["text"] for a in qa["answers"]],
                        "answer_start": [int(a["answer_start"]) for a in qa["answers"]],
                    }
                )
    return cols


def _columns(split: str) -> dict[str, list[Any]]:
    articles = _articles()
    return flatten({"train": articles[:TRAIN_ARTICLES], "dev": articles[TRAIN_ARTICLES:], "dev_full": articles}[split])


@functools.lru_cache(maxsize=4)
def _load(split: str) -> Any:
    import datasets

    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "title": datasets.Value("string"),
            "context": datasets.Value("string"),
            "question": datasets.Value("string"),
            "answers": {
                "text": datasets.Sequence(datasets.Value("string")),
                "answer_start": datasets.Sequence(datasets.Value("int32")),
            },
        }
    )
    return datasets.Dataset.from_dict(_columns(split), features=features)


# --------------------------------------------------------------------------- features


def _clean_questions(tokenizer: Any, questions: Sequence[str]) -> list[str]:
    """Strip leading spaces and cut questions longer than MAX_QUERY_TOKENS (at a token boundary)."""
    out = [q.lstrip() for q in questions]
    enc = tokenizer(out, add_special_tokens=False, return_offsets_mapping=True)
    for i, offsets in enumerate(enc["offset_mapping"]):
        if len(offsets) > MAX_QUERY_TOKENS:
            out[i] = out[i][: offsets[MAX_QUERY_TOKENS - 1][1]]
    return out


def _tokenize(tokenizer: Any, dataset: Any, max_length: int, doc_stride: int) -> tuple[Any, int]:
    """Windows of (question, context) with overlap; returns the encoding and the overlap used.

    ``doc_stride`` is the token overlap between consecutive windows (the HF ``stride``). It is
    capped at half the room left for context after the longest question, so short max_length
    values still work.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise DataError("SQuAD preprocessing needs a fast tokenizer (tokenizer.json) for offsets")
    questions = _clean_questions(tokenizer, list(dataset["question"]))
    longest_q = max((len(x) for x in tokenizer(questions, add_special_tokens=False)["input_ids"]), default=0)
    room = max_length - longest_q - tokenizer.num_special_tokens_to_add(pair=True)
    if room < 8:
        raise DataError(f"max_length {max_length} leaves no room for SQuAD contexts; use at least {longest_q + 16}")
    stride = max(0, min(doc_stride, room // 2))
    right = tokenizer.padding_side == "right"
    enc = tokenizer(
        questions if right else list(dataset["context"]),
        list(dataset["context"]) if right else questions,
        truncation="only_second" if right else "only_first",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding=False,
    )
    return enc, (1 if right else 0)


def train_features(tokenizer: Any, dataset: Any, *, max_length: int = 384, doc_stride: int = 128) -> Any:
    """Training windows with start/end token positions; no answer in the window -> CLS (index 0)."""
    import datasets

    enc, context_id = _tokenize(tokenizer, dataset, max_length, doc_stride)
    answers = list(dataset["answers"])
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
    cols: dict[str, list[Any]] = {k: [] for k in (*keys, "start_positions", "end_positions")}
    for i, offsets in enumerate(enc["offset_mapping"]):
        for k in keys:
            cols[k].append(enc[k][i])
        input_ids = enc["input_ids"][i]
        cls_index = input_ids.index(tokenizer.cls_token_id) if tokenizer.cls_token_id in input_ids else 0
        seq_ids = enc.sequence_ids(i)
        ans = answers[enc["overflow_to_sample_mapping"][i]]
        start_tok = end_tok = cls_index
        if ans["answer_start"]:
            start_char = ans["answer_start"][0]
            end_char = start_char + len(ans["text"][0])
            ctx = [j for j, s in enumerate(seq_ids) if s == context_id]
            first, last = ctx[0], ctx[-1]
            if offsets[first][0] <= start_char and offsets[last][1] >= end_char:
                s = first
                while s <= last and offsets[s][0] <= start_char:
                    s += 1
                e = last
                while e >= first and offsets[e][1] >= end_char:
                    e -= 1
                start_tok, end_tok = s - 1, e + 1
        cols["start_positions"].append(start_tok)
        cols["end_positions"].append(end_tok)
    return datasets.Dataset.from_dict(cols)


@dataclass
class EvalFeatures:
    """Eval windows: model inputs, the example each came from, and context offsets (None elsewhere)."""

    rows: list[dict[str, list[int]]]
    example_index: list[int]
    offsets: list[list[tuple[int, int] | None]] = field(repr=False)


def eval_features(tokenizer: Any, dataset: Any, *, max_length: int = 384, doc_stride: int = 128) -> EvalFeatures:
    enc, context_id = _tokenize(tokenizer, dataset, max_length, doc_stride)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
    rows, offsets = [], []
    for i, offs in enumerate(enc["offset_mapping"]):
        rows.append({k: enc[k][i] for k in keys})
        seq_ids = enc.sequence_ids(i)
        offsets.append([tuple(o) if seq_ids[j] == context_id else None for j, o in enumerate(offs)])
    return EvalFeatures(rows=rows, example_index=list(enc["overflow_to_sample_mapping"]), offsets=offsets)


def postprocess(
    dataset: Any,
    features: EvalFeatures,
    start_logits: Sequence[Any],
    end_logits: Sequence[Any],
    *,
    n_best: int = N_BEST,
    max_answer_length: int = MAX_ANSWER_TOKENS,
    null_threshold: float = 0.0,
) -> list[dict[str, Any]]:
    """Best answer per question: n-best (start, end) pairs over all its windows vs the null score.

    The null score is the smallest CLS score (start[0] + end[0]) over the question's windows;
    ``null_odds`` = null score - best span score; the answer is "" when it exceeds
    ``null_threshold``. ``null_odds`` is what the best-threshold search sweeps, and ``span_text``
    (the best span, "" if no window offers one) is what it answers with.
    """
    import numpy as np

    by_example: dict[int, list[int]] = collections.defaultdict(list)
    for f, ex in enumerate(features.example_index):
        by_example[ex].append(f)
    contexts = list(dataset["context"])
    ids = list(dataset["id"])
    out: list[dict[str, Any]] = []
    for ex in range(len(ids)):
        null_score = float("inf")
        best_score, best_text = -float("inf"), ""
        for f in by_example.get(ex, []):
            offs = features.offsets[f]
            n = len(offs)
            start = np.asarray(start_logits[f])[:n]
            end = np.asarray(end_logits[f])[:n]
            null_score = min(null_score, float(start[0] + end[0]))
            for s in np.argsort(start)[::-1][:n_best]:
                if offs[s] is None:
                    continue
                for e in np.argsort(end)[::-1][:n_best]:
                    if offs[e] is None or e < s or e - s + 1 > max_answer_length:
                        continue
                    value = float(start[s] + end[e])
                    if value > best_score:
                        best_score = value
                        best_text = contexts[ex][offs[s][0] : offs[e][1]]
        odds = NO_SPAN_ODDS if best_score == -float("inf") else null_score - best_score
        text = "" if odds > null_threshold else best_text
        out.append({"id": ids[ex], "text": text, "null_odds": odds, "span_text": best_text})
    return out


SQUAD_V2 = register_task(
    Task(
        id="squad_v2",
        data_files=(datasets_dir() / "squad_v2",),
        title="SQuAD 2.0 (extractive QA)",
        family="squad",
        head="qa",
        num_labels=2,
        metrics=("exact", "f1", "HasAns_f1", "NoAns_f1", "best_f1", "best_f1_thresh"),
        primary_metric="f1",
        loader=_load,
        columns=_columns,
        scorer=score,
        resample=resample,
        splits=("train", "dev", "dev_full"),
        note=(
            "SQuAD 2.0 train is not bundled: results are on an article split of the official dev "
            f"file (first {TRAIN_ARTICLES} of 35 articles = train, remaining 11 = dev; no context on "
            "both sides); 'dev_full' is the whole dev file"
        ),
    )
)
