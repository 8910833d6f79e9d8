"""Spectral helpers shared by the built-in simulators.

- :func:`wavenumbers` / :func:`rwavenumbers`: angular wavenumbers of a periodic grid,
- :func:`gaussian_filtered_noise`: the papers' random initial conditions (complex Gaussian white
  noise in Fourier space times ``exp(-k^2 / (2 kr^2))``),
- :class:`ETDRK4`: exponential time differencing Runge-Kutta 4 (Cox & Matthews 2002) with the
  coefficients computed by the contour integral of Kassam & Trefethen (2005), vectorised over a
  batch of trajectories whose linear operators may differ (one diagonal operator per trajectory).

Everything works on torch tensors on any device; the coefficients are always computed in
complex128 and then cast to the working precision.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "wavenumbers",
    "rwavenumbers",
    "dealias_mask",
    "gaussian_filtered_noise",
    "etdrk4_coefficients",
    "ETDRK4",
    "Spectral2D",
]


def wavenumbers(n, length, device="cpu", dtype=torch.float64):
    """Angular wavenumbers ``2 pi m / length`` of an ``n``-point periodic grid, FFT order."""
    return torch.as_tensor(2 * np.pi * np.fft.fftfreq(n, d=length / n), dtype=dtype, device=device)


def rwavenumbers(n, length, device="cpu", dtype=torch.float64):
    """Angular wavenumbers of :func:`torch.fft.rfft` output (``n // 2 + 1`` of them)."""
    return torch.as_tensor(2 * np.pi * np.fft.rfftfreq(n, d=length / n), dtype=dtype, device=device)


def dealias_mask(k, length, n):
    """Boolean mask keeping ``|k| < (2/3) k_nyquist`` (Orszag's 2/3 rule)."""
    k_nyq = np.pi * n / length
    return k.abs() < (2.0 / 3.0) * k_nyq


class Spectral2D:
    """Wavenumbers, dealiasing and field reconstruction on an (ny, nx) periodic grid (rfft in x)."""

    def __init__(self, shape, extent, device, rdtype, cdtype):
        ny, nx = shape
        ly, lx = extent
        self.shape = shape
        self.ky = wavenumbers(ny, ly, device=device)[:, None].to(rdtype)
        self.kx = rwavenumbers(nx, lx, device=device)[None, :].to(rdtype)
        self.k2 = self.ky**2 + self.kx**2
        self.inv_k2 = torch.where(self.k2 > 0, 1.0 / torch.where(self.k2 > 0, self.k2, 1.0), 0.0)
        mask = dealias_mask(self.ky, ly, ny) & dealias_mask(self.kx, lx, nx)
        self.mask = mask.to(cdtype)
        self.ikx = (1j * self.kx).to(cdtype)
        self.iky = (1j * self.ky).to(cdtype)

    def fft(self, f):
        return torch.fft.rfft2(f)

    def ifft(self, f_hat):
        return torch.fft.irfft2(f_hat, s=self.shape)

    def velocity(self, omega_hat, mean_u):
        """(vx, vy) on the grid from the vorticity spectrum and the constant mean velocity."""
        psi_hat = omega_hat * self.inv_k2
        vx = self.ifft(self.iky * psi_hat) + mean_u[0]
        vy = self.ifft(-self.ikx * psi_hat) + mean_u[1]
        return vx, vy

    def pressure(self, vx, vy):
        """Zero-mean p with lap p = -d_i d_j (u_i u_j), computed with dealiased products."""
        kx, ky = self.kx, self.ky
        rhs = kx * kx * self.fft(vx * vx) + 2 * kx * ky * self.fft(vx * vy) + ky * ky * self.fft(vy * vy)
        return self.ifft(-rhs * self.mask * self.inv_k2)


def _pad_spectrum(coef, out_shape):
    """Zero-pad an FFT-ordered spectrum (axes 1..) to ``out_shape`` (trigonometric interpolation)."""
    for axis, m in enumerate(out_shape, start=1):
        n = coef.shape[axis]
        if m == n:
            continue
        pos = (n + 1) // 2
        pad_shape = list(coef.shape)
        pad_shape[axis] = m - n
        head = np.take(coef, np.arange(pos), axis=axis)
        tail = np.take(coef, np.arange(pos, n), axis=axis)
        coef = np.concatenate([head, np.zeros(pad_shape, dtype=coef.dtype), tail], axis=axis) * (m / n)
    return coef


def gaussian_filtered_noise(rng, n_samples, shape, lengths, kr, out_shape=None):
    """Random fields with a Gaussian band-limited spectrum (the PDE-VAE papers' initial states).

    Complex white noise ``a_k + i b_k`` (``a_k, b_k ~ N(0, 1)``) is multiplied by
    ``exp(-|k|^2 / (2 kr^2))`` and transformed back with an inverse FFT.

    Parameters
    ----------
    rng : numpy.random.RandomState
        Source of randomness (drawn in trajectory order, so the stream does not depend on chunking).
    n_samples : int
    shape : tuple of int
        Grid shape, e.g. ``(n,)`` or ``(ny, nx)``.
    lengths : tuple of float
        Period of each axis.
    kr : ndarray of shape (n_samples,)
        Filter width per trajectory (angular wavenumber).
    out_shape : tuple of int, optional
        Finer grid to return the field on (spectrum zero-padded), so that the random draws do
        not depend on the solver's oversampling.

    Returns
    -------
    u : ndarray of complex128, shape ``(n_samples, *shape)``
    """
    noise = rng.standard_normal((n_samples, *shape, 2))
    coef = noise[..., 0] + 1j * noise[..., 1]
    k2 = np.zeros(shape)
    for axis, (n, length) in enumerate(zip(shape, lengths)):
        k = 2 * np.pi * np.fft.fftfreq(n, d=length / n)
        expand = [1] * len(shape)
        expand[axis] = n
        k2 = k2 + k.reshape(expand) ** 2
    kr = np.asarray(kr, dtype=float).reshape((-1,) + (1,) * len(shape))
    coef = coef * np.exp(-k2[None] / (2 * kr**2))
    if out_shape is not None and tuple(out_shape) != tuple(shape):
        coef = _pad_spectrum(coef, out_shape)
    axes = tuple(range(1, len(shape) + 1))
    return np.fft.ifftn(coef, axes=axes)


def etdrk4_coefficients(L, h, n_contour=64):
    """ETDRK4 coefficients for the diagonal linear operator ``L`` and step ``h``.

    The phi-functions are evaluated as means over ``n_contour`` points of a circle of radius 1
    around each ``h L`` (Kassam & Trefethen 2005), which avoids the cancellation of the explicit
    formulas for small ``|h L|``. The full circle is used so that complex ``L`` (e.g. the
    Schrodinger operator ``-i k^2 / 2``) is handled, not only real ones.

    Parameters
    ----------
    L : complex tensor of any shape
    h : float
    n_contour : int

    Returns
    -------
    dict with ``E = exp(hL)``, ``E2 = exp(hL/2)``, ``Q``, ``f1``, ``f2``, ``f3`` (complex128, shape of L).
    """
    L = torch.as_tensor(L).to(torch.complex128)
    j = torch.arange(1, n_contour + 1, dtype=torch.float64, device=L.device)
    r = torch.exp(1j * 2 * math.pi * (j - 0.5) / n_contour)
    LR = h * L.unsqueeze(-1) + r
    eLR = torch.exp(LR)
    Q = h * torch.mean((torch.exp(LR / 2) - 1) / LR, dim=-1)
    f1 = h * torch.mean((-4 - LR + eLR * (4 - 3 * LR + LR**2)) / LR**3, dim=-1)
    f2 = h * torch.mean((2 + LR + eLR * (-2 + LR)) / LR**3, dim=-1)
    f3 = h * torch.mean((-4 - 3 * LR - LR**2 + eLR * (4 - LR)) / LR**3, dim=-1)
    return {"E": torch.exp(h * L), "E2": torch.exp(h * L / 2), "Q": Q, "f1": f1, "f2": f2, "f3": f3}


class ETDRK4:
    """Batched ETDRK4 stepper for ``dv/dt = L v + N(v)`` in Fourier space.

    Parameters
    ----------
    L : complex tensor, shape ``(K,)`` or ``(B, K...)``
        Diagonal linear operator (one per trajectory when it has a batch axis).
    h : float
        Time step.
    nonlinear : callable
        ``N(v_hat) -> tensor`` of the same shape as ``v_hat``.
    n_contour : int, default=64
        Points on the contour integral.
    dtype : torch complex dtype
        Working precision (coefficients are computed in complex128 and cast).

    Examples
    --------
    Fourth order on ``dv/dt = -v - v^2``, whose exact solution is
    ``v(t) = 1 / ((1 / v0 + 1) e^t - 1)``:

    >>> import math, torch
    >>> from skphys import ETDRK4
    >>> L = torch.tensor([-1.0 + 0j], dtype=torch.complex128)
    >>> def solve(h):
    ...     stepper, v = ETDRK4(L, h, lambda v: -v * v), torch.tensor([0.5 + 0j], dtype=torch.complex128)
    ...     for _ in range(round(1 / h)):
    ...         v = stepper.step(v)
    ...     return v.real.item()
    >>> exact = 1 / ((1 / 0.5 + 1) * math.e - 1)
    >>> err = [abs(solve(h) - exact) for h in (0.1, 0.05)]
    >>> round(math.log2(err[0] / err[1]))  # halving the step divides the error by 2^4
    4
    """

    def __init__(self, L, h, nonlinear, n_contour=64, dtype=torch.complex128):
        if not h > 0:
            raise ValueError(f"time step h must be positive, got {h}")
        coefs = etdrk4_coefficients(L, h, n_contour)
        self.h = float(h)
        self.nonlinear = nonlinear
        self.E, self.E2, self.Q = (coefs[key].to(dtype) for key in ("E", "E2", "Q"))
        self.f1, self.f2, self.f3 = (coefs[key].to(dtype) for key in ("f1", "f2", "f3"))

    def step(self, v):
        """One step of size ``h``: Cox-Matthews ETDRK4."""
        N = self.nonlinear
        Nv = N(v)
        a = self.E2 * v + self.Q * Nv
        Na = N(a)
        b = self.E2 * v + self.Q * Na
        Nb = N(b)
        c = self.E2 * a + self.Q * (2 * Nb - Nv)
        Nc = N(c)
        return self.E * v + Nv * self.f1 + 2 * (Na + Nb) * self.f2 + Nc * self.f3

    def advance(self, v, n_steps):
        """``n_steps`` steps."""
        for _ in range(int(n_steps)):
            v = self.step(v)
        return v


def integrate_frames(advance, v, n_frames, store, bar=None, check_every=8):
    """Store frame 0 of ``v``, then call ``advance(v) -> v`` (one output interval) and store each
    following frame.

    ``store(index, v)`` writes a frame. Raises ``FloatingPointError`` when the state stops being
    finite (checked every ``check_every`` frames and at the end, to limit device syncs).
    """
    store(0, v)
    if bar is not None:
        bar.update(1)
    for i in range(1, n_frames):
        v = advance(v)
        if i % check_every == 0 or i == n_frames - 1:
            if not bool(torch.isfinite(torch.view_as_real(v) if v.is_complex() else v).all()):
                raise FloatingPointError(
                    f"the simulation blew up before frame {i}; use a smaller dt_max (internal time step)"
                )
        store(i, v)
        if bar is not None:
            bar.update(1)
    return v
