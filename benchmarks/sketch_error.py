"""How far a sketched layer is from the layer it replaces, measured against the theory for m and n.

``sketch.random`` replaces y = W x by (W S^T)(S x), S an m x n Rademacher matrix with entries
+-1/sqrt(m). Then E[S^T S] = I (unbiased), and for one input x, exactly (Rademacher entries):

    E ||W (S^T S - I) x||^2 = (||W||_F^2 ||x||^2 + ||W x||^2 - 2 sum_i ||W_:i||^2 x_i^2) / m
                            <= 2 ||W||_F^2 ||x||^2 / m                                  (the JL / AMM bound)

so the error relative to the signal is about sqrt(1/m) * ||W||_F ||X||_F / ||W X||_F, which is small only
when m is large against the layer's "spread" ||W||_F ||X||_F / ||W X||_F (about sqrt(n) for inputs
with no preferred direction). In operator norm, S^T S has n - m zero eigenvalues and m near
(n/m)(1 +- sqrt(m/n))^2 (Marchenko-Pastur), so ||S^T S - I||_2 is about (1 + sqrt(n/m))^2 - 1.

This script measures, on the packaged MiniLM-L6 (n = 384 for attention, 1,536 into the FFN output)
with real SST-2 dev activations, for each sketched layer: the relative Frobenius error over seeds
against the exact expectation and the bound, the operator-norm error against Marchenko-Pastur, and
the best any trained W' could do through the same S (least squares on these inputs), then the whole
model's drift with the layers of each recipe sketched. numpy/scipy do the linear algebra; S is the
step's own (core.steps._sketched_linear.rademacher).

    python benchmarks/sketch_error.py                    # writes benchmarks/results/sketch_error.{json,md}
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one thread: the machine is shared
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ROLE_M = {"query": 256, "key": 256, "value": 256, "attention_output": 256, "ffn_out": 512}  # the step's defaults


# --- theory (pure numpy; tests/benchmarks/test_sketch_theory.py checks it against simulation) ---------
def expected_sq_error(w: np.ndarray, x: np.ndarray, m: int) -> float:
    """E ||W (S^T S - I) X||_F^2 over Rademacher S (entries +-1/sqrt(m)); X is n x tokens."""
    col = (w * w).sum(axis=0)  # ||W_:i||^2
    wx = w @ x
    return float(((w * w).sum() * (x * x).sum(axis=0) + (wx * wx).sum(axis=0) - 2 * col @ (x * x)).sum() / m)


def amm_bound_sq(w: np.ndarray, x: np.ndarray, m: int) -> float:
    """The JL / approximate-matrix-multiplication bound on that expectation: 2 ||W||_F^2 ||X||_F^2 / m."""
    return float(2 * (w * w).sum() * (x * x).sum() / m)


def marchenko_pastur_edge(n: int, m: int) -> float:
    """Large-dimension limit of ||S^T S - I||_2 for S m x n with i.i.d. +-1/sqrt(m) entries (m < n)."""
    return max((1 + np.sqrt(n / m)) ** 2 - 1, 1.0)


def sts_minus_identity_norm(s: np.ndarray) -> float:
    """||S^T S - I||_2 from the m eigenvalues of S S^T (S^T S has the same ones, and n - m zeros)."""
    eig = np.linalg.eigvalsh(s @ s.T)
    return float(max(np.abs(eig - 1).max(), 1.0 if s.shape[1] > s.shape[0] else 0.0))


def sketch_matrix(m: int, n: int, seed: int) -> np.ndarray:
    from core.steps._sketched_linear import rademacher

    return rademacher(m, n, seed).double().numpy()


def layer_errors(w: np.ndarray, x: np.ndarray, m: int, seeds: int) -> dict[str, Any]:
    """Measured and predicted errors of one layer (W: out x n, X: n x tokens) over ``seeds`` sketches."""
    import scipy.linalg

    wx = w @ x
    w_norm = float(scipy.linalg.svdvals(w)[0])
    signal = float(np.linalg.norm(wx))
    rel, op, op_s, best = [], [], [], []
    n = w.shape[1]
    for seed in range(seeds):
        s = sketch_matrix(m, n, seed)
        rel.append(float(np.linalg.norm(w @ s.T @ (s @ x) - wx)) / signal)
        op_s.append(sts_minus_identity_norm(s))
        op.append(float(scipy.linalg.svdvals(w @ s.T @ s - w)[0]) / w_norm)
        if seed < 3:  # the best W' through this S: least squares of W' (S X) = W X on half of the tokens,
            sx = s @ x  # measured on the other half (in-sample, W' fits anything once tokens <= m)
            fit, test = slice(0, x.shape[1] // 2), slice(x.shape[1] // 2, None)
            w_best = scipy.linalg.lstsq(sx[:, fit].T, wx[:, fit].T)[0].T
            best.append(float(np.linalg.norm(w_best @ sx[:, test] - wx[:, test]) / np.linalg.norm(wx[:, test])))
    spread = float(np.linalg.norm(w) * np.linalg.norm(x)) / signal
    return {
        "n": n, "m": m, "out": w.shape[0], "tokens": x.shape[1],
        "spread": spread,  # ||W||_F ||X||_F / ||W X||_F
        "rel_frobenius_mean": float(np.mean(rel)), "rel_frobenius_sd": float(np.std(rel, ddof=1)),
        "rel_frobenius_rms": float(np.sqrt(np.mean(np.square(rel)))),
        "rel_frobenius_expected": float(np.sqrt(expected_sq_error(w, x, m))) / signal,
        "rel_frobenius_bound": float(np.sqrt(amm_bound_sq(w, x, m))) / signal,
        "op_error_rel_mean": float(np.mean(op)),
        "op_sts_minus_i_mean": float(np.mean(op_s)), "op_sts_minus_i_mp": marchenko_pastur_edge(n, m),
        "best_trained_rel": float(np.mean(best)),
    }


# --- the model ---------------------------------------------------------------------------------------
def activations(model: Any, tokenizer: Any, texts: list[str]) -> dict[str, tuple[str, np.ndarray, np.ndarray]]:
    """name -> (role, W, X) of every block Linear of the sketch roles, X the real tokens' inputs (n x tokens)."""
    import torch

    from core.layers import encoder_layout

    layout = encoder_layout(model, step="sketch.random")
    names = {block.roles[role]: role for block in layout.blocks for role in ROLE_M}
    modules = dict(model.named_modules())
    batch = tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=64)
    keep = batch["attention_mask"].reshape(-1).bool()
    seen: dict[str, Any] = {}
    hooks = [modules[n].register_forward_hook(lambda mod, inp, out, n=n: seen.__setitem__(n, inp[0].detach()))
             for n in names]
    with torch.inference_mode():
        model(**batch)
    for h in hooks:
        h.remove()
    out = {}
    for name in names:
        x = seen[name].reshape(-1, seen[name].shape[-1])[keep].double().numpy().T
        out[name] = (names[name], modules[name].weight.detach().double().numpy(), x)
    return out


def model_drift(model: Any, tokenizer: Any, texts: list[str], recipes: dict[str, dict[str, int]],
                seed: int, calibration: dict[str, tuple[str, np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """The last hidden state of the sketched model against the dense one, per recipe (no training).

    init 0: W S^T (the step); 1: W S^T (S S^T)^-1 (least squares for inputs with no preferred
    direction, data-free); 2: least squares on the dense model's inputs of ``calibration`` sentences
    (other sentences than ``texts``)."""
    import copy

    import torch

    from core.steps._sketched_linear import SketchedLinear
    from core.steps.sketch import SketchConfig, layer_seed, sketch_targets

    batch = tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=64)
    mask = batch["attention_mask"].bool()
    with torch.inference_mode():
        dense = model(**batch).last_hidden_state[mask]
    out = {}
    for key, sizes in recipes.items():
        init = sizes.get("init", 0)
        sketched = copy.deepcopy(model)
        cfg = SketchConfig(**{k: v for k, v in sizes.items() if k != "init"}, epochs=0)
        for name, linear, group in sketch_targets(sketched, cfg):
            module = SketchedLinear.from_linear(linear, getattr(cfg, group), layer_seed(seed, name))
            with torch.no_grad():
                s = module.sketch.double()
                if init == 1:
                    module.weight.copy_((linear.weight.double() @ s.T @ torch.linalg.inv(s @ s.T)).float())
                elif init == 2:
                    import scipy.linalg

                    _, w, x = calibration[name]
                    sx = s.numpy() @ x
                    fitted = scipy.linalg.lstsq(sx.T, (w @ x).T)[0].T
                    module.weight.copy_(torch.from_numpy(fitted).float())
            parent, _, attr = name.rpartition(".")
            setattr(sketched.get_submodule(parent), attr, module)
        with torch.inference_mode():
            h = sketched(**batch).last_hidden_state[mask]
        cos = torch.nn.functional.cosine_similarity(h, dense, dim=-1)
        out[key] = {"rel_error": float((h - dense).norm() / dense.norm()), "cosine_mean": float(cos.mean()),
                    "cosine_min": float(cos.min()), **sizes}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--sentences", type=int, default=64, help="SST-2 dev sentences whose activations are used")
    parser.add_argument("--seeds", type=int, default=20, help="sketches per layer")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sketch_error"))
    args = parser.parse_args(argv)
    from benchmarks.study import environment, quiet_libraries

    quiet_libraries()
    import torch

    from core.models import ModelRef, load_model, load_tokenizer
    from core.tasks import get_task

    torch.set_num_threads(1)
    started, cpu = time.perf_counter(), time.process_time()
    ref = ModelRef.parse(args.model)
    model, tokenizer = load_model(ref).eval(), load_tokenizer(ref)
    dev = list(get_task("sst2").load("dev")["text"])
    texts, calibration_texts = dev[: args.sentences], dev[args.sentences: 2 * args.sentences]
    layers = {}
    for name, (role, w, x) in activations(model, tokenizer, texts).items():
        layers[name] = {"role": role, **layer_errors(w, x, ROLE_M[role], args.seeds)}
    recipes = {
        "paper: attention m=256 + FFN output m=512": {"m_attention": 256, "m_ffn_out": 512},
        "FFN output only, m=512": {"m_attention": 0, "m_ffn_out": 512},
        "attention only, m=256": {"m_attention": 256, "m_ffn_out": 0},
        "one layer's worth: m = n - 32 everywhere": {"m_attention": 352, "m_ffn_out": 1504},
        "paper sizes, init W S^T (S S^T)^-1 (data-free least squares)": {"m_attention": 256, "m_ffn_out": 512,
                                                                         "init": 1},
        "paper sizes, init least squares on other sentences' activations": {"m_attention": 256, "m_ffn_out": 512,
                                                                             "init": 2},
    }
    calibration = activations(model, tokenizer, calibration_texts)
    drift = model_drift(model, tokenizer, texts, recipes, seed=0, calibration=calibration)
    result = {"benchmark": "sketch_error", "settings": vars(args), "environment": environment(), "layers": layers,
              "drift": drift, "wall_s": round(time.perf_counter() - started, 1),
              "cpu_s": round(time.process_time() - cpu, 1)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    text = markdown(result)
    out.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)
    return 0


def markdown(result: dict[str, Any]) -> str:
    by_role: dict[str, list[dict[str, Any]]] = {}
    for layer in result["layers"].values():
        by_role.setdefault(layer["role"], []).append(layer)
    s = result["settings"]
    lines = [
        "### Random sketching: measured error against the theory", "",
        f"{s['model']}, inputs of each layer on {s['sentences']} SST-2 dev sentences (real tokens only), "
        f"{s['seeds']} sketches per layer (the step's Rademacher S, +-1/sqrt(m)); the 6 blocks of each role "
        "averaged (min-max across blocks in brackets). 'relative error' = ||W S^T S X - W X||_F / ||W X||_F; "
        "'expected' is the exact expectation for Rademacher S, 'JL/AMM bound' = sqrt(2/m) ||W||_F ||X||_F / "
        "||W X||_F; 'best trained' = least-squares W' with W' S X = W X fitted on half of the tokens and "
        "measured on the other half: about the lowest error a W S^T trained for this layer alone reaches.", "",
        "| role | n | m | spread ||W|| ||X|| / ||WX|| | relative error, measured | expected | JL/AMM bound | "
        "||S^T S - I||_2 measured / Marchenko-Pastur | ||W(S^T S - I)||_2 / ||W||_2 | best trained |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def span(rows: list[dict[str, Any]], key: str, fmt: str = "{:.2f}") -> str:
        values = [r[key] for r in rows]
        return f"{fmt.format(np.mean(values))} [{fmt.format(min(values))}-{fmt.format(max(values))}]"

    for role, rows in by_role.items():
        r0 = rows[0]
        lines.append(f"| {role} | {r0['n']} | {r0['m']} | {span(rows, 'spread', '{:.1f}')} | "
                     f"{span(rows, 'rel_frobenius_mean')} | {span(rows, 'rel_frobenius_expected')} | "
                     f"{span(rows, 'rel_frobenius_bound')} | {span(rows, 'op_sts_minus_i_mean')} / "
                     f"{r0['op_sts_minus_i_mp']:.2f} | {span(rows, 'op_error_rel_mean')} | "
                     f"{span(rows, 'best_trained_rel')} |")
    lines += ["", "Whole model, no training: the last hidden state with the layers of each recipe sketched "
              "against the dense model's (same sentences; the calibrated init is fitted on the next "
              f"{s['sentences']} dev sentences, each layer on the dense model's inputs).", "",
              "| recipe | relative error | cosine, mean | cosine, worst token |", "|---|---:|---:|---:|"]
    for key, d in result["drift"].items():
        lines.append(f"| {key} | {d['rel_error']:.2f} | {d['cosine_mean']:.3f} | {d['cosine_min']:.3f} |")
    lines += ["", f"Wall {result['wall_s']} s, CPU {result['cpu_s']} s (1 thread). Command: "
              f"`python benchmarks/sketch_error.py --sentences {s['sentences']} --seeds {s['seeds']}`.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
