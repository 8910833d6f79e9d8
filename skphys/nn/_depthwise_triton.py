"""Direct Triton kernel for the depthwise 3-D convolution ('same' zero padding), CUDA only.

Forward and input gradient use the same kernel (the input gradient is the forward pass of the
output gradient with the kernel flipped along all three axes). The weight gradient, a reduction
over batch, time and space into ``C * kt * kh * kw`` numbers, uses the exact FFT formulation of
:mod:`skphys.nn.depthwise`. Importing this module needs ``triton``; :mod:`skphys.nn.depthwise`
imports it only when ``impl="triton"`` is asked for.

Each program computes a ``BLOCK_H x BLOCK_W`` tile of one output frame ``(n, c, t)``: a runtime
loop over the ``kt`` time taps (skipping frames outside ``[0, T)``) and ``kh * kw`` unrolled,
masked tile loads (served mostly from L1/L2), accumulating in float32.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["depthwise_conv3d_triton"]


@triton.jit
def _dw3d_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr, C, T, H, W,
    KT: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr, HAS_BIAS: tl.constexpr,
    BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr,
):
    pid = tl.program_id(0)  # over N * C * T output frames
    pid_h = tl.program_id(1)
    pid_w = tl.program_id(2)
    t = pid % T
    nc = pid // T
    c = nc % C
    base = nc.to(tl.int64) * T * H * W  # no .to() on the int arguments: triton makes those equal to 1 constexpr
    offs_h = pid_h * BLOCK_H + tl.arange(0, BLOCK_H)
    offs_w = pid_w * BLOCK_W + tl.arange(0, BLOCK_W)
    acc = tl.zeros((BLOCK_H, BLOCK_W), dtype=tl.float32)
    for kt in range(KT):
        tt = t + kt - KT // 2
        if (tt >= 0) & (tt < T):
            frame = x_ptr + base + tt.to(tl.int64) * H * W
            w_row = w_ptr + (c * KT + kt) * KH * KW
            for kh in tl.static_range(KH):
                hh = offs_h + (kh - KH // 2)
                mh = (hh >= 0) & (hh < H)
                for kw in tl.static_range(KW):
                    ww = offs_w + (kw - KW // 2)
                    m = mh[:, None] & ((ww >= 0) & (ww < W))[None, :]
                    v = tl.load(frame + hh[:, None] * W + ww[None, :], mask=m, other=0.0)
                    wv = tl.load(w_row + kh * KW + kw)
                    acc += v.to(tl.float32) * wv.to(tl.float32)
    if HAS_BIAS:
        acc += tl.load(b_ptr + c).to(tl.float32)
    out = y_ptr + base + t.to(tl.int64) * H * W + offs_h[:, None] * W + offs_w[None, :]
    mask = (offs_h < H)[:, None] & (offs_w < W)[None, :]
    tl.store(out, acc.to(y_ptr.dtype.element_ty), mask=mask)


def _launch(x, weight, bias):
    n, c, t, h, w = x.shape
    kt, kh, kw = weight.shape[2:]
    x = x.contiguous()
    weight = weight.contiguous()
    y = torch.empty_like(x)
    block_w = 64 if w >= 64 else triton.next_power_of_2(max(w, 16))
    block_h = max(2, min(16, 1024 // block_w, triton.next_power_of_2(h)))
    grid = (n * c * t, triton.cdiv(h, block_h), triton.cdiv(w, block_w))
    _dw3d_kernel[grid](
        x, weight, bias if bias is not None else weight, y, c, t, h, w,
        KT=kt, KH=kh, KW=kw, HAS_BIAS=bias is not None, BLOCK_H=block_h, BLOCK_W=block_w, num_warps=4,
    )
    return y


class _DepthwiseConv3dTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _launch(x, weight, bias)

    @staticmethod
    def backward(ctx, grad):
        from .depthwise import _fft

        x, weight = ctx.saved_tensors
        grad = grad.contiguous()
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = _launch(grad, weight.flip((2, 3, 4)), None)
        if ctx.needs_input_grad[1]:
            with torch.enable_grad():
                w_ = weight.detach().requires_grad_(True)
                (gw,) = torch.autograd.grad(_fft(x.detach(), w_, None), w_, grad)
            gw = gw.to(weight.dtype)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = grad.sum(dim=(0, 2, 3, 4))
        return gx, gw, gb


def depthwise_conv3d_triton(x, weight, bias=None):
    """Depthwise 3-D cross-correlation with 'same' zero padding; ``x`` on CUDA, (N, C, T, H, W)."""
    if not x.is_cuda:
        raise ValueError("impl='triton' needs CUDA tensors; use impl='fft' or 'conv3d' on the CPU")
    if bias is not None:
        bias = bias.contiguous()
    return _DepthwiseConv3dTriton.apply(x, weight, bias)
