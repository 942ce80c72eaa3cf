"""Per-layer sensitivity (core.analysis.sensitivity): each transform acts on exactly its part and equals
what the real step does to that part; a map measured through the CLI is stored, exported and reread;
cancelling keeps the cells measured; an int8 variant is refused naming its float parent."""

from __future__ import annotations

import copy
import csv
import io
import json
from pathlib import Path

import pytest
import torch
from torch.nn.utils import prune

from core.analysis.sensitivity import (
    Settings,
    Transform,
    apply_transform,
    model_parts,
    parse_transforms,
    run_sensitivity,
)
from core.cli import main
from core.errors import ConfigError, StepCancelled
from core.steps.base import get_step
from core.store import open_store, run_variants, sensitivity_map, sensitivity_maps
from tests.core.fakes import tiny_recipe
from tests.core.steps_support import make_ctx, outputs, sample_batch, tiny_state, tiny_task

TRANSFORMS = ["int8", "nbit:2", "prune:0.5"]


# --- transforms and parts ----------------------------------------------------------------------
@pytest.mark.parametrize(("text", "name"), [("int8", "int8"), ("NBIT:6", "nbit:6"), ("prune:0.3", "prune:0.3"),
                                             ("nbit:6.0", "nbit:6")])
def test_transforms_parse_to_their_canonical_names(text: str, name: str) -> None:
    assert Transform.parse(text).name == name


@pytest.mark.parametrize(("texts", "message"), [
    (["int4"], "unknown transform 'int4'.*int8, nbit:BITS"), (["nbit:17"], "1 to 16"), (["nbit:x"], "needs a number"),
    (["prune:1.5"], "at most 0.95"), (["int8:3"], "takes no value"), ([], "at least one"),
    (["nbit:6", "nbit:6.0"], "given twice")])
def test_bad_transforms_are_refused_saying_what_is_accepted(texts: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_transforms(texts)


def test_parts_by_layer_and_by_role_cover_every_floating_tensor_once(tmp_path: Path) -> None:
    model = tiny_state(tmp_path, layers=3, hidden=32).model
    floating = {n for n, v in model.state_dict().items() if v.is_floating_point()}
    by_layer = model_parts(model, "layer")
    assert [p.label for p in by_layer] == ["embeddings", "layer 0", "layer 1", "layer 2", "head"]
    names = [n for p in by_layer for n in p.tensors]
    assert len(names) == len(set(names)) and set(names) == floating
    assert by_layer[2].linears == [f"bert.encoder.layer.1.{r}" for r in (
        "attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
        "intermediate.dense", "output.dense")]
    assert by_layer[-1].linears == ["bert.pooler.dense", "classifier"]
    by_role = model_parts(model, "role")
    assert [p.label for p in by_role] == ["embeddings", "query", "key", "value", "attention_output", "ffn_in",
                                          "ffn_out", "head"]
    assert by_role[1].linears == [f"bert.encoder.layer.{i}.attention.self.query" for i in range(3)]
    assert set(by_role[1].tensors) == {f"bert.encoder.layer.{i}.attention.self.query.{w}" for i in range(3)
                                       for w in ("weight", "bias")}


def _changed(before: dict[str, torch.Tensor], model: torch.nn.Module) -> set[str]:
    after = model.state_dict()
    return {n for n, v in before.items() if n in after and not torch.equal(after[n], v)}


def test_nbit_on_one_layer_is_the_step_with_only_that_layer_quantized(tmp_path: Path) -> None:
    state = tiny_state(tmp_path, layers=2, hidden=64)
    part = model_parts(state.model, "layer")[1]  # layer 0
    model = copy.deepcopy(state.model)
    apply_transform(model, part, Transform("nbit", 3))
    assert _changed(state.model.state_dict(), model) <= set(part.tensors)
    step = get_step("quantize.linear_nbit")
    reference = step(step.config_cls(bits=8, layer_bits=[3, 0], embedding_bits=0, head_bits=0)).apply(
        copy.deepcopy(state), make_ctx(tmp_path, tiny_task())).model
    for name, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name


def test_int8_on_one_layer_is_the_step_with_every_other_part_in_float(tmp_path: Path) -> None:
    state = tiny_state(tmp_path, layers=2, hidden=64)
    parts = model_parts(state.model, "layer")
    model = copy.deepcopy(state.model)
    apply_transform(model, parts[2], Transform("int8"))  # layer 1
    step = get_step("quantize.dynamic_int8")
    reference = step(step.config_cls(keep_float_layers=[0], embeddings_int8=False, quantize_head=False)).apply(
        state, make_ctx(tmp_path, tiny_task())).model
    batch = sample_batch(state.tokenizer)
    assert torch.equal(outputs(model, batch), outputs(reference, batch))
    assert type(model.bert.encoder.layer[0].attention.self.query) is torch.nn.Linear
    # int8 on the embeddings part: int8 tables, Linear layers untouched
    emb = copy.deepcopy(state.model)
    apply_transform(emb, parts[0], Transform("int8"))
    assert type(emb.bert.embeddings.word_embeddings).__name__ == "Int8Embedding"
    assert not any(type(m).__name__ == "Linear" and m.__module__.startswith("torch.ao") for m in emb.modules())


def test_prune_on_one_layer_matches_torch_global_unstructured_within_it(tmp_path: Path) -> None:
    state = tiny_state(tmp_path, layers=2, hidden=64)
    part = model_parts(state.model, "layer")[1]
    model = copy.deepcopy(state.model)
    apply_transform(model, part, Transform("prune", 0.4))
    reference = copy.deepcopy(state.model)
    modules = dict(reference.named_modules())
    prune.global_unstructured([(modules[n], "weight") for n in part.linears], pruning_method=prune.L1Unstructured,
                              amount=0.4)
    got = dict(model.named_modules())
    for name in part.linears:
        assert torch.equal(got[name].weight, modules[name].weight), name
    assert _changed(state.model.state_dict(), model) == {f"{n}.weight" for n in part.linears}


# --- a map of a stored variant -------------------------------------------------------------------
@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    """A tiny model's baseline and its int8 variant, run through the runner."""
    from core.run.runner import run_recipe
    from tests.helpers import tiny_bert_folder

    folder = tmp_path_factory.mktemp("sens")
    recipe = tiny_recipe(tiny_bert_folder(folder / "model", layers=2, hidden=32),
                         [{"step": "quantize.dynamic_int8", "config": {}}])
    terminal = run_recipe(recipe, db_url_or_path=folder / "w.sqlite", artifacts_dir=folder / "a")
    assert terminal.type == "run_finished"
    store = open_store(folder / "w.sqlite")
    ids = [v.id for v in run_variants(store, 1)]
    store.close()
    return folder / "w.sqlite", ids


def test_a_map_through_the_cli_is_stored_printed_and_exported(stored: tuple[Path, list[int]], tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from core.analysis.sensitivity import model_parts as parts_of
    from core.measure.evaluation import evaluate
    from core.steps import load_state
    from core.tasks import get_task

    db, (baseline, _int8) = stored
    args = ["sensitivity", str(baseline), "--db", str(db), "--examples", "24", "--threads", "1"]
    for t in TRANSFORMS:
        args += ["--transform", t]
    assert main(args) == 0
    out = capsys.readouterr().out
    (m,) = sensitivity_maps(open_store(db), baseline)
    assert m.status == "finished" and m.examples == 24 and m.transforms == TRANSFORMS
    assert m.layers == ["embeddings", "layer 0", "layer 1", "head"] and len(m.cells) == 4 * 3
    assert out.splitlines()[0].startswith(f"Sensitivity map {m.id} of variant {baseline}")
    assert out.splitlines()[2].split()[:4] == ["part", "int8", "nbit:2", "prune:0.5"]
    for cell in m.cells:
        assert cell.delta == pytest.approx(cell.metric - m.base_metric)
        assert cell.ci_low <= cell.delta <= cell.ci_high
    # The reference: one cell recomputed by hand on the same seeded sample.
    state = load_state(Path(run_variants(open_store(db), 1)[0].artifact_path))
    model = copy.deepcopy(state.model)
    apply_transform(model, parts_of(model, "layer")[1], Transform("nbit", 2))
    task = get_task("sst2")
    ev = evaluate(model, state.tokenizer, task, limit=24, sample_seed=0, max_length=16, batch_size=8)
    assert m.cell("nbit:2", "layer 0").metric == pytest.approx(ev.primary)
    # exports: CSV one row per cell, Markdown the grid, JSON both
    for fmt in ("csv", "markdown", "json"):
        assert main(["sensitivity", "--show", str(m.id), "--db", str(db), "--format", fmt,
                     "-o", str(tmp_path / f"map.{fmt}")]) == 0
    rows = list(csv.DictReader(io.StringIO((tmp_path / "map.csv").read_text())))
    assert len(rows) == 12 and {r["transform"] for r in rows} == set(TRANSFORMS)
    assert float(rows[0]["delta_points"]) == pytest.approx(100 * m.cells[0].delta)
    markdown = (tmp_path / "map.markdown").read_text().splitlines()
    assert markdown[2] == "| part | int8 | nbit:2 | prune:0.5 |" and len(markdown) == 4 + 4
    data = json.loads((tmp_path / "map.json").read_text())
    assert data["map"]["id"] == m.id and len(data["rows"]) == 12 and "pid" not in data["map"]["body"]
    assert main(["sensitivity", "--list", "--db", str(db)]) == 0
    assert str(m.id) in capsys.readouterr().out


def test_cancelling_keeps_the_cells_measured_so_far(stored: tuple[Path, list[int]]) -> None:
    db, (baseline, _int8) = stored
    store = open_store(db)
    logged: list[str] = []
    cells = iter(range(100))

    def cancelled() -> bool:  # evaluate checks once per batch: 3 checks per cell at 24 examples / 8
        return next(cells) > 8

    with pytest.raises(StepCancelled):
        run_sensitivity(store, baseline, parse_transforms(["nbit:4"]), Settings(examples=24, threads=1),
                        cancelled=cancelled, log=logged.append)
    m = sensitivity_maps(store, baseline)[0]
    assert m.status == "cancelled" and 0 < len(m.cells) < 4
    assert sensitivity_map(store, m.id).cells == m.cells


def test_grouping_by_role_gives_one_row_per_role(stored: tuple[Path, list[int]]) -> None:
    db, (baseline, _int8) = stored
    store = open_store(db)
    map_id = run_sensitivity(store, baseline, parse_transforms(["nbit:2"]), Settings(examples=16, grouping="role",
                                                                                       threads=1))
    m = sensitivity_map(store, map_id)
    assert m.grouping == "role" and m.layers[1:7] == ["query", "key", "value", "attention_output", "ffn_in", "ffn_out"]
    assert len(m.cells) == 8


def test_an_int8_variant_is_refused_naming_its_float_parent(stored: tuple[Path, list[int]],
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    db, (baseline, int8) = stored
    assert main(["sensitivity", str(int8), "--db", str(db), "--transform", "nbit:4"]) == 2
    err = capsys.readouterr().err
    assert "no longer a float model" in err and f"variant {baseline}" in err and "Traceback" not in err
    assert main(["sensitivity", "999", "--db", str(db), "--transform", "nbit:4"]) == 2
    assert "No variant 999" in capsys.readouterr().err
    assert main(["sensitivity", str(baseline), "--db", str(db), "--transform", "int4"]) == 2
    assert "unknown transform" in capsys.readouterr().err
