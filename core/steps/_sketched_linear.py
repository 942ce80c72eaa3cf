"""The module behind ``sketch.random`` (imported lazily: it needs torch)."""

from __future__ import annotations

import math

import torch
from torch import nn


def rademacher(m: int, n: int, seed: int) -> torch.Tensor:
    """S: an m x n matrix of +-1/sqrt(m), a pure function of (m, n, seed) so it is never stored."""
    generator = torch.Generator().manual_seed(int(seed))
    signs = torch.randint(0, 2, (m, n), generator=generator, dtype=torch.int8)
    return (signs.to(torch.float32) * 2 - 1) / math.sqrt(m)


class SketchedLinear(nn.Module):
    """y = (W S^T)(S x) + b: ``weight`` holds the trainable out x m product, S is a seeded buffer.

    The buffer is non-persistent: it never reaches the state dict, so the artifact stores only the
    seed and the shapes (in the manifest) and rebuilds S bit for bit.
    """

    def __init__(self, in_features: int, out_features: int, m: int, seed: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features, self.m, self.seed = in_features, out_features, m, seed
        self.weight = nn.Parameter(torch.empty(out_features, m))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.register_buffer("sketch", rademacher(m, in_features, seed), persistent=False)

    @classmethod
    def from_linear(cls, linear: nn.Linear, m: int, seed: int) -> SketchedLinear:
        module = cls(linear.in_features, linear.out_features, m, seed, bias=linear.bias is not None)
        with torch.no_grad():
            module.weight.copy_(linear.weight.detach() @ module.sketch.T)
            if linear.bias is not None:
                module.bias = linear.bias  # same Parameter: keeps any sharing with other layers
        return module

    def fit(self, gram: torch.Tensor, cross: torch.Tensor, target_sq: float) -> float:
        """Set ``weight`` to the least-squares W' of ||W' S X - W X||: W' = (W X)(S X)^T ((S X)(S X)^T)^-1,
        from the sums ``gram`` = (S X)(S X)^T and ``cross`` = (W X)(S X)^T over calibration tokens, with a
        ridge of 1e-6 of the mean diagonal for a singular gram. Returns the relative error on those
        tokens, ||W' S X - W X||_F / ||W X||_F, given ``target_sq`` = ||W X||_F^2."""
        ridge = 1e-6 * float(gram.diagonal().mean()) * torch.eye(self.m, dtype=gram.dtype)
        fitted = torch.linalg.solve(gram + ridge, cross.T).T  # gram is symmetric
        residual_sq = float((fitted @ gram * fitted).sum() - 2 * (fitted * cross).sum()) + target_sq
        with torch.no_grad():
            self.weight.copy_(fitted.to(self.weight.dtype))
        return math.sqrt(max(0.0, residual_sq) / target_sq) if target_sq > 0 else 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(nn.functional.linear(x, self.sketch), self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, m={self.m}, out_features={self.out_features}, seed={self.seed}"
