"""1-D cubic nonlinear Schrodinger equation with a varying nonlinearity (PDE-VAE paper's NLS data)."""

from __future__ import annotations

import math

import numpy as np
import torch

from . import _common as C
from ._driver import Driver
from ._spectral import ETDRK4, dealias_mask, gaussian_filtered_noise, integrate_frames, wavenumbers

__all__ = ["make_nonlinear_schrodinger"]

_DESCR = """Nonlinear Schrodinger trajectories
==================================

    i psi_t = -1/2 psi_xx + kappa |psi|^2 psi,   x in [0, length) periodic,

i.e. in Fourier space ``dpsi/dt = -1/2 i k^2 psi + N(psi)``, ``N = -i kappa FFT(|psi|^2 psi)``,
integrated with ETDRK4 (Kassam-Trefethen contour coefficients on the full circle, 64 points).
kappa < 0 is focusing. ``kappa`` (target) is drawn from a normal(kappa_mean, kappa_std)
truncated to kappa_range. Initial states: complex Gaussian white noise times
exp(-k^2/(2 kr^2)), kr ~ U[4 pi/length, (n_points/8) pi/length], normalised to RMS |psi| =
sqrt(2) (so each of Re, Im has mean square 1 on average). Data: (n_samples, n_frames, n_points, 2)
float32, fields ("re", "im"). Defaults are the PDE-VAE paper's: period 8 pi, 256 points,
256 frames over T = pi, kappa ~ truncnorm(-1, 0.25) on [-2, 0].
"""


def make_nonlinear_schrodinger(
    n_samples=100,
    *,
    kappa=None,
    kappa_mean=-1.0,
    kappa_std=0.25,
    kappa_range=(-2.0, 0.0),
    length=8 * math.pi,
    n_points=256,
    n_frames=256,
    t_max=math.pi,
    dt_max=math.pi / 1024,
    oversample=2,
    nonlinear_step=0.1,
    dealias=False,
    noise=0.0,
    precision="double",
    chunk_size=None,
    random_state=None,
    device="auto",
    verbose=False,
    return_X_y=False,
):
    """Simulate the 1-D cubic nonlinear Schrodinger equation with a random nonlinearity.

    ``i psi_t = -1/2 psi_xx + kappa |psi|^2 psi`` on a periodic domain, solved
    pseudo-spectrally with ETDRK4. This is the NLS dataset of the PDE-VAE paper; the defaults
    are the paper's.

    Parameters
    ----------
    n_samples : int, default=100
        Number of trajectories.
    kappa : None, float or array-like of shape (n_samples,), default=None
        Nonlinearity coefficient (negative: focusing). None draws it from a normal distribution
        with ``kappa_mean``, ``kappa_std`` truncated to ``kappa_range``.
    kappa_mean, kappa_std : float, default=-1.0, 0.25
    kappa_range : (float, float), default=(-2.0, 0.0)
    length : float, default=8*pi
        Period of the domain.
    n_points : int, default=256
    n_frames : int, default=256
        Stored frames at ``0, dt, ..., (n_frames - 1) dt`` with ``dt = t_max / n_frames``.
    t_max : float, default=pi
    dt_max : float, default=pi/1024
        Largest internal ETDRK4 step (a quarter of the default ``dt``); see ``nonlinear_step``.
    oversample : int, default=2
        The equation is solved on ``oversample * n_points`` points and every ``oversample``-th
        point is stored (the paper also solved on a finer mesh). Focusing trajectories
        (kappa near -2) form peaks of amplitude ~8 and width ~0.1 that 256 points over 8 pi do
        not resolve; 512 do (see docs/simulators.md).
    nonlinear_step : float, default=0.1
        Adaptive step control: each output interval is split into equal steps no larger than
        ``nonlinear_step / max(|kappa| |psi|^2)`` (maximum over the chunk, re-evaluated every
        frame), and no larger than ``dt_max``. Focusing trajectories that form tall peaks get
        smaller steps.
    dealias : bool, default=False
        Zero the top third of the modes of the nonlinear term.
    noise : float, default=0.0
        Standard deviation of Gaussian noise added to each stored channel (each channel has
        mean square 1 at t=0 on average, so ``noise=0.1`` is the paper's noisy variant).
    precision : {"double", "single"}, default="double"
    chunk_size : int, optional
    random_state : int, RandomState or None
    device : str or torch.device, default="auto"
    verbose : bool, default=False
    return_X_y : bool, default=False

    Returns
    -------
    data : Bunch
        ``data`` (n_samples, n_frames, n_points, 2) float32 (real and imaginary parts),
        ``target`` (n_samples, 1), ``target_names=["kappa"]``, ``field_names=["re", "im"]``,
        ``time``, ``coords=(x,)``, ``dim_names=("x",)``, ``boundary_conditions``, ``dt``,
        ``DESCR``.
    (X, y) : tuple if ``return_X_y``.

    Examples
    --------
    >>> from skphys.datasets import make_nonlinear_schrodinger
    >>> X, y = make_nonlinear_schrodinger(3, n_points=32, n_frames=4, t_max=0.1,
    ...                                   random_state=0, device="cpu", return_X_y=True)
    >>> X.shape, y.shape
    ((3, 4, 32, 2), (3, 1))
    """
    sim = Driver("nonlinear Schrodinger", n_samples, noise=noise, random_state=random_state, device=device,
                 precision=precision, verbose=verbose, return_X_y=return_X_y)
    n_points = C.check_int(n_points, "n_points", 4)
    oversample = C.check_int(oversample, "oversample", 1)
    n_sim = n_points * oversample
    n_frames = C.check_int(n_frames, "n_frames", 1)
    length = C.check_positive(length, "length")
    t_max = C.check_positive(t_max, "t_max")
    dt_max = C.check_positive(dt_max, "dt_max")
    nonlinear_step = C.check_positive(nonlinear_step, "nonlinear_step")
    kappa_range = C.check_range(kappa_range, "kappa_range")
    kappa_std = C.check_positive(kappa_std, "kappa_std", strict=False)
    dev, rdtype, cdtype = sim.device, sim.rdtype, sim.cdtype

    kappa = sim.parameter(kappa, "kappa", lambda rng, n: C.sample_truncnorm(rng, n, kappa_mean, kappa_std, kappa_range))
    kr = sim.rng.uniform(4 * np.pi / length, (n_points / 8) * np.pi / length, size=sim.n_samples)

    dt = t_max / n_frames
    n_sub = C.substeps(dt, dt_max)
    k = wavenumbers(n_sim, length, device=dev)
    L = (-0.5j * k**2).to(torch.complex128)
    mask = dealias_mask(k, length, n_sim).to(cdtype) if dealias else None
    steppers = {}

    def simulate_chunk(start, stop, bar):
        psi0 = gaussian_filtered_noise(sim.rng, stop - start, (n_points,), (length,), kr[start:stop], out_shape=(n_sim,))
        psi0 *= np.sqrt(2.0 / np.mean(np.abs(psi0) ** 2, axis=1, keepdims=True))
        v = torch.fft.fft(torch.as_tensor(psi0, dtype=cdtype, device=dev))
        mikappa = (-1j * torch.as_tensor(kappa[start:stop], dtype=torch.float64, device=dev)[:, None]).to(cdtype)

        def nonlinear(v):
            psi = torch.fft.ifft(v)
            out = mikappa * torch.fft.fft(psi * (psi.real**2 + psi.imag**2))
            return out * mask if mask is not None else out

        absk_t = torch.as_tensor(np.abs(kappa[start:stop]), dtype=rdtype, device=dev)

        def advance(v):
            # step size adapted to the stiffest nonlinear rate |kappa| max|psi|^2 of the chunk
            psi = torch.fft.ifft(v)
            rate = float((absk_t * (psi.real**2 + psi.imag**2).amax(dim=-1)).max())
            if not math.isfinite(rate) or dt * rate / nonlinear_step > 1e5:
                raise FloatingPointError(
                    "the simulation blew up (|psi| became huge or not finite); use a smaller dt_max or "
                    "nonlinear_step, or a finer grid"
                )
            n = max(n_sub, math.ceil(dt * rate / nonlinear_step - 1e-9))
            if n not in steppers:
                steppers[n] = ETDRK4(L, dt / n, None, dtype=cdtype)
            steppers[n].nonlinear = nonlinear
            return steppers[n].advance(v, n)

        frames = torch.empty((stop - start, n_frames, n_points, 2), dtype=torch.float32, device=dev)

        def store(i, v):
            frames[:, i] = torch.view_as_real(torch.fft.ifft(v)[:, ::oversample]).to(torch.float32)

        integrate_frames(advance, v, n_frames, store, bar)
        return frames

    X = sim.run(
        simulate_chunk, n_frames=n_frames, frame_shape=(n_points, 2), chunk_size=chunk_size,
        bytes_per_sample=16 * 16 * n_sim + 8 * n_frames * n_points, elements_per_sample=n_sim,
    )
    x = np.arange(n_points) * (length / n_points)
    return sim.finish(
        X, kappa[:, None], target_names=["kappa"], field_names=["re", "im"], time=np.arange(n_frames) * dt,
        coords=(x,), dim_names=("x",), dt=dt, descr=_DESCR,
    )
