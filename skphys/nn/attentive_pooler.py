"""V-JEPA-style attentive pooling: learnable queries cross-attend to a set of tokens.

Used by :class:`skphys.AttentiveProbeRegressor` (one query, one cross-attention block, a residual
MLP and a linear head), following the probe of Bardes et al. (2024) that the JEPA paper uses.

Public API (kept stable, shared by the VideoMAE comparison):

- :class:`CrossAttention` ``(dim, n_heads=8, qkv_bias=True)``: ``forward(q, x) -> (N, Q, dim)``.
- :class:`AttentivePooler` ``(dim, n_queries=1, n_heads=8, mlp_ratio=4.0, qkv_bias=True)``:
  ``forward(tokens (N, L, dim)) -> (N, n_queries, dim)``.
- :class:`AttentiveHead` ``(dim, n_outputs, n_heads=8, mlp_ratio=4.0)``:
  ``forward(tokens (N, L, dim)) -> (N, n_outputs)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CrossAttention", "AttentivePooler", "AttentiveHead"]


class CrossAttention(nn.Module):
    """Multi-head cross-attention with fused ``F.scaled_dot_product_attention``.

    Queries come from ``q`` ``(N, Q, dim)``; keys and values from ``x`` ``(N, L, dim)``.

    Parameters
    ----------
    dim : int
        Token width of queries, keys and values (and of the output).
    n_heads : int
        Attention heads (``dim`` must be divisible by it).
    qkv_bias : bool
        Bias in the query and key/value projections.
    """

    def __init__(self, dim: int, n_heads: int = 8, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % n_heads != 0:
            raise ValueError(f"dim={dim} must be divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        n, nq, d = q.shape
        h = self.n_heads
        q = self.q(q).reshape(n, nq, h, d // h).transpose(1, 2)  # (N, h, Q, d/h)
        k, v = self.kv(x).reshape(n, x.shape[1], 2, h, d // h).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # (N, h, Q, d/h)
        return self.proj(out.transpose(1, 2).reshape(n, nq, d))


class AttentivePooler(nn.Module):
    """Learnable queries -> cross-attention over LayerNorm'd tokens -> residual MLP.

    Parameters
    ----------
    dim : int
        Token width.
    n_queries : int
        Number of learnable queries (1 for a probe).
    n_heads : int
        Attention heads (``dim`` must be divisible by it).
    mlp_ratio : float
        Hidden width of the residual MLP relative to ``dim`` (the paper: 12 for JEPA width 128,
        0.25 for VideoMAE width 384).
    qkv_bias : bool
        Bias in the query/key/value projections.
    """

    def __init__(self, dim: int, n_queries: int = 1, n_heads: int = 8, mlp_ratio: float = 4.0, qkv_bias: bool = True) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.zeros(1, n_queries, dim))
        nn.init.trunc_normal_(self.query, std=0.02)
        self.norm_q = nn.LayerNorm(dim)
        self.norm_x = nn.LayerNorm(dim)
        self.attn = CrossAttention(dim, n_heads=n_heads, qkv_bias=qkv_bias)
        hidden = max(1, int(round(dim * mlp_ratio)))
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.apply(_init_weights)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.ndim != 3:
            raise ValueError(f"tokens must be (N, L, dim), got shape {tuple(tokens.shape)}")
        q = self.query.expand(tokens.shape[0], -1, -1)
        q = q + self.attn(self.norm_q(q), self.norm_x(tokens))
        return q + self.mlp(self.norm_mlp(q))


class AttentiveHead(nn.Module):
    """:class:`AttentivePooler` with one query followed by ``LayerNorm -> Linear(dim, n_outputs)``.

    Parameters
    ----------
    dim : int
        Token width.
    n_outputs : int
        Number of regression outputs of the linear head.
    n_heads : int
        Attention heads of the pooler (``dim`` must be divisible by it).
    mlp_ratio : float
        Hidden width of the pooler's residual MLP relative to ``dim``.
    qkv_bias : bool
        Bias in the query/key/value projections.
    """

    def __init__(self, dim: int, n_outputs: int, n_heads: int = 8, mlp_ratio: float = 4.0, qkv_bias: bool = True) -> None:
        super().__init__()
        self.pooler = AttentivePooler(dim, 1, n_heads=n_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, n_outputs)
        nn.init.trunc_normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.pooler(tokens)[:, 0]))


def _init_weights(m):
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
