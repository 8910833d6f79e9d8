"""ConvNeXt-style 3-D encoder and 2-D predictor of the JEPA for physical systems.

Architecture of the reference (helenqu/physical-representation-learning), see
``/work/shared/REFERENCE.md`` section 1:

- stem ``Conv3d(C -> w0, kernel (1, 4, 4), 'same')`` + channels-first LayerNorm,
- ``len(widths) - 1`` downsampling stages ``LayerNorm + Conv3d(kernel 2, stride 2)`` halving
  T, H and W,
- ``depths[i]`` blocks per stage: depthwise ``k=7`` conv (3-D; ``(1, 7, 7)``, i.e. 2-D, once T is
  1) -> LayerNorm -> Linear d->4d -> GELU -> Linear 4d->d -> layer scale (1e-6) -> residual,
- predictor ``Conv2d(D -> 2D, k=2, pad=1)`` -> one 2-D ConvNeXt block -> ``Conv2d(2D -> D, k=2)``.

All tensors are channels-first 5-D ``(N, C, T, H, W)``. One-dimensional systems use ``W = 1`` and
kernels of width 1 along W (``n_spatial_dims=1``). The depthwise convolutions use the exact fast
formulations of :mod:`skphys.nn.depthwise` (``dw_impl``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .depthwise import DepthwiseConv3d

__all__ = ["LayerNormCF", "ConvNeXtBlock", "ConvNeXtEncoder3d", "JEPAPredictor", "min_frames", "check_input_size"]


class LayerNormCF(nn.Module):
    """LayerNorm over the channel axis of a channels-first tensor ``(N, C, ...)``.

    Parameters
    ----------
    channels : int
        Size of the channel axis (axis 1); learnable per-channel scale and shift.
    eps : float
        Added to the variance for numerical stability.
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x.movedim(1, -1), (x.shape[1],), self.weight, self.bias, self.eps)
        return y.movedim(-1, 1)


class ConvNeXtBlock(nn.Module):
    """Depthwise conv -> LayerNorm -> MLP (4x, GELU) -> layer scale -> residual.

    Parameters
    ----------
    dim : int
        Channels of the input and output ``(N, dim, T, H, W)``.
    kernel_size : int or tuple of 3 int
        Odd depthwise kernel size ``(kt, kh, kw)`` (an int is used on all three axes).
    layer_scale : float
        Initial value of the learnable per-channel scale of the residual branch.
    dw_impl : {"auto", "conv3d", "conv2d", "fft"}
        Depthwise formulation, see :mod:`skphys.nn.depthwise`.
    """

    def __init__(self, dim: int, kernel_size: int | Sequence[int] = (7, 7, 7), layer_scale: float = 1e-6,
                 dw_impl: str = "auto") -> None:
        super().__init__()
        self.dwconv = DepthwiseConv3d(dim, kernel_size, impl=dw_impl)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(layer_scale * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).movedim(1, -1)
        y = self.fc2(F.gelu(self.fc1(self.norm(y))))
        return x + (self.gamma * y).movedim(-1, 1)


def min_frames(n_stages: int) -> int:
    """Smallest window length for ``n_stages`` stages: ``2 ** (n_stages - 1)``."""
    return 2 ** (n_stages - 1)


def check_input_size(n_frames: int, space: Sequence[int], n_stages: int) -> None:
    """Raise ``ValueError`` unless ``n_frames`` and every spatial size are multiples of
    ``2 ** (n_stages - 1)`` (each downsampling stage halves them exactly)."""
    f = min_frames(n_stages)
    if n_frames < f or n_frames % f:
        raise ValueError(
            f"n_frames={n_frames} does not fit {n_stages} stages ({n_stages - 1} halvings of time): it must be "
            f"a multiple of {f} (minimum {f}); use fewer stages (shorter widths/depths) or longer windows"
        )
    for s in space:
        if s < f or s % f:
            raise ValueError(
                f"spatial size {tuple(space)} does not fit {n_stages} stages: every spatial size must be a "
                f"multiple of {f} (minimum {f}); crop or resize the fields, or use fewer stages"
            )


class ConvNeXtEncoder3d(nn.Module):
    """ConvNeXt 3-D encoder: ``(N, C, T, H, W)`` -> ``(N, widths[-1], T/2^s, H/2^s, W/2^s)``.

    Parameters
    ----------
    in_channels : int
        Channels (physical fields) of the input.
    widths, depths : sequence of int
        Per-stage width and number of blocks (the paper: (16, 32, 64, 128, 128), (3, 3, 3, 9, 3)).
    n_frames : int
        Window length; a multiple of ``2 ** (len(widths) - 1)``. Decides where the depthwise
        kernels become 2-D (T == 1).
    n_spatial_dims : {1, 2}
        1: ``W == 1`` and kernels of width 1 along W (space is H).
    kernel_size : int
        Depthwise kernel size (7).
    layer_scale : float
        Initial value of the per-channel scale of each block's residual branch.
    dw_impl : {"auto", "conv3d", "conv2d", "fft"}
        Depthwise formulation, see :mod:`skphys.nn.depthwise`.
    """

    def __init__(self, in_channels: int, widths: Sequence[int] = (16, 32, 64, 128, 128),
                 depths: Sequence[int] = (3, 3, 3, 9, 3), n_frames: int = 16,
                 n_spatial_dims: int = 2, kernel_size: int = 7, layer_scale: float = 1e-6,
                 dw_impl: str = "auto") -> None:
        super().__init__()
        if len(widths) != len(depths) or len(widths) < 1:
            raise ValueError(f"widths and depths must be non-empty and of equal length, got {widths} and {depths}")
        if n_spatial_dims not in (1, 2):
            raise ValueError(f"n_spatial_dims must be 1 or 2, got {n_spatial_dims}")
        n_stages = len(widths)
        check_input_size(n_frames, (), n_stages)
        self.n_frames = n_frames
        self.n_stages = n_stages
        self.n_spatial_dims = n_spatial_dims
        wk = 1 if n_spatial_dims == 1 else None

        def k3(t, s):  # kernel (t, s, s) or (t, s, 1) for 1-D
            return (t, s, wk or s)

        self.stem = nn.Conv3d(in_channels, widths[0], k3(1, 4))  # 'same' padding done in forward
        self._stem_pad = (0, 0, 1, 2, 0, 0) if n_spatial_dims == 1 else (1, 2, 1, 2, 0, 0)  # as torch's 'same' for k=4
        self.stem_norm = LayerNormCF(widths[0])
        self.downsample = nn.ModuleList()
        self.stages = nn.ModuleList()
        t = n_frames
        for i, (w, d) in enumerate(zip(widths, depths)):
            if i > 0:
                self.downsample.append(nn.Sequential(LayerNormCF(widths[i - 1]), nn.Conv3d(widths[i - 1], w, k3(2, 2), stride=k3(2, 2))))
                t //= 2
            kt = kernel_size if t > 1 else 1
            self.stages.append(nn.Sequential(*[ConvNeXtBlock(w, k3(kt, kernel_size), layer_scale, dw_impl) for _ in range(d)]))
        self.out_frames = t
        self.out_channels = widths[-1]
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (N, C, T, H, W), or (N, C, T, X) for a 1-D encoder -> (N, D, T', H', W')."""
        if self.n_spatial_dims == 1 and x.ndim == 4:
            x = x.unsqueeze(-1)
        if x.ndim != 5:
            raise ValueError(f"expected (N, C, T, H, W), got shape {tuple(x.shape)}")
        if x.shape[2] != self.n_frames:
            raise ValueError(f"the encoder was built for {self.n_frames} frames, got {x.shape[2]}")
        if self.n_spatial_dims == 1 and x.shape[4] != 1:
            raise ValueError(f"a 1-D encoder needs W == 1, got shape {tuple(x.shape)}")
        check_input_size(self.n_frames, x.shape[3:5] if self.n_spatial_dims == 2 else x.shape[3:4], self.n_stages)
        x = self.stem_norm(self.stem(F.pad(x, self._stem_pad)))
        for i, stage in enumerate(self.stages):
            if i > 0:
                x = self.downsample[i - 1](x)
            x = stage(x)
        return x


class JEPAPredictor(nn.Module):
    """``Conv2d(D -> hidden, k=2, pad=1)`` -> ConvNeXt 2-D block -> ``Conv2d(hidden -> D, k=2)``,
    applied per output frame of a ``(N, D, T, H, W)`` embedding (the size is preserved).

    Parameters
    ----------
    dim : int
        Embedding width ``D`` (input and output channels).
    hidden : int
        Width of the middle ConvNeXt block.
    n_spatial_dims : {1, 2}
        1: kernels of width 1 along W (the embedding has ``W == 1``).
    kernel_size : int
        Spatial depthwise kernel size of the block.
    layer_scale : float
        Initial value of the block's per-channel residual scale.
    dw_impl : {"auto", "conv3d", "conv2d", "fft"}
        Depthwise formulation, see :mod:`skphys.nn.depthwise`.
    """

    def __init__(self, dim: int = 128, hidden: int = 256, n_spatial_dims: int = 2, kernel_size: int = 7,
                 layer_scale: float = 1e-6, dw_impl: str = "auto") -> None:
        super().__init__()
        kw = 1 if n_spatial_dims == 1 else 2
        pw = 0 if n_spatial_dims == 1 else 1
        self.expand = nn.Conv3d(dim, hidden, (1, 2, kw), padding=(0, 1, pw))
        self.block = ConvNeXtBlock(hidden, (1, kernel_size, 1 if n_spatial_dims == 1 else kernel_size), layer_scale, dw_impl)
        self.reduce = nn.Conv3d(hidden, dim, (1, 2, kw))
        self.apply(_init_weights)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.reduce(self.block(self.expand(z)))


def _init_weights(m):
    if isinstance(m, (nn.Conv3d, nn.Linear)):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, DepthwiseConv3d):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
