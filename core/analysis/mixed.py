"""Mixed precision from a sensitivity map: a bit width per part (or parts kept in float) chosen to
meet a size or an accuracy budget. Pure Python and numpy (no torch): the window calls it directly.

Model of the outcome. Each part of a map by layer (embeddings, every transformer block, head) may
stay in float or take one of the transforms the map measured on it: ``nbit:B`` for the n-bit scheme,
``int8`` for the int8 scheme. A choice's *drop* is the loss of that transform on that part alone, in
points, never below 0 (a gain is not a promise). Which loss is the ``estimate``: ``"interval"`` (the
default) takes the pessimistic end of the cell's paired 95 % interval, so a cell measured on few
examples, or a measured gain with a wide interval, is not read as free; ``"point"`` takes the
measured change itself. Drops of several parts are assumed to add up (an assumption a benchmark must
check on the combined assignment: benchmarks/bench_sensitivity.py does). A choice's *bytes* follow
the codecs: B bits per value bit-packed plus two fp32 numbers per tensor, or int8 weights with
per-row scales; float is the tensors' own bytes. The predicted artifact is the untouched variant's
bytes with each part's float bytes replaced.

Candidate widths: ``min_bits`` drops the measured widths below it (e.g. 4 bits, whose parts' losses
add up worst), ``max_bits`` the wider ones and float (a plan meant to be smaller than uniform 8-bit
needs nothing wider than 8), ``floors`` raises single parts (``{"layer 3": 6}``: at least 6 bits or
float), which is how a measured combination that lost too much is tightened. :func:`uniform` is the
model's prediction for every part at one width, the rival such a plan is set against.

Search. ``target_bytes``: the least total drop whose bytes fit; ``max_drop``: the fewest bytes whose
total drop fits. Every assignment is tried when there are at most :data:`EXHAUSTIVE_LIMIT` of them
(numpy, exact); otherwise a greedy search takes, one at a time, the step down in precision that saves
the most bytes per point of drop while the budget holds (it may miss the optimum; the plan says
which search ran). The chosen assignment becomes the step's config, so the recipe reruns exactly.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from core.errors import ConfigError

EXHAUSTIVE_LIMIT = 2_000_000
SCHEMES = ("nbit", "int8")
ESTIMATES = ("interval", "point")
FLOAT = "float"
FLOAT_BITS = 32  # float ranks above every width when widths are bounded
NBIT_STEP, INT8_STEP = "quantize.linear_nbit", "quantize.dynamic_int8"
# Per quantized tensor beyond its packed values: its safetensors header entries and manifest grid.
TENSOR_OVERHEAD_BYTES = 200


@dataclass(frozen=True)
class Choice:
    """One option for one part: ``float``, ``nbit:B`` or ``int8``, its bytes and its drop in points."""

    name: str
    bytes: int
    drop: float  # points, >= 0
    measured: float | None = None  # the measured change in points (may be a gain)
    ci_low: float | None = None  # its paired 95 % interval, points
    ci_high: float | None = None

    @property
    def bits(self) -> int:
        """0 for float, B for nbit:B, 8 for int8."""
        if self.name == FLOAT:
            return 0
        return 8 if self.name == "int8" else int(self.name.split(":")[1])

    @property
    def rank(self) -> int:
        """The width for ordering and bounds: float above every width."""
        return FLOAT_BITS if self.name == FLOAT else self.bits

    @property
    def spread(self) -> float:
        """The width of its interval in points (0 for float or an interval not stored)."""
        return 0.0 if self.ci_low is None or self.ci_high is None else self.ci_high - self.ci_low


@dataclass(frozen=True)
class Plan:
    scheme: str
    parts: list[str]
    choices: list[Choice]  # the chosen one per part
    predicted_bytes: int
    predicted_drop: float  # points
    method: str  # "exhaustive" | "greedy"
    assignments: int  # how many the search could choose from
    objective: str  # what it met, in words
    base_bytes: int
    options: dict[str, list[Choice]] = field(default_factory=dict)
    estimate: str = "interval"
    candidates: str = ""  # the widths it could choose from, in words

    @property
    def step(self) -> str:
        return NBIT_STEP if self.scheme == "nbit" else INT8_STEP

    def step_config(self, base: dict[str, Any] | None = None) -> dict[str, Any]:
        """The chosen assignment as the step's config fields (merged over ``base``, e.g. an existing
        entry's config): what the recipe stores so the run reproduces this plan exactly."""
        chosen = dict(zip(self.parts, self.choices, strict=True))
        layers = [p for p in self.parts if p.startswith("layer ")]
        config = dict(base or {})
        if self.scheme == "nbit":
            # The most common width becomes ``bits``: the fewest per-tensor entries in the artifact.
            weights = Counter(c.bits for c in chosen.values() if c.bits)
            default = weights.most_common(1)[0][0] if weights else int(config.get("bits", 8))
            config.update(bits=default, layer_bits=[chosen[p].bits for p in layers],
                          embedding_bits=chosen["embeddings"].bits if "embeddings" in chosen else None,
                          head_bits=chosen["head"].bits if "head" in chosen else None)
        else:
            config.update(keep_float_layers=[i for i, p in enumerate(layers) if chosen[p].bits == 0],
                          embeddings_int8=bool(chosen.get("embeddings", Choice(FLOAT, 0, 0)).bits),
                          quantize_head=bool(chosen.get("head", Choice(FLOAT, 0, 0)).bits))
        return config

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """The plan as a person reads it."""
        mb = 1_000_000
        out = [f"{self.step}: {self.objective}",
               f"predicted artifact {self.predicted_bytes / mb:.2f} MB (untouched {self.base_bytes / mb:.2f} MB), "
               f"predicted drop {self.predicted_drop:.2f} points (sum of the parts' drops, {ESTIMATE_WORDS[self.estimate]})",
               f"search: {self.method} over {self.assignments:,} assignment(s){self.candidates and ' of ' + self.candidates}"]
        for part, c in zip(self.parts, self.choices, strict=True):
            measured = "" if c.measured is None else f", measured {c.measured:+.2f}"
            if c.ci_low is not None and c.ci_high is not None:
                measured += f" [{c.ci_low:+.2f}, {c.ci_high:+.2f}]"
            out.append(f"  {part:<12} {c.name:<8} {c.bytes / mb:7.3f} MB  drop {c.drop:.2f}{measured}")
        return out


ESTIMATE_WORDS = {"interval": "each the pessimistic end of its paired 95 % interval",
                  "point": "each the measured change, gains read as 0"}


def _nbit_bytes(size: dict[str, int], bits: int) -> int:
    # Tensors are packed one by one (each rounded up to a byte): at most one byte more per tensor.
    return math.ceil(size["params"] * bits / 8) + size["tensors"] * (8 + TENSOR_OVERHEAD_BYTES)


def _int8_bytes(size: dict[str, int], part: str) -> int:
    if part == "embeddings":  # int8 tables with one fp32 scale per row; the rest of the part stays float
        rest = size["float_bytes"] - 4 * size["embedding_params"]
        return size["embedding_params"] + 4 * size["embedding_rows"] + rest
    rest = size["float_bytes"] - 4 * size["linear_params"]  # biases (kept fp32) and LayerNorms
    return size["linear_params"] + 5 * size["linear_rows"] + rest  # int8 weights, fp32 scale + int8 zero point per row


def options(sensitivity: Any, scheme: str, estimate: str = "interval") -> dict[str, list[Choice]]:
    """Per part of a map by layer: float and every measured transform of ``scheme`` (a
    core.store.SensitivityMap or its dict), each with its drop by ``estimate``."""
    m = _as_map(sensitivity)
    if scheme not in SCHEMES:
        raise ConfigError(f"scheme must be one of {', '.join(SCHEMES)}, not '{scheme}'", field="scheme")
    if estimate not in ESTIMATES:
        raise ConfigError(f"estimate must be one of {', '.join(ESTIMATES)}, not '{estimate}'", field="estimate")
    if m.grouping != "layer":
        raise ConfigError(f"sensitivity map {m.id} is by {m.grouping}; mixed precision needs a map by layer "
                          "(workbench-cli sensitivity VARIANT --by layer ...)", field="sensitivity")
    transforms = [t for t in m.transforms if (t.startswith("nbit:") if scheme == "nbit" else t == "int8")]
    if not transforms:
        want = "nbit:BITS (e.g. --transform nbit:4 --transform nbit:6 --transform nbit:8)" if scheme == "nbit" else "int8"
        raise ConfigError(f"sensitivity map {m.id} measured no {scheme} transform ({', '.join(m.transforms)}); "
                          f"measure {want}", field="sensitivity")
    sizes = m.body.get("sizes") or {}
    out: dict[str, list[Choice]] = {}
    for part in m.layers:
        size = sizes.get(part)
        if size is None:
            raise ConfigError(f"sensitivity map {m.id} has no sizes for {part}; measure it again", field="sensitivity")
        choices = [Choice(FLOAT, int(size["float_bytes"]), 0.0)]
        for t in transforms:
            cell = m.cell(t, part)
            if cell is None or cell.delta is None:
                continue  # not measured (cancelled map) or nothing to act on
            measured = cell.delta * m.points
            low = None if cell.ci_low is None else cell.ci_low * m.points
            high = None if cell.ci_high is None else cell.ci_high * m.points
            if estimate == "interval":
                if low is None:
                    raise ConfigError(f"sensitivity map {m.id} stored no interval for {part} x {t} (too few examples "
                                      "to resample?); measure it on more examples or plan with the point estimate "
                                      "(--estimate point)", field="estimate")
                drop = max(0.0, -low)
            else:
                drop = max(0.0, -measured)
            nbytes = _nbit_bytes(size, int(t.split(":")[1])) if scheme == "nbit" else _int8_bytes(size, part)
            choices.append(Choice(t, nbytes, drop, measured, low, high))
        out[part] = choices
    return out


def candidates(opts: dict[str, list[Choice]], *, min_bits: int | None = None, max_bits: int | None = None,
               floors: dict[str, int] | None = None) -> dict[str, list[Choice]]:
    """``opts`` without the choices outside the widths (float counts as wider than any); ConfigError
    naming the part when nothing of it is left."""
    if min_bits is not None and max_bits is not None and min_bits > max_bits:
        raise ConfigError(f"the fewest bits ({min_bits}) is above the most bits ({max_bits})", field="min_bits")
    unknown = sorted(set(floors or {}) - set(opts))
    if unknown:
        raise ConfigError(f"no part named {', '.join(unknown)} in the map (parts: {', '.join(opts)})", field="floors")
    out = {}
    for part, choices in opts.items():
        floor = max(min_bits or 0, (floors or {}).get(part, 0))
        kept = [c for c in choices if c.rank >= floor and (max_bits is None or c.rank <= max_bits)]
        if not kept:
            measured = ", ".join(c.name for c in choices)
            raise ConfigError(f"no measured choice for {part} between {floor if floor else 'any'} and "
                              f"{'float' if max_bits is None else max_bits} bits "
                              f"(measured: {measured}); widen the bounds or measure that width", field="max_bits")
        out[part] = kept
    return out


def _widths_words(min_bits: int | None, max_bits: int | None, floors: dict[str, int] | None) -> str:
    words = []
    if min_bits is not None:
        words.append(f"at least {min_bits} bits")
    if max_bits is not None:
        words.append(f"at most {max_bits} bits (no float)" if max_bits < FLOAT_BITS else f"at most {max_bits} bits")
    words += [f"{part} at least {bits} bits" for part, bits in (floors or {}).items()]
    return ", ".join(words)


def plan(sensitivity: Any, *, scheme: str = "nbit", target_bytes: int | None = None, max_drop: float | None = None,
         estimate: str = "interval", min_bits: int | None = None, max_bits: int | None = None,
         floors: dict[str, int] | None = None, exhaustive_limit: int = EXHAUSTIVE_LIMIT) -> Plan:
    """The assignment meeting exactly one of ``target_bytes`` (least drop that fits) or ``max_drop``
    (fewest bytes within the drop, in points), drops read by ``estimate``, widths within
    ``min_bits``..``max_bits`` and ``floors``; ConfigError when no assignment meets it."""
    if (target_bytes is None) == (max_drop is None):
        raise ConfigError("give exactly one budget: a target size (--target-mb) or a metric drop (--max-drop)",
                          field="target")
    if max_drop is not None and max_drop < 0:
        raise ConfigError(f"the metric drop budget must be >= 0 points, got {max_drop}", field="max_drop")
    if target_bytes is not None and target_bytes <= 0:
        raise ConfigError(f"the target size must be above 0, got {target_bytes} bytes", field="target_mb")
    m = _as_map(sensitivity)
    every = options(m, scheme, estimate)
    opts = candidates(every, min_bits=min_bits, max_bits=max_bits, floors=floors)
    parts = list(opts)
    base_bytes = int(m.body.get("artifact_bytes") or 0)
    fixed = base_bytes - sum(every[p][0].bytes for p in parts)  # tokenizer, config, manifest, untouched tensors
    count = math.prod(len(opts[p]) for p in parts)
    if count <= exhaustive_limit:
        picks, method = _exhaustive(opts, parts, fixed, target_bytes, max_drop), "exhaustive"
    else:
        picks, method = _greedy(opts, parts, fixed, target_bytes, max_drop), "greedy"
    if picks is None:
        smallest = fixed + sum(min(c.bytes for c in opts[p]) for p in parts)
        if target_bytes is not None:
            raise ConfigError(f"no assignment of the measured transforms reaches {target_bytes / 1e6:.2f} MB: the "
                              f"smallest is {smallest / 1e6:.2f} MB; measure fewer bits or raise the target",
                              field="target_mb")
        least = sum(min(c.drop for c in opts[p]) for p in parts)
        raise ConfigError(f"no assignment stays within {max_drop} points ({ESTIMATE_WORDS[estimate]}): the least "
                          f"predicted drop with these widths is {least:.2f}; allow wider widths or float, or raise "
                          "the budget", field="max_drop")
    choices = [opts[p][i] for p, i in zip(parts, picks, strict=True)]
    size = fixed + sum(c.bytes for c in choices)
    drop = sum(c.drop for c in choices)
    objective = (f"least predicted drop within {target_bytes / 1e6:.2f} MB" if target_bytes is not None
                 else f"smallest predicted artifact within a drop of {round(max_drop, 4):g} points")
    return Plan(scheme, parts, choices, size, drop, method, count, objective, base_bytes, opts, estimate,
                _widths_words(min_bits, max_bits, floors))


def uniform(sensitivity: Any, bits: int, *, scheme: str = "nbit", estimate: str = "interval") -> Plan:
    """The model's prediction for every part at ``bits`` (8 for int8): the rival a plan is set against,
    e.g. ``plan(m, max_drop=uniform(m, 8).predicted_drop, max_bits=8)`` is smaller than uniform 8-bit
    at no more predicted drop, by the same estimate."""
    m = _as_map(sensitivity)
    if scheme == "int8" and bits != 8:
        raise ConfigError(f"the int8 scheme has one width, 8 bits, not {bits}; use --scheme nbit for {bits}-bit",
                          field="bits")
    every = options(m, scheme, estimate)
    name = "int8" if scheme == "int8" else f"nbit:{bits}"
    missing = [p for p, cs in every.items() if not any(c.name == name for c in cs)]
    if missing:
        raise ConfigError(f"sensitivity map {m.id} has no {name} cell for {', '.join(missing)}; measure --transform "
                          f"{name}", field="bits")
    parts = list(every)
    choices = [next(c for c in every[p] if c.name == name) for p in parts]
    base_bytes = int(m.body.get("artifact_bytes") or 0)
    size = base_bytes - sum(every[p][0].bytes for p in parts) + sum(c.bytes for c in choices)
    return Plan(scheme, parts, choices, size, sum(c.drop for c in choices), "uniform", 1, f"every part at {name}",
                base_bytes, every, estimate)


def tighten(p: Plan) -> tuple[str, int] | None:
    """The next step of a check that found ``p``'s combined loss too high: its most uncertain part
    (widest interval) that can still go one measured width up, and that width (float counts as
    the width above the widest); None when every part is at its widest."""
    best: tuple[float, str, int] | None = None
    for part, chosen in zip(p.parts, p.choices, strict=True):
        wider = sorted(c.rank for c in p.options.get(part, []) if c.rank > chosen.rank)
        if wider and (best is None or chosen.spread > best[0]):
            best = (chosen.spread, part, wider[0])
    return None if best is None else (best[1], best[2])


def _exhaustive(opts: dict[str, list[Choice]], parts: list[str], fixed: int, target_bytes: int | None,
                max_drop: float | None) -> list[int] | None:
    import numpy as np

    sizes = np.zeros(1, dtype=np.int64) + fixed
    drops = np.zeros(1, dtype=np.float64)
    for p in parts:  # every assignment at once: outer sums, the last part varying fastest
        sizes = (sizes[:, None] + np.array([c.bytes for c in opts[p]], dtype=np.int64)[None, :]).reshape(-1)
        drops = (drops[:, None] + np.array([c.drop for c in opts[p]], dtype=np.float64)[None, :]).reshape(-1)
    if target_bytes is not None:
        ok = sizes <= target_bytes
        key_primary, key_secondary = drops, sizes.astype(np.float64)
    else:
        ok = drops <= max_drop + 1e-9
        key_primary, key_secondary = sizes.astype(np.float64), drops
    if not ok.any():
        return None
    candidates = np.flatnonzero(ok)
    order = np.lexsort((key_secondary[candidates], key_primary[candidates]))
    flat = int(candidates[order[0]])
    picks = []
    for p in reversed(parts):
        flat, i = divmod(flat, len(opts[p]))
        picks.append(i)
    return picks[::-1]


def _greedy(opts: dict[str, list[Choice]], parts: list[str], fixed: int, target_bytes: int | None,
            max_drop: float | None) -> list[int] | None:
    # Start from every part at its widest allowed choice (float unless the widths are bounded).
    picks = [max(range(len(opts[p])), key=lambda i, p=p: (opts[p][i].rank, -opts[p][i].drop)) for p in parts]
    size = fixed + sum(opts[p][i].bytes for p, i in zip(parts, picks, strict=True))
    drop = sum(opts[p][i].drop for p, i in zip(parts, picks, strict=True))
    if max_drop is not None and drop > max_drop + 1e-9:
        return None
    while True:
        if target_bytes is not None and size <= target_bytes:
            return picks
        best: tuple[float, int, int] | None = None
        for k, p in enumerate(parts):
            here = opts[p][picks[k]]
            for i, c in enumerate(opts[p]):
                saved = here.bytes - c.bytes
                added = c.drop - here.drop
                if saved <= 0:
                    continue
                if max_drop is not None and drop + added > max_drop + 1e-9:
                    continue
                score = saved / max(added, 1e-6)  # bytes saved per point of drop
                if best is None or score > best[0]:
                    best = (score, k, i)
        if best is None:
            return picks if target_bytes is None else None
        _, k, i = best
        size += opts[parts[k]][i].bytes - opts[parts[k]][picks[k]].bytes
        drop += opts[parts[k]][i].drop - opts[parts[k]][picks[k]].drop
        picks[k] = i


def _as_map(sensitivity: Any) -> Any:
    from core.store.analysis import SensitivityMap

    return SensitivityMap.from_dict(sensitivity) if isinstance(sensitivity, dict) else sensitivity


def add_to_chain(recipe: Any, p: Plan) -> Any:
    """``recipe`` with the plan's step configured: the last chain entry when it is that step (its other
    fields kept), else a new entry at the end."""
    import dataclasses

    from core.recipe import ChainEntry

    chain = recipe.chain
    if len(chain) and chain[len(chain) - 1].step == p.step:
        last = chain[len(chain) - 1]
        chain = chain.replace(len(chain) - 1, dataclasses.replace(last, config=p.step_config(last.config)))
    else:
        entry = ChainEntry.default(p.step)
        chain = chain.append(dataclasses.replace(entry, config=p.step_config(entry.config)))
    return dataclasses.replace(recipe, chain=chain)
