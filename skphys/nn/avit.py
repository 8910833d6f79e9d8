"""Axial space-time vision transformer pieces (AViT, as in Multiple Physics Pretraining) and the
MPP next-frame model.

Tensors entering the models are channels-first ``(N, C, T, H, W)``; 1-D systems ``(N, C, T, X)``
are treated as ``H = 1``. Inside the transformer, tokens are laid out ``(N, T, H', W', D)`` and
attention runs along one axis at a time (time, then each spatial axis whose size exceeds 1), so
its cost grows with the sum, not the product, of the axis lengths.

- :class:`RelativePositionBias`: a continuous relative position bias (a small MLP of the
  log-spaced offset, one value per head) for any axis length. On a periodic axis the offset is
  the minimal image ``((i - j + L/2) mod L) - L/2``, so the two ends of the domain are neighbours.
- :class:`AxisAttention`: multi-head self-attention along one token axis with fused
  :func:`torch.nn.functional.scaled_dot_product_attention`, the relative bias and optional
  QK-norm.
- :class:`SpaceTimeBlock`: temporal attention, then axial spatial attention (weights shared by
  the spatial axes and their outputs averaged, as in MPP, or one attention per axis applied in
  turn, as in DISCO's hypernetwork), then an MLP; pre-norm, optional layer scale.
- :class:`RMSInstanceNorm`: per-sample, per-channel RMS normalization over space.
- :class:`HMLPStem` / :class:`HMLPHead`: hierarchical-MLP patch embedding (non-overlapping
  strided convolutions 4 x 2 x 2 ... with RMS instance norm and GELU) and its transpose.
- :class:`MPPModel`: per-sample normalization over time and space, a field embedding for any
  subset of the known physical fields, the stem, the blocks and the output head that decodes the
  last time step's tokens to the next frame.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "as_5d",
    "patch_factors",
    "RelativePositionBias",
    "AxisAttention",
    "SpaceTimeBlock",
    "RMSInstanceNorm",
    "HMLPStem",
    "HMLPHead",
    "MPPModel",
]


def as_5d(x):
    """``(N, C, T, X)`` -> ``(N, C, T, 1, X)``; 5-D input unchanged."""
    if x.dim() == 4:
        return x.unsqueeze(3)
    if x.dim() != 5:
        raise ValueError(f"expected a (N, C, T, H, W) or (N, C, T, X) tensor, got shape {tuple(x.shape)}")
    return x


def patch_factors(patch_size):
    """Strides of the hierarchical stem whose product is ``patch_size``: a 4 first, then 2s, then
    what remains (16 -> (4, 2, 2) as in MPP, 8 -> (4, 2), 6 -> (2, 3))."""
    p = int(patch_size)
    if p < 1:
        raise ValueError(f"patch_size must be >= 1, got {patch_size}")
    fs = []
    if p % 4 == 0:
        fs.append(4)
        p //= 4
    while p % 2 == 0:
        fs.append(2)
        p //= 2
    if p > 1:
        fs.append(p)
    return tuple(fs) or (1,)


class RelativePositionBias(nn.Module):
    """Additive attention bias ``(n_heads, L, L)`` from the relative offset of two positions.

    The offset ``d = i - j`` (wrapped to the minimal image on a periodic axis) enters a 2-layer
    MLP as ``sign(d) * log(1 + |d|)``, so the bias is defined for any length ``L`` (a model trained
    on one grid runs on another).
    """

    def __init__(self, n_heads, hidden=32):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(1, hidden), nn.GELU(), nn.Linear(hidden, n_heads))
        nn.init.zeros_(self.mlp[2].weight)
        nn.init.zeros_(self.mlp[2].bias)

    @staticmethod
    def offsets(length, periodic, device=None):
        i = torch.arange(length, device=device)
        d = i[:, None] - i[None, :]
        if periodic:
            d = torch.remainder(d + length // 2, length) - length // 2
        return d

    def forward(self, length, periodic=False, device=None):
        d = self.offsets(length, periodic, device).float()
        feat = torch.sign(d) * torch.log1p(d.abs())
        return self.mlp(feat[..., None]).permute(2, 0, 1)  # (heads, L, L)


class AxisAttention(nn.Module):
    """Self-attention along one axis of a token tensor ``(N, ..., D)``.

    Parameters
    ----------
    dim, n_heads : int
    qk_norm : bool
        LayerNorm on queries and keys per head (stabilises attention logits).
    """

    def __init__(self, dim, n_heads, qk_norm=False):
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"dim={dim} must be divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        head = dim // n_heads
        self.q_norm = nn.LayerNorm(head) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(head) if qk_norm else nn.Identity()
        self.bias = RelativePositionBias(n_heads)

    def forward(self, x, axis, periodic=False):
        x = x.movedim(axis, -2)
        lead, (L, D) = x.shape[:-2], x.shape[-2:]
        h = self.n_heads
        flat = x.reshape(-1, L, D)
        q, k, v = self.qkv(flat).reshape(-1, L, 3, h, D // h).permute(2, 0, 3, 1, 4)
        q, k = self.q_norm(q), self.k_norm(k)
        bias = self.bias(L, periodic, device=x.device).to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias[None])
        out = self.proj(out.transpose(1, 2).reshape(-1, L, D))
        return out.reshape(*lead, L, D).movedim(-2, axis)


class SpaceTimeBlock(nn.Module):
    """Temporal attention, then axial spatial attention, then an MLP, on ``(N, T, H, W, D)``.

    Parameters
    ----------
    dim, n_heads : int
    mlp_ratio : float
    shared_axes : bool
        True (MPP): one spatial attention whose weights are shared by the spatial axes, applied to
        the same input along each axis and the results averaged. False (DISCO): one attention per
        spatial axis, applied one after the other.
    qk_norm : bool
    layer_scale : float or None
        Initial value of a learned per-channel scale on every residual branch (None: no scale).
    periodic : bool
        Whether the spatial axes are periodic (the relative bias wraps around).
    """

    def __init__(self, dim, n_heads, mlp_ratio=4.0, shared_axes=True, qk_norm=False, layer_scale=None, periodic=True):
        super().__init__()
        self.shared_axes, self.periodic = shared_axes, periodic
        self.norm_t = nn.LayerNorm(dim)
        self.attn_t = AxisAttention(dim, n_heads, qk_norm)
        n_space = 1 if shared_axes else 2
        self.norm_s = nn.ModuleList(nn.LayerNorm(dim) for _ in range(n_space))
        self.attn_s = nn.ModuleList(AxisAttention(dim, n_heads, qk_norm) for _ in range(n_space))
        self.norm_m = nn.LayerNorm(dim)
        hidden = max(1, int(round(dim * mlp_ratio)))
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        n_branches = 2 + n_space
        if layer_scale is None:
            self.gammas = None
        else:
            self.gammas = nn.ParameterList(nn.Parameter(torch.full((dim,), float(layer_scale))) for _ in range(n_branches))

    def _g(self, i, y):
        return y if self.gammas is None else y * self.gammas[i]

    def forward(self, x):
        # x: (N, T, H, W, D); spatial axes of length 1 (1-D systems) are skipped
        if x.shape[1] > 1:
            x = x + self._g(0, self.attn_t(self.norm_t(x), axis=1))
        axes = [a for a in (2, 3) if x.shape[a] > 1]
        if self.shared_axes:
            if axes:
                s = self.norm_s[0](x)
                y = sum(self.attn_s[0](s, axis=a, periodic=self.periodic) for a in axes) / len(axes)
                x = x + self._g(1, y)
            i = 2
        else:
            for j, a in enumerate((2, 3)):
                if x.shape[a] > 1:
                    x = x + self._g(1 + j, self.attn_s[j](self.norm_s[j](x), axis=a, periodic=self.periodic))
            i = 3
        return x + self._g(i, self.mlp(self.norm_m(x)))


class RMSInstanceNorm(nn.Module):
    """``x / rms(x)`` per sample and channel over the spatial axes of ``(N, C, H, W)``, times a
    learned per-channel weight."""

    def __init__(self, channels, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.eps = eps

    def forward(self, x):
        rms = torch.sqrt(x.float().pow(2).mean(dim=(-2, -1), keepdim=True) + self.eps).to(x.dtype)
        return x / rms * self.weight[:, None, None].to(x.dtype)


def _kernel(f, one_d):
    return (1, f) if one_d else (f, f)


class HMLPStem(nn.Module):
    """Hierarchical-MLP patch embedding ``(N, in_dim, H, W) -> (N, dim, H/p, W/p)``: strided
    non-overlapping convolutions (kernel = stride), each followed by RMS instance norm, GELU
    between stages. For 1-D systems (``one_d``) the kernels are ``1 x f``."""

    def __init__(self, in_dim, dim, patch_size, one_d=False):
        super().__init__()
        fs = patch_factors(patch_size)
        widths = [in_dim] + [max(1, dim // 4)] * (len(fs) - 1) + [dim]
        layers = []
        for k, f in enumerate(fs):
            layers.append(nn.Conv2d(widths[k], widths[k + 1], _kernel(f, one_d), stride=_kernel(f, one_d), bias=False))
            layers.append(RMSInstanceNorm(widths[k + 1]))
            if k < len(fs) - 1:
                layers.append(nn.GELU())
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class HMLPHead(nn.Module):
    """Transpose of :class:`HMLPStem`: ``(N, dim, H/p, W/p) -> (N, out_dim, H, W)``."""

    def __init__(self, dim, out_dim, patch_size, one_d=False):
        super().__init__()
        fs = patch_factors(patch_size)[::-1]
        widths = [dim] + [max(1, dim // 4)] * (len(fs) - 1) + [out_dim]
        layers = []
        for k, f in enumerate(fs):
            layers.append(nn.ConvTranspose2d(widths[k], widths[k + 1], _kernel(f, one_d), stride=_kernel(f, one_d), bias=False))
            if k < len(fs) - 1:
                layers.append(RMSInstanceNorm(widths[k + 1]))
                layers.append(nn.GELU())
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class MPPModel(nn.Module):
    """AViT next-frame model of Multiple Physics Pretraining (McCabe et al., 2023).

    Parameters
    ----------
    n_fields : int
        Number of physical fields the field embedding knows; ``forward`` may get any subset
        (``fields``, indices into them).
    patch_size, embed_dim, depth, n_heads, mlp_ratio : int, int, int, int, float
    n_spatial_dims : {1, 2}
    periodic : bool
        Periodic spatial axes (relative biases wrap around).
    residual : bool
        Decode the change from the last history frame (True) or the next frame itself (False),
        in the per-sample normalized units.

    ``forward(x, fields=None)`` maps a history ``(N, C, T, *space)`` to the next frame
    ``(N, C, *space)``; ``tokens(x, fields=None)`` returns the last time step's tokens
    ``(N, n_patches, embed_dim)``.
    """

    def __init__(self, n_fields, patch_size=16, embed_dim=192, depth=12, n_heads=3, mlp_ratio=4.0,
                 n_spatial_dims=2, periodic=True, residual=True, eps=1e-5):
        super().__init__()
        one_d = n_spatial_dims == 1
        self.patch_size, self.one_d, self.residual, self.eps = int(patch_size), one_d, residual, eps
        d0 = max(1, embed_dim // 4)
        # field embedding: one learned vector per known field; a sample's channels are mixed
        # through the vectors of the fields it has
        self.field_embed = nn.Parameter(torch.randn(n_fields, d0) / math.sqrt(d0))
        self.stem = HMLPStem(d0, embed_dim, patch_size, one_d)
        self.blocks = nn.ModuleList(
            SpaceTimeBlock(embed_dim, n_heads, mlp_ratio, shared_axes=True, periodic=periodic) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.head = HMLPHead(embed_dim, d0, patch_size, one_d)
        self.field_out = nn.Parameter(torch.zeros(n_fields, d0))  # zero: starts at persistence

    def _normalize(self, x):
        dims = tuple(range(2, x.dim()))
        mu = x.mean(dim=dims, keepdim=True)
        sd = x.std(dim=dims, keepdim=True, unbiased=False)
        return (x - mu) / (sd + self.eps), mu, sd

    def _encode(self, x, fields):
        x5 = as_5d(x)
        n, c, t, h, w = x5.shape
        p = self.patch_size
        if (h % p and not self.one_d) or w % p:
            raise ValueError(f"spatial size {(h, w) if not self.one_d else (w,)} is not a multiple of patch_size={p}")
        emb = self.field_embed if fields is None else self.field_embed[fields]
        if emb.shape[0] != c:
            raise ValueError(f"input has {c} channels but {emb.shape[0]} fields were named")
        frames = x5.permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w)
        z = self.stem(torch.einsum("nchw,cd->ndhw", frames, emb.to(frames.dtype)) / math.sqrt(c))
        z = z.reshape(n, t, *z.shape[1:]).permute(0, 1, 3, 4, 2)  # (N, T, H', W', D)
        for blk in self.blocks:
            z = blk(z)
        return self.norm(z)

    def tokens(self, x, fields=None):
        """Last time step's tokens ``(N, n_patches, embed_dim)`` of the normalized history."""
        xn, _, _ = self._normalize(x)
        z = self._encode(xn, fields)[:, -1]
        return z.reshape(z.shape[0], -1, z.shape[-1])

    def forward(self, x, fields=None):
        xn, mu, sd = self._normalize(x)
        z = self._encode(xn, fields)[:, -1].permute(0, 3, 1, 2)  # (N, D, H', W')
        dec = self.head(z)
        out = self.field_out if fields is None else self.field_out[fields]
        y = torch.einsum("ndhw,cd->nchw", dec, out.to(dec.dtype))
        y = y.squeeze(2) if x.dim() == 4 else y
        last = xn[:, :, -1]
        y = (last + y) if self.residual else y
        return y * sd[:, :, 0] + mu[:, :, 0]
