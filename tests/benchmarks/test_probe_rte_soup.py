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


def test_write_soup_makes_a_model_folder_naming_its_members(tmp_path):
    members = []
    for i in range(2):
        folder = tmp_path / f"m{i}"
        folder.mkdir()
        save_file({"w": torch.full((2,), float(i))}, str(folder / soup.WEIGHTS))
        for name in soup.COPIED:
            (folder / name).write_text("{}")
        (folder / "manifest.json").write_text(json.dumps({"format": 1, "info": {"finetune": {"steps": 3}}}))
        members.append(folder)
    model_dir = soup.write_soup(members, tmp_path / "out")
    assert torch.allclose(load_file(str(model_dir / soup.WEIGHTS))["w"], torch.full((2,), 0.5))
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["info"]["soup"] == {"method": "uniform", "members": [str(m) for m in members]}
    assert "finetune" not in manifest["info"]  # the first member's training record is not the soup's
    recipe = soup.write_recipe(model_dir, tmp_path / "out", 256).read_text()
    assert f"model: {model_dir}" in recipe and "task: rte" in recipe and "chain: []" in recipe
