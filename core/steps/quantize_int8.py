"""Dynamic int8 quantization of every Linear layer on torch's x86/fbgemm int8 kernels.

Weights are stored as int8 (per output channel or per tensor); activations are quantized to
int8 on the fly for each matmul (``torch.ao.quantization.quantize_dynamic``), which is what the
TinyBERT study measured. Optionally the embedding tables are stored int8 as well (weight-only,
one symmetric scale per row) and kept int8 in memory: lookups dequantize only the gathered rows.

The ``int8.dynamic`` codec writes the int8 weights (``int_repr``), their scales and zero points
and the fp32 biases as plain tensors, and rebuilds real ``torch.ao.nn.quantized.dynamic.Linear``
modules on load, so the reloaded artifact runs on the same int8 kernels with identical outputs.

torchao is not offered as a backend: with torch 2.13 on this CPU, torchao 0.18's
``Int8DynamicActivationInt8WeightConfig`` runs in eager mode about 2.7x *slower* than fp32 (it
only becomes fast under ``torch.compile``), so it would not give a faster model.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from core.artifacts import Codec, register_codec
from core.errors import ArtifactError, ConfigError
from core.params import StepConfig, param
from core.steps.base import FLOAT, TRAINABLE, ModelState, Step, StepContext, register

INT8 = "int8"


@dataclass(frozen=True)
class DynamicInt8Config(StepConfig):
    engine: str = param("x86", label="Kernel engine", help="torch quantized engine: x86 (default on x86 CPUs) or fbgemm", choices=("x86", "fbgemm"), sweepable=False)
    per_channel: bool = param(True, label="Per-channel weights", help="One scale per output row instead of one per tensor (more accurate, same speed)")
    embeddings_int8: bool = param(True, label="Embeddings in int8", help="Store the embedding tables int8 with one scale per row (weight-only; dequantized per looked-up row)")
    quantize_head: bool = param(True, label="Quantize the head", help="Also quantize the pooler and task head Linear layers")
    activation_range: str = param(
        "reduced",
        label="Activation range",
        help="reduced: 7-bit activations, torch's default, exact on every x86 CPU. full: 8-bit activations, "
        "more accurate; exact on CPUs with VNNI (AVX512-VNNI/AVX-VNNI), may saturate on older AVX2-only CPUs",
        choices=("reduced", "full"),
        sweepable=False,
    )


# torch's dynamic Linear picks reduce_range from its ``version`` attribute: 4 (current) quantizes
# activations to 7 bits, older versions to the full 8 bits.
_VERSION = {"reduced": 4, "full": 3}


def _set_engine(engine: str) -> None:
    import torch

    if engine not in torch.backends.quantized.supported_engines:
        raise ConfigError(
            f"This torch build has no '{engine}' quantized engine (it has "
            f"{', '.join(torch.backends.quantized.supported_engines)})",
            step="quantize.dynamic_int8",
            field="engine",
        )
    torch.backends.quantized.engine = engine


@register
class DynamicInt8(Step):
    id = "quantize.dynamic_int8"
    title = "Dynamic int8 quantization"
    category = "Quantization"
    description = "int8 weights + dynamic int8 activations for Linear layers (x86/fbgemm kernels); optional int8 embeddings."
    config_cls = DynamicInt8Config
    requires = frozenset({FLOAT})
    removes = frozenset({FLOAT, TRAINABLE})
    adds = frozenset({INT8})

    def apply(self, state: ModelState, ctx: StepContext) -> ModelState:
        import warnings

        import torch
        from torch import nn
        from torch.ao.quantization import (
            default_dynamic_qconfig,
            per_channel_dynamic_qconfig,
            quantize_dynamic,
        )

        from core.steps._int8_modules import Int8Embedding, set_submodule

        cfg: DynamicInt8Config = self.config  # type: ignore[assignment]
        ctx.check_cancelled()
        ctx.progress(0.0, "Copying the model")
        _set_engine(cfg.engine)
        model = copy.deepcopy(state.model).eval()
        base = model.base_model
        base_ids = {id(m) for m in base.modules()}
        linears = {}
        for name, m in model.named_modules():
            if not isinstance(m, nn.Linear):
                continue
            in_head = id(m) not in base_ids or ".pooler." in f".{name}."
            if in_head and not cfg.quantize_head:
                continue
            linears[name] = m
        if not linears:
            raise ConfigError("The model has no Linear layers to quantize", step=self.id)
        # Linear layers sharing one weight (shared layers) must keep sharing after quantization.
        owner: dict[int, str] = {}
        tied: dict[str, str] = {}
        for name, m in linears.items():
            key = id(m.weight)
            if key in owner:
                tied[name] = owner[key]
            else:
                owner[key] = name
        qconfig = per_channel_dynamic_qconfig if cfg.per_channel else default_dynamic_qconfig
        ctx.check_cancelled()
        ctx.progress(0.2, f"Quantizing {len(linears)} Linear layers")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao deprecation notices; the kernels are current
            quantize_dynamic(model, qconfig_spec=dict.fromkeys(linears, qconfig), dtype=torch.qint8, inplace=True)
        for name in linears:
            model.get_submodule(name).version = _VERSION[cfg.activation_range]
        for name, first in tied.items():
            model.get_submodule(name)._packed_params = model.get_submodule(first)._packed_params
        embeddings: list[str] = []
        if cfg.embeddings_int8:
            ctx.check_cancelled()
            ctx.progress(0.7, "Quantizing embeddings")
            for name, m in list(base.named_modules()):
                if isinstance(m, nn.Embedding):
                    set_submodule(base, name, Int8Embedding.from_float(m))
                    prefix = model.base_model_prefix if base is not model else ""
                    embeddings.append(f"{prefix}.{name}" if prefix else name)
        info = dict(state.info)
        info[self.id] = {
            "linear_layers": len(linears),
            "shared_linear_layers": len(tied),
            "embeddings_int8": embeddings,
            "engine": cfg.engine,
            "scheme": "per_channel" if cfg.per_channel else "per_tensor",
            "activation_range": cfg.activation_range,
        }
        ctx.progress(1.0, "Quantized")
        return ModelState(
            model=model,
            tokenizer=state.tokenizer,
            task=state.task,
            head=state.head,
            transforms=[*state.transforms, {"codec": Int8DynamicCodec.id, "engine": cfg.engine}],
            traits=(state.traits - self.removes) | self.adds,
            info=info,
        )


def _narrow(t: Any, dtype: Any) -> Any:
    """``t`` in the smaller ``dtype`` when that is lossless (observer scales are float32 values
    held in float64; qint8 zero points fit int8), else unchanged."""
    small = t.to(dtype)
    return small if small.to(t.dtype).equal(t) else t


def _restore_version(version: int | None) -> Any:
    def hook(module: Any, incompatible_keys: Any) -> None:
        module.version = version

    return hook


@register_codec
class Int8DynamicCodec(Codec):
    """int8 Linear weights as int8 tensors + scales/zero points; int8 embeddings as their buffers."""

    id = "int8.dynamic"

    def encode(self, model: Any, tensors: dict[str, Any], entry: dict[str, Any]) -> None:
        import torch
        from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

        from core.steps._int8_modules import Int8Embedding

        linears: dict[str, dict[str, Any]] = {}
        stored: dict[int, str] = {}
        for name, m in model.named_modules():
            if not isinstance(m, DynamicLinear):
                continue
            for key in ("_packed_params.dtype", "_packed_params._packed_params"):
                tensors.pop(f"{name}.{key}", None)
            meta: dict[str, Any] = {"in": m.in_features, "out": m.out_features, "version": m.version}
            if id(m._packed_params) in stored:
                meta["same_as"] = stored[id(m._packed_params)]
                linears[name] = meta
                continue
            stored[id(m._packed_params)] = name
            weight, bias = m._weight_bias()
            if weight.dtype != torch.qint8:
                raise ArtifactError(f"{name}: only qint8 dynamic Linear layers are stored, not {weight.dtype}")
            tensors[f"{name}.weight::int8"] = weight.int_repr()
            if weight.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
                meta["scheme"] = "per_channel"
                meta["axis"] = int(weight.q_per_channel_axis())
                scale = weight.q_per_channel_scales()
                zero_point = weight.q_per_channel_zero_points()
            else:
                meta["scheme"] = "per_tensor"
                scale = torch.tensor([weight.q_scale()], dtype=torch.float64)
                zero_point = torch.tensor([weight.q_zero_point()], dtype=torch.int64)
            tensors[f"{name}.weight::scale"] = _narrow(scale, torch.float32)
            tensors[f"{name}.weight::zero_point"] = _narrow(zero_point, torch.int8)
            meta["bias"] = bias is not None
            if bias is not None:
                tensors[f"{name}.bias::fp32"] = bias.detach().float()
            linears[name] = meta
        entry["linears"] = linears
        entry["embeddings"] = {
            name: {"num": m.num_embeddings, "dim": m.embedding_dim, "padding_idx": m.padding_idx}
            for name, m in model.named_modules()
            if isinstance(m, Int8Embedding)
        }

    def decode(self, model: Any, tensors: dict[str, Any], entry: dict[str, Any]) -> None:
        import torch
        from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

        from core.steps._int8_modules import Int8Embedding, set_submodule

        _set_engine(entry.get("engine", "x86"))
        built: dict[str, Any] = {}
        for name, meta in entry.get("linears", {}).items():
            if "same_as" in meta:
                continue
            try:
                q = tensors.pop(f"{name}.weight::int8")
                scale = tensors.pop(f"{name}.weight::scale")
                zero_point = tensors.pop(f"{name}.weight::zero_point")
            except KeyError:
                raise ArtifactError(f"The artifact lacks the int8 weight of {name}") from None
            if meta["scheme"] == "per_channel":
                weight = torch._make_per_channel_quantized_tensor(q, scale.double(), zero_point.long(), meta["axis"])
            else:
                weight = torch._make_per_tensor_quantized_tensor(q, float(scale[0]), int(zero_point[0]))
            bias = tensors.pop(f"{name}.bias::fp32") if meta["bias"] else None
            built[name] = (weight, bias)
        for name, meta in entry.get("linears", {}).items():
            source = meta.get("same_as", name)
            weight, bias = built[source]
            module = DynamicLinear(meta["in"], meta["out"], bias_=bias is not None, dtype=torch.qint8)
            module.set_weight_bias(weight, bias)
            set_submodule(model, name, module)
            # load_state_dict overwrites ``version`` (None for a plain dict): restore it afterwards.
            module.register_load_state_dict_post_hook(_restore_version(meta.get("version", 4)))
            # What the quantized Linear's _load_from_state_dict reads: a plain dict has no version
            # metadata (old layout: weight/bias); the version-3 layout is given too, for safety.
            tensors[f"{name}.weight"] = weight
            tensors[f"{name}.bias"] = bias
            tensors[f"{name}._packed_params.dtype"] = torch.qint8
            tensors[f"{name}._packed_params._packed_params"] = (weight, bias)
        for name, meta in entry.get("linears", {}).items():
            if "same_as" in meta:
                model.get_submodule(name)._packed_params = model.get_submodule(meta["same_as"])._packed_params
        for name, meta in entry.get("embeddings", {}).items():
            set_submodule(model, name, Int8Embedding(meta["num"], meta["dim"], meta["padding_idx"]))
