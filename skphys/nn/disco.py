"""DISCO (Morel, Han, Oyallon, ICML 2025): a transformer hypernetwork that infers, from a short
context, all the weights of a small operator network whose time integration predicts the next
frame.

- :class:`OperatorUNet`: the operator's architecture as data: a U-Net without biases, with
  grouped convolutions and affine-free group norms, on a periodic or walled domain. It holds no
  parameters: :meth:`OperatorUNet.apply` takes one sample's weights.
- :class:`DISCOHypernetwork`: field adapter, CNN downsampling by ``patch_size`` (strided
  convolutions with RMS instance norm), space-time
  blocks (attention over time, then axial attention over each spatial axis, with QK-norm,
  relative position bias and layer scale), the mean over time and space (the theta-latent), and an
  MLP with one linear head per operator weight tensor, each softly bounded by a multiple of its
  layer's Kaiming scale.
- :func:`integrate`: the operator integrated over one frame interval with torchdiffeq's adaptive
  Bogacki-Shampine solver (``bosh3``), adjoint gradients when training.

Tensors are channels-first ``(N, C, T, H, W)``; 1-D systems ``(N, C, T, X)`` use ``H = 1`` and
``1 x 3`` kernels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .avit import RMSInstanceNorm, SpaceTimeBlock, as_5d, patch_factors

__all__ = ["OperatorUNet", "DISCOHypernetwork", "integrate", "SolverStepsExceeded"]


class SolverStepsExceeded(RuntimeError):
    """The adaptive solver needed more than the allowed number of steps."""


class OperatorUNet:
    """A two-level U-Net ``(1, C, H, W) -> (1, C, H, W)`` whose weights are given per call.

    in-conv (C -> w) -> [conv w -> w] -> down (stride 2, w -> 2w) -> [conv 2w -> 2w] -> up (x2)
    -> conv (2w -> w) -> concat skip -> conv (2w -> w) -> out-conv (w -> C). Every hidden conv is
    grouped (``groups``), followed by an affine-free GroupNorm and GELU; no conv has a bias.
    Padding is circular (``periodic``) or zero (walls).
    """

    def __init__(self, channels, width=32, groups=8, periodic=True, one_d=False):
        if width % groups:
            raise ValueError(f"operator_width={width} must be divisible by operator_groups={groups}")
        self.channels, self.width, self.groups = int(channels), int(width), int(groups)
        self.periodic, self.one_d = periodic, one_d
        k = (1, 3) if one_d else (3, 3)
        w, g, c = self.width, self.groups, self.channels
        # name -> (shape, fan_in, groups, stride)
        self.specs = {
            "inp": ((w, c, *k), c * math.prod(k), 1, 1),
            "enc": ((w, w // g, *k), w // g * math.prod(k), g, 1),
            "down": ((2 * w, w // g, *k), w // g * math.prod(k), g, 2),
            "mid": ((2 * w, 2 * w // g, *k), 2 * w // g * math.prod(k), g, 1),
            "up": ((w, 2 * w // g, *k), 2 * w // g * math.prod(k), g, 1),
            "dec": ((w, 2 * w // g, *k), 2 * w // g * math.prod(k), g, 1),
            "out": ((c, w, *k), w * math.prod(k), 1, 1),
        }

    @property
    def shapes(self):
        return {name: spec[0] for name, spec in self.specs.items()}

    def _conv(self, x, weight, name):
        _, _, groups, stride = self.specs[name]
        if self.one_d:
            pad = (1, 1, 0, 0)
        else:
            pad = (1, 1, 1, 1)
        x = F.pad(x, pad, mode="circular" if self.periodic else "constant")
        s = (1, stride) if self.one_d else stride
        return F.conv2d(x, weight, stride=s, groups=groups)

    def _act(self, x):
        return F.gelu(F.group_norm(x, self.groups))

    def apply(self, u, weights):
        """``u``: (1, C, H, W); ``weights``: dict name -> tensor of :attr:`shapes`."""
        h = self._act(self._conv(u, weights["inp"], "inp"))
        skip = self._act(self._conv(h, weights["enc"], "enc"))
        h = self._act(self._conv(skip, weights["down"], "down"))
        h = self._act(self._conv(h, weights["mid"], "mid"))
        h = F.interpolate(h, size=skip.shape[-2:], mode="nearest")
        h = self._act(self._conv(h, weights["up"], "up"))
        h = self._act(self._conv(torch.cat([h, skip], dim=1), weights["dec"], "dec"))
        return self._conv(h, weights["out"], "out")


class DISCOHypernetwork(nn.Module):
    """Context ``(N, C, T, *space)`` -> theta-latent ``(N, embed_dim)`` -> operator weights.

    Parameters
    ----------
    channels : int
    operator : OperatorUNet
    patch_size, embed_dim, depth, n_heads, mlp_ratio : int, int, int, int, float
    n_spatial_dims : {1, 2}
    periodic : bool
    layer_scale : float
        Initial layer-scale value of the blocks.
    hyper_hidden : int or None
        Width of the weight MLP (default ``embed_dim``).
    """

    def __init__(self, channels, operator, patch_size=16, embed_dim=384, depth=12, n_heads=6, mlp_ratio=4.0,
                 n_spatial_dims=2, periodic=True, layer_scale=0.1, hyper_hidden=None):
        super().__init__()
        one_d = n_spatial_dims == 1
        self.patch_size, self.one_d = int(patch_size), one_d
        self.operator = operator
        d0 = max(1, embed_dim // 4)
        self.adapter = nn.Conv2d(channels, d0, 1)  # field adapter
        layers, w_in = [], d0
        fs = patch_factors(patch_size)
        for k, f in enumerate(fs):
            w_out = embed_dim if k == len(fs) - 1 else max(d0, embed_dim // 2)
            kern = (1, f) if one_d else (f, f)
            layers += [nn.Conv2d(w_in, w_out, kern, stride=kern), RMSInstanceNorm(w_out), nn.GELU()]
            w_in = w_out
        self.down = nn.Sequential(*layers[:-1])
        self.blocks = nn.ModuleList(
            SpaceTimeBlock(embed_dim, n_heads, mlp_ratio, shared_axes=False, qk_norm=True,
                           layer_scale=layer_scale, periodic=periodic)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim)
        hidden = int(hyper_hidden or embed_dim)
        self.mlp = nn.Sequential(nn.Linear(embed_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU())
        self.heads = nn.ModuleDict()
        bounds = {}
        for name, (shape, fan_in, _, _) in operator.specs.items():
            head = nn.Linear(hidden, math.prod(shape))
            # Each weight tensor is bounded softly: w = 2 s tanh(raw / (2 s)) with s the Kaiming
            # scale of its layer (as the original bounds weights by a signed sigmoid), so a bad
            # latent cannot make the operator arbitrarily stiff. The heads' biases are a
            # Kaiming-initialised base operator that the latent modulates; the output layer's bias
            # starts at zero, so the initial model is close to persistence (not exactly: with a
            # zero head every other head's gradient would start as rounding noise).
            scale = math.sqrt(2.0 / fan_in)
            bounds[name] = scale
            nn.init.normal_(head.weight, std=0.02 / math.sqrt(hidden))
            with torch.no_grad():
                if name == "out":
                    head.bias.zero_()
                else:
                    head.bias.normal_(0.0, scale)
            self.heads[name] = head
        self.bounds = bounds

    def latent(self, x):
        """theta-latent ``(N, embed_dim)`` of a (normalized) context."""
        x5 = as_5d(x)
        n, c, t, h, w = x5.shape
        frames = x5.permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w)
        z = self.down(self.adapter(frames))
        z = z.reshape(n, t, *z.shape[1:]).permute(0, 1, 3, 4, 2)  # (N, T, H', W', D)
        for blk in self.blocks:
            z = blk(z)
        return self.norm(z.mean(dim=(1, 2, 3)))

    def weights(self, theta):
        """Operator weights from theta-latents: dict name -> (N, *shape), float32."""
        hid = self.mlp(theta)
        shapes = self.operator.shapes
        out = {}
        for name, head in self.heads.items():
            b = 2.0 * self.bounds[name]
            out[name] = (b * torch.tanh(head(hid).float() / b)).reshape(theta.shape[0], *shapes[name])
        return out


def integrate(operator, u0, weights, *, rtol=1e-3, atol=1e-4, max_steps=64, adjoint=True, on_exceed="fixed"):
    """Integrate ``du/dt = operator(u; weights)`` over ``t in [0, 1]`` from ``u0`` (1, C, H, W).

    torchdiffeq's adaptive Bogacki-Shampine method (``bosh3``); with ``adjoint`` the gradients
    with respect to ``weights`` come from the adjoint equation (memory independent of the number
    of steps). Returns ``(u1, steps, capped)``: ``steps`` counts the solver steps of the forward
    solve (accepted and rejected: each costs 3 evaluations, and 2 evaluations choose the first
    step). Past ``max_steps`` steps, ``on_exceed="fixed"`` integrates again with ``max_steps``
    fixed classical Runge-Kutta steps (``capped`` is then True) and ``"raise"`` raises
    :class:`SolverStepsExceeded`.
    """
    from torchdiffeq import odeint, odeint_adjoint

    params = tuple(weights[k] for k in operator.specs)
    names = tuple(operator.specs)
    counter = [0]

    def rhs(t, u):
        counter[0] += 1
        return operator.apply(u, dict(zip(names, params)))

    t = torch.tensor([0.0, 1.0], device=u0.device)

    def solve(method, options):
        if adjoint and torch.is_grad_enabled():
            adj = dict(options)
            if "max_num_steps" in adj:
                adj["max_num_steps"] = 4 * adj["max_num_steps"]
            return odeint_adjoint(rhs, u0, t, rtol=rtol, atol=atol, method=method, options=options,
                                  adjoint_params=params, adjoint_options=adj)
        return odeint(rhs, u0, t, rtol=rtol, atol=atol, method=method, options=options)

    try:
        sol = solve("bosh3", {"max_num_steps": int(max_steps)})
    except AssertionError as exc:
        if "max_num_steps" not in str(exc):
            raise
        if on_exceed == "raise":
            raise SolverStepsExceeded(str(exc)) from None
        # too stiff for the budget: max_steps fixed classical Runge-Kutta steps
        sol = solve("rk4", {"step_size": 1.0 / int(max_steps)})
        return sol[-1], int(max_steps), True
    return sol[-1], max(0, (counter[0] - 2) // 3), False
