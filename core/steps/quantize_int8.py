"""Dynamic int8 quantization of every Linear layer on torch's x86/fbgemm int8 kernels.

Weights are stored as int8 (per output channel or per tensor); activations are quantized to
int8 on the fly for each matmul (``torch.ao.quantization.quantize_dynamic``), which is what the
TinyBERT study measured. Optionally the embedding tables are stored int8 as well (weight-only,
one symmetric scale per row) and kept int8 in memory: lookups dequantize only the gathered rows.

The ``int8.dynamic`` codec writes the int8 weights (``int_repr``), their scales and zero points
and the fp32 biases as plain tensors, and rebuilds real ``torch.ao.nn.quantized.dynamic.Linear``
modules on load, so the reloaded artifact runs on the same int8 kernels with identical outputs.

``backend: torchao`` uses torchao's ``Int8DynamicActivationInt8WeightConfig`` instead (int8
per-row weights, per-token symmetric int8 activations, torchao's ``Int8Tensor``), stored by the
``int8.torchao`` codec as its int8 data and scales. Same size on disk; in eager mode on a 2-core
CPU it ran 1.2-1.6x faster than fp32 where torch's own kernels ran 2.0-2.4x (batch 8 x 128 tokens,
benchmarks/bench_tinybert.py); ``torch.compile`` speeds it further. torchao is an optional dependency.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from core.artifacts import Codec, register_codec
from core.errors import ArtifactError, ConfigError
from core.layers import task_head
from core.params import StepConfig, param
from core.state import FLOAT, TRAINABLE, ModelState, StepContext
from core.steps.base import Step, register

INT8 = "int8"


@dataclass(frozen=True)
class DynamicInt8Config(StepConfig):
    backend: str = param(
        "torch",
        label="Backend",
        help="torch: the x86/fbgemm dynamic int8 kernels (the study's; the fastest on CPUs). torchao: torchao's "
        "Int8DynamicActivationInt8WeightConfig (per-row int8 weights, per-token int8 activations); the same "
        "size, slower than torch's kernels in eager mode, faster under torch.compile. Needs the optional torchao "
        "package",
        choices=("torch", "torchao"),
        sweepable=False,
    )
    engine: str = param("x86", label="Kernel engine", help="torch quantized engine: x86 (default on x86 CPUs) or fbgemm", choices=("x86", "fbgemm"), sweepable=False)
    per_channel: bool = param(True, label="Per-channel weights", help="One scale per output row instead of one per tensor (more accurate, same speed)")
    embeddings_int8: bool = param(True, label="Embeddings in int8", help="Store the embedding tables int8 with one scale per row (weight-only; dequantized per looked-up row)")
    quantize_head: bool = param(True, label="Quantize the head", help="Also quantize the pooler and task head Linear layers")
    keep_float_layers: list[int] = param(  # noqa: RUF009 (param returns a dataclasses.field)
        (),
        label="Layers kept in float",
        help="Mixed precision: transformer layers (0 = the bottom one) whose Linear layers stay fp32; the "
        "sensitivity view or workbench-cli mixed-precision --scheme int8 picks them",
        min=0,
        sweepable=False,
    )
    activation_range: str = param(
        "reduced",
        label="Activation range",
        help="reduced: 7-bit activations, torch's default, exact on every x86 CPU. full: 8-bit activations, "
        "more accurate; exact on CPUs with VNNI (AVX512-VNNI/AVX-VNNI), may saturate on older AVX2-only CPUs",
        choices=("reduced", "full"),
        sweepable=False,
    )


    def validate(self) -> None:
        import importlib.util

        if self.backend == "torchao" and importlib.util.find_spec("torchao") is None:
            raise ConfigError("the torchao backend needs the torchao package: pip install "
                              "'compression-workbench[torchao]' (or use the torch backend)",
                              step="quantize.dynamic_int8", field="backend")
        if self.backend == "torchao" and not self.per_channel:
            raise ConfigError("the torchao backend stores per-row (per-channel) weights; set per_channel to true "
                              "or use the torch backend", step="quantize.dynamic_int8", field="per_channel")
        if len(set(self.keep_float_layers)) != len(self.keep_float_layers):
            raise ConfigError("Layers kept in float (keep_float_layers) lists a layer twice",
                              step="quantize.dynamic_int8", field="keep_float_layers")
        if self.backend == "torchao" and self.activation_range != "reduced":
            raise ConfigError("activation_range applies to the torch backend only (torchao always uses full-range "
                              "per-token int8 activations); leave it 'reduced'", step="quantize.dynamic_int8",
                              field="activation_range")


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

    @classmethod
    def depth_problems(cls, config: dict[str, Any], layers: int) -> list[tuple[str, str]]:
        why = missing_layers(config.get("keep_float_layers"), layers)
        return [("keep_float_layers", why)] if why else []

    @classmethod
    def size_ratio(cls, config: dict[str, Any]) -> tuple[float, float]:
        """int8 weights are a quarter of fp32 (scales and biases add little); embeddings too if chosen."""
        return (0.25 if config.get("embeddings_int8", True) else 1.0), 0.25
    requires = frozenset({FLOAT})
    removes = frozenset({FLOAT, TRAINABLE})
    adds = frozenset({INT8})

    def apply(self, state: ModelState, ctx: StepContext) -> ModelState:
        from torch import nn

        from core.steps._int8_modules import Int8Embedding, set_submodule

        cfg: DynamicInt8Config = self.config  # type: ignore[assignment]
        ctx.check_cancelled()
        ctx.progress(0.0, "Copying the model")
        if cfg.backend == "torch":
            _set_engine(cfg.engine)
        model = copy.deepcopy(state.model).eval()
        base = model.base_model
        head = set() if cfg.quantize_head else set(task_head(model, step=self.id))  # pooler + task head
        kept = float_layer_prefixes(model, cfg.keep_float_layers, step=self.id)
        linears = {name: m for name, m in model.named_modules()
                   if isinstance(m, nn.Linear) and name not in head and not name.startswith(kept)}
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
        ctx.check_cancelled()
        ctx.progress(0.2, f"Quantizing {len(linears)} Linear layers")
        if cfg.backend == "torchao":
            _torchao_quantize(model, set(linears) - set(tied))
            for name, first in tied.items():
                model.get_submodule(name)._parameters["weight"] = model.get_submodule(first).weight
            codec = Int8TorchaoCodec.id
        else:
            quantize_linears(model, list(linears), per_channel=cfg.per_channel, activation_range=cfg.activation_range)
            for name, first in tied.items():
                model.get_submodule(name)._packed_params = model.get_submodule(first)._packed_params
            codec = Int8DynamicCodec.id
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
            "float_layers": list(cfg.keep_float_layers),
            "shared_linear_layers": len(tied),
            "embeddings_int8": embeddings,
            "backend": cfg.backend,
            "engine": cfg.engine if cfg.backend == "torch" else None,
            "scheme": "per_channel" if cfg.per_channel else "per_tensor",
            "activation_range": cfg.activation_range if cfg.backend == "torch" else "full (per token)",
        }
        ctx.progress(1.0, "Quantized")
        return state.derive(
            model,
            transforms=[*state.transforms, {"codec": codec, "engine": cfg.engine}],
            traits=(state.traits - self.removes) | self.adds,
            info=info,
        )


def quantize_linears(model: Any, names: list[str], *, per_channel: bool = True,
                     activation_range: str = "reduced") -> None:
    """torch's dynamic int8 on the named Linear layers of ``model``, in place (the step's torch
    backend; also what core.analysis applies to one part of a model at a time)."""
    import warnings

    import torch
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic

    qconfig = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao deprecation notices; the kernels are current
        quantize_dynamic(model, qconfig_spec=dict.fromkeys(names, qconfig), dtype=torch.qint8, inplace=True)
    for name in names:
        model.get_submodule(name).version = _VERSION[activation_range]


def float_layer_prefixes(model: Any, layers: Any, *, step: str) -> tuple[str, ...]:
    """Module-name prefixes of the transformer blocks ``layers`` (found by structure); a ConfigError
    naming the field when an index is not a layer of this model."""
    if not layers:
        return ()
    from core.layers import encoder_layout

    blocks = encoder_layout(model, step=step).blocks
    wrong = missing_layers(layers, len(blocks))
    if wrong:
        raise ConfigError(wrong, step=step, field="keep_float_layers")
    return tuple(f"{blocks[i].name}." for i in layers)


def missing_layers(layers: Any, depth: int) -> str | None:
    """Why ``keep_float_layers`` names a layer that a model ``depth`` layers deep does not have (None: it
    does not): one message for validation before a run and the check while it runs."""
    wrong = [i for i in layers or () if not 0 <= i < depth]
    if not wrong:
        return None
    return (f"Layers kept in float (keep_float_layers) names layer(s) {', '.join(map(str, wrong))}, but the "
            f"model's layers are 0-{depth - 1}")


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
        entry["embeddings"] = _embeddings_entry(model)

    def decode(self, model: Any, tensors: dict[str, Any], entry: dict[str, Any]) -> None:
        import torch
        from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

        from core.steps._int8_modules import set_submodule

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
        _rebuild_embeddings(model, entry)


def _embeddings_entry(model: Any) -> dict[str, dict[str, Any]]:
    from core.steps._int8_modules import Int8Embedding

    return {name: {"num": m.num_embeddings, "dim": m.embedding_dim, "padding_idx": m.padding_idx}
            for name, m in model.named_modules() if isinstance(m, Int8Embedding)}


def _rebuild_embeddings(model: Any, entry: dict[str, Any]) -> None:
    """Int8Embedding modules where the artifact stored them; their buffers load from the tensors."""
    from core.steps._int8_modules import Int8Embedding, set_submodule

    for name, meta in entry.get("embeddings", {}).items():
        set_submodule(model, name, Int8Embedding(meta["num"], meta["dim"], meta["padding_idx"]))


def _torchao_quantize(model: Any, names: set[str]) -> None:
    """torchao's dynamic int8 on the Linear layers named; a clear error when torchao is missing."""
    try:  # (core.models quiets torchao's import-time warnings)
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
    except ImportError:
        raise ConfigError("the torchao backend needs the torchao package: pip install 'compression-workbench[torchao]'",
                          step="quantize.dynamic_int8", field="backend") from None
    quantize_(model, Int8DynamicActivationInt8WeightConfig(), filter_fn=lambda _m, fqn: fqn in names)


_TORCHAO_PARTS = ("qdata", "scale", "zero_point")


@register_codec
class Int8TorchaoCodec(Codec):
    """torchao Int8Tensor weights as their int8 data, scales and zero points; int8 embeddings as buffers.
    On load the layers are quantized again by torchao and given the stored data, so they run the
    same kernels with identical outputs."""

    id = "int8.torchao"

    def encode(self, model: Any, tensors: dict[str, Any], entry: dict[str, Any]) -> None:
        import torch

        linears: dict[str, dict[str, Any]] = {}
        for name, m in model.named_modules():
            weight = tensors.pop(f"{name}.weight", None) if isinstance(m, torch.nn.Linear) else None
            if weight is None:
                continue  # not a Linear, or a shared weight stored under another name (an alias)
            if type(weight).__name__ != "Int8Tensor":
                tensors[f"{name}.weight"] = weight  # a Linear left in float (e.g. the head)
                continue
            for part in _TORCHAO_PARTS:
                value = getattr(weight, part, None)
                if value is not None:
                    tensors[f"{name}.weight::{part}"] = value
            linears[name] = {"in": m.in_features, "out": m.out_features}
        entry["linears"] = linears
        entry["embeddings"] = _embeddings_entry(model)

    def decode(self, model: Any, tensors: dict[str, Any], entry: dict[str, Any]) -> None:
        import torch

        linears = entry.get("linears", {})
        _torchao_quantize(model, set(linears))
        with torch.no_grad():
            for name in linears:
                weight = model.get_submodule(name).weight
                for part in _TORCHAO_PARTS:
                    stored = tensors.pop(f"{name}.weight::{part}", None)
                    if stored is None and getattr(weight, part, None) is not None:
                        raise ArtifactError(f"The artifact lacks the torchao int8 {part} of {name}")
                    if stored is not None:
                        getattr(weight, part).copy_(stored)
                tensors[f"{name}.weight"] = weight  # loads onto itself: load_state_dict finds every key
        _rebuild_embeddings(model, entry)
