"""How big a run is before it starts: the variants a recipe expands to and the disk their artifacts
will take, against the free space where they go. The CLI refuses a large run unless told ``--yes``;
the window asks the same question in a confirm dialog. Pure and torch-free: files are only looked at.

Every seed of ``seeds:`` makes the whole tree again. The disk estimate assumes each variant's
artifact is as large as the model's folder (weights, config and tokenizer) times the ratios of the
steps on its path (``Step.size_ratio``: int8 about a quarter, n-bit bits/32, the rest the same
size), the baseline included; cache hits, which reuse stored artifacts, are counted as new, so the
estimate errs high. With ``measure.backends`` each variant is also exported once per listed runtime
other than torch, and those files are kept (they are what a user deploys); each is counted as large as
the model's weights before any step, since an export stores float weights (n-bit dequantized, pruned
zeros dense), plus its tokenizer copy and graph description. A sketched layer's export also stores its
random matrix S, so a sketched variant's exports are counted low (about 15 % of the file for MiniLM at
the default sizes).
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path

from core.recipe.model import Recipe

# Above this many variants a run is confirmed first (a 3-axis sweep once expanded to 170,101).
CONFIRM_VARIANTS = 200
# Above this many the variant tree is not even built: refused outright by validation.
MAX_VARIANTS = 100_000
# Free space a run must leave on the drive of the artifacts folder, or it is confirmed first.
DISK_MARGIN = 2 * 10**9
# Configs of one entry enumerated to sum their size ratios; beyond, the largest ratio (1.0) is assumed.
_MAX_ENUMERATED = 10_000
# An exported file's graph description beside its weights (OpenVINO's XML of a 6-layer BERT: 0.22 MB).
_GRAPH_BYTES = 100_000


@dataclass(frozen=True)
class RunEstimate:
    """The size of a run: ``variants`` (baseline included), ``bytes`` (None: the model's size is not
    known here, e.g. a hub id) and ``free`` bytes on the drive of ``folder`` (None: not known)."""

    variants: int
    bytes: int | None
    free: int | None
    folder: Path

    @property
    def too_many(self) -> bool:
        return self.variants > CONFIRM_VARIANTS

    @property
    def too_big(self) -> bool:
        return self.bytes is not None and self.free is not None and self.bytes > self.free - DISK_MARGIN

    @property
    def needs_confirmation(self) -> bool:
        """Whether a user must confirm before the run starts (``--yes`` in the CLI, a dialog in the window)."""
        return self.too_many or self.too_big

    def summary(self) -> str:
        """One line: the counts and sizes, e.g. for ``validate`` and a confirm dialog."""
        size = "unknown disk use" if self.bytes is None else f"about {_size(self.bytes)} of artifacts"
        free = "" if self.free is None else f" ({_size(self.free)} free)"
        return f"{self.variants:,} variant(s), {size} in {self.folder}{free}"

    def reasons(self) -> list[str]:
        """Why the run needs confirming, each naming the numbers and the limit."""
        out = []
        if self.too_many:
            out.append(f"{self.variants:,} variants is more than {CONFIRM_VARIANTS:,}")
        if self.too_big:
            assert self.bytes is not None and self.free is not None
            out.append(f"about {_size(self.bytes)} of artifacts would leave less than {_size(DISK_MARGIN)} of the "
                       f"{_size(self.free)} free on the drive of {self.folder}")
        return out


def _size(n: int) -> str:
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if abs(n) >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n} bytes"


def entry_variant_counts(recipe: Recipe) -> list[int]:
    """How many concrete configs each enabled chain entry expands to (the product of its sweep lists)."""
    from core.errors import ConfigError
    from core.recipe.sweep import sweep_fields

    counts = []
    for entry in recipe.chain:
        if not entry.enabled:
            continue
        try:
            axes = sweep_fields(entry)
        except ConfigError:  # an unknown step: validation names it; it counts as one
            axes = {}
        counts.append(math.prod(max(1, len(v)) for v in axes.values()))
    return counts


def count_variants(recipe: Recipe) -> int:
    """Variants a run makes, baseline included: the variant tree's nodes (computed without building
    the tree) once per seed."""
    total, level = 1, 1
    for count in entry_variant_counts(recipe):
        level *= count
        total += level
        if total > 10 * MAX_VARIANTS:  # enough to refuse; the exact number can be astronomic
            break
    return total * len(recipe.run_seeds)


def run_estimate(recipe: Recipe, artifacts_dir: str | Path) -> RunEstimate:
    """The variants of ``recipe`` and their estimated artifact bytes against the free space under
    ``artifacts_dir`` (which need not exist yet). Torch-free and cheap: the window may call it
    before every run."""
    folder = Path(artifacts_dir)
    return RunEstimate(variants=count_variants(recipe), bytes=estimate_bytes(recipe), free=free_bytes(folder),
                       folder=folder)


def free_bytes(folder: Path) -> int | None:
    """Free bytes on the drive that holds (or will hold) ``folder``."""
    probe = Path(folder).expanduser()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return None


def estimate_bytes(recipe: Recipe) -> int | None:
    """Estimated artifact bytes of every variant of the run (see the module doc for the assumptions)."""
    from core.errors import WorkbenchError
    from core.models import ModelRef, inspect_model_folder
    from core.recipe.sweep import entry_configs, sweep_fields
    from core.steps.base import get_step

    try:
        folder = ModelRef.parse(recipe.model).local_folder()
        if folder is None:
            return None
        if (folder / "manifest.json").is_file():  # a stored variant: its own folder is what one artifact takes
            embeddings, other, fixed = 0, sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()), 0
        else:
            facts = inspect_model_folder(folder)
            embeddings = facts.embedding_bytes
            other, fixed = facts.weights_bytes - facts.embedding_bytes, facts.tokenizer_bytes
    except (WorkbenchError, OSError):
        return None  # validation reports the model
    total = embeddings + other + fixed  # the baseline
    per_export = embeddings + other + fixed + _GRAPH_BYTES  # the model as it enters the chain (the loop scales the rest)
    count = nodes = 1
    for entry in recipe.chain:
        if not entry.enabled:
            continue
        try:
            step_cls = get_step(entry.step)
            axes = sweep_fields(entry)
        except WorkbenchError:
            continue
        n = math.prod(max(1, len(v)) for v in axes.values())
        if n <= _MAX_ENUMERATED:
            ratios = [step_cls.size_ratio(c) for c in entry_configs(entry)]
            embedding_sum, other_sum = sum(r[0] for r in ratios), sum(r[1] for r in ratios)
        else:
            embedding_sum = other_sum = float(n)
        # Summed over every path, a level's bytes are the previous level's times the sum of the ratios.
        embeddings *= embedding_sum
        other *= other_sum
        count *= n
        nodes += count
        total += round(embeddings + other) + fixed * count
        if count > 10 * MAX_VARIANTS:  # refused anyway; stop before the numbers overflow
            break
    exported = sum(1 for backend in recipe.measure.backends if backend != "torch")
    total += exported * per_export * nodes
    return int(total) * len(recipe.run_seeds)  # each seed makes its own artifacts


@dataclass(frozen=True)
class DurationEstimate:
    """How long a run should take, from what the same work took before with the same model, task, data and
    measurement settings (``core.store.past_step_seconds``): ``seconds`` sums the median past time of each
    variant timed before (every seed's); ``untimed`` names the steps never timed so (not counted)."""

    seconds: float
    timed: int
    variants: int
    untimed: tuple[str, ...]

    def summary(self) -> str:
        """'about 12 min by earlier runs here, less where variants are reused', 'over 12 min: Fine-tune not
        timed here yet' when some variants were never timed, or '' when none was."""
        if not self.timed:
            return ""
        minutes = self.seconds / 60
        time = f"{max(1, round(minutes))} min" if minutes >= 1 else f"{max(5, 5 * round(self.seconds / 5))} s"
        if self.untimed:
            return f"over {time}: {', '.join(self.untimed)} not timed here with these settings yet"
        return f"about {time} by earlier runs here, less where variants are reused"


def run_duration(recipe: Recipe, past: dict[tuple[str, str], list[float]]) -> DurationEstimate:
    """The run's duration from ``past`` ((step id, config JSON) -> seconds, newest first). Variants that will
    be reused from the cache take seconds, so a run of work already done is counted high."""
    import statistics

    from core.recipe.sweep import variant_tree
    from core.steps import get_step

    baseline = [t for (step_id, _config), times in past.items() if step_id == "baseline" for t in times]
    seconds, timed, variants, untimed = 0.0, 0, 0, []
    for node in variant_tree(recipe).walk():
        variants += 1
        if node.step is None:
            times, name = baseline, "the baseline"
        else:
            times = past.get((node.step.step, node.step.config_text), [])
            name = get_step(node.step.step).title
        if times:
            seconds += statistics.median(times)
            timed += 1
        elif name not in untimed:
            untimed.append(name)
    seeds = len(recipe.run_seeds)
    return DurationEstimate(seconds * seeds, timed * seeds, variants * seeds, tuple(untimed))
