"""Where the parts of an encoder are, found by structure rather than by one family's module names.

BERT, RoBERTa, ELECTRA, DistilBERT and MPNet name the same parts differently
(``attention.self.query`` / ``attention.q_lin`` / ``attention.attn.q``). Every step that selects
layers asks this module instead of matching names:

- the *stack*: the ModuleList of ``config.num_hidden_layers`` blocks of one type in ``model.base_model``;
- in each block, by shape and registration order: the four hidden->hidden projections of the
  attention (query, key, value, attention output), ``ffn_in`` (hidden->intermediate) and
  ``ffn_out`` (intermediate->hidden), and the LayerNorms;
- the embedding tables, the pooler (base-model Linears after the stack) and the task head
  (Linears outside the base model).

A block that does not have exactly those projections is refused with a :class:`ConfigError`
naming the modules it could not classify, rather than silently left out. Names are module
names in the whole model (as in its state dict). torch is imported only inside the functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.errors import ConfigError

ATTENTION_ROLES = ("query", "key", "value", "attention_output")
FFN_ROLES = ("ffn_in", "ffn_out")
ROLES = (*ATTENTION_ROLES, *FFN_ROLES)


@dataclass(frozen=True)
class Block:
    """One transformer block: ``roles`` maps each of :data:`ROLES` to a module name."""

    index: int
    name: str
    roles: dict[str, str]
    layernorms: tuple[str, ...]


@dataclass(frozen=True)
class Layout:
    """The parts of one model, as module names in the whole model."""

    model_type: str
    stack: str  # the ModuleList of blocks
    blocks: tuple[Block, ...]
    embeddings: tuple[str, ...]  # nn.Embedding tables of the base model
    embedding_projections: tuple[str, ...]  # base-model Linears before the stack (ELECTRA's embeddings_project)
    layernorms: tuple[str, ...]  # every LayerNorm of the base model
    pooler: tuple[str, ...]  # base-model Linears after the stack
    head: tuple[str, ...]  # Linears outside the base model (the task head)

    def role(self, role: str) -> list[str]:
        """The module playing ``role`` (one of :data:`ROLES`) in every block, bottom to top."""
        return [block.roles[role] for block in self.blocks]


def _model_type(model: Any) -> str:
    return str(getattr(getattr(model, "config", None), "model_type", None) or type(model).__name__)


def _is_linear(module: Any) -> bool:
    """A Linear or a module standing in for one (sketched, int8): it declares its in/out widths."""
    return isinstance(getattr(module, "in_features", None), int) and isinstance(getattr(module, "out_features", None), int)


def _refuse(model: Any, why: str, step: str) -> ConfigError:
    return ConfigError(
        f"Cannot find the layers of model type '{_model_type(model)}' by their structure: {why}. "
        "Supported: encoders built like BERT, RoBERTa, DistilBERT and MPNet",
        step=step,
    )


def layer_stack(model: Any, *, step: str = "") -> tuple[str, Any]:
    """(name, ModuleList) of the transformer blocks: ``config.num_hidden_layers`` blocks of one type."""
    from torch import nn

    base = model.base_model
    depth = getattr(model.config, "num_hidden_layers", None)
    base_ids = {id(m) for m in base.modules()}
    lists = []
    for name, module in model.named_modules():
        if id(module) not in base_ids or not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        if len({type(child) for child in module}) == 1 and (depth is None or len(module) == depth):
            lists.append((name, module))
    candidates = [(n, m) for n, m in lists if any(_is_linear(sub) for sub in m[0].modules())]
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        raise _refuse(model, f"several lists of blocks could be the encoder ({', '.join(n for n, _ in candidates)})", step)
    if lists:
        name, module = lists[0]
        weights = [f"{name}.0.{n} ({type(m).__name__})" for n, m in module[0].named_modules()
                   if any(p.dim() >= 2 for p in m.parameters(recurse=False))]
        raise _refuse(model, f"the blocks of {name} have no Linear layers; modules with weights it cannot place: "
                             f"{', '.join(weights) or 'none'}", step)
    raise _refuse(model, f"the base model has no list of {depth or 'identical'} blocks of one type", step)


def _block(model: Any, index: int, name: str, block: Any, hidden: int, step: str) -> Block:
    """Classify the Linears of one block by shape (hidden->hidden: attention, in that order; then
    hidden->other and other->hidden: the FFN). When the FFN is as wide as the hidden size, all six
    are hidden->hidden and registration order decides (attention first, as in every supported family)."""
    from torch import nn

    linears: list[tuple[str, Any]] = []
    layernorms: list[str] = []
    other: list[str] = []
    for sub, module in block.named_modules():
        full = f"{name}.{sub}" if sub else name
        if _is_linear(module) and not any(_is_linear(m) for m in list(module.modules())[1:]):
            linears.append((full, module))
        elif isinstance(module, nn.LayerNorm):
            layernorms.append(full)
        elif any(p.dim() >= 2 for p in module.parameters(recurse=False)):
            other.append(f"{full} ({type(module).__name__})")
    square = [n for n, m in linears if m.in_features == hidden and m.out_features == hidden]
    widen = [n for n, m in linears if m.in_features == hidden and m.out_features != hidden]
    narrow = [n for n, m in linears if m.in_features != hidden and m.out_features == hidden]
    roles: dict[str, str] = {}
    if len(square) == 4 and len(widen) == 1 and len(narrow) == 1:
        roles = dict(zip(ATTENTION_ROLES, square, strict=True)) | {"ffn_in": widen[0], "ffn_out": narrow[0]}
    elif len(square) == 6 and not widen and not narrow:
        roles = dict(zip(ROLES, square, strict=True))
    order = [n for n, _ in linears]
    if roles and order.index(roles["ffn_in"]) < order.index(roles["attention_output"]):
        roles = {}  # an FFN before the attention output is not a block we know
    if other or not roles or len(linears) != 6:
        described = ", ".join(f"{n} ({m.in_features}->{m.out_features})" for n, m in linears) or "none"
        unknown = f"; modules with weights it cannot place: {', '.join(other)}" if other else ""
        raise _refuse(
            model,
            f"block {name} should have 4 attention projections {hidden}->{hidden} and an FFN "
            f"{hidden}->n->{hidden}; its Linear layers are: {described}{unknown}",
            step,
        )
    return Block(index=index, name=name, roles=roles, layernorms=tuple(layernorms))


def encoder_layout(model: Any, *, step: str = "") -> Layout:
    """Every part of ``model`` a step may select; ConfigError (with ``step``) naming what does not fit."""
    from torch import nn

    base = model.base_model
    hidden = getattr(model.config, "hidden_size", None)
    if not isinstance(hidden, int):
        raise _refuse(model, "its config has no hidden_size", step)
    stack_name, stack = layer_stack(model, step=step)
    prefix = f"{stack_name}."
    blocks = tuple(_block(model, i, f"{prefix}{i}", block, hidden, step) for i, block in enumerate(stack))
    base_ids = {id(m) for m in base.modules()}
    embeddings, projections, layernorms, pooler, head = [], [], [], [], []
    seen_stack = False
    for name, module in model.named_modules():
        if name == stack_name or name.startswith(prefix):
            seen_stack = True
            if isinstance(module, nn.LayerNorm):
                layernorms.append(name)
            continue
        in_base = id(module) in base_ids
        if in_base and isinstance(module, nn.Embedding):
            embeddings.append(name)
        elif in_base and isinstance(module, nn.LayerNorm):
            layernorms.append(name)
        elif _is_linear(module):
            (head if not in_base else pooler if seen_stack else projections).append(name)
    return Layout(
        model_type=_model_type(model),
        stack=stack_name,
        blocks=blocks,
        embeddings=tuple(embeddings),
        embedding_projections=tuple(projections),
        layernorms=tuple(layernorms),
        pooler=tuple(pooler),
        head=tuple(head),
    )


def task_head(model: Any, *, step: str = "") -> list[str]:
    """Linears after the encoder: the base model's pooler and the task head (needs only the stack)."""
    base_ids = {id(m) for m in model.base_model.modules()}
    stack_name, _ = layer_stack(model, step=step)
    out, seen_stack = [], False
    for name, module in model.named_modules():
        if name == stack_name or name.startswith(f"{stack_name}."):
            seen_stack = True
        elif _is_linear(module) and (seen_stack or id(module) not in base_ids):
            out.append(name)
    return out


# --- parts: every tensor in one group ---------------------------------------------------------
EMBEDDINGS = "embeddings"
HEAD = "head"


def part_label(part: int | str) -> str:
    """How a part is written in tables and recipes: 'layer 3', 'embeddings', 'head'."""
    return f"layer {part}" if isinstance(part, int) else part


def tensor_parts(model: Any, names: list[str] | None = None, *, step: str = "") -> dict[str, int | str]:
    """Which part of the model each parameter/buffer name (default: the state dict's) belongs to:
    the index of its transformer block, :data:`HEAD` (the pooler's Linears and everything outside
    the base model: the task head) or :data:`EMBEDDINGS` (every other base-model tensor: embedding
    tables, their LayerNorm, ELECTRA's projection, MPNet's relative position bias). Found by
    structure, as :func:`encoder_layout`."""
    layout = encoder_layout(model, step=step)
    base_ids = {id(m) for m in model.base_model.modules()}
    modules = dict(model.named_modules())
    blocks = [(f"{b.name}.", b.index) for b in layout.blocks]
    after_stack = set(layout.pooler) | set(layout.head)
    if names is None:
        names = list(model.state_dict().keys())
    out: dict[str, int | str] = {}
    for name in names:
        block = next((i for prefix, i in blocks if name.startswith(prefix)), None)
        if block is not None:
            out[name] = block
            continue
        owner = name.rpartition(".")[0]
        while owner and owner not in modules:  # e.g. packed-param names nest below their module
            owner = owner.rpartition(".")[0]
        module = modules.get(owner)
        in_base = module is not None and id(module) in base_ids
        out[name] = HEAD if owner in after_stack or not in_base else EMBEDDINGS
    return out
