"""1-D Kuramoto-Sivashinsky equation with a varying damping parameter (PDE-VAE paper's KS data)."""

from __future__ import annotations

import math

import numpy as np
import torch

from . import _common as C
from ._driver import Driver
from ._spectral import ETDRK4, dealias_mask, gaussian_filtered_noise, integrate_frames, rwavenumbers

__all__ = ["make_kuramoto_sivashinsky"]

_DESCR = """Kuramoto-Sivashinsky trajectories
==================================

    u_t = -u u_x - u_xx - gamma u_xxxx,   x in [0, length) periodic,

i.e. in Fourier space ``du/dt = (k^2 - gamma k^4) u + N(u)``, ``N(u) = -1/2 i k FFT(u^2)``,
integrated with ETDRK4 (Kassam-Trefethen contour coefficients, 64 points) on a pseudo-spectral
grid with an internal step ``<= dt_max`` and stored every ``dt``. ``gamma`` (target) is drawn
from a normal(gamma_mean, gamma_std) truncated to gamma_range. Initial states: complex Gaussian
white noise times exp(-k^2/(2 kr^2)), kr ~ U[4 pi/length, (n_points/8) pi/length], real part,
mean removed, normalised to RMS 1. Data: (n_samples, n_frames, n_points, 1) float32, field "u".
Defaults are those of Lu, Ariano & Soljacic (PDE-VAE): period 64 pi, 256 points, 256 frames over
T = 32 pi, gamma ~ truncnorm(1, 0.125) on [0.5, 1.5].
"""


def make_kuramoto_sivashinsky(
    n_samples=100,
    *,
    gamma=None,
    gamma_mean=1.0,
    gamma_std=0.125,
    gamma_range=(0.5, 1.5),
    length=64 * math.pi,
    n_points=256,
    n_frames=256,
    t_max=32 * math.pi,
    dt_max=0.05,
    burn_in=0.0,
    dealias=False,
    noise=0.0,
    precision="double",
    chunk_size=None,
    random_state=None,
    device="auto",
    verbose=False,
    return_X_y=False,
):
    """Simulate the 1-D Kuramoto-Sivashinsky equation with a random damping parameter.

    ``u_t = -u u_x - u_xx - gamma u_xxxx`` on a periodic domain, solved pseudo-spectrally with
    ETDRK4. This is the KS dataset of the PDE-VAE paper (Lu, Ariano & Soljacic); the defaults
    are the paper's.

    Parameters
    ----------
    n_samples : int, default=100
        Number of trajectories.
    gamma : None, float or array-like of shape (n_samples,), default=None
        Fourth-order damping (hyper-viscosity). None draws it from a normal distribution with
        ``gamma_mean`` and ``gamma_std`` truncated to ``gamma_range``. Must be > 0.
    gamma_mean, gamma_std : float, default=1.0, 0.125
        Sampling distribution of ``gamma`` (``gamma_std=0`` gives ``gamma_mean`` everywhere).
    gamma_range : (float, float), default=(0.5, 1.5)
        Truncation interval; must be inside ``(0, inf)``.
    length : float, default=64*pi
        Period of the domain.
    n_points : int, default=256
        Grid points (the stored resolution; the spectral solution is resolved at the defaults).
    n_frames : int, default=256
        Stored frames, at times ``0, dt, ..., (n_frames - 1) dt`` with ``dt = t_max / n_frames``.
    t_max : float, default=32*pi
        Time span of the stored frames (``n_frames * dt``).
    dt_max : float, default=0.05
        Largest internal ETDRK4 step; each output interval is split into equal steps no larger.
    burn_in : float, default=0.0
        Time integrated before the first stored frame (0 as in the paper: frame 0 is the
        random initial state).
    dealias : bool, default=False
        Apply the 2/3 rule to the nonlinear term.
    noise : float, default=0.0
        Standard deviation of Gaussian noise added to the stored data, in units of the field
        (initial states have RMS 1, so ``noise=0.1`` is the paper's noisy variant).
    precision : {"double", "single"}, default="double"
        Working precision of the solver (storage is always float32).
    chunk_size : int, optional
        Trajectories simulated at once (default: what fits in 512 MiB on CPU, 4 GiB on GPU).
    random_state : int, RandomState or None
        Seeds the parameters, initial states and noise. Results do not depend on
        ``chunk_size`` or the device beyond round-off.
    device : str or torch.device, default="auto"
    verbose : bool, default=False
        Show a progress bar over frames.
    return_X_y : bool, default=False
        Return ``(X, y)`` instead of a Bunch.

    Returns
    -------
    data : Bunch
        ``data`` (n_samples, n_frames, n_points, 1) float32, ``target`` (n_samples, 1) with
        ``target_names=["gamma"]``, ``field_names=["u"]``, ``time``, ``coords=(x,)``,
        ``dim_names=("x",)``, ``boundary_conditions={"x": "periodic"}``, ``dt``, ``DESCR``.
    (X, y) : tuple if ``return_X_y``.

    Examples
    --------
    >>> from skphys.datasets import make_kuramoto_sivashinsky
    >>> ks = make_kuramoto_sivashinsky(2, n_points=32, length=8 * 3.14159, n_frames=5,
    ...                                t_max=1.0, random_state=0, device="cpu")
    >>> ks.data.shape, ks.target_names
    ((2, 5, 32, 1), ['gamma'])
    """
    sim = Driver("Kuramoto-Sivashinsky", n_samples, noise=noise, random_state=random_state, device=device,
                 precision=precision, verbose=verbose, return_X_y=return_X_y)
    n_points = C.check_int(n_points, "n_points", 4)
    n_frames = C.check_int(n_frames, "n_frames", 1)
    length = C.check_positive(length, "length")
    t_max = C.check_positive(t_max, "t_max")
    dt_max = C.check_positive(dt_max, "dt_max")
    burn_in = C.check_positive(burn_in, "burn_in", strict=False)
    gamma_range = C.check_range(gamma_range, "gamma_range")
    if gamma_range[0] <= 0:
        raise ValueError(f"gamma_range must be > 0 (gamma <= 0 is a negative viscosity), got {gamma_range}")
    gamma_std = C.check_positive(gamma_std, "gamma_std", strict=False)
    dev, rdtype, cdtype = sim.device, sim.rdtype, sim.cdtype

    def _check_gamma(g):
        if (g <= 0).any():
            raise ValueError("gamma must be > 0 (gamma <= 0 is a negative viscosity: ill-posed)")

    gamma = sim.parameter(
        gamma, "gamma", lambda rng, n: C.sample_truncnorm(rng, n, gamma_mean, gamma_std, gamma_range), _check_gamma
    )
    kr = sim.rng.uniform(4 * np.pi / length, (n_points / 8) * np.pi / length, size=sim.n_samples)

    dt = t_max / n_frames
    n_sub = C.substeps(dt, dt_max)
    h = dt / n_sub
    k = rwavenumbers(n_points, length, device=dev)
    k_deriv = k.clone()
    if n_points % 2 == 0:
        k_deriv[-1] = 0.0  # odd derivative of the Nyquist mode of a real signal
    mask = dealias_mask(k, length, n_points).to(cdtype) if dealias else None
    ik = (-0.5j * k_deriv).to(cdtype)

    def nonlinear(v):
        u = torch.fft.irfft(v, n=n_points)
        out = ik * torch.fft.rfft(u * u)
        return out * mask if mask is not None else out

    def simulate_chunk(start, stop, bar):
        u0 = gaussian_filtered_noise(sim.rng, stop - start, (n_points,), (length,), kr[start:stop]).real
        u0 -= u0.mean(axis=1, keepdims=True)
        u0 /= np.sqrt(np.mean(u0**2, axis=1, keepdims=True))
        v = torch.fft.rfft(torch.as_tensor(u0, dtype=rdtype, device=dev))
        g = torch.as_tensor(gamma[start:stop], dtype=torch.float64, device=dev)[:, None]
        L = (k**2 - g * k**4).to(torch.complex128)
        stepper = ETDRK4(L, h, nonlinear, dtype=cdtype)
        if burn_in > 0:
            n_burn = C.substeps(burn_in, dt_max)
            same = abs(burn_in / n_burn - h) < 1e-12
            stepper_b = stepper if same else ETDRK4(L, burn_in / n_burn, nonlinear, dtype=cdtype)
            v = stepper_b.advance(v, n_burn)
        frames = torch.empty((stop - start, n_frames, n_points), dtype=torch.float32, device=dev)

        def store(i, v):
            frames[:, i] = torch.fft.irfft(v, n=n_points).to(torch.float32)

        integrate_frames(lambda v: stepper.advance(v, n_sub), v, n_frames, store, bar)
        return frames

    X = sim.run(
        simulate_chunk, n_frames=n_frames, frame_shape=(n_points, 1), chunk_size=chunk_size,
        bytes_per_sample=64 * 16 * n_points * 2 + 4 * n_frames * n_points, elements_per_sample=n_points,
    )
    x = np.arange(n_points) * (length / n_points)
    return sim.finish(
        X, gamma[:, None], target_names=["gamma"], field_names=["u"], time=np.arange(n_frames) * dt,
        coords=(x,), dim_names=("x",), dt=dt, descr=_DESCR,
    )
