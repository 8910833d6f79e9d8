"""2-D convection-diffusion with random diffusivity and velocity (PDE-VAE paper's CD data)."""

from __future__ import annotations

import math

import numpy as np
import torch

from . import _common as C
from ._driver import Driver
from ._spectral import gaussian_filtered_noise, rwavenumbers, wavenumbers

__all__ = ["make_convection_diffusion"]

_DESCR = """Convection-diffusion trajectories
=================================

    u_t + v . grad u = D laplacian u,   (y, x) in [0, length)^2 periodic,

solved exactly in Fourier space: u_hat(k, t) = u_hat(k, 0) exp(t (-D |k|^2 - i k . v)).
Targets (D, vx, vy): D ~ normal(D_mean, D_std) truncated to D_range, vx, vy ~ N(0, velocity_std).
Initial states: complex Gaussian white noise times exp(-|k|^2/(2 kr^2)),
kr ~ U[8 pi/length, (n_points/4) pi/length], real part normalised to RMS 1.
Data: (n_samples, n_frames, n_points, n_points, 1) float32, axes (t, y, x), field "u".
Defaults are the PDE-VAE paper's: period 16 pi, 256 x 256, 64 frames over T = 4 pi,
D ~ truncnorm(0.1, 0.025) on [0, 0.2], velocity_std 0.2 (the paper's text; its code used 0.5).
"""


def make_convection_diffusion(
    n_samples=100,
    *,
    diffusivity=None,
    diffusivity_mean=0.1,
    diffusivity_std=0.025,
    diffusivity_range=(0.0, 0.2),
    velocity=None,
    velocity_std=0.2,
    length=16 * math.pi,
    n_points=256,
    n_frames=64,
    t_max=4 * math.pi,
    noise=0.0,
    precision="double",
    chunk_size=None,
    random_state=None,
    device="auto",
    verbose=False,
    return_X_y=False,
):
    """Simulate 2-D convection-diffusion ``u_t + v . grad u = D lap u`` with random D and v.

    The equation is linear, so frames are computed from the exact Fourier solution
    ``u_hat(k, t) = u_hat(k, 0) exp(t (-D |k|^2 - i k . v))`` (no time-stepping error). This is
    the CD dataset of the PDE-VAE paper; the defaults are the paper's.

    Parameters
    ----------
    n_samples : int, default=100
    diffusivity : None, float or array-like of shape (n_samples,), default=None
        Diffusion constant D >= 0. None draws it from a normal(``diffusivity_mean``,
        ``diffusivity_std``) truncated to ``diffusivity_range``.
    diffusivity_mean, diffusivity_std : float, default=0.1, 0.025
    diffusivity_range : (float, float), default=(0.0, 0.2)
        Must lie in [0, inf) (a negative D is anti-diffusion: ill-posed).
    velocity : None, array-like of shape (2,) or (n_samples, 2), default=None
        Constant velocity ``(vx, vy)``. None draws each component from N(0, ``velocity_std``).
    velocity_std : float, default=0.2
        The paper's text says 0.2; its published code used 0.5.
    length : float, default=16*pi
        Period of both axes.
    n_points : int, default=256
        Grid points per axis.
    n_frames : int, default=64
        Frames at ``0, dt, ..., (n_frames - 1) dt`` with ``dt = t_max / n_frames``.
    t_max : float, default=4*pi
    noise : float, default=0.0
        Standard deviation of Gaussian noise added to the stored data (initial states have
        RMS 1, so ``noise=0.1`` is the paper's noisy variant).
    precision : {"double", "single"}, default="double"
    chunk_size : int, optional
    random_state : int, RandomState or None
    device : str or torch.device, default="auto"
    verbose : bool, default=False
    return_X_y : bool, default=False

    Returns
    -------
    data : Bunch
        ``data`` (n_samples, n_frames, n_points, n_points, 1) float32 with axes (t, y, x),
        ``target`` (n_samples, 3), ``target_names=["D", "vx", "vy"]``, ``field_names=["u"]``,
        ``time``, ``coords=(y, x)``, ``dim_names=("y", "x")``, ``boundary_conditions``,
        ``dt``, ``DESCR``.
    (X, y) : tuple if ``return_X_y``.

    Examples
    --------
    >>> from skphys.datasets import make_convection_diffusion
    >>> cd = make_convection_diffusion(2, n_points=16, n_frames=3, random_state=0, device="cpu")
    >>> cd.data.shape, cd.target_names
    ((2, 3, 16, 16, 1), ['D', 'vx', 'vy'])
    """
    sim = Driver("convection-diffusion", n_samples, noise=noise, random_state=random_state, device=device,
                 precision=precision, verbose=verbose, return_X_y=return_X_y)
    n_samples = sim.n_samples
    n_points = C.check_int(n_points, "n_points", 4)
    n_frames = C.check_int(n_frames, "n_frames", 1)
    length = C.check_positive(length, "length")
    t_max = C.check_positive(t_max, "t_max")
    diffusivity_range = C.check_range(diffusivity_range, "diffusivity_range", lower=0.0)
    diffusivity_std = C.check_positive(diffusivity_std, "diffusivity_std", strict=False)
    velocity_std = C.check_positive(velocity_std, "velocity_std", strict=False)
    rng, dev, rdtype, cdtype = sim.rng, sim.device, sim.rdtype, sim.cdtype

    def _check_d(d):
        if (d < 0).any():
            raise ValueError("diffusivity must be >= 0 (negative diffusion is ill-posed)")

    D = sim.parameter(
        diffusivity, "diffusivity",
        lambda rng, n: C.sample_truncnorm(rng, n, diffusivity_mean, diffusivity_std, diffusivity_range), _check_d,
    )
    if velocity is None:
        vel = rng.normal(0.0, velocity_std, size=(n_samples, 2)) if velocity_std > 0 else np.zeros((n_samples, 2))
    else:
        vel = np.asarray(velocity, dtype=float)
        if vel.shape == (2,):
            vel = np.tile(vel, (n_samples, 1))
        if vel.shape != (n_samples, 2) or not np.isfinite(vel).all():
            raise ValueError(f"velocity must be finite with shape (2,) or ({n_samples}, 2), got shape {vel.shape}")
    kr = rng.uniform(8 * np.pi / length, (n_points / 4) * np.pi / length, size=n_samples)

    dt = t_max / n_frames
    times = np.arange(n_frames) * dt
    ky = wavenumbers(n_points, length, device=dev)[:, None]
    kx = rwavenumbers(n_points, length, device=dev)[None, :]
    k2 = ky**2 + kx**2

    def simulate_chunk(start, stop, bar):
        u0 = gaussian_filtered_noise(rng, stop - start, (n_points, n_points), (length, length), kr[start:stop]).real
        u0 /= np.sqrt(np.mean(u0**2, axis=(1, 2), keepdims=True))
        u0_hat = torch.fft.rfft2(torch.as_tensor(u0, dtype=rdtype, device=dev))
        d = torch.as_tensor(D[start:stop], dtype=torch.float64, device=dev)[:, None, None]
        vx = torch.as_tensor(vel[start:stop, 0], dtype=torch.float64, device=dev)[:, None, None]
        vy = torch.as_tensor(vel[start:stop, 1], dtype=torch.float64, device=dev)[:, None, None]
        symbol = -d * k2 - 1j * (kx * vx + ky * vy)  # complex128
        frames = torch.empty((stop - start, n_frames, n_points, n_points), dtype=torch.float32, device=dev)
        for i, t in enumerate(times):
            factor = torch.exp(t * symbol).to(cdtype)
            frames[:, i] = torch.fft.irfft2(u0_hat * factor, s=(n_points, n_points)).to(torch.float32)
            bar.update(1)
        return frames

    X = sim.run(
        simulate_chunk, n_frames=n_frames, frame_shape=(n_points, n_points, 1), chunk_size=chunk_size,
        bytes_per_sample=16 * 4 * n_points * n_points + 4 * n_frames * n_points**2,
        elements_per_sample=n_points * n_points,
    )
    coord = np.arange(n_points) * (length / n_points)
    return sim.finish(
        X, np.column_stack([D, vel]), target_names=["D", "vx", "vy"], field_names=["u"], time=times,
        coords=(coord, coord), dim_names=("y", "x"), dt=dt, descr=_DESCR,
    )
