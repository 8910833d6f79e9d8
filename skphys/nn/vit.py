"""Video vision transformer pieces for a VideoMAE-style masked autoencoder on physical fields.

Tensors are channels-first ``(N, C, T, H, W)``. 1-D systems ``(N, C, T, X)`` are treated as
``H = 1`` with a patch height of 1. Nothing here knows about scikit-learn or numpy.

- :class:`TubeletEmbed`: non-overlapping ``tubelet x patch x patch`` patches -> tokens
  (a strided ``Conv3d``), token order ``(t, h, w)`` row-major.
- :func:`sincos_position_3d`: fixed 3-D sinusoidal positions (one third of the width per axis).
- :class:`Block`: pre-norm transformer block; attention via
  :func:`torch.nn.functional.scaled_dot_product_attention` (flash / memory-efficient kernels on
  GPU).
- :func:`tube_mask`: the same random spatial mask for every temporal position (tube masking).
- :func:`patchify`: the per-patch target, each channel normalized within its patch.
- :class:`VideoMAE`: encoder (visible tokens only) + light decoder (all tokens) that reconstructs
  the per-patch normalized values of every physical channel of the masked patches.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "TubeletEmbed",
    "sincos_position_3d",
    "Attention",
    "Block",
    "tube_mask",
    "patchify",
    "VideoMAE",
]


def _as_5d(x):
    """``(N, C, T, X)`` -> ``(N, C, T, 1, X)``; 5-D input unchanged."""
    if x.dim() == 4:
        return x.unsqueeze(3)
    if x.dim() != 5:
        raise ValueError(f"expected a (N, C, T, H, W) or (N, C, T, X) tensor, got shape {tuple(x.shape)}")
    return x


class TubeletEmbed(nn.Module):
    """Split ``(N, C, T, H, W)`` into ``tubelet x patch_h x patch_w`` tubes and project each to
    ``embed_dim``. Returns ``(N, L, embed_dim)`` with ``L = T/t * H/ph * W/pw`` (order t, h, w).

    Parameters
    ----------
    in_channels : int
        Number of physical channels ``C``.
    embed_dim : int
        Token width.
    patch_size : tuple of 3 int
        Tube size ``(tubelet, patch_h, patch_w)``; the input sizes must be multiples of it.
    """

    def __init__(self, in_channels: int, embed_dim: int, patch_size: Sequence[int] = (2, 16, 16)) -> None:
        super().__init__()
        self.patch_size = tuple(int(p) for p in patch_size)
        self.proj = nn.Conv3d(in_channels, embed_dim, kernel_size=self.patch_size, stride=self.patch_size)

    def grid(self, shape: Sequence[int]) -> tuple[int, int, int]:
        """Token grid ``(T', H', W')`` for a spatial-temporal input shape ``(T, H, W)``."""
        t, h, w = shape
        pt, ph, pw = self.patch_size
        if t % pt or h % ph or w % pw:
            raise ValueError(f"input size {tuple(shape)} is not a multiple of the patch size {self.patch_size}")
        return t // pt, h // ph, w // pw

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.grid(x.shape[2:])
        return self.proj(x).flatten(2).transpose(1, 2)


def _sincos_1d(dim, positions):
    """``(len(positions), dim)`` sin/cos table (``dim`` even), frequencies 1/10000^(2i/dim)."""
    omega = torch.arange(dim // 2, dtype=torch.float64) / max(dim // 2, 1)
    omega = 1.0 / 10000.0**omega
    out = positions.to(torch.float64)[:, None] * omega[None, :]
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1)


def sincos_position_3d(grid: Sequence[int], dim: int) -> torch.Tensor:
    """Fixed 3-D sinusoidal positions for a token grid ``(T', H', W')`` -> ``(T'H'W', dim)``.

    Each axis gets ``2 * (dim // 6)`` channels of sines and cosines of its integer coordinate;
    the ``dim % 6`` leftover channels are zero. Order matches :class:`TubeletEmbed` (t, h, w).
    """
    t, h, w = grid
    d = 2 * (dim // 6)
    if d == 0:
        raise ValueError(f"embedding width {dim} is too small for 3-D positions (need at least 6)")
    gt, gh, gw = torch.meshgrid(
        torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij"
    )
    parts = [_sincos_1d(d, g.reshape(-1)) for g in (gt, gh, gw)]
    pos = torch.cat(parts, dim=1)
    if pos.shape[1] < dim:
        pos = torch.cat([pos, pos.new_zeros(pos.shape[0], dim - pos.shape[1])], dim=1)
    return pos.float()


class Attention(nn.Module):
    """Multi-head self-attention with fused :func:`F.scaled_dot_product_attention`.

    Parameters
    ----------
    dim : int
        Token width (input and output).
    n_heads : int
        Attention heads (``dim`` must be divisible by it).
    qkv_bias : bool
        Bias in the fused query/key/value projection.
    """

    def __init__(self, dim: int, n_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"width {dim} is not divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, dim = x.shape
        qkv = self.qkv(x).reshape(n, length, 3, self.n_heads, dim // self.n_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(n, length, dim))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(LN(x))``, then ``x + MLP(LN(x))`` (GELU).

    Parameters
    ----------
    dim : int
        Token width.
    n_heads : int
        Attention heads (``dim`` must be divisible by it).
    mlp_ratio : float
        Hidden width of the MLP relative to ``dim``.
    qkv_bias : bool
        Bias in the query/key/value projection.
    """

    def __init__(self, dim: int, n_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True) -> None:
        super().__init__()
        hidden = int(round(dim * mlp_ratio))
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, n_heads, qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def tube_mask(
    n: int,
    grid: Sequence[int],
    mask_ratio: float,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    noise: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random tube masks: one spatial mask per sample, repeated over the temporal token axis.

    Returns ``(visible_idx, masked_idx)``, long tensors of shape ``(n, T' * n_vis)`` and
    ``(n, T' * n_masked)`` indexing the flattened ``(t, h, w)`` token sequence, each sorted.
    ``n_masked = int(mask_ratio * H'W')``, capped so at least one spatial patch stays visible.
    ``noise`` (``(n, H'W)`` uniform numbers) fixes the masks; otherwise it is drawn from ``generator``.
    """
    t, h, w = grid
    n_space = h * w
    n_masked = min(int(mask_ratio * n_space), n_space - 1)
    n_vis = n_space - n_masked
    if noise is None:
        noise = torch.rand(n, n_space, generator=generator, device=device)
    elif tuple(noise.shape) != (n, n_space):
        raise ValueError(f"noise must have shape {(n, n_space)}, got {tuple(noise.shape)}")
    order = noise.argsort(dim=1)
    offsets = (torch.arange(t, device=order.device) * n_space)[None, :, None]
    vis = order[:, :n_vis].sort(dim=1).values
    msk = order[:, n_vis:].sort(dim=1).values
    vis = (vis[:, None, :] + offsets).reshape(n, -1)
    msk = (msk[:, None, :] + offsets).reshape(n, -1)
    return vis, msk


def patchify(x: torch.Tensor, patch_size: Sequence[int], normalize: bool = True, eps: float = 1e-6) -> torch.Tensor:
    """``(N, C, T, H, W)`` -> ``(N, L, C * pt * ph * pw)`` patch values in token order.

    With ``normalize`` every channel of every patch is shifted and scaled to zero mean and unit
    variance over its ``pt * ph * pw`` values (VideoMAE's normalized-pixel target, per physical
    channel instead of per RGB image).
    """
    pt, ph, pw = patch_size
    n, c, t, h, w = x.shape
    x = x.reshape(n, c, t // pt, pt, h // ph, ph, w // pw, pw)
    x = x.permute(0, 2, 4, 6, 1, 3, 5, 7).reshape(n, -1, c, pt * ph * pw)
    if normalize:
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, unbiased=False, keepdim=True)
        x = (x - mean) / torch.sqrt(var + eps)
    return x.reshape(n, x.shape[1], -1)


def _gather(tokens, idx):
    return torch.gather(tokens, 1, idx[:, :, None].expand(-1, -1, tokens.shape[-1]))


class VideoMAE(nn.Module):
    """VideoMAE: ViT encoder on the visible tubes, light ViT decoder over all tokens.

    Parameters
    ----------
    in_channels : int
        Number of physical channels.
    patch_size : int or (int, int)
        Spatial patch size ``(ph, pw)``. For 1-D inputs ``ph`` is forced to 1.
    tubelet_size : int
        Temporal patch size.
    embed_dim, depth, n_heads : int
        Encoder width, number of blocks, heads (ViT-S: 384, 12, 6).
    decoder_embed_dim, decoder_depth, decoder_n_heads : int
        Decoder width, blocks, heads (192, 4, 3).
    mlp_ratio : float
        Hidden width of the MLPs relative to the block width.
    n_spatial_dims : {1, 2}
        2 for ``(N, C, T, H, W)`` fields; 1 for ``(N, C, T, X)`` fields (treated as ``H = 1``,
        patch height 1).
    """

    def __init__(
        self,
        in_channels: int,
        patch_size: int | Sequence[int] = 16,
        tubelet_size: int = 2,
        embed_dim: int = 384,
        depth: int = 12,
        n_heads: int = 6,
        decoder_embed_dim: int = 192,
        decoder_depth: int = 4,
        decoder_n_heads: int = 3,
        mlp_ratio: float = 4.0,
        n_spatial_dims: int = 2,
    ) -> None:
        super().__init__()
        ph, pw = (patch_size, patch_size) if isinstance(patch_size, int) else tuple(patch_size)
        if n_spatial_dims == 1:
            ph = 1
        self.n_spatial_dims = n_spatial_dims
        self.patch_size = (int(tubelet_size), int(ph), int(pw))
        self.in_channels = in_channels
        self.embed_dim = embed_dim
        self.patch_embed = TubeletEmbed(in_channels, embed_dim, self.patch_size)
        self.blocks = nn.ModuleList(Block(embed_dim, n_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_blocks = nn.ModuleList(
            Block(decoder_embed_dim, decoder_n_heads, mlp_ratio) for _ in range(decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(decoder_embed_dim, eps=1e-6)
        self.decoder_pred = nn.Linear(decoder_embed_dim, in_channels * math.prod(self.patch_size))
        self._pos_cache = {}
        self.apply(self._init_weights)
        nn.init.normal_(self.mask_token, std=0.02)

    @staticmethod
    def _init_weights(m):
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv3d):
            w = m.weight.data
            nn.init.xavier_uniform_(w.view(w.shape[0], -1))
            nn.init.zeros_(m.bias)

    def _positions(self, grid, dim, device):
        key = (grid, dim, str(device))
        if key not in self._pos_cache:
            self._pos_cache[key] = sincos_position_3d(grid, dim).to(device)[None]
        return self._pos_cache[key]

    def __getstate__(self):  # the position cache is derived; keep pickles small and device-free
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__.copy()
        state = dict(state)
        state["_pos_cache"] = {}
        return state

    def _apply(self, fn, *args, **kwargs):
        self._pos_cache = {}
        return super()._apply(fn, *args, **kwargs)

    def tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
        """Embedded tokens plus positions, and the token grid."""
        x = _as_5d(x)
        grid = self.patch_embed.grid(x.shape[2:])
        tok = self.patch_embed(x)
        return tok + self._positions(grid, self.embed_dim, tok.device).to(tok.dtype), grid

    def encode(self, x: torch.Tensor, visible_idx: torch.Tensor | None = None) -> torch.Tensor:
        """Encoder output ``(N, L_vis, embed_dim)``; all tokens when ``visible_idx`` is None."""
        tok, _ = self.tokens(x)
        if visible_idx is not None:
            tok = _gather(tok, visible_idx)
        for blk in self.blocks:
            tok = blk(tok)
        return self.norm(tok)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """All encoder tokens ``(N, L, embed_dim)`` (no masking): the embedding."""
        return self.encode(x)

    def reconstruct(self, x: torch.Tensor, visible_idx: torch.Tensor, masked_idx: torch.Tensor) -> torch.Tensor:
        """Decoder predictions for the masked tokens ``(N, L_masked, C * pt * ph * pw)``."""
        x = _as_5d(x)
        grid = self.patch_embed.grid(x.shape[2:])
        latent = self.decoder_embed(self.encode(x, visible_idx))
        n, n_vis, d = latent.shape
        n_tok = math.prod(grid)
        pos = self._positions(grid, d, latent.device).to(latent.dtype).expand(n, -1, -1)
        full = self.mask_token.to(latent.dtype).expand(n, n_tok, d).clone()
        full.scatter_(1, visible_idx[:, :, None].expand(-1, -1, d), latent)
        full = full + pos
        for blk in self.decoder_blocks:
            full = blk(full)
        pred = self.decoder_pred(self.decoder_norm(_gather(full, masked_idx)))
        return pred

    def loss(
        self,
        x: torch.Tensor,
        mask_ratio: float = 0.9,
        generator: torch.Generator | None = None,
        normalize_target: bool = True,
        mask_noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Masked-patch reconstruction MSE on per-patch normalized targets (masked tokens only).

        The tube masks come from ``mask_noise`` (``(n, n_spatial_patches)`` uniform numbers) when
        given, otherwise from ``generator``."""
        x = _as_5d(x)
        grid = self.patch_embed.grid(x.shape[2:])
        vis, msk = tube_mask(x.shape[0], grid, mask_ratio, generator=generator, device=x.device, noise=mask_noise)
        pred = self.reconstruct(x, vis, msk)
        with torch.no_grad():
            target = _gather(patchify(x.float(), self.patch_size, normalize=normalize_target), msk)
        return F.mse_loss(pred.float(), target)
