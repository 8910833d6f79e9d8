"""Modules of the physics VAE of Lu, Ariño Bernad & Soljačić (PDE-VAE): a dilated-convolution
*dynamics encoder* with inverse-variance-weighted averaging, and a *propagating decoder* whose
convolution kernels and biases are produced from the latent parameters by small MLPs.

Tensors are channels-first: trajectories ``(N, C, T, *space)``, states ``(N, C, *space)``, with one
or two spatial axes.
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "receptive_field",
    "DynamicsEncoder",
    "single_backward",
    "inverse_variance_weighting",
    "dynamic_conv",
    "dynamic_conv_unfold",
    "LatentToKernel",
    "PropagatingDecoder",
    "DynamicsVAEModule",
    "kl_standard_normal",
]

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.1)}


def receptive_field(dilations: Sequence[int], kernel_size: int = 3) -> int:
    """Receptive field (per axis) of stacked unpadded convolutions with these dilations."""
    return 1 + (kernel_size - 1) * sum(dilations)


_SINGLE_BACKWARD = threading.local()


@contextlib.contextmanager
def single_backward():
    """Declare that the graphs built inside get exactly one backward pass (no ``retain_graph``).

    The encoder's CPU training path then lets each layer's backward write its activation
    gradient into the layer's saved output, which that backward is the last to read, instead of
    allocating a new tensor of the same size. The gradients are bit for bit the same. At the
    paper's KS configuration that removes two allocations of 51 and 28 MB per step, which the C
    allocator serves with fresh pages that fault in again at every step: about 40% of the step's
    page faults (``benchmarks/bench_dynamics_vae.py``, docs/dynamics_vae.md). The training
    engine's loss for :class:`skphys.DynamicsVAE` runs inside it. A second backward through such
    a graph fails with autograd's "modified by an inplace operation" error instead of giving
    wrong gradients, so do not use it around ``retain_graph=True``. The setting is read when
    the forward runs, and is thread-local; nothing changes outside the CPU training path.

    Examples
    --------
    >>> import torch
    >>> from skphys.nn.dynamics_vae import DynamicsEncoder, single_backward
    >>> enc = DynamicsEncoder(1, n_latents=2, widths=(2, 2, 2, 2))
    >>> with single_backward():
    ...     mu, logvar = enc(torch.randn(2, 1, 32, 32))
    >>> (mu.sum() + logvar.sum()).backward()
    >>> enc.mu_head.weight.grad.shape
    torch.Size([2, 2, 1, 1])
    """
    previous = getattr(_SINGLE_BACKWARD, "on", False)
    _SINGLE_BACKWARD.on = True
    try:
        yield
    finally:
        _SINGLE_BACKWARD.on = previous


class _ConvActCPU(torch.autograd.Function):
    """``act(conv(x, w, b))`` with its backward as separate oneDNN calls (CPU training fast path).

    Mathematically the same as ``F.conv2d``/``F.conv3d`` followed by ReLU or leaky ReLU; the
    results agree to float rounding. Three things make it faster on a CPU (measured in
    ``benchmarks/bench_dynamics_vae.py``, see docs/dynamics_vae.md): the activation runs in place
    on the convolution's fresh output (one large allocation fewer per layer), the activation's
    backward uses the saved output instead of keeping a second tensor, and the convolution's
    input and weight gradients are computed by two ``convolution_backward`` calls instead of one
    joint call, which oneDNN ran 1.07-1.45x slower for these dilated layers on a 2-core AMD EPYC.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, dilation, slope, stride=None, reuse_output=False):
        """``act(conv(x))`` with ``act`` ReLU (``slope == 0``) or leaky ReLU, applied in place;
        ``dilation`` and ``stride`` (default 1) are per-axis tuples. ``reuse_output``: the
        backward writes the activation's gradient into the saved output (see
        :func:`single_backward`)."""
        conv = _CONV[x.dim() - 2]
        stride = stride or (1,) * (x.dim() - 2)
        y = conv(x, weight, bias, stride=stride, dilation=dilation)
        if slope == 0.0:
            y = y.relu_()
        else:
            y = F.leaky_relu_(y, slope)
        ctx.save_for_backward(x, weight, y)
        ctx.dilation = list(dilation)
        ctx.stride = list(stride)
        ctx.slope = slope
        ctx.has_bias = bias is not None
        ctx.reuse_output = reuse_output
        return y

    @staticmethod
    def backward(ctx, gy):
        """Gradients for ``x``, ``weight`` and ``bias`` (input and weight by separate calls)."""
        x, weight, y = ctx.saved_tensors
        if ctx.slope == 0.0:
            op, act_args = torch.ops.aten.threshold_backward, (gy, y, 0.0)
        else:
            op, act_args = torch.ops.aten.leaky_relu_backward, (gy, y, ctx.slope, True)
        # reuse_output: the output is no longer needed (the next layer's backward, which read it,
        # has run), so its memory takes the gradient instead of a fresh tensor of the same size
        gy = op.grad_input(*act_args, grad_input=y) if ctx.reuse_output else op(*act_args)
        nd = x.dim() - 2
        args = (gy, x, weight, None, ctx.stride, [0] * nd, ctx.dilation, False, [0] * nd, 1)
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = torch.ops.aten.convolution_backward(*args, [True, False, False])[0]
        if ctx.needs_input_grad[1]:
            gw = torch.ops.aten.convolution_backward(*args, [False, True, False])[1]
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = gy.sum(dim=[0] + list(range(2, gy.dim())))
        return gx, gw, gb, None, None, None, None


@functools.lru_cache(maxsize=32)
def _frame_pyramid(dilations, kernel_size):
    """``(steps, counts, data_step)`` for one output frame of stacked unpadded convolutions
    along time: ``counts[l]`` frames of layer ``l``'s input are needed (``l = 0``: the data, every
    ``data_step``-th frame of the window; the last entry is the output frame itself), evenly
    spaced, and ``steps[l] = (stride, dilation)`` computes layer ``l`` on exactly those frames.
    None where some layer's needed frames are not evenly spaced (then the layers run whole)."""
    frames = [[0]]
    for d in reversed(dilations):
        frames.insert(0, sorted({j + d * k for j in frames[0] for k in range(kernel_size)}))
    spacing = []
    for f in frames:
        step = f[1] - f[0] if len(f) > 1 else None
        if step is not None and f != list(range(0, f[-1] + 1, step)):
            return None
        spacing.append(step)
    steps = []
    for d, s_in, s_out in zip(dilations, spacing[:-1], spacing[1:]):
        if d % s_in or (s_out is not None and s_out % s_in):
            return None
        steps.append((1 if s_out is None else s_out // s_in, d // s_in))
    return tuple(steps), tuple(len(f) for f in frames), spacing[0] or 1


def _activation_slope(act):
    if isinstance(act, nn.ReLU):
        return 0.0
    if isinstance(act, nn.LeakyReLU):
        return float(act.negative_slope)
    return None


class DynamicsEncoder(nn.Module):
    """Dilated convolutions over (t, space) giving local latent means and log-variances.

    By default (the paper's) four convolutions (kernel 3, dilations 1, 2, 4, 8, ReLU, no padding)
    shared by both heads, then one 1x1 convolution per head. The receptive field is
    ``1 + (kernel_size - 1) * sum(dilations)``, 31 along every axis by default, so inputs need at
    least that many frames and points per axis.

    Parameters
    ----------
    in_channels : int
        Data channels.
    n_latents : int
        Number of latent parameters.
    n_spatial_dims : {1, 2}
        Spatial axes of the data (the convolutions are 2-D or 3-D).
    widths : sequence of 4 int, optional
        Widths of the shared layers; (4, 16, 64, 64) for 1-D data, (8, 64, 64, 64) for 2-D.
    kernel_size : int, default=3
        Kernel size of the shared dilated convolutions along every axis.
    dilations : sequence of int, default=(1, 2, 4, 8)
        One per layer.
    activation : {"relu", "leaky_relu"}, default="relu"
        ReLU is the paper's; ``"leaky_relu"`` (slope 0.1) keeps narrow encoders from losing
        their units (see docs/dynamics_vae.md).
    """

    def __init__(
        self, in_channels: int, n_latents: int, n_spatial_dims: int = 1, widths: Sequence[int] | None = None,
        kernel_size: int = 3, dilations: Sequence[int] = (1, 2, 4, 8), activation: str = "relu",
    ) -> None:
        super().__init__()
        if n_spatial_dims not in (1, 2):
            raise ValueError(f"n_spatial_dims must be 1 or 2, got {n_spatial_dims}")
        if widths is None:
            widths = (4, 16, 64, 64) if n_spatial_dims == 1 else (8, 64, 64, 64)
        if len(widths) != len(dilations):
            raise ValueError("widths and dilations must have the same length")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        conv = nn.Conv2d if n_spatial_dims == 1 else nn.Conv3d
        layers = []
        c = in_channels
        for w, d in zip(widths, dilations):
            layers += [conv(c, w, kernel_size, dilation=d), _ACTIVATIONS[activation]()]
            c = w
        self.features = nn.Sequential(*layers)
        self.mu_head = conv(c, n_latents, 1)
        self.logvar_head = conv(c, n_latents, 1)
        self.n_spatial_dims = n_spatial_dims
        self.receptive_field = receptive_field(dilations, kernel_size)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` (N, C, T, *space) -> local ``(mu, logvar)``, each (N, n_latents, T', *space').

        On the CPU with gradients enabled and no autocast (training) the layers run through a fused
        convolution + activation with a split backward, and both heads as one matrix product
        over channels-last features. Crops only a few frames longer than the receptive field
        (``BetaPathVAE``'s) compute each output frame from its own window with strided layers,
        skipping the hidden frames no output uses (:meth:`_pyramid_plan`). The result is the
        same as the plain modules' to float rounding (``tests/test_dynamics_vae.py`` checks
        outputs and gradients)."""
        if (x.device.type != "cpu" or not torch.is_grad_enabled() or torch.compiler.is_compiling()
                or torch.is_autocast_enabled("cpu")):
            h = self.features(x)
            return self.mu_head(h), self.logvar_head(h)
        layers = list(self.features)
        convs, acts = layers[0::2], layers[1::2]
        slopes = [_activation_slope(act) for act in acts]
        pyramid = None if None in slopes else self._pyramid_plan(x.shape)
        reuse = getattr(_SINGLE_BACKWARD, "on", False)
        if pyramid is not None:
            # each output frame from its own receptive field, stacked along the batch
            steps, data_step = pyramid
            t_out = x.shape[2] - self.receptive_field + 1
            h = torch.cat([x[:, :, r : r + self.receptive_field : data_step] for r in range(t_out)])
            ones = (1,) * (x.dim() - 3)
            for conv, slope, (stride, dilation) in zip(convs, slopes, steps):
                h = _ConvActCPU.apply(h, conv.weight, conv.bias, (dilation,) + conv.dilation[1:], slope,
                                      (stride,) + ones, reuse)
            # (t_out * N, n, 1, *space) -> (N, n, t_out, *space)
            return tuple(o.squeeze(2).unflatten(0, (t_out, x.shape[0])).movedim(0, 2) for o in self._heads(h))
        h = x
        for conv, act, slope in zip(convs, acts, slopes):
            if slope is None:
                h = act(conv(h))
            else:
                h = _ConvActCPU.apply(h, conv.weight, conv.bias, conv.dilation, slope, None, reuse)
        return self._heads(h)

    def _pyramid_plan(self, shape):
        """``(steps, data_step)``, the per-layer ``(time stride, time dilation)`` that compute the
        training path's output frames one by one, each from its own receptive field, when that
        takes fewer multiply-adds than the whole crop of this ``shape``; None otherwise.

        Unpadded dilated convolutions need, for one output frame, only some frames of each
        hidden layer: with dilations (1, 2, 4, 8) and kernel 3, 3 frames 8 apart of the third
        layer's output, 7 frames 4 apart of the second's and 15 frames 2 apart of the first's.
        Those are convolutions with time strides (2, 2, 2, 1) and time dilation 1 on the
        31-frame window, the same products as the full layers. For a crop only a few frames
        longer than the receptive field (``BetaPathVAE``'s 32-frame crops: 2 output frames)
        that skips most of the hidden frames, which no output uses; for long crops (the
        paper's 64 frames) the full layers are cheaper and are used."""
        convs = list(self.features)[0::2]
        plan = _frame_pyramid(tuple(c.dilation[0] for c in convs), convs[0].kernel_size[0])
        if plan is None:
            return None
        steps, counts, data_step = plan
        t_out = shape[2] - self.receptive_field + 1
        if t_out < 1:
            return None
        t, space = shape[2], list(shape[3:])
        full = pyramid = 0
        for conv, n_frames in zip(convs, counts[1:]):
            shrink = (conv.kernel_size[0] - 1) * conv.dilation[0]
            t -= shrink
            space = [n - shrink for n in space]
            per_frame = math.prod(space) * conv.in_channels * conv.out_channels
            full += t * per_frame
            pyramid += t_out * n_frames * per_frame
        return (steps, data_step) if pyramid < full else None

    def _heads(self, h):
        """Both 1x1 heads as one product over the channels-last features (one GEMM forward and
        two backward, instead of two 1x1 convolutions each way)."""
        n = self.mu_head.out_channels
        hl = h.movedim(1, -1)
        weight = torch.cat([self.mu_head.weight, self.logvar_head.weight]).flatten(1)
        bias = torch.cat([self.mu_head.bias, self.logvar_head.bias])
        if not hl.is_contiguous():
            out = _CONV[h.dim() - 2](h, weight.view(weight.shape + (1,) * (h.dim() - 2)), bias)
            return out[:, :n], out[:, n:]
        out = F.linear(hl, weight, bias).movedim(-1, 1)
        return out[:, :n], out[:, n:]


def inverse_variance_weighting(mu: torch.Tensor, logvar: torch.Tensor, correction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse-variance-weighted average of local estimates over all positions.

    ``w = softmax(-logvar)``, ``mu_z = sum(w * mu)`` and
    ``logvar_z = -logsumexp(-logvar) + log(correction)``, i.e. ``sigma_z^2 = C / sum(sigma^-2)``.
    Positions whose ``logvar`` is ``+inf`` are ignored.

    Parameters
    ----------
    mu, logvar : Tensor (N, L, *positions)
    correction : float
        The constant ``C`` that corrects for correlated neighbouring positions.

    Returns
    -------
    mu_z, logvar_z : Tensor (N, L)
    """
    mu = mu.flatten(2).float()
    logvar = logvar.flatten(2).float()
    w = torch.softmax(-logvar, dim=-1)
    mu_z = (w * mu).sum(-1)
    logvar_z = -torch.logsumexp(-logvar, dim=-1) + math.log(correction)
    return mu_z, logvar_z


def dynamic_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Convolution with a different kernel per sample ("valid" cross-correlation).

    The kernel windows are taken as a strided *view* of ``x`` (``Tensor.unfold`` per spatial axis,
    no copy), laid out as columns in one copy, and multiplied by the per-sample kernels in one
    batched matmul (``baddbmm`` adds the bias). That is three kernels per layer whatever the batch
    size: ``F.unfold`` and cuDNN's grouped convolution both loop over the batch internally (about
    B kernels per layer, measured), which made each decoder step launch-bound on a GPU.

    Parameters
    ----------
    x : Tensor (B, C_in, *space)
    weight : Tensor (B, C_out, C_in, *kernel)
    bias : Tensor (B, C_out), optional

    Returns
    -------
    Tensor (B, C_out, *(space - kernel + 1))
    """
    B = x.shape[0]
    c_out = weight.shape[1]
    ks = weight.shape[3:]
    nd = len(ks)
    v = x
    for axis, k in enumerate(ks):
        v = v.unfold(2 + axis, k, 1)  # (B, C_in, *out_space, *kernel), a view
    out_space = v.shape[2 : 2 + nd]
    perm = [0, 1, *range(2 + nd, 2 + 2 * nd), *range(2, 2 + nd)]
    # (B, C_in * prod(k), L); contiguous: with one input channel the reshape is still a view with
    # overlapping windows, which bmm handles by a per-sample loop about 10x slower
    cols = v.permute(perm).reshape(B, -1, math.prod(out_space)).contiguous()
    w = weight.reshape(B, c_out, -1)
    out = torch.bmm(w, cols) if bias is None else torch.baddbmm(bias.unsqueeze(-1), w, cols)
    return out.reshape(B, c_out, *out_space)


def dynamic_conv_unfold(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Reference implementation of :func:`dynamic_conv` with ``unfold`` + batched matmul (the
    formulation of the published code; kept for tests and the benchmark's "before")."""
    B, c_in = x.shape[:2]
    c_out = weight.shape[1]
    nd = x.dim() - 2
    if nd == 1:
        x2 = x.unsqueeze(2)
        ksize = (1, weight.shape[-1])
    elif nd == 2:
        x2 = x
        ksize = tuple(weight.shape[-2:])
    else:
        raise ValueError("dynamic_conv_unfold supports 1 or 2 spatial axes")
    cols = F.unfold(x2, ksize)  # (B, C_in * prod(k), L)
    out = torch.bmm(weight.reshape(B, c_out, -1), cols)
    if bias is not None:
        out = out + bias.unsqueeze(-1)
    out_space = [s - k + 1 for s, k in zip(x.shape[2:], weight.shape[3:])]
    return out.reshape(B, c_out, *out_space)


class LatentToKernel(nn.Module):
    """MLPs mapping latent parameters to one dynamic convolution's kernel and bias.

    One hidden layer (ReLU) each: ``hidden_factor * C_in * C_out`` units for the kernel and
    ``4 * C_out`` for the bias, as in the paper (``hidden_factor`` 4 for 1-D, 16 for 2-D).

    Parameters
    ----------
    n_latents : int
        Number of latent parameters (the MLPs' input width).
    in_channels, out_channels : int
        Input and output channels ``C_in``, ``C_out`` of the produced convolution.
    kernel_size : int
        Kernel size of the produced convolution along every spatial axis.
    n_spatial_dims : {1, 2}
        Spatial axes of the produced kernel.
    hidden_factor : int
        Hidden width of the kernel MLP in units of ``C_in * C_out``.
    bias : bool
        Whether to produce a bias (``forward`` returns ``None`` for it otherwise).
    """

    def __init__(self, n_latents: int, in_channels: int, out_channels: int, kernel_size: int, n_spatial_dims: int,
                 hidden_factor: int = 4, bias: bool = True) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_shape = (out_channels, in_channels) + (kernel_size,) * n_spatial_dims
        n_kernel = math.prod(self.kernel_shape)
        hk = hidden_factor * in_channels * out_channels
        hb = 4 * out_channels
        self.kernel_net = nn.Sequential(nn.Linear(n_latents, hk), nn.ReLU(), nn.Linear(hk, n_kernel))
        self.bias_net = nn.Sequential(nn.Linear(n_latents, hb), nn.ReLU(), nn.Linear(hb, out_channels)) if bias else None

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``z`` (B, n_latents) -> ``(weight (B, C_out, C_in, *kernel), bias (B, C_out) or None)``."""
        bias = None if self.bias_net is None else self.bias_net(z)
        return self.kernel_net(z).reshape(z.shape[0], *self.kernel_shape), bias


class PropagatingDecoder(nn.Module):
    """Recurrent decoder ``y_{t+1} = y_t + c * tanh(s * f(y_t) / c)`` with dynamic convolutions.

    ``f`` is three dynamic convolutions (``C -> hidden -> hidden -> C``, ReLU between, no padding)
    whose kernels and biases come from :class:`LatentToKernel` MLPs of the latents ``z``; ``c`` is
    a learnable cutoff initialised to 1 and ``s`` a fixed prefactor (``1e-6`` in the paper).
    With ``linear_kernel_size > 0``, ``f`` also has a linear term in parallel, a dynamic
    convolution ``C -> C`` of that size without bias (the published code's
    ``linear_kernel_size`` option), applied to the same padded state and centred on the output:
    a linear PDE's update (e.g. ``c^2 u_xx - gamma u_t``) is then one kernel of the latents.
    The state is padded once per step by ``pad = 3 * (kernel_size // 2)`` points on each side:

    - ``"crop"``: with the edges of the true target frame (training on crops);
    - ``"periodic"``: circularly;
    - ``"constant"``: with a constant (Dirichlet walls).

    Parameters
    ----------
    channels : int
        Channels ``C`` of the state.
    n_latents : int
        Number of latent parameters that produce the kernels.
    n_spatial_dims : {1, 2}
        Spatial axes of the state.
    hidden_channels : int
        Width of the two hidden dynamic convolutions.
    kernel_size : int
        Odd kernel size of the dynamic convolutions along every spatial axis.
    hidden_factor : int, optional
        Hidden width factor of the kernel MLPs (:class:`LatentToKernel`); None: 4 for 1-D,
        16 for 2-D.
    output_scale : float
        The fixed prefactor ``s`` of the update.
    conv_impl : {"bmm", "unfold"}
        ``"bmm"``: :func:`dynamic_conv`; anything else: :func:`dynamic_conv_unfold` (reference).
    linear_kernel_size : int
        Odd size of the parallel linear dynamic convolution, at most ``2 * 3 * (kernel_size // 2)
        + 1``; 0 (the paper's setting): none.
    """

    def __init__(
        self,
        channels: int,
        n_latents: int,
        n_spatial_dims: int = 1,
        hidden_channels: int = 16,
        kernel_size: int = 5,
        hidden_factor: int | None = None,
        output_scale: float = 1e-6,
        conv_impl: str = "bmm",
        linear_kernel_size: int = 0,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        max_linear = 2 * 3 * (kernel_size // 2) + 1
        if linear_kernel_size != 0 and (linear_kernel_size % 2 != 1 or not 1 <= linear_kernel_size <= max_linear):
            raise ValueError(
                f"linear_kernel_size must be 0 or odd and at most {max_linear} (the receptive field of the "
                f"three kernel_size={kernel_size} convolutions), got {linear_kernel_size}"
            )
        if hidden_factor is None:
            hidden_factor = 4 if n_spatial_dims == 1 else 16
        widths = [channels, hidden_channels, hidden_channels, channels]
        self.layers = nn.ModuleList(
            LatentToKernel(n_latents, widths[i], widths[i + 1], kernel_size, n_spatial_dims, hidden_factor)
            for i in range(3)
        )
        self.cutoff = nn.Parameter(torch.ones(()))
        self.output_scale = float(output_scale)
        self.n_spatial_dims = n_spatial_dims
        self.pad = len(self.layers) * (kernel_size // 2)
        self.conv_impl = conv_impl
        self.linear_kernel_size = int(linear_kernel_size)
        self.linear = (
            LatentToKernel(n_latents, channels, channels, linear_kernel_size, n_spatial_dims, hidden_factor, bias=False)
            if linear_kernel_size else None
        )

    def kernels(self, z):
        """The per-sample kernels and biases for latents ``z``: a list of ``(weight, bias)``, one
        per layer of ``f``, then ``(weight, None)`` of the linear term if there is one."""
        out = [layer(z) for layer in self.layers]
        if self.linear is not None:
            out.append(self.linear(z))
        return out

    def _pad(self, y, boundary, edge_frame=None, fill_value=0.0):
        p = [self.pad] * (2 * self.n_spatial_dims)
        if boundary == "periodic":
            return F.pad(y, p, mode="circular")
        if boundary == "constant":
            return F.pad(y, p, mode="constant", value=float(fill_value))
        if boundary == "crop":
            # interior from the prediction, border from the true frame
            mask = torch.ones_like(edge_frame[:1, :1])
            inner = (slice(None), slice(None)) + (slice(self.pad, -self.pad),) * self.n_spatial_dims
            mask[inner] = 0
            return F.pad(y, p) + edge_frame * mask
        raise ValueError(f"boundary must be 'crop', 'periodic' or 'constant', got {boundary!r}")

    def step(self, y, kernels, boundary="periodic", edge_frame=None, fill_value=0.0):
        """One propagation step of the state ``y`` (B, C, *space)."""
        conv = dynamic_conv if self.conv_impl == "bmm" else dynamic_conv_unfold
        padded = h = self._pad(y, boundary, edge_frame, fill_value)
        n = len(self.layers)
        for i, (w, b) in enumerate(kernels[:n]):
            h = conv(h, w, b)
            if i < n - 1:
                h = F.relu(h)
        if len(kernels) > n:  # the linear term, on the padded state cropped to its kernel's reach
            m = self.pad - self.linear_kernel_size // 2
            inner = (slice(None), slice(None)) + tuple(slice(m, padded.shape[2 + a] - m) for a in range(self.n_spatial_dims))
            h = h + conv(padded[tuple(inner)], kernels[n][0])
        c = self.cutoff
        h = h.to(torch.promote_types(h.dtype, y.dtype))  # bf16 conv output, fp32 state
        return y + c * torch.tanh(self.output_scale * h / c)

    def forward(
        self,
        y0: torch.Tensor,
        z: torch.Tensor,
        n_steps: int,
        boundary: str = "periodic",
        edges: torch.Tensor | None = None,
        fill_value: float = 0.0,
    ) -> torch.Tensor:
        """Propagate ``n_steps`` steps.

        Parameters
        ----------
        y0 : Tensor (B, C, *space)
            Initial state; with ``boundary="crop"`` the interior of the first target frame.
        z : Tensor (B, n_latents)
        n_steps : int
            Number of propagation steps.
        boundary : {"crop", "periodic", "constant"}
            How the state is padded before each step (see the class docstring).
        edges : Tensor (B, C, >= n_steps, *(space + 2 * pad)), optional
            Target frames ``y_0 .. y_{n_steps-1}`` whose borders pad the state (``"crop"`` only).
        fill_value : float
            Padding value with ``boundary="constant"``.

        Returns
        -------
        Tensor (B, C, n_steps, *space): the predicted states ``y_1 .. y_{n_steps}``.
        """
        if boundary == "crop" and (edges is None or edges.shape[2] < n_steps):
            raise ValueError("boundary='crop' needs the target frames whose edges pad the state")
        kernels = self.kernels(z)
        y = y0.to(torch.promote_types(y0.dtype, torch.float32))
        out = []
        for t in range(n_steps):
            y = self.step(y, kernels, boundary, None if edges is None else edges[:, :, t], fill_value)
            out.append(y)
        return torch.stack(out, dim=2)


class DynamicsVAEModule(nn.Module):
    """Dynamics encoder + inverse-variance weighting + reparameterisation + propagating decoder.

    ``position_dropout`` drops a random fraction of the encoder's positions from the weighted
    average during training (their log-variance set to ``+inf``) and scales the correlation
    correction by ``1 - position_dropout``. ``init_latent_std`` shifts the initial bias of the
    log-variance head so that the latent posteriors start with about that standard deviation
    (1: about the prior's, PyTorch's default initialisation).

    Parameters
    ----------
    channels : int
        Data channels ``C``.
    n_latents : int
        Number of latent parameters.
    n_spatial_dims : {1, 2}
        Spatial axes of the data.
    hidden_channels : int
        Width of the decoder's hidden dynamic convolutions.
    kernel_size : int
        Odd kernel size of the decoder's dynamic convolutions.
    hidden_factor : int, optional
        Hidden width factor of the decoder's kernel MLPs; None: 4 for 1-D, 16 for 2-D.
    output_scale : float
        The decoder's fixed update prefactor ``s``.
    encoder_widths : sequence of int, optional
        Widths of the encoder's shared layers; None: the paper's for ``n_spatial_dims``.
    position_dropout : float
        Fraction of encoder positions dropped from the weighted average in training.
    encoder_dilations : sequence of int
        Dilations of the encoder's layers, one per layer.
    encoder_activation : {"relu", "leaky_relu"}
        Activation of the encoder's shared layers.
    init_latent_std : float
        Approximate initial standard deviation of the latent posteriors.
    linear_kernel_size : int
        Size of the decoder's parallel linear dynamic convolution; 0: none.
    """

    def __init__(
        self,
        channels: int,
        n_latents: int = 5,
        n_spatial_dims: int = 1,
        hidden_channels: int = 16,
        kernel_size: int = 5,
        hidden_factor: int | None = None,
        output_scale: float = 1e-6,
        encoder_widths: Sequence[int] | None = None,
        position_dropout: float = 0.1,
        encoder_dilations: Sequence[int] = (1, 2, 4, 8),
        encoder_activation: str = "relu",
        init_latent_std: float = 1.0,
        linear_kernel_size: int = 0,
    ) -> None:
        super().__init__()
        self.encoder = DynamicsEncoder(
            channels, n_latents, n_spatial_dims, encoder_widths, dilations=encoder_dilations,
            activation=encoder_activation,
        )
        if init_latent_std != 1.0:
            # equal local log-variances l give logvar_z = l + log(C / n_positions) ~ l in training
            # crops, so shifting the head's bias by 2 log(s) starts the posteriors at std ~s
            with torch.no_grad():
                self.encoder.logvar_head.bias.add_(2.0 * math.log(init_latent_std))
        self.decoder = PropagatingDecoder(
            channels, n_latents, n_spatial_dims, hidden_channels, kernel_size, hidden_factor, output_scale,
            linear_kernel_size=linear_kernel_size,
        )
        self.position_dropout = float(position_dropout)
        self.n_latents = n_latents

    def correction(self, out_shape, dropout=0.0):
        """``C = prod(min(receptive_field, n))`` over the encoder's output axes, times ``1 - p``."""
        rf = self.encoder.receptive_field
        return math.prod(min(rf, n) for n in out_shape) * (1.0 - dropout)

    def dropout_shape(self, n, crop):
        """Shape of the uniform numbers :meth:`encode` draws for position dropout on ``n``
        encoder crops of size ``crop`` = ``(t, *space)``: one per encoder output position."""
        rf = self.encoder.receptive_field
        return (n, 1) + tuple(c - rf + 1 for c in crop)

    def encode(self, x: torch.Tensor, generator: torch.Generator | None = None,
               drop_noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` (N, C, T, *space) -> ``(mu_z, logvar_z)`` (N, n_latents).

        In training, position dropout uses ``drop_noise`` (uniform numbers of
        :meth:`dropout_shape`) when given, otherwise draws them from ``generator``."""
        mu, logvar = self.encoder(x)
        logvar = logvar.float()
        p = self.position_dropout if self.training else 0.0
        if p > 0:
            keep_shape = (logvar.shape[0], 1) + tuple(logvar.shape[2:])
            if drop_noise is None:
                drop_noise = torch.rand(keep_shape, device=logvar.device, generator=generator)
            elif tuple(drop_noise.shape) != keep_shape:
                raise ValueError(f"drop_noise must have shape {keep_shape}, got {tuple(drop_noise.shape)}")
            drop = drop_noise < p
            # never drop every position of a sample
            drop = drop & ~drop.flatten(1).all(dim=1).view(-1, *([1] * (drop.dim() - 1)))
            logvar = logvar.masked_fill(drop, float("inf"))
        return inverse_variance_weighting(mu, logvar, self.correction(mu.shape[2:], p))

    def forward(
        self,
        x: torch.Tensor,
        target: torch.Tensor,
        n_steps: int | None = None,
        boundary: str = "crop",
        fill_value: float = 0.0,
        sample: bool = True,
        generator: torch.Generator | None = None,
        noise_scale: float | torch.Tensor = 1.0,
        eps: torch.Tensor | None = None,
        drop_noise: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode ``x``, propagate the first frame of ``target`` and return
        ``(prediction, target_frames, mu_z, logvar_z)``; the prediction and the frames it is
        compared with are (N, C, n_steps, *space) (interior only with ``boundary="crop"``).

        With ``sample=True`` the decoder gets ``z = mu_z + noise_scale * sigma_z * eps``
        (``noise_scale`` a float or a scalar tensor; 1 is the reparameterisation trick). The
        standard normal ``eps`` (N, n_latents) and the dropout numbers ``drop_noise`` are drawn
        from ``generator`` unless given."""
        mu_z, logvar_z = self.encode(x, generator, drop_noise)
        z = mu_z
        if sample:
            if eps is None:
                eps = torch.randn(mu_z.shape, device=mu_z.device, generator=generator)
            z = mu_z + noise_scale * torch.exp(0.5 * logvar_z) * eps
        if n_steps is None:
            n_steps = target.shape[2] - 1
        if boundary == "crop":
            p = self.decoder.pad
            inner = (slice(None), slice(None), slice(None)) + (slice(p, -p),) * self.decoder.n_spatial_dims
            interior = target[inner]
            pred = self.decoder(interior[:, :, 0], z, n_steps, "crop", edges=target)
            return pred, interior[:, :, 1 : n_steps + 1], mu_z, logvar_z
        pred = self.decoder(target[:, :, 0], z, n_steps, boundary, fill_value=fill_value)
        return pred, target[:, :, 1 : n_steps + 1], mu_z, logvar_z


    def loss(self, x, target, n_steps, beta, ramp=1.0, boundary="crop", fill_value=0.0, eps=None, drop_noise=None):
        """The PDE-VAE objective ``MSE + beta * ramp * KL`` on a batch of crop pairs.

        The MSE is the mean over the predicted frames' elements and the KL the mean over samples
        of its sum over latents; ``ramp`` (a float or scalar tensor in [0, 1]) scales both the KL
        weight and the reparameterisation noise (KL annealing). Returns ``(loss, logs)`` with
        ``mse``, ``kl`` and ``kl_weight``.
        """
        pred, frames, mu, logvar = self(
            x, target, n_steps, boundary=boundary, fill_value=fill_value, noise_scale=ramp, eps=eps,
            drop_noise=drop_noise,
        )
        mse = torch.mean((pred.float() - frames.float()) ** 2)
        kl = kl_standard_normal(mu, logvar).mean()
        weight = beta * ramp
        return mse + weight * kl, {"mse": mse, "kl": kl, "kl_weight": weight}


def kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, exp(logvar)) || N(0, 1))`` summed over latents, per sample."""
    return 0.5 * (mu.square() + logvar.exp() - logvar - 1.0).sum(-1)
