"""Torch modules used by the int8 step and its codec (imported only when one of them runs).

Kept apart from ``quantize_int8`` because that module must import without torch (the GUI lists
steps); ``core.steps.base.discover`` skips modules whose name starts with ``_``.
"""

from __future__ import annotations

import torch
from torch import nn


class Int8Embedding(nn.Module):
    """An embedding table held in int8 with one fp32 scale per row (symmetric, weight-only).

    Lookups gather int8 rows and dequantize only the rows used, so the table stays int8 in
    memory as well as on disk.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None) -> None:
        super().__init__()
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.padding_idx = padding_idx
        # Frozen Parameters rather than buffers so parameter counts (core.measure.size_report) see them.
        self.weight_int8 = nn.Parameter(
            torch.zeros(num_embeddings, embedding_dim, dtype=torch.int8), requires_grad=False
        )
        self.scale = nn.Parameter(torch.ones(num_embeddings, dtype=torch.float32), requires_grad=False)

    @classmethod
    def from_float(cls, emb: nn.Embedding) -> Int8Embedding:
        w = emb.weight.detach().float()
        scale = w.abs().amax(dim=1) / 127.0
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        q = torch.round(w / scale[:, None]).clamp_(-127, 127).to(torch.int8)
        out = cls(emb.num_embeddings, emb.embedding_dim, emb.padding_idx)
        with torch.no_grad():
            out.weight_int8.copy_(q)
            out.scale.copy_(scale)
        return out

    @property
    def weight(self) -> torch.Tensor:
        """The dequantized table (for code that inspects ``.weight``; lookups do not use it)."""
        return self.weight_int8.float() * self.scale[:, None]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.weight_int8[ids].float() * self.scale[ids].unsqueeze(-1)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, int8 per-row"


def set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, module)
