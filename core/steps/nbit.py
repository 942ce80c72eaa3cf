"""Linear n-bit quantization with one min/max per tensor, stored bit-packed.

The published scheme ("Compressed SQuAD 2.0 model with BERT"): for a tensor x and b bits,
q = round((x - min) / (max - min) * (2^b - 1)); min and max are kept as fp32 and the weights are
dequantized to fp32 at load. The model in memory after the step already holds the dequantized
values, so evaluating it shows the real accuracy cost; the artifact holds the b-bit integers
packed densely (b * numel / 8 bytes per tensor) plus the two fp32 numbers.

Mixed precision: ``layer_bits`` gives each transformer block its own bit width (0 keeps it in
float), ``embedding_bits`` and ``head_bits`` the embeddings and the pooler/task head; the parts
are found by structure (core.layers.tensor_parts). The artifact's entry records per-tensor bits
only where they differ from ``bits``, so artifacts written before mixed precision read unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.artifacts import Codec, register_codec
from core.errors import ConfigError
from core.params import StepConfig, param
from core.state import FLOAT, TRAINABLE, ModelState, StepContext
from core.steps.base import Step, register

CODEC_ID = "nbit"
_PACKED = ".nbit_packed"  # stored-tensor suffixes; never valid state-dict names
_RANGE = ".nbit_range"
_CHUNK = 1 << 20  # elements packed per vectorised slice (a multiple of 8 keeps bytes aligned)


@dataclass(frozen=True)
class LinearNbitConfig(StepConfig):
    bits: int = param(
        8,
        label="Bits",
        help="Bits per weight (1-16). The paper found 16 and 10 bits free, 8 bits a small loss, "
        "6 bits and below a collapse with one min/max per tensor.",
        min=1,
        max=16,
        unit="bits",
    )
    skip_layernorm: bool = param(
        False, label="Keep LayerNorm in fp32", help="Leave LayerNorm weights and biases unquantized.", sweepable=False
    )
    skip_bias: bool = param(False, label="Keep biases in fp32", help="Leave every bias vector unquantized.", sweepable=False)
    skip_embeddings: bool = param(
        False,
        label="Keep embeddings in fp32",
        help="Leave word, position and token-type embedding tables unquantized.",
        sweepable=False,
    )
    layer_bits: list[int] = param(  # noqa: RUF009 (param returns a dataclasses.field)
        (),
        label="Bits per layer",
        help="Mixed precision: one bit width per transformer layer, bottom first (0 = keep that layer in float); "
        "empty = every layer at Bits. workbench-cli mixed-precision (or the sensitivity view) picks them",
        min=0,
        max=16,
        unit="bits",
        sweepable=False,
    )
    embedding_bits: int | None = param(
        None, label="Embedding bits", help="Bits of the embeddings (0 = float); empty = Bits", min=0, max=16,
        unit="bits", sweepable=False,
    )
    head_bits: int | None = param(
        None, label="Head bits", help="Bits of the pooler and task head (0 = float); empty = Bits", min=0, max=16,
        unit="bits", sweepable=False,
    )

    @property
    def mixed(self) -> bool:
        return bool(self.layer_bits) or self.embedding_bits is not None or self.head_bits is not None

    def part_bits(self, part: int | str, layers: int) -> int:
        """The bit width of one part (a block index, 'embeddings' or 'head'); 0 = float."""
        if isinstance(part, int):
            if not self.layer_bits:
                return self.bits
            if len(self.layer_bits) != layers:
                raise ConfigError(
                    f"Bits per layer (layer_bits) lists {len(self.layer_bits)} value(s) but the model has {layers} "
                    f"layers; give one per layer (0 keeps a layer in float)", step="quantize.linear_nbit",
                    field="layer_bits")
            return self.layer_bits[part]
        chosen = self.embedding_bits if part == "embeddings" else self.head_bits
        return self.bits if chosen is None else chosen


# --- the scheme ------------------------------------------------------------------------------
def quantize(x: Any, bits: int, lo: float, hi: float) -> Any:
    """Integer codes (int64 torch tensor) of ``x`` on the grid min..max with 2^b - 1 steps."""
    import torch

    levels = (1 << bits) - 1
    if hi <= lo:  # constant tensor: every value is ``lo``, code 0
        return torch.zeros(x.shape, dtype=torch.int64)
    scaled = (x.detach().to(torch.float64) - lo) / (hi - lo) * levels
    return torch.round(scaled).clamp_(0, levels).to(torch.int64)


def dequantize(q: Any, bits: int, lo: float, hi: float) -> Any:
    """fp32 values of integer codes; the one definition used both in memory and at load."""
    import torch

    levels = (1 << bits) - 1
    if hi <= lo:
        return torch.full(q.shape, lo, dtype=torch.float32)
    return (lo + q.to(torch.float64) * ((hi - lo) / levels)).to(torch.float32)


def tensor_range(x: Any) -> tuple[float, float]:
    """(min, max) as the fp32 numbers that will be stored."""
    import torch

    x32 = x.detach().to(torch.float32)
    return float(x32.min()), float(x32.max())


# --- bit packing -----------------------------------------------------------------------------
def pack_bits(q: Any, bits: int) -> Any:
    """Pack non-negative integer codes (< 2^bits) big-endian, ``bits`` bits each, into uint8."""
    import numpy as np

    flat = np.ascontiguousarray(np.asarray(q).reshape(-1), dtype=np.uint32)
    if bits == 8:
        return flat.astype(np.uint8)
    if bits == 16:
        return flat.astype(">u2").view(np.uint8).copy()
    shifts = np.arange(bits - 1, -1, -1, dtype=np.uint32)
    parts = []
    for start in range(0, flat.size, _CHUNK):
        chunk = flat[start : start + _CHUNK]
        planes = ((chunk[:, None] >> shifts) & 1).astype(np.uint8)  # (n, bits), most significant first
        parts.append(np.packbits(planes.reshape(-1)))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint8)


def unpack_bits(packed: Any, bits: int, count: int) -> Any:
    """Inverse of :func:`pack_bits`: ``count`` codes as int64."""
    import numpy as np

    packed = np.asarray(packed, dtype=np.uint8).reshape(-1)
    if bits == 8:
        return packed[:count].astype(np.int64)
    if bits == 16:
        return packed[: 2 * count].view(">u2").astype(np.int64)
    weights = (np.uint32(1) << np.arange(bits - 1, -1, -1, dtype=np.uint32)).astype(np.int64)
    out = np.empty(count, dtype=np.int64)
    chunk_bytes = _CHUNK * bits // 8
    for i, start in enumerate(range(0, count, _CHUNK)):
        n = min(_CHUNK, count - start)
        raw = packed[i * chunk_bytes : i * chunk_bytes + (n * bits + 7) // 8]
        planes = np.unpackbits(raw)[: n * bits].reshape(n, bits).astype(np.int64)
        out[start : start + n] = planes @ weights
    return out


def packed_nbytes(numel: int, bits: int) -> int:
    """Bytes :func:`pack_bits` produces for ``numel`` codes (chunks stay byte-aligned)."""
    return (numel * bits + 7) // 8


# --- which tensors -----------------------------------------------------------------------------
def selected_tensors(model: Any, config: LinearNbitConfig) -> dict[str, Any]:
    """The floating tensors (aliases once, by their stored name) this config quantizes."""
    return {name: value for name, (value, _bits) in tensor_bits(model, config).items()}


def tensor_bits(model: Any, config: LinearNbitConfig) -> dict[str, tuple[Any, int]]:
    """name -> (tensor, bits) for every floating tensor this config quantizes (aliases once, by
    their stored name); a part kept in float (0 bits) is left out."""
    import torch

    from core.artifacts import state_tensors

    tensors, _ = state_tensors(model)
    modules = dict(model.named_modules())
    parts: dict[str, int | str] = {}
    layers = 0
    if config.mixed:
        from core.layers import encoder_layout, tensor_parts

        layers = len(encoder_layout(model, step="quantize.linear_nbit").blocks)
        parts = tensor_parts(model, list(tensors), step="quantize.linear_nbit")
    chosen = {}
    for name, value in tensors.items():
        if not isinstance(value, torch.Tensor) or not value.is_floating_point() or value.numel() == 0:
            continue
        owner_name, _, attr = name.rpartition(".")
        owner = modules.get(owner_name)
        if config.skip_layernorm and isinstance(owner, torch.nn.LayerNorm):
            continue
        if config.skip_bias and attr == "bias":
            continue
        if config.skip_embeddings and isinstance(owner, torch.nn.Embedding):
            continue
        bits = config.part_bits(parts[name], layers) if config.mixed else config.bits
        if bits:
            chosen[name] = (value, bits)
    return chosen


@register
class LinearNbit(Step):
    id = "quantize.linear_nbit"
    title = "Linear n-bit quantization"
    category = "Quantization"
    description = (
        "Quantizes every floating tensor to b bits with one min/max per tensor (the published scheme) "
        "and stores the integers bit-packed; weights are dequantized to fp32 at load, so the file "
        "shrinks but inference runs fp32 kernels. The result is no longer trainable: further training "
        "would move the weights off the b-bit grid, so the saved file would no longer match the "
        "model that was measured. Put training steps before this one."
    )
    config_cls = LinearNbitConfig

    @classmethod
    def size_ratio(cls, config: dict[str, Any]) -> tuple[float, float]:
        """b bits packed per fp32 weight; kept embeddings stay fp32."""
        bits = config.get("bits", 8)
        ratio = min(1.0, bits / 32) if isinstance(bits, (int, float)) and bits > 0 else 1.0
        return (1.0 if config.get("skip_embeddings") else ratio), ratio
    requires = frozenset({FLOAT})
    removes = frozenset({TRAINABLE})

    def apply(self, state: ModelState, ctx: StepContext) -> ModelState:
        import torch

        cfg: LinearNbitConfig = self.config  # type: ignore[assignment]
        chosen = tensor_bits(state.model, cfg)
        grids: dict[str, list[float]] = {}
        total = max(1, len(chosen))
        with torch.no_grad():
            for i, (name, (value, bits)) in enumerate(chosen.items()):
                ctx.check_cancelled()
                lo, hi = tensor_range(value)
                value.copy_(dequantize(quantize(value, bits, lo, hi), bits, lo, hi).reshape(value.shape))
                grids[name] = [lo, hi]
                ctx.progress((i + 1) / total, f"{bits}-bit: {name}")
        # A later n-bit step re-quantizes everything: only its grid describes the stored values.
        transforms = [t for t in state.transforms if t.get("codec") != CODEC_ID]
        entry: dict[str, Any] = {"codec": CODEC_ID, "bits": cfg.bits, "grids": grids}
        differing = {name: bits for name, (_v, bits) in chosen.items() if bits != cfg.bits}
        if differing:
            entry["tensor_bits"] = differing  # only where they differ: old readers' layout otherwise
        transforms.append(entry)
        numel = sum(v.numel() for v, _b in chosen.values())
        info = dict(state.info)
        info[self.id] = {
            "bits": cfg.bits,
            "tensors": len(chosen),
            "quantized_params": int(numel),
            "packed_bytes": int(sum(packed_nbytes(v.numel(), b) for v, b in chosen.values())),
        }
        if cfg.mixed:
            info[self.id]["layer_bits"] = list(cfg.layer_bits)
            info[self.id]["embedding_bits"] = cfg.embedding_bits
            info[self.id]["head_bits"] = cfg.head_bits
        ctx.log(f"quantized {len(chosen)} tensors ({numel} values) to "
                + (f"{cfg.bits} bits" if not differing else f"{sorted({b for _v, b in chosen.values()})} bits"))
        return state.derive(
            state.model,
            transforms=transforms,
            traits=(state.traits - self.removes) | self.adds,
            info=info,
        )


@register_codec
class NbitCodec(Codec):
    """Stores each quantized tensor as packed b-bit codes (uint8) plus its fp32 [min, max]."""

    id = CODEC_ID

    def encode(self, model: Any, tensors: dict[str, Any], entry: dict[str, Any]) -> None:
        import torch

        default_bits = int(entry["bits"])
        per_tensor = {name: int(b) for name, b in (entry.get("tensor_bits") or {}).items()}
        # The grid recorded when the step ran makes re-encoding exact even after rows were dropped
        # (vocab.reduce). An entry read back from an artifact has it again (see decode).
        grids: dict[str, list[float]] | None = entry.pop("grids", None)
        if grids is None:
            grids = {name: list(tensor_range(tensors[name])) for name in entry.get("shapes", {}) if name in tensors}
        shapes: dict[str, list[int]] = {}
        for name, (lo, hi) in grids.items():
            value = tensors.get(name)
            if not isinstance(value, torch.Tensor) or not value.is_floating_point():
                continue  # gone (e.g. restructured by a later step): nothing of ours to store
            bits = per_tensor.get(name, default_bits)
            q = quantize(value, bits, lo, hi)
            packed = pack_bits(q.numpy(), bits)
            del tensors[name]
            tensors[name + _PACKED] = torch.from_numpy(packed)
            tensors[name + _RANGE] = torch.tensor([lo, hi], dtype=torch.float32)
            shapes[name] = list(value.shape)
        entry["shapes"] = shapes
        if per_tensor:
            entry["tensor_bits"] = {name: b for name, b in per_tensor.items() if name in shapes}

    def decode(self, model: Any, tensors: dict[str, Any], entry: dict[str, Any]) -> None:
        import torch

        from core.errors import ArtifactError

        default_bits = int(entry["bits"])
        per_tensor = entry.get("tensor_bits") or {}
        grids: dict[str, list[float]] = {}
        for name, shape in entry.get("shapes", {}).items():
            bits = int(per_tensor.get(name, default_bits))
            if not 1 <= bits <= 16:
                raise ArtifactError(f"The artifact's manifest gives tensor '{name}' {bits} bits; 1-16 are possible")
            try:
                packed = tensors.pop(name + _PACKED)
                lo, hi = (float(v) for v in tensors.pop(name + _RANGE))
            except KeyError:
                raise ArtifactError(f"The artifact lacks the packed {bits}-bit tensor '{name}'") from None
            grids[name] = [lo, hi]
            count = 1
            for d in shape:
                count *= int(d)
            q = torch.from_numpy(unpack_bits(packed.numpy(), bits, count))
            tensors[name] = dequantize(q, bits, lo, hi).reshape(shape)
        entry["grids"] = grids  # a reloaded model can be saved again exactly
