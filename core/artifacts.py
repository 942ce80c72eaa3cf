"""Save and reload a variant: config + tokenizer + safetensors + a JSON manifest of transforms.

How weights are stored is decided by *codecs*, one per transform kind, registered by the step
module that introduces the transform (sparse, int8, bit-packed, shared layers, sketches...).
Saving runs the codecs over the state dict in chain order; loading builds the float skeleton
from the config and runs them in reverse, so each codec undoes exactly what it did. Tensors
shared between modules are stored once and re-tied on load. No pickle anywhere.
"""

from __future__ import annotations

import errno
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
# Training rows a step prepared for later steps (ModelState.data), as JSON lines: kept beside the
# model so a chain can continue from the artifact, but not shipped, so not counted in its size.
DATA_DIR = "training-data"


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
    data: dict[str, list[dict[str, Any]]] | None = None

    def state(self) -> ModelState:
        """The variant as the model state a chain continues from."""
        m = self.manifest
        return ModelState(model=self.model, tokenizer=self.tokenizer, task=m["task"], head=m["head"],
                          transforms=list(m.get("transforms", [])), traits=frozenset(m.get("traits", [])),
                          info=dict(m.get("info", {})), data=dict(self.data or {}))


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
    """Write the variant in ``state`` (a ModelState) to ``folder``; return the folder's bytes.

    Everything is written to ``<folder>.partial`` first and renamed at the end; whatever goes wrong
    on the way (a full disk above all), the partial folder is removed and the error says what to do.
    """
    import torch
    from safetensors.torch import save_file

    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".partial")
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
    data: dict[str, list[dict[str, Any]]] = dict(getattr(state, "data", None) or {})
    if data:
        manifest["data"] = {split: {"file": f"{DATA_DIR}/{split}.jsonl", "rows": len(rows)} for split, rows in data.items()}
    stored = {k: v.detach().contiguous() for k, v in tensors.items()}
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        save_file(stored, str(tmp / WEIGHTS))
        model.config.save_pretrained(str(tmp))
        _forget_call_settings(state.tokenizer)
        state.tokenizer.save_pretrained(str(tmp))
        for split, rows in data.items():
            (tmp / DATA_DIR).mkdir(exist_ok=True)
            with (tmp / DATA_DIR / f"{split}.jsonl").open("w", encoding="utf-8") as out:
                out.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if _no_space(exc):
            need = sum(v.numel() * v.element_size() for v in stored.values())
            raise ArtifactError(disk_full_message(folder, need)) from exc
        if isinstance(exc, OSError) or type(exc).__name__ == "SafetensorError":
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise ArtifactError(f"Cannot write the artifact folder {folder}: {why}") from exc
        raise
    return folder_bytes(folder)


def _forget_call_settings(tokenizer: Any) -> None:
    """A fast tokenizer keeps the truncation and padding of its last call and would save them: the
    same variant's files would then depend on whether its tokenizer had been used (evaluated in
    memory) or freshly loaded. Cleared here; each call sets what it needs again."""
    backend = getattr(tokenizer, "_tokenizer", None)
    if backend is not None and hasattr(backend, "no_truncation"):
        backend.no_truncation()
        backend.no_padding()


def _no_space(exc: BaseException) -> bool:
    """A full disk or quota, whether from Python (OSError) or from safetensors' Rust writer (its message)."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    text = str(exc)
    return type(exc).__name__ == "SafetensorError" and (
        "No space left on device" in text or f"os error {errno.ENOSPC}" in text or "Disk quota exceeded" in text
    )


def disk_full_message(folder: Path, need_bytes: int) -> str:
    """What to do when ``folder``'s drive is full: how much to free, or where else to write."""
    probe = Path(folder)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        free = 0
    need_mb = max(1, -(-need_bytes // 10**6))
    free_mb = free // 10**6
    short_mb = need_mb - free_mb if need_mb > free_mb else need_mb
    return (
        f"No space left on the drive of {folder} while saving an artifact: it needs about {need_mb} MB and "
        f"{free_mb} MB are free. Free at least {short_mb} MB there, or choose another artifacts folder "
        "(workbench-cli run --artifacts DIR, or WORKBENCH_HOME for database and artifacts together)."
    )


def pack_artifact(folder: Path) -> bytes:
    """An artifact folder as one uncompressed zip (safetensors barely compress): how a variant made on
    another machine travels back (core.run.cluster). Only files, by their path inside the folder."""
    import io
    import zipfile

    folder = Path(folder)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def unpack_artifact(data: bytes, folder: Path) -> int:
    """Write a packed artifact to ``folder`` (through ``<folder>.partial``, like save_artifact); return
    its bytes. A member naming a path outside the folder is refused, not written."""
    import io
    import zipfile

    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".partial")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
            bad = [n for n in names if n.startswith("/") or ".." in Path(n).parts]
            if bad:
                raise ArtifactError(f"A packed artifact for {folder} names a path outside it: {bad[0]}")
            if MANIFEST not in names:
                raise ArtifactError(f"A packed artifact for {folder} has no {MANIFEST}")
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
            archive.extractall(tmp)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if _no_space(exc):
            raise ArtifactError(disk_full_message(folder, len(data))) from exc
        if isinstance(exc, OSError):
            raise ArtifactError(f"Cannot write the artifact folder {folder}: {exc.strerror or exc}") from exc
        if isinstance(exc, zipfile.BadZipFile):
            raise ArtifactError(f"The packed artifact for {folder} is damaged: {exc}") from exc
        raise
    return folder_bytes(folder)


def is_complete_artifact(folder: Path) -> bool:
    """Whether ``folder`` holds a whole saved variant: a manifest and weights whose safetensors
    structure is intact (a killed save leaves ``<folder>.partial``; an interrupted deletion or a
    hand-edited folder may leave less). Cheap: only the weights' header is read."""
    from core.errors import ModelLoadError
    from core.models import check_safetensors_header

    folder = Path(folder)
    if not (folder / MANIFEST).is_file() or not (folder / WEIGHTS).is_file():
        return False
    try:
        check_safetensors_header(folder / WEIGHTS)
    except ModelLoadError:
        return False
    return True


def shipped_files(folder: Path) -> list[Path]:
    """The files of a saved variant a user ships: everything but its training rows (``DATA_DIR``)."""
    folder = Path(folder)
    return [p for p in folder.rglob("*") if p.is_file() and p.relative_to(folder).parts[0] != DATA_DIR]


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in shipped_files(folder))


def weights_bytes(folder: Path) -> int:
    return (Path(folder) / WEIGHTS).stat().st_size


def load_artifact(folder: Path) -> LoadedArtifact:
    """Rebuild the model saved in ``folder`` so that it gives the same outputs."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoTokenizer

    from core.errors import ModelLoadError
    from core.models import model_class_for
    from core.pooling import install_pooling

    folder = Path(folder)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise ArtifactError(f"{folder} is not a workbench artifact: it has no {MANIFEST}")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise ArtifactError(f"{manifest_path} is not valid JSON: {exc}") from exc
    check_manifest(manifest, manifest_path)
    try:
        tensors = load_file(str(folder / WEIGHTS))
    except Exception as exc:
        raise ArtifactError(f"{folder / WEIGHTS} is damaged: {exc}") from exc

    try:
        config = AutoConfig.from_pretrained(str(folder))
    except (OSError, ValueError, KeyError) as exc:
        raise ArtifactError(f"{folder / 'config.json'} is damaged or not a model configuration: {exc}") from exc
    try:
        model = install_pooling(model_class_for(manifest["head"]).from_config(config), manifest["head"])
    except ModelLoadError as exc:
        raise ArtifactError(f"{folder / 'config.json'}: {exc}") from None
    model.eval()
    stored_as = manifest.get("architecture")
    if stored_as is not None and stored_as != type(model).__name__:
        raise ArtifactError(
            f"{manifest_path}: field 'head' ({manifest['head']!r}) and config.json build a {type(model).__name__}, "
            f"but field 'architecture' says the weights are a {stored_as}; the manifest was edited or damaged"
        )
    for index, entry in reversed(list(enumerate(manifest["transforms"]))):
        try:
            codec = get_codec(entry["codec"])
        except ArtifactError as exc:
            raise ArtifactError(f"{manifest_path}: field 'transforms[{index}]': {exc}") from None
        try:
            codec.decode(model, tensors, entry)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            what = f"lacks the key {exc.args[0]!r}" if isinstance(exc, KeyError) and exc.args else f"is malformed ({exc})"
            raise ArtifactError(f"{manifest_path}: field 'transforms[{index}]' (codec {entry['codec']!r}) {what}") from exc
    try:
        result = model.load_state_dict(tensors, strict=False)
    except RuntimeError as exc:  # shapes differ: the manifest's transforms do not describe these weights
        detail = "; ".join(line.strip() for line in str(exc).splitlines()[1:3])
        raise ArtifactError(f"{folder / WEIGHTS} does not match {MANIFEST} and config.json: {detail}") from exc
    aliases: dict[str, str] = manifest.get("aliases", {})
    missing = [k for k in result.missing_keys if k not in aliases]
    if missing or result.unexpected_keys:
        raise ArtifactError(
            f"{folder / WEIGHTS} does not match its config: missing {missing[:3]}, "
            f"unexpected {result.unexpected_keys[:3]}"
        )
    try:
        _tie_aliases(model, aliases)
    except AttributeError as exc:
        raise ArtifactError(f"{manifest_path}: field 'aliases' names a tensor the model does not have ({exc})") from exc
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    return LoadedArtifact(model=model, tokenizer=tokenizer, manifest=manifest, data=load_data(folder, manifest))


def load_data(folder: Path, manifest: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The training rows saved with a variant (manifest field 'data'), checked against their counts."""
    out: dict[str, list[dict[str, Any]]] = {}
    for split, entry in (manifest.get("data") or {}).items():
        path = Path(folder) / entry["file"]
        try:
            rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{path} (training rows of split {split!r}) is missing or damaged: {exc}") from exc
        if len(rows) != entry["rows"] or not all(isinstance(r, dict) for r in rows):
            raise ArtifactError(f"{path} holds {len(rows)} rows; {MANIFEST} says {entry['rows']}: the folder was edited "
                                "or damaged")
        out[split] = rows
    return out


def check_manifest(manifest: Any, path: Path) -> None:
    """ArtifactError naming ``path`` and the field when the manifest is not one this version can load.

    Torch-free and cheap: validation can call it on an artifact given as the model.
    """
    from typing import get_args

    from core.models import Head

    def bad(field: str, why: str) -> ArtifactError:
        return ArtifactError(f"{path}: field {field!r} {why}; the manifest was edited or damaged")

    if not isinstance(manifest, dict):
        raise ArtifactError(f"{path} is not a workbench manifest: it holds a JSON {type(manifest).__name__}, not an object")
    for field in ("format", "task", "head", "transforms"):
        if field not in manifest:
            raise bad(field, "is missing")
    version = manifest["format"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise bad("format", f"is {version!r}; expected a format number from 1 to {FORMAT_VERSION}")
    if version > FORMAT_VERSION:
        raise ArtifactError(
            f"{path.parent} was written by a newer workbench (format {version}; this version reads up to "
            f"{FORMAT_VERSION}): upgrade the workbench to use it"
        )
    heads = get_args(Head)
    if manifest["head"] not in heads:
        raise bad("head", f"is {manifest['head']!r}; expected one of {', '.join(heads)}")
    if not isinstance(manifest["task"], str) or not manifest["task"]:
        raise bad("task", f"is {manifest['task']!r}; expected a task id")
    transforms = manifest["transforms"]
    if not isinstance(transforms, list):
        raise bad("transforms", f"is a {type(transforms).__name__}; expected a list")
    for index, entry in enumerate(transforms):
        if not isinstance(entry, dict) or not isinstance(entry.get("codec"), str):
            raise bad(f"transforms[{index}]", "has no 'codec' name")
    for field, kind, element in (("aliases", dict, str), ("traits", list, str), ("info", dict, None)):
        value = manifest.get(field, kind())
        if not isinstance(value, kind):
            raise bad(field, f"is a {type(value).__name__}; expected a {kind.__name__}")
        items = value.items() if isinstance(value, dict) else ((v, v) for v in value)
        if element is not None and not all(isinstance(k, element) and isinstance(v, element) for k, v in items):
            raise bad(field, "holds something other than names")
    data = manifest.get("data", {})
    if not isinstance(data, dict) or not all(
        isinstance(e, dict) and isinstance(e.get("file"), str) and e["file"].startswith(f"{DATA_DIR}/")
        and ".." not in e["file"] and isinstance(e.get("rows"), int) for e in data.values()
    ):
        raise bad("data", f"is {data!r}; expected split -> {{'file': '{DATA_DIR}/<split>.jsonl', 'rows': <count>}}")
    if not isinstance(manifest.get("architecture", ""), str):
        raise bad("architecture", f"is {manifest['architecture']!r}; expected a class name")


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
