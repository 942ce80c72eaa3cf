"""The uniform model soup of benchmarks/probe_rte_soup.py: averaged weights, refused mismatches, a loadable folder."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from benchmarks import probe_rte_soup as soup


def test_floats_are_averaged_in_their_dtype_and_integer_buffers_kept():
    a = {"w": torch.tensor([1.0, 2.0]), "h": torch.tensor([0.5], dtype=torch.float16), "ids": torch.arange(3)}
    b = {"w": torch.tensor([3.0, 6.0]), "h": torch.tensor([1.5], dtype=torch.float16), "ids": torch.arange(3)}
    c = {"w": torch.tensor([2.0, 1.0]), "h": torch.tensor([1.0], dtype=torch.float16), "ids": torch.arange(3)}
    out = soup.average_state_dicts([a, b, c])
    assert torch.allclose(out["w"], torch.tensor([2.0, 3.0]))
    assert out["h"].dtype == torch.float16 and out["h"].item() == 1.0
    assert torch.equal(out["ids"], torch.arange(3))


def test_half_precision_members_are_averaged_without_half_precision_rounding():
    eps = 2.0 ** -10  # fp16's spacing at 1: summed in fp16, 1 + 2 * (1 + eps) rounds to 3 and the mean to 1
    members = [{"w": torch.tensor([v], dtype=torch.float16)} for v in (1.0, 1.0 + eps, 1.0 + eps)]
    assert (members[0]["w"] + members[1]["w"] + members[2]["w"]).item() == 3.0
    assert soup.average_state_dicts(members)["w"].item() == 1.0 + eps  # the true mean 1 + 2 eps / 3, rounded once


def test_the_soup_of_linear_models_predicts_the_mean_of_their_predictions():
    # For a linear layer the averaged weights give the averaged outputs: an independent check of the mean.
    torch.manual_seed(0)
    layers = [torch.nn.Linear(4, 2) for _ in range(3)]
    mixed = torch.nn.Linear(4, 2)
    mixed.load_state_dict(soup.average_state_dicts([layer.state_dict() for layer in layers]))
    x = torch.randn(5, 4)
    expected = torch.stack([layer(x) for layer in layers]).mean(dim=0)
    assert torch.allclose(mixed(x), expected, atol=1e-6)


@pytest.mark.parametrize("other, message", [
    ({"w": torch.zeros(2)}, "other tensors"),
    ({"w": torch.zeros(3), "ids": torch.arange(3)}, "shapes differ"),
    ({"w": torch.zeros(2), "ids": torch.tensor([0, 1, 5])}, "non-floating tensor differs"),
])
def test_members_that_cannot_be_averaged_are_refused(other, message):
    first = {"w": torch.zeros(2), "ids": torch.arange(3)}
    with pytest.raises(ValueError, match=message):
        soup.average_state_dicts([first, other])


def test_a_single_member_is_not_a_soup():
    with pytest.raises(ValueError, match="at least two"):
        soup.average_state_dicts([{"w": torch.zeros(1)}])


def _member(folder, value, *, start=None, **manifest_changes):
    folder.mkdir(parents=True)
    save_file({"w": torch.full((2,), float(value))}, str(folder / soup.WEIGHTS))
    for name in soup.COPIED:
        (folder / name).write_text("{}")
    manifest = {"format": 1, "task": "rte", "head": "classification", "transforms": [], "aliases": {},
                "traits": ["float"], "base_model": str(start or ""), "cache_key": f"key{value}",
                "info": {"head_trained": True, "finetune": {"steps": value}}}
    (folder / "manifest.json").write_text(json.dumps({**manifest, **manifest_changes}))
    return folder


def test_write_soup_makes_a_model_folder_with_its_members_records(tmp_path):
    start = tmp_path / "qnli"
    start.mkdir()
    (start / "manifest.json").write_text(json.dumps({"task": "qnli", "info": {"finetune": {"steps": 372}}}))
    members = [_member(tmp_path / f"m{i}", i, start=start) for i in range(2)]
    model_dir = soup.write_soup(members, tmp_path / "out")
    assert torch.allclose(load_file(str(model_dir / soup.WEIGHTS))["w"], torch.full((2,), 0.5))
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["task"] == "rte" and manifest["base_model"] == str(start)
    assert "cache_key" not in manifest  # member 0's, not the soup's
    record = manifest["info"]["soup"]
    assert record["members"] == [str(m) for m in members]
    assert record["member_training"] == [{"steps": 0}, {"steps": 1}]
    assert record["start"] == {"path": str(start), "task": "qnli", "training": {"steps": 372}}
    assert "finetune" not in manifest["info"]  # the first member's training record is not the soup's
    recipe = soup.write_recipe(model_dir, tmp_path / "out", 256).read_text()
    assert f"model: {model_dir}" in recipe and "task: rte" in recipe and "chain: []" in recipe


@pytest.mark.parametrize("change, message", [
    ({"task": "qnli"}, "differs from .* in task"),
    ({"base_model": "/elsewhere"}, "in base_model"),
    ({"transforms": [{"kind": "int8"}]}, "stored transformed \\(int8\\)"),
    ({"data": "data"}, "training rows of its own"),
    ({"info": {"head_trained": False}}, "never trained"),
    ({"traits": ["float", "int8"]}, "in traits"),
])
def test_members_of_different_kinds_are_refused(tmp_path, change, message):
    members = [_member(tmp_path / "a", 0), _member(tmp_path / "b", 1, **change)]
    with pytest.raises(ValueError, match=message):
        soup.write_soup(members, tmp_path / "out")
    assert not (tmp_path / "out" / "model").exists()  # refused before anything is written


@pytest.mark.parametrize("name", soup.COPIED)
def test_members_with_different_configs_or_tokenizers_are_refused(tmp_path, name):
    members = [_member(tmp_path / "a", 0), _member(tmp_path / "b", 1)]
    (members[1] / name).write_text('{"num_labels": 3}')
    with pytest.raises(ValueError, match=f"its {name} differs"):
        soup.write_soup(members, tmp_path / "out")


def test_members_named_for_a_task_with_the_same_labels_make_a_soup_for_the_given_task(tmp_path):
    # RTE fine-tunes continued from a QNLI variant named QNLI before a6fe4d2; both are entailment / not entailment
    members = [_member(tmp_path / f"m{i}", i, task="qnli") for i in range(2)]
    manifest = json.loads((soup.write_soup(members, tmp_path / "out", "rte") / "manifest.json").read_text())
    assert manifest["task"] == "rte" and manifest["info"]["soup"]["members_manifest_task"] == "qnli"
    sentiment = [_member(tmp_path / f"s{i}", i, task="sst2") for i in range(2)]
    with pytest.raises(ValueError, match="the members are sst2 models \\(negative, positive\\), not rte's"):
        soup.write_soup(sentiment, tmp_path / "out2", "rte")
