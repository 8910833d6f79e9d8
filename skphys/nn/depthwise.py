"""Exact depthwise 3-D convolution ('same' zero padding) in several formulations.

The reference JEPA spends most of its training step in the full-resolution depthwise 7x7x7
``Conv3d``: cuDNN and the CPU backends have no fast path for it (on 2 CPU cores its backward is
~30x its forward). All formulations here compute the same function as
``F.conv3d(x, weight, bias, padding=k//2, groups=C)`` (cross-correlation, zero padding):

- ``"conv3d"``: ``F.conv3d`` itself.
- ``"conv2d"``: the sum of ``kt`` depthwise ``F.conv2d`` over time-shifted frames.
- ``"fft"``: ``torch.fft.rfftn`` of input and flipped kernel, zero-padded to the smallest
  5-smooth length ``>= T + k//2`` per axis (enough for the 'same' output to be free of
  wrap-around), product, ``irfftn``, crop. Computed in float32 (float64 for float64 input), also
  under bf16 autocast (cuFFT has no bf16 for general sizes).

A direct Triton kernel was also written and measured (``benchmarks/results/bench_depthwise.md``,
H100, 8x16x16x224x224: 40 ms forward+backward against 16 ms for ``"fft"`` and 144 ms for cuDNN)
and dropped: the FFT is faster and needs no extra dependency.

``impl="auto"`` picks per call. On the CPU: ``"fft"`` whenever a gradient will be needed (the
CPU backward of ``F.conv3d`` is 10-100x slower than the FFT's) and ``"conv3d"`` for inference.
On CUDA: ``"fft"`` always (cuDNN has no fast depthwise 3-D path; on an H100 the whole JEPA step
at the paper's configuration took 438 ms with ``"fft"`` in every stage and 490 ms with
``"conv3d"`` for the small late stages). ``benchmarks/bench_depthwise.py`` and
``benchmarks/bench_jepa.py`` measure the choices.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["IMPLS", "depthwise_conv3d", "DepthwiseConv3d", "next_fast_len"]

IMPLS = ("auto", "conv3d", "conv2d", "fft")


def next_fast_len(n: int) -> int:
    """Smallest integer ``>= n`` whose prime factors are 2, 3 and 5."""
    m = max(1, int(n))
    while True:
        r = m
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 1


def _check(x, weight):
    if x.ndim != 5:
        raise ValueError(f"x must be (N, C, T, H, W), got shape {tuple(x.shape)}")
    if weight.ndim != 5 or weight.shape[1] != 1 or weight.shape[0] != x.shape[1]:
        raise ValueError(
            f"weight must be (C, 1, kt, kh, kw) with C={x.shape[1]}, got shape {tuple(weight.shape)}"
        )
    if any(k % 2 == 0 for k in weight.shape[2:]):
        raise ValueError(f"kernel sizes must be odd for 'same' padding, got {tuple(weight.shape[2:])}")


def _conv3d(x, weight, bias):
    pad = tuple(k // 2 for k in weight.shape[2:])
    return F.conv3d(x, weight, bias, padding=pad, groups=x.shape[1])


def _conv2d(x, weight, bias):
    n, c, t, h, w = x.shape
    kt, kh, kw = weight.shape[2:]
    pt = kt // 2
    xp = F.pad(x.transpose(1, 2), (0, 0, 0, 0, 0, 0, pt, pt))  # (N, T + 2pt, C, H, W)
    out = None
    for i in range(kt):
        frames = xp[:, i : i + t].reshape(n * t, c, h, w)
        y = F.conv2d(frames, weight[:, :, i], None, padding=(kh // 2, kw // 2), groups=c)
        out = y if out is None else out + y
    out = out.reshape(n, t, c, h, w).transpose(1, 2)
    if bias is not None:
        out = out + bias.view(1, c, 1, 1, 1).to(out.dtype)
    return out.contiguous()


def _fft(x, weight, bias):
    dtype = x.dtype
    ks = weight.shape[2:]
    size = x.shape[2:]
    lens = [max(next_fast_len(s + k // 2), k) for s, k in zip(size, ks)]
    work = torch.float64 if dtype == torch.float64 else torch.float32
    with torch.autocast(device_type=x.device.type, enabled=False):
        xf = torch.fft.rfftn(x.to(work), s=lens, dim=(2, 3, 4))
        wf = torch.fft.rfftn(weight.to(work).flip((2, 3, 4))[:, 0], s=lens, dim=(1, 2, 3))
        y = torch.fft.irfftn(xf * wf, s=lens, dim=(2, 3, 4))
        y = y[
            :,
            :,
            ks[0] // 2 : ks[0] // 2 + size[0],
            ks[1] // 2 : ks[1] // 2 + size[1],
            ks[2] // 2 : ks[2] // 2 + size[2],
        ]
        if bias is not None:
            y = y + bias.to(work).view(1, -1, 1, 1, 1)
    return y.to(dtype).contiguous()


def _auto_impl(x, weight):
    if x.device.type == "cpu":
        needs_grad = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
        return "fft" if needs_grad else "conv3d"
    return "fft"


def depthwise_conv3d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                     impl: str = "auto") -> torch.Tensor:
    """Depthwise 3-D cross-correlation with 'same' zero padding.

    Parameters
    ----------
    x : Tensor of shape (N, C, T, H, W)
    weight : Tensor of shape (C, 1, kt, kh, kw)
        Odd kernel sizes (as stored by ``nn.Conv3d(C, C, k, groups=C)``).
    bias : Tensor of shape (C,), optional
    impl : {"auto", "conv3d", "conv2d", "fft"}
        Formulation (all exact up to float rounding).
    """
    _check(x, weight)
    if impl == "auto":
        impl = _auto_impl(x, weight)
    if impl == "conv3d":
        return _conv3d(x, weight, bias)
    if impl == "conv2d":
        return _conv2d(x, weight, bias)
    if impl == "fft":
        return _fft(x, weight, bias)
    raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")


class DepthwiseConv3d(nn.Module):
    """``nn.Conv3d(C, C, kernel_size, padding='same', groups=C)`` with a selectable formulation.

    Parameters are stored exactly as in ``nn.Conv3d`` (``weight`` of shape ``(C, 1, kt, kh, kw)``,
    ``bias`` of shape ``(C,)``) and initialised the same way.

    Parameters
    ----------
    channels : int
        Channels ``C`` of the input and output (one kernel per channel).
    kernel_size : int or tuple of 3 int
        Odd kernel size ``(kt, kh, kw)``; an int is used on all three axes.
    bias : bool
        Whether to learn a per-channel bias.
    impl : {"auto", "conv3d", "conv2d", "fft"}
        Formulation, see :func:`depthwise_conv3d` (all exact up to float rounding).
    """

    def __init__(self, channels: int, kernel_size: int | Sequence[int] = 7, bias: bool = True,
                 impl: str = "auto") -> None:
        super().__init__()
        if impl not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
        ks = (kernel_size,) * 3 if isinstance(kernel_size, int) else tuple(kernel_size)
        ref = nn.Conv3d(channels, channels, ks, groups=channels, bias=bias)  # for its initialisation
        self.weight = ref.weight
        self.bias = ref.bias
        self.impl = impl
        self.kernel_size = ks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return depthwise_conv3d(x, self.weight, self.bias, self.impl)

    def extra_repr(self):
        return f"{self.weight.shape[0]}, kernel_size={self.kernel_size}, impl={self.impl!r}"
