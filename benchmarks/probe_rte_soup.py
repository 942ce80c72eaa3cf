"""A uniform model soup for RTE's teacher: the weights of several RTE fine-tunes averaged into one model.

RTE's teacher (issue 20) landed between 171 and 179 of 277 dev pairs under every setting tried before, and its
interval overlapped its majority class's. Fine-tuned models that start from the same weights tend to
lie in one basin, where their weight average often scores like their ensemble (Wortsman et al. 2022, "Model
soups"), at the inference cost of one model. Here every member starts from ONE shared QNLI
fine-tune (the head carries over, QNLI and RTE both being entailment / not entailment), and the members
differ only by seed (shuffles, dropout, held-out slice). The soup is uniform (every member, equal weights),
decided before any dev score was seen, so dev selects nothing.

The route is a user's: the QNLI fine-tune is a one-step recipe, each member is ``bench_finetune.py`` from
its saved folder, and the soup is written as a model folder that a recipe scores like any other model:

    workbench-cli run --db /tmp/soup/run.sqlite /tmp/soup/qnli.yaml      # task: qnli, finetune, first_on_task: none
    python benchmarks/bench_finetune.py --tasks rte --threads 1 --seeds 0 --model <its finetune folder> \\
        --config first_on_task=none --out /tmp/soup/rte_seed0            # and seeds 1, 2, 3
    python benchmarks/probe_rte_soup.py --out /tmp/soup/uniform <member folder> ...   # writes model/ and recipe.yaml
    workbench-cli run --db /tmp/soup/uniform/run.sqlite /tmp/soup/uniform/recipe.yaml

Measured: ``benchmarks/results/candidates/README.md`` ("RTE's teacher as a model soup").
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

WEIGHTS = "model.safetensors"
COPIED = ("config.json", "tokenizer.json", "tokenizer_config.json")


def average_state_dicts(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The uniform soup: floating tensors averaged (in float64, stored in their own dtype); any other tensor
    (an integer buffer) must be equal in every member, and the members must hold the same names and shapes."""
    if len(states) < 2:
        raise ValueError("a soup needs at least two members")
    names = set(states[0])
    for i, state in enumerate(states[1:], start=1):
        if set(state) != names:
            raise ValueError(f"member {i} holds other tensors than member 0: {sorted(names ^ set(state))[:5]}")
    soup = {}
    for name, first in states[0].items():
        tensors = [state[name] for state in states]
        if any(t.shape != first.shape for t in tensors):
            raise ValueError(f"{name}: the members' shapes differ: {[tuple(t.shape) for t in tensors]}")
        if first.is_floating_point():
            soup[name] = torch.stack([t.double() for t in tensors]).mean(dim=0).to(first.dtype)
        elif all(torch.equal(t, first) for t in tensors):
            soup[name] = first.clone()
        else:
            raise ValueError(f"{name}: a non-floating tensor differs between members and cannot be averaged")
    return soup


# Manifest fields every member must share: a soup averages weights, not models of different kinds.
SHARED_FIELDS = ("format", "task", "head", "architecture", "transforms", "aliases", "base_model", "traits")


def read_members(members: list[Path]) -> list[dict]:
    """The members' manifests, refused unless they are plain fine-tunes of one kind from one start: the same
    manifest fields (an encoded transform, e.g. int8, is not averageable), the same config.json, no data of
    their own, trained heads."""
    manifests = [json.loads((m / "manifest.json").read_text(encoding="utf-8")) for m in members]
    first = manifests[0]
    for member, manifest in zip(members, manifests, strict=True):
        if manifest.get("transforms"):
            raise ValueError(f"{member}: its weights are stored transformed ({manifest['transforms'][0].get('kind')}); "
                             "average float fine-tunes")
        if "data" in manifest:
            raise ValueError(f"{member} carries training rows of its own; a soup does not")
        if not (manifest.get("info") or {}).get("head_trained"):
            raise ValueError(f"{member}: its task head was never trained")
        differs = [f for f in SHARED_FIELDS if manifest.get(f) != first.get(f)]
        if differs:
            raise ValueError(f"{member} differs from {members[0]} in {', '.join(differs)}")
        for name in COPIED:  # config.json and the tokenizer: the soup keeps member 0's
            if (member / name).read_bytes() != (members[0] / name).read_bytes():
                raise ValueError(f"{member}: its {name} differs from {members[0]}'s")
    return manifests


def soup_task(manifests: list[dict], task_id: str) -> str | None:
    """The task the soup is for, and the task the members' manifests name when it differs. Variants continued
    from another task's variant named that task before a6fe4d2 (RTE's members say qnli); that is accepted only
    when the two tasks share their labels, so a soup never relabels a head that answers another question."""
    from core.tasks import get_task, head_carry_over_problem

    stated = manifests[0]["task"]
    if stated == task_id:
        return None
    wanted, named = get_task(task_id), get_task(stated)
    if wanted.head != named.head or head_carry_over_problem(stated, named.num_labels, wanted):
        raise ValueError(f"the members are {stated} models ({', '.join(named.label_names)}), not {task_id}'s "
                         f"({', '.join(wanted.label_names)})")
    return stated


def write_soup(members: list[Path], out: Path, task_id: str = "rte") -> Path:
    """The averaged model folder ``out/model``: weights, config and tokenizer, and a manifest naming the
    members with their training records (and their shared start's, when it is a stored variant)."""
    manifests = read_members(members)
    stated_task = soup_task(manifests, task_id)
    model_dir = out / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    save_file(average_state_dicts([load_file(str(m / WEIGHTS)) for m in members]), str(model_dir / WEIGHTS))
    for name in COPIED:
        shutil.copy2(members[0] / name, model_dir / name)
    manifest = {f: manifests[0][f] for f in SHARED_FIELDS if f in manifests[0]} | {"task": task_id}
    base = Path(manifest.get("base_model") or "") / "manifest.json"
    start = json.loads(base.read_text(encoding="utf-8")) if base.is_file() else None
    manifest["info"] = {"head_trained": True, "soup": {
        "method": "uniform", "members": [str(m) for m in members],
        **({"members_manifest_task": stated_task} if stated_task else {}),
        "member_training": [(m.get("info") or {}).get("finetune") for m in manifests],
        "start": {"path": manifest["base_model"], "task": start["task"],
                  "training": (start.get("info") or {}).get("finetune")} if start else None}}
    (model_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return model_dir


def write_recipe(model_dir: Path, out: Path, max_length: int, task_id: str = "rte") -> Path:
    """A recipe with no steps: the run scores the soup as its baseline on RTE's whole dev set."""
    recipe = out / "recipe.yaml"
    recipe.write_text(
        "format: 1\n"
        f"name: RTE teacher as a uniform soup of {model_dir}\n"
        f"model: {model_dir}\n"
        f"task: {task_id}\n"
        "seed: 0\n"
        "measure:\n"
        "  eval_limit: null\n"
        f"  max_length: {max_length}\n"
        "  eval_batch_size: 64\n"
        "  latency_repeats: 1\n"
        "chain: []\n")
    return recipe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("members", nargs="+", type=Path, help="the fine-tuned model folders to average")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-length", type=int, default=256, help="the dev scoring's sequence length")
    parser.add_argument("--task", default="rte", help="the task the members were fine-tuned on")
    args = parser.parse_args(argv)
    try:
        model_dir = write_soup(args.members, args.out, args.task)
    except ValueError as exc:
        parser.error(str(exc))
    print(write_recipe(model_dir, args.out, args.max_length, args.task))
    return 0


if __name__ == "__main__":
    sys.exit(main())
