"""Where the packaged model keeps its entailment signal: RTE read from the frozen encoder three ways.

Issue 14's RTE target (60 %) is not met by fine-tuning the packaged all-MiniLM-L6-v2 as a cross-encoder
(premise and hypothesis in one sequence, the mean of its tokens into the head): 0.569 over three seeds
(benchmarks/results/bench_finetune.json). That model was trained as a bi-encoder, each sentence encoded
alone and compared by cosine, on pairs that include NLI entailments. This probe trains nothing in the
encoder; it reads RTE's train and dev pairs from the frozen model as

- ``cross``: one sequence ``[CLS] premise [SEP] hypothesis [SEP]`` (what fine-tuning sees today), the
  mean of each segment's tokens;
- ``masked``: the same sequence with attention between the segments blocked (a 4-D mask) and the
  hypothesis' positions restarted at 1, as if it followed its own [CLS] (BERT's absolute positions);
- ``separate``: each sentence encoded alone (two passes), as the model was trained;

and scores two readouts fitted on the train split only: a threshold on the cosine of the two means
(the threshold that is best on train), and a logistic regression on [u, v, |u - v|, u * v] with its
regularisation chosen by 5-fold cross-validation on train (scikit-learn). Every dev accuracy carries its
bootstrap interval; each encoding is compared with ``cross`` paired on the same dev pairs.

``--finetune-seeds`` then trains the whole encoder as a siamese classifier (Sentence-BERT's classification
objective: each sentence encoded alone, mean pooling, a linear layer on [u, v, |u - v|, u * v], cross-entropy),
with AdamW, linear warm-up over 10 % of the steps and decay to 0, batches of similar premise lengths, and
scores the dev split once at the end: what a siamese pair head would give, before building one.

    python benchmarks/probe_pair_encoding.py      # writes benchmarks/results/candidates/pair_encoding_probe.*
    python benchmarks/probe_pair_encoding.py --finetune-seeds 0,1,2   # adds the fine-tuned siamese runs
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.study import environment, log, quiet_libraries  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "candidates"
ENCODINGS = ("cross", "masked", "separate")
FINETUNE_RESULTS = ROOT / "benchmarks" / "results" / "bench_finetune.json"


def masked_mean(hidden: Any, mask: Any) -> Any:
    """The mean of each row's token vectors where ``mask`` is set (batch x tokens)."""
    w = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * w).sum(1) / w.sum(1).clamp(min=1.0)


def segment_means(model: Any, tokenizer: Any, premises: list[str], hypotheses: list[str], encoding: str, *,
                  batch_size: int, max_length: int) -> tuple[Any, Any]:
    """L2-normalised mean token vectors of the premise (u) and hypothesis (v) under ``encoding``."""
    import torch

    def mean(hidden: Any, mask: Any) -> Any:
        return torch.nn.functional.normalize(masked_mean(hidden, mask), dim=-1)

    us, vs = [], []
    with torch.no_grad():
        for i in range(0, len(premises), batch_size):
            a, b = premises[i:i + batch_size], hypotheses[i:i + batch_size]
            if encoding == "separate":
                for texts, out in ((a, us), (b, vs)):
                    enc = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
                    out.append(mean(model(**enc).last_hidden_state, enc["attention_mask"]))
                continue
            enc = tokenizer(a, b, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            real = enc["attention_mask"].bool()
            second = enc["token_type_ids"].bool() & real
            inputs = {"input_ids": enc["input_ids"], "token_type_ids": enc["token_type_ids"], "attention_mask": real.long()}
            if encoding == "masked":
                allowed = (second.unsqueeze(2) == second.unsqueeze(1)) & real.unsqueeze(1)
                blocked = torch.zeros(allowed.shape, dtype=torch.float32).masked_fill(~allowed, torch.finfo(torch.float32).min)
                positions = torch.arange(real.shape[1]).expand_as(real)
                start = second.float().argmax(dim=1, keepdim=True)  # first hypothesis token
                inputs["attention_mask"] = blocked.unsqueeze(1)
                inputs["token_type_ids"] = torch.zeros_like(enc["token_type_ids"])  # the model only ever saw type 0
                inputs["position_ids"] = torch.where(second, positions - start + 1, positions)
            hidden = model(**inputs).last_hidden_state
            us.append(mean(hidden, real & ~second))
            vs.append(mean(hidden, second))
    return torch.cat(us).numpy(), torch.cat(vs).numpy()


def readouts(train: tuple[Any, Any, Any], dev: tuple[Any, Any, Any], seed: int) -> dict[str, Any]:
    """Dev predictions of the cosine threshold and of the logistic regression, both fitted on train."""
    import numpy as np
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    (u, v, y), (du, dv, _) = train, dev
    cos, dcos = (u * v).sum(1), (du * dv).sum(1)
    # label 0 = entailment (core.tasks.glue.ENTAILMENT_LABELS): a high cosine predicts 0
    candidates = np.unique(cos)
    train_acc = np.array([((cos > t).astype(int) == 1 - y).mean() for t in candidates])
    threshold = float(candidates[int(train_acc.argmax())])

    def features(a: Any, b: Any) -> Any:
        return np.hstack([a, b, np.abs(a - b), a * b])

    clf = make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=10, cv=5, max_iter=5000, random_state=seed))
    with warnings.catch_warnings():  # scikit-learn 1.9 announces a change of LogisticRegressionCV's attributes
        warnings.simplefilter("ignore", FutureWarning)
        clf.fit(features(u, v), y)
    return {
        "cosine": {"predictions": (1 - (dcos > threshold)).astype(int).tolist(), "threshold": threshold,
                   "train_accuracy": float(train_acc.max())},
        "logistic": {"predictions": clf.predict(features(du, dv)).astype(int).tolist(),
                     "C": float(clf[-1].C_[0])},
    }


def finetune_siamese(model: Any, tokenizer: Any, train: Any, dev: Any, *, seed: int, lr: float, epochs: float,
                     batch_size: int, max_length: int) -> dict[str, Any]:
    """Fine-tune ``model`` (changed in place) with a new linear head on [u, v, |u - v|, u * v]; dev predictions."""
    import numpy as np
    import torch
    from transformers import get_linear_schedule_with_warmup

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    head = torch.nn.Linear(4 * model.config.hidden_size, 2)

    def embed(texts: list[str]) -> Any:
        enc = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        return masked_mean(model(**enc).last_hidden_state, enc["attention_mask"])

    def logits(premises: list[str], hypotheses: list[str]) -> Any:
        u, v = embed(premises), embed(hypotheses)
        return head(torch.cat([u, v, (u - v).abs(), u * v], dim=-1))

    params = [*model.parameters(), *head.parameters()]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    n = len(train["label"])
    steps = int(epochs * n / batch_size)
    schedule = get_linear_schedule_with_warmup(optimizer, int(0.1 * steps), steps)
    lengths = np.array([len(t) for t in train["text"]])
    labels = torch.tensor(train["label"])
    model.train()
    done, started = 0, time.perf_counter()
    while done < steps:
        order = rng.permutation(n)
        chunk = 8 * batch_size  # sort each chunk of 8 batches by premise length: less padding, still shuffled
        order = np.concatenate([c[np.argsort(lengths[c], kind="stable")] for c in np.array_split(order, max(1, n // chunk))])
        batches = [order[i:i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]
        for b in rng.permutation(len(batches)):
            idx = batches[b]
            loss = torch.nn.functional.cross_entropy(
                logits([train["text"][i] for i in idx], [train["text_pair"][i] for i in idx]), labels[idx])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            done += 1
            if done % 50 == 0:
                log(f"siamese seed {seed}: step {done}/{steps}, loss {loss.item():.3f}")
            if done >= steps:
                break
    model.eval()
    predictions: list[int] = []
    with torch.no_grad():
        for i in range(0, len(dev["label"]), 64):
            predictions += logits(dev["text"][i:i + 64], dev["text_pair"][i:i + 64]).argmax(-1).tolist()
    return {"predictions": predictions, "steps": steps, "seconds": round(time.perf_counter() - started, 1)}


def finetuned_reference() -> dict[str, Any] | None:
    """The fine-tuned cross-encoder's RTE figures as bench_finetune.json stores them (read, not copied)."""
    if not FINETUNE_RESULTS.exists():
        return None
    rte = next((t for t in json.loads(FINETUNE_RESULTS.read_text(encoding="utf-8"))["tasks"] if t["task"] == "rte"), None)
    if rte is None:
        return None
    return {"mean": rte["metric"], "per_seed": [s["metric"] for s in rte.get("per_seed", [])],
            "source": str(FINETUNE_RESULTS.relative_to(ROOT))}


def load(args: argparse.Namespace) -> tuple[Any, Any, dict[str, Any]]:
    """The frozen encoder, its tokenizer and RTE's train and dev splits (the first ``--limit`` pairs of each)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from core.models import ModelRef
    from core.tasks import get_task

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    folder = ModelRef.parse(args.model).local_folder()
    if folder is None:
        raise SystemExit(f"{args.model}: this probe reads a local or packaged model folder")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    if model.config.model_type != "bert":
        raise SystemExit(f"{args.model} is a {model.config.model_type} model; the 'masked' encoding restarts BERT's "
                         "0-based absolute positions and uses its token types, so this probe reads BERT models only")
    task = get_task("rte")
    splits = {name: task.load(name) for name in ("train", "dev")}
    if args.limit:
        splits = {name: ds.select(range(min(args.limit, len(ds)))) for name, ds in splits.items()}
    return model, tokenizer, splits


def run_finetune(args: argparse.Namespace) -> dict[str, Any]:
    """The siamese fine-tune once per seed, each from the packaged weights; dev accuracy with its interval."""
    import numpy as np

    from core.measure.intervals import metric_interval
    from core.tasks.metrics import accuracy, resample_accuracy

    runs = []
    for seed in args.finetune_seeds:
        model, tokenizer, splits = load(args)
        out = finetune_siamese(model, tokenizer, splits["train"], splits["dev"], seed=seed, lr=args.lr,
                               epochs=args.epochs, batch_size=args.train_batch_size, max_length=args.max_length)
        out["accuracy"] = metric_interval("accuracy", out.pop("predictions"), splits["dev"]["label"], accuracy,
                                          resample_accuracy, seed=args.seed).to_dict()
        runs.append({"seed": seed, **out})
        log(f"siamese seed {seed}: dev accuracy {out['accuracy']['value']:.4f} ({out['seconds']} s)")
    values = np.array([r["accuracy"]["value"] for r in runs])
    return {"lr": args.lr, "epochs": args.epochs, "batch_size": args.train_batch_size, "weight_decay": 0.01,
            "warmup_ratio": 0.1, "threads": args.threads, "per_seed": runs, "mean": float(values.mean()),
            "sd": float(values.std(ddof=1)) if len(values) > 1 else None}


def run(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from core.measure.intervals import metric_interval, paired_delta_interval
    from core.tasks.metrics import accuracy, resample_accuracy

    model, tokenizer, splits = load(args)
    labels = {name: ds["label"] for name, ds in splits.items()}
    majority = max(set(labels["train"]), key=labels["train"].count)
    results: dict[str, Any] = {"majority": {"label": majority, **metric_interval(
        "accuracy", [majority] * len(labels["dev"]), labels["dev"], accuracy, resample_accuracy, seed=args.seed).to_dict()}}
    cross_predictions: dict[str, list[int]] = {}
    for encoding in ENCODINGS:
        started = time.perf_counter()
        vectors = {name: segment_means(model, tokenizer, ds["text"], ds["text_pair"], encoding,
                                       batch_size=args.batch_size, max_length=args.max_length)
                   for name, ds in splits.items()}
        fitted = readouts((*vectors["train"], np.asarray(labels["train"])), (*vectors["dev"], None), args.seed)
        entry: dict[str, Any] = {"seconds": round(time.perf_counter() - started, 1)}
        for readout, out in fitted.items():
            predictions = out.pop("predictions")
            out["accuracy"] = metric_interval("accuracy", predictions, labels["dev"], accuracy, resample_accuracy, seed=args.seed).to_dict()
            if encoding == "cross":
                cross_predictions[readout] = predictions
            else:
                out["change_vs_cross"] = paired_delta_interval(
                    "accuracy", predictions, cross_predictions[readout], labels["dev"], accuracy, resample_accuracy, seed=args.seed).to_dict()
            entry[readout] = out
        results[encoding] = entry
        log(f"{encoding}: cosine {entry['cosine']['accuracy']['value']:.3f}, "
            f"logistic {entry['logistic']['accuracy']['value']:.3f} ({entry['seconds']} s)")
    return {"benchmark": "pair_encoding_probe", "model": args.model, "task": "rte",
            "train_pairs": len(labels["train"]), "dev_pairs": len(labels["dev"]), "max_length": args.max_length,
            "seed": args.seed, "threads": args.threads, "results": results,
            "finetuned_cross_encoder": finetuned_reference(), "environment": environment()}


def markdown(payload: dict[str, Any]) -> str:
    def pct(iv: dict[str, Any]) -> str:
        return f"{100 * iv['value']:.1f} [{100 * iv['low']:.1f}, {100 * iv['high']:.1f}]"

    def change(iv: dict[str, Any] | None) -> str:
        if iv is None:
            return "—"
        noise = " (within noise)" if iv["low"] <= 0 <= iv["high"] else ""
        return f"{100 * iv['value']:+.1f} [{100 * iv['low']:+.1f}, {100 * iv['high']:+.1f}]{noise}"

    r = payload["results"]
    lines = [
        "# RTE from the frozen packaged encoder, three ways (benchmarks/probe_pair_encoding.py)",
        "",
        f"Model {payload['model']}, frozen; readouts fitted on RTE train ({payload['train_pairs']} pairs), scored on "
        f"dev ({payload['dev_pairs']} pairs), max length {payload['max_length']}; accuracy in % with its 95 % "
        "bootstrap interval, changes paired on the same dev pairs. Majority class (label "
        f"{r['majority']['label']}): {pct(r['majority'])}.",
        "",
        "| encoding | cosine threshold | change vs cross | logistic regression | change vs cross | seconds |",
        "|---|---|---|---|---|---:|",
    ]
    for encoding in ENCODINGS:
        e = r[encoding]
        lines.append(f"| {encoding} | {pct(e['cosine']['accuracy'])} | {change(e['cosine'].get('change_vs_cross'))} | "
                     f"{pct(e['logistic']['accuracy'])} | {change(e['logistic'].get('change_vs_cross'))} | {e['seconds']} |")
    tuned = payload.get("finetuned_siamese")
    if tuned:
        seeds = "; ".join(f"seed {x['seed']}: {pct(x['accuracy'])} ({x['steps']} steps, {x['seconds'] / 60:.1f} min)"
                          for x in tuned["per_seed"])
        sd = f", sd {100 * tuned['sd']:.1f}" if tuned.get("sd") is not None else ""
        lines += ["", f"Fine-tuned as a siamese classifier (each sentence alone; a linear layer on [u, v, |u - v|, "
                      f"u * v]; AdamW lr {tuned['lr']}, {tuned['epochs']} epochs, batch {tuned['batch_size']}, weight "
                      f"decay {tuned['weight_decay']}, warm-up {tuned['warmup_ratio']}; {tuned['threads']} threads), "
                      f"scored once on dev at the end: mean {100 * tuned['mean']:.1f} %{sd} ({seeds})."]
    ref = payload.get("finetuned_cross_encoder")
    if ref:
        seeds = " / ".join(f"{100 * m:.1f}" for m in ref["per_seed"])
        lines += ["", f"For comparison, the cross-encoder fine-tuned with the shipped defaults ({ref['source']}): "
                      f"{100 * ref['mean']:.1f} % mean over seeds ({seeds})."]
    env = payload["environment"]
    lines += ["", f"Machine: {env['cpu_model']}, {env['cores']} cores, {payload['threads']} threads, "
              f"torch {env['versions']['torch']}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--limit", type=int, default=None, help="first N pairs of each split (a quick check)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--finetune-seeds", type=lambda t: [int(x) for x in t.split(",")], default=None,
                        metavar="N,N,...", help="fine-tune the siamese classifier with these seeds and add the runs to "
                                                 "the JSON already in --out (the frozen probe is not repeated)")
    parser.add_argument("--lr", type=float, default=5e-5, help="siamese fine-tune: peak learning rate")
    parser.add_argument("--epochs", type=float, default=3.0, help="siamese fine-tune: passes over train")
    parser.add_argument("--train-batch-size", type=int, default=32, help="siamese fine-tune: pairs per step")
    args = parser.parse_args(argv)
    quiet_libraries()
    stem = "pair_encoding_probe" + ("_quick" if args.limit else "")
    if args.finetune_seeds:
        existing = args.out / f"{stem}.json"
        if not existing.exists():
            parser.error(f"{existing} does not exist: run the frozen probe first (without --finetune-seeds)")
        payload = json.loads(existing.read_text(encoding="utf-8"))
        payload["finetuned_siamese"] = run_finetune(args)
    else:
        payload = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    (args.out / f"{stem}.md").write_text(markdown(payload), encoding="utf-8")
    log(f"wrote {args.out / stem}.json and .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
