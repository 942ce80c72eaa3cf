"""Layer groups are found by structure on every supported encoder, and the steps that select layers
touch exactly the intended modules on each of them (BERT, RoBERTa, DistilBERT, MPNet)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from core.artifacts import load_artifact, save_artifact
from core.errors import ConfigError
from core.layers import ATTENTION_ROLES, ROLES, encoder_layout, layer_stack, task_head
from core.steps._sketched_linear import SketchedLinear
from core.steps.base import ModelState, get_step
from core.steps.share_layers import layer_groups
from tests.core.steps_support import make_ctx, tiny_task
from tests.helpers import TINY_VOCAB, tiny_tokenizer

HIDDEN, FFN, LAYERS = 16, 40, 2
FAMILIES = ("bert", "roberta", "distilbert", "mpnet")

# Written out by hand from each family's modelling code: the reference the structural search must meet.
_BERT_NAMES = {"query": "attention.self.query", "key": "attention.self.key", "value": "attention.self.value",
               "attention_output": "attention.output.dense", "ffn_in": "intermediate.dense", "ffn_out": "output.dense"}
EXPECTED: dict[str, dict[str, Any]] = {
    "bert": {"block": "bert.encoder.layer.{i}", "roles": _BERT_NAMES, "head": ["bert.pooler.dense", "classifier"]},
    "roberta": {"block": "roberta.encoder.layer.{i}", "roles": _BERT_NAMES,
                "head": ["classifier.dense", "classifier.out_proj"]},
    "distilbert": {"block": "distilbert.transformer.layer.{i}",
                   "roles": {"query": "attention.q_lin", "key": "attention.k_lin", "value": "attention.v_lin",
                             "attention_output": "attention.out_lin", "ffn_in": "ffn.lin1", "ffn_out": "ffn.lin2"},
                   "head": ["pre_classifier", "classifier"]},
    "mpnet": {"block": "mpnet.encoder.layer.{i}",
              "roles": {"query": "attention.attn.q", "key": "attention.attn.k", "value": "attention.attn.v",
                        "attention_output": "attention.attn.o", "ffn_in": "intermediate.dense",
                        "ffn_out": "output.dense"},
              "head": ["classifier.dense", "classifier.out_proj"]},
}
SHAPES = {**dict.fromkeys(ATTENTION_ROLES, (HIDDEN, HIDDEN)), "ffn_in": (FFN, HIDDEN), "ffn_out": (HIDDEN, FFN)}


def expected(family: str, role: str) -> list[str]:
    spec = EXPECTED[family]
    return [f"{spec['block'].format(i=i)}.{spec['roles'][role]}" for i in range(LAYERS)]


def tiny_model(family: str, seed: int = 0) -> nn.Module:
    """A randomly initialised 2-layer sequence classifier of ``family``, built from a config."""
    import transformers as T

    common = {"vocab_size": len(TINY_VOCAB), "max_position_embeddings": 64}
    if family == "distilbert":
        config = T.DistilBertConfig(dim=HIDDEN, n_layers=LAYERS, n_heads=2, hidden_dim=FFN, **common)
    else:
        config_cls = {"bert": T.BertConfig, "roberta": T.RobertaConfig, "mpnet": T.MPNetConfig}[family]
        config = config_cls(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=2,
                            intermediate_size=FFN, **common)
    torch.manual_seed(seed)
    return T.AutoModelForSequenceClassification.from_config(config).eval()


def tiny(family: str, tmp_path: Path) -> ModelState:
    tokenizer = tiny_tokenizer(tmp_path / f"tok-{family}")
    return ModelState(model=tiny_model(family), tokenizer=tokenizer, task="tiny_classification", head="classification")


def probe(model: nn.Module, tokenizer: Any) -> torch.Tensor:
    batch = tokenizer(["the good movie", "a bad film !"], return_tensors="pt", padding=True)
    with torch.inference_mode():  # token_type_ids left out: MPNet and DistilBERT take none
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


@pytest.mark.parametrize("family", FAMILIES)
def test_every_role_is_found_with_its_shape(family: str) -> None:
    model = tiny_model(family)
    layout = encoder_layout(model)
    modules = dict(model.named_modules())
    assert len(layout.blocks) == LAYERS
    for role in ROLES:
        assert layout.role(role) == expected(family, role), role
        assert all(tuple(modules[n].weight.shape) == SHAPES[role] for n in layout.role(role)), role
    assert list(layout.pooler + layout.head) == EXPECTED[family]["head"]
    assert task_head(model) == EXPECTED[family]["head"]
    assert set(layout.layernorms) == {n for n, m in modules.items() if isinstance(m, nn.LayerNorm)}
    assert len(layout.layernorms) == 1 + 2 * LAYERS
    assert set(layout.embeddings) == {n for n, m in modules.items() if isinstance(m, nn.Embedding)}
    assert any(n.endswith("word_embeddings") for n in layout.embeddings)
    assert layer_stack(model)[0] == EXPECTED[family]["block"].removesuffix(".{i}")


@pytest.mark.parametrize("family", FAMILIES)
def test_prune_touches_exactly_the_study_layers(family: str, tmp_path: Path) -> None:
    state = tiny(family, tmp_path)
    targets = [n for role in ROLES for n in expected(family, role)]
    reference = copy.deepcopy(state.model)
    ref_modules = dict(reference.named_modules())
    prune.global_unstructured([(ref_modules[n], "weight") for n in targets], pruning_method=prune.L1Unstructured,
                              amount=0.5)
    step = get_step("prune.global_magnitude")
    out = step(step.config_cls(amount=0.5)).apply(state, make_ctx(tmp_path, tiny_task()))
    got = out.model.state_dict()
    for name, before in state.model.state_dict().items():
        module = name.rpartition(".")[0]
        if module in targets and name.endswith(".weight"):
            assert torch.equal(got[name] == 0, ref_modules[module].weight_mask == 0), name
        else:
            assert torch.equal(got[name], before), f"{name} changed"
    assert out.transforms[-1]["tensors"] == [f"{n}.weight" for role in ROLES for n in expected(family, role)]


@pytest.mark.parametrize("family", FAMILIES)
def test_prune_groups_outside_the_blocks_are_found(family: str) -> None:
    from core.steps.prune import select_modules

    model = tiny_model(family)
    selected = select_modules(model, ["layernorm", "embeddings", "classifier"])
    modules = dict(model.named_modules())
    assert {n for n, _ in selected["layernorm"]} == {n for n, m in modules.items() if isinstance(m, nn.LayerNorm)}
    assert {n for n, _ in selected["embeddings"]} == {n for n, m in modules.items() if isinstance(m, nn.Embedding)}
    assert [n for n, _ in selected["classifier"]] == EXPECTED[family]["head"]


@pytest.mark.parametrize("family", FAMILIES)
def test_sketch_replaces_exactly_the_attention_and_ffn_linears(family: str, tmp_path: Path) -> None:
    state = tiny(family, tmp_path)
    step = get_step("sketch.random")
    out = step(step.config_cls(m_attention=8, m_ffn_in=8, m_ffn_out=12, epochs=0)).apply(state, make_ctx(tmp_path))
    sketched = {n for n, m in out.model.named_modules() if isinstance(m, SketchedLinear)}
    assert sketched == {n for role in ROLES for n in expected(family, role)}
    assert set(out.transforms[-1]["layers"]) == sketched
    assert not [n for n, m in out.model.named_modules() if type(m) is nn.Linear and n not in EXPECTED[family]["head"]]
    save_artifact(out, tmp_path / "art")
    loaded = load_artifact(tmp_path / "art")
    assert torch.equal(probe(out.model, out.tokenizer), probe(loaded.model, loaded.tokenizer))


@pytest.mark.parametrize("family", FAMILIES)
def test_sketch_leaves_groups_at_zero_dense(family: str, tmp_path: Path) -> None:
    step = get_step("sketch.random")
    out = step(step.config_cls(m_attention=8, m_ffn_in=0, m_ffn_out=0, epochs=0)).apply(tiny(family, tmp_path),
                                                                                         make_ctx(tmp_path))
    sketched = {n for n, m in out.model.named_modules() if isinstance(m, SketchedLinear)}
    assert sketched == {n for role in ATTENTION_ROLES for n in expected(family, role)}


@pytest.mark.parametrize("family", FAMILIES)
def test_share_layers_ties_the_blocks_of_every_family(family: str, tmp_path: Path) -> None:
    step = get_step("share_layers")
    out = step(step.config_cls(targets=[1], epochs=0)).apply(tiny(family, tmp_path), make_ctx(tmp_path))
    _, stack = layer_stack(out.model)
    assert layer_groups(stack) == [[0, 1]]
    query = dict(out.model.named_modules())
    assert query[expected(family, "query")[0]].weight is query[expected(family, "query")[1]].weight


@pytest.mark.parametrize("family", FAMILIES)
def test_distill_layer_subset_keeps_the_chosen_blocks(family: str, tmp_path: Path) -> None:
    step = get_step("distill")
    cfg = step.config_cls(keep_layers="2")
    teacher = tiny(family, tmp_path)
    student, mapping, _ = step(cfg)._student(teacher, cfg, make_ctx(tmp_path, tiny_task()))
    assert mapping == [2] and student.model.config.num_hidden_layers == 1
    name = expected(family, "query")
    kept = dict(student.model.named_modules())[name[0]].weight
    assert torch.equal(kept, dict(teacher.model.named_modules())[name[1]].weight)


@pytest.mark.parametrize("family", FAMILIES)
def test_int8_without_the_head_quantizes_exactly_the_block_linears(family: str, tmp_path: Path) -> None:
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    step = get_step("quantize.dynamic_int8")
    out = step(step.config_cls(quantize_head=False, embeddings_int8=False)).apply(tiny(family, tmp_path),
                                                                                  make_ctx(tmp_path))
    quantized = {n for n, m in out.model.named_modules() if isinstance(m, DynamicLinear)}
    assert quantized == {n for role in ROLES for n in expected(family, role)}
    assert all(type(dict(out.model.named_modules())[n]) is nn.Linear for n in EXPECTED[family]["head"])


def test_a_block_with_an_unknown_linear_is_refused_naming_it(tmp_path: Path) -> None:
    model = tiny_model("mpnet")
    model.mpnet.encoder.layer[1].attention.attn.gate = nn.Linear(HIDDEN, HIDDEN)
    with pytest.raises(ConfigError, match=r"mpnet\.encoder\.layer\.1\.attention\.attn\.gate") as info:
        encoder_layout(model, step="sketch.random")
    assert info.value.step == "sketch.random"
    step = get_step("sketch.random")
    state = ModelState(model=model, tokenizer=None, task="tiny_classification", head="classification")
    with pytest.raises(ConfigError, match="attn.gate"):
        step(step.config_cls(epochs=0, m_attention=8)).apply(state, make_ctx(tmp_path))
    step = get_step("prune.global_magnitude")
    with pytest.raises(ConfigError, match="attn.gate"):
        step(step.config_cls()).apply(state, make_ctx(tmp_path))


def test_a_decoder_without_linear_layers_is_refused_naming_its_weights() -> None:
    from transformers import GPT2Config, GPT2ForSequenceClassification

    gpt2 = GPT2ForSequenceClassification(GPT2Config(vocab_size=50, n_embd=16, n_layer=1, n_head=2, pad_token_id=0))
    with pytest.raises(ConfigError, match=r"gpt2.*transformer\.h\.0\.attn\.c_attn \(Conv1D\)"):
        encoder_layout(gpt2)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_tensor_belongs_to_one_part(family: str) -> None:
    """Blocks by their prefix, the pooler and task head as 'head', the rest of the base model as
    'embeddings' (checked against each family's module names written out above)."""
    from core.layers import EMBEDDINGS, HEAD, tensor_parts

    model = tiny_model(family)
    parts = tensor_parts(model)
    assert set(parts) == set(model.state_dict())
    block = EXPECTED[family]["block"]
    for name, part in parts.items():
        owner = name.rpartition(".")[0]
        if any(name.startswith(block.format(i=i) + ".") for i in range(LAYERS)):
            assert part == int(name.removeprefix(block.format(i="")).split(".")[0]), name
        elif any(owner == h or owner.startswith(h + ".") for h in EXPECTED[family]["head"]):
            assert part == HEAD, name
        else:
            assert part == EMBEDDINGS, name
            assert "embed" in name or "relative_attention_bias" in name or "position_ids" in name, name
    assert sorted({p for p in parts.values() if isinstance(p, int)}) == list(range(LAYERS))


@pytest.mark.parametrize("family", FAMILIES)
def test_layer_wise_lr_decay_scales_by_depth_below_the_head(family: str) -> None:
    """The head at the full rate, block i at decay^(layers - i), the embeddings one factor below block 0
    (ELECTRA's schedule), checked against each family's module names written out above."""
    from core.steps.training import layer_lr_scales

    model = tiny_model(family)
    scales = layer_lr_scales(model, 0.5)
    assert set(scales) == {n for n, _ in model.named_parameters()}
    block = EXPECTED[family]["block"]
    for name, scale in scales.items():
        owner = name.rpartition(".")[0]
        index = next((i for i in range(LAYERS) if name.startswith(block.format(i=i) + ".")), None)
        if index is not None:
            assert scale == 0.5 ** (LAYERS - index), name
        elif any(owner == h or owner.startswith(h + ".") for h in EXPECTED[family]["head"]):
            assert scale == 1.0, name
        else:
            assert scale == 0.5 ** (LAYERS + 1), name
