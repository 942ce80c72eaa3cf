"""Save and reload a variant: config + tokenizer + safetensors + a JSON manifest of transforms.

How weights are stored is decided by *codecs*, one per transform kind, registered by the step
module that introduces the transform (sparse, int8, bit-packed, shared layers, sketches...).
Saving runs the codecs over the state dict in chain order; loading builds the float skeleton
from the config and runs them in reverse, so each codec undoes exactly what it did. Tensors
shared between modules are stored once and re-tied on load. No pickle anywhere.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from core.errors import ArtifactError
from core.state import ModelState

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
WEIGHTS = "model.safetensors"


class Codec:
    """Turns one transform's modules into stored tensors and back.

    ``encode`` rewrites ``tensors`` (state-dict name -> tensor) in place into the stored form and
    may add JSON fields to ``entry``. ``decode`` receives the freshly built model and the stored
    tensors, restructures modules if needed (e.g. int8 Linear) and rewrites ``tensors`` back to
    what ``model.load_state_dict`` expects, consuming whatever it loads itself.
    """

    id: ClassVar[str]

    def encode(self, model: Any, tensors: dict[str, Any], entry: dict[str, Any]) -> None:
        """Default: the transform changes values only; the float tensors are stored as they are."""

    def decode(self, model: Any, tensors: dict[str, Any], entry: dict[str, Any]) -> None:
        """Default: nothing to undo."""


_CODECS: dict[str, Codec] = {}


def register_codec(codec_cls: type[Codec]) -> type[Codec]:
    if codec_cls.id in _CODECS:
        raise RuntimeError(f"codec '{codec_cls.id}' registered twice")
    _CODECS[codec_cls.id] = codec_cls()
    return codec_cls


def get_codec(codec_id: str) -> Codec:
    """A registered codec. Codecs live beside the steps that introduce them: load artifacts through
    ``core.steps.load_state``, which registers every step (and so every codec) first."""
    try:
        return _CODECS[codec_id]
    except KeyError:
        raise ArtifactError(f"This artifact needs codec '{codec_id}', which this version does not have") from None


@dataclass
class LoadedArtifact:
    model: Any
    tokenizer: Any
    manifest: dict[str, Any]

    def state(self) -> ModelState:
        """The variant as the model state a chain continues from."""
        m = self.manifest
        return ModelState(model=self.model, tokenizer=self.tokenizer, task=m["task"], head=m["head"],
                          transforms=list(m.get("transforms", [])), traits=frozenset(m.get("traits", [])),
                          info=dict(m.get("info", {})))


def state_tensors(model: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """The state dict's tensors with aliases removed: (name -> tensor, alias name -> kept name)."""
    import torch

    tensors: dict[str, Any] = {}
    aliases: dict[str, str] = {}
    seen: dict[Any, str] = {}
    for name, value in model.state_dict(keep_vars=False).items():
        if not isinstance(value, torch.Tensor):
            tensors[name] = value  # a codec (e.g. int8 packed params) must consume it
            continue
        key = storage_key(value)
        if value.numel() and key in seen:
            aliases[name] = seen[key]
            continue
        seen[key] = name
        tensors[name] = value
    return tensors, aliases


def storage_key(value: Any) -> Any:
    """What makes two state-dict entries the same tensor: their memory, or for a wrapper tensor
    subclass (torchao's Int8Tensor) the memory of the tensors inside it."""
    if hasattr(value, "__tensor_flatten__"):
        names, _ = value.__tensor_flatten__()
        return (type(value).__name__, tuple(storage_key(getattr(value, n)) for n in names))
    return (value.untyped_storage().data_ptr(), value.storage_offset(), tuple(value.shape), value.dtype)


def save_artifact(state: Any, folder: Path, *, base: str = "", extra: dict[str, Any] | None = None) -> int:
    """Write the variant in ``state`` (a ModelState) to ``folder``; return the folder's bytes."""
    import torch
    from safetensors.torch import save_file

    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".partial")
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    except OSError as exc:
        raise ArtifactError(f"Cannot write the artifact folder {folder}: {exc.strerror or exc}") from exc

    model = state.model
    tensors, aliases = state_tensors(model)
    entries = [dict(e) for e in state.transforms]
    for entry in entries:
        get_codec(entry["codec"]).encode(model, tensors, entry)
    leftovers = [k for k, v in tensors.items() if not isinstance(v, torch.Tensor)]
    if leftovers:
        raise ArtifactError(f"No codec stores {leftovers[0]} (and {len(leftovers) - 1} more)")
    manifest = {
        "format": FORMAT_VERSION,
        "base_model": base,
        "task": state.task,
        "head": state.head,
        "architecture": type(model).__name__,
        "transforms": entries,
        "aliases": aliases,
        "traits": sorted(state.traits),
        **(extra or {}),
    }
    try:
        save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(tmp / WEIGHTS))
        model.config.save_pretrained(str(tmp))
        state.tokenizer.save_pretrained(str(tmp))
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ArtifactError(f"Cannot write the artifact folder {folder}: {exc.strerror or exc}") from exc
    return folder_bytes(folder)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def weights_bytes(folder: Path) -> int:
    return (Path(folder) / WEIGHTS).stat().st_size


def load_artifact(folder: Path) -> LoadedArtifact:
    """Rebuild the model saved in ``folder`` so that it gives the same outputs."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoTokenizer

    from core.models import model_class_for

    folder = Path(folder)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise ArtifactError(f"{folder} is not a workbench artifact: it has no {MANIFEST}")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ArtifactError(f"{manifest_path} is not valid JSON: {exc}") from exc
    if manifest.get("format", 0) > FORMAT_VERSION:
        raise ArtifactError(f"{folder} was written by a newer workbench (format {manifest['format']})")
    try:
        tensors = load_file(str(folder / WEIGHTS))
    except Exception as exc:
        raise ArtifactError(f"{folder / WEIGHTS} is damaged: {exc}") from exc

    config = AutoConfig.from_pretrained(str(folder))
    model = model_class_for(manifest["head"]).from_config(config)
    model.eval()
    for entry in reversed(manifest["transforms"]):
        get_codec(entry["codec"]).decode(model, tensors, entry)
    result = model.load_state_dict(tensors, strict=False)
    aliases: dict[str, str] = manifest.get("aliases", {})
    missing = [k for k in result.missing_keys if k not in aliases]
    if missing or result.unexpected_keys:
        raise ArtifactError(
            f"{folder / WEIGHTS} does not match its config: missing {missing[:3]}, "
            f"unexpected {result.unexpected_keys[:3]}"
        )
    _tie_aliases(model, aliases)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    return LoadedArtifact(model=model, tokenizer=tokenizer, manifest=manifest)


def _tie_aliases(model: Any, aliases: dict[str, str]) -> None:
    """Make every alias the very same Parameter/buffer object as the tensor it was stored as."""
    for alias, kept in aliases.items():
        owner_path, _, attr = alias.rpartition(".")
        src_path, _, src_attr = kept.rpartition(".")
        owner = model.get_submodule(owner_path)
        source = getattr(model.get_submodule(src_path), src_attr)
        if attr in owner._parameters:
            owner._parameters[attr] = source
        else:
            owner._buffers[attr] = source
