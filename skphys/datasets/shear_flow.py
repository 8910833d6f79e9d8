"""2-D incompressible shear flow with a passive tracer (analogue of The Well's ``shear_flow``)."""

from __future__ import annotations

import math

import numpy as np
import torch

from . import _common as C
from ._driver import Driver
from ._spectral import Spectral2D as _Spectral2D

__all__ = ["make_shear_flow"]

_DESCR = """Shear-flow trajectories (2-D incompressible Navier-Stokes + passive tracer)
============================================================================

    omega_t + u . grad omega = nu lap omega,      nu = 1 / reynolds,
    s_t + u . grad s = (nu / schmidt) lap s,       lap psi = -omega, u = (psi_y, -psi_x),

on a periodic box x in [0, Lx), y in [0, Ly) (default 1 x 1; The Well / Dedalus use Lx=1, Ly=2), solved
pseudo-spectrally (vorticity-streamfunction, 2/3 dealiasing) with integrating-factor RK4
(viscous and diffusive terms exact, CFL-limited step). Initial state as the Dedalus/The Well
shear flow: vx = 1/2 + 1/2 (tanh((y - 3Ly/4)/w) - tanh((y - Ly/4)/w)) (two opposing shear
layers, velocity jump 1), vy = a perturbation localised on the layers
(exp(-(y - y_layer)^2 / 0.01) times sinusoids in x of random phase: mode 1 with amplitude 0.1 and
modes 2-4 with random amplitudes ~ N(0, 0.02)), tracer s = 1 between the layers and 0 outside
(same tanh profile). Pressure from the pressure Poisson equation lap p = -d_i d_j (u_i u_j)
(zero mean). Fields (tracer, pressure, velocity_x, velocity_y), data (n_samples, n_frames, ny, nx, 4) float32.
Targets (reynolds, schmidt), log-uniform on ranges the grid resolves (see make_shear_flow).
"""

FIELD_NAMES = ["tracer", "pressure", "velocity_x", "velocity_y"]

#: Largest Reynolds number (and Peclet number reynolds * schmidt for the tracer) treated as
#: resolved on a grid with 64 points per unit length; it scales with (points per unit length)^2.
#: Measured with benchmarks/bench_simulators.py --resolution-study (see docs/simulators.md).
RESOLVED_RE_64 = 2000.0


def _default_reynolds_range(points_per_length):
    high = RESOLVED_RE_64 * (points_per_length / 64.0) ** 2
    return (high / 10.0, high)


def _simulate(omega_hat, s_hat, mean_u, nu, diff, grid, dt, n_frames, cfl, store, bar=None, dt_max=None):
    """Integrate the vorticity/tracer system with integrating-factor RK4 and store frames.

    ``omega_hat``, ``s_hat``: (B, ny, nx//2+1) spectra; ``mean_u``: (vx, vy) constant mean
    velocity, tensors of shape (B, 1, 1); ``nu``, ``diff``: (B, 1, 1) viscosity and tracer
    diffusivity; ``store(i, fields)`` gets (B, 4, ny, nx) real fields (tracer, pressure, vx, vy).
    Each output interval is split into equal steps with ``h <= cfl / max(|vx|/dx + |vy|/dy)``
    (evaluated at the start of the interval over the whole batch) and ``h <= dt_max``.
    """
    ny, nx = grid.shape
    dy = 2 * math.pi / (grid.ky.abs().max().item() * 2) if ny > 1 else 1.0
    dx = 2 * math.pi / (grid.kx.abs().max().item() * 2) if nx > 1 else 1.0
    state = torch.stack([omega_hat, s_hat], dim=1) * grid.mask  # (B, 2, ny, nkx)
    L = -torch.stack([nu * grid.k2, diff * grid.k2], dim=1)  # (B, 2, ny, nkx), real

    def rhs(v):
        w_hat, s_hat = v[:, 0], v[:, 1]
        vx, vy = grid.velocity(w_hat, mean_u)
        grads = grid.ifft(torch.stack([grid.ikx * w_hat, grid.iky * w_hat, grid.ikx * s_hat, grid.iky * s_hat], 1))
        adv_w = vx * grads[:, 0] + vy * grads[:, 1]
        adv_s = vx * grads[:, 2] + vy * grads[:, 3]
        return -grid.fft(torch.stack([adv_w, adv_s], 1)) * grid.mask

    def fields(v):
        vx, vy = grid.velocity(v[:, 0], mean_u)
        return torch.stack([grid.ifft(v[:, 1]), grid.pressure(vx, vy), vx, vy], dim=1)

    def advance(v, h, n):
        E = torch.exp(L * (h / 2)).to(v.dtype)
        E2 = E * E
        for _ in range(n):
            k1 = rhs(v)
            k2 = rhs(E * (v + (h / 2) * k1))
            k3 = rhs(E * v + (h / 2) * k2)
            k4 = rhs(E2 * v + h * E * k3)
            v = E2 * v + (h / 6) * (E2 * k1 + 2 * E * (k2 + k3) + k4)
        return v

    f = fields(state)
    store(0, f)
    if bar is not None:
        bar.update(1)
    for i in range(1, n_frames):
        vx, vy = f[:, 2], f[:, 3]
        rate = float((vx.abs() / dx + vy.abs() / dy).amax())
        if not math.isfinite(rate):
            raise FloatingPointError(f"the shear-flow simulation blew up before frame {i}; lower cfl")
        h_cfl = cfl / max(rate, 1e-12)
        if dt_max is not None:
            h_cfl = min(h_cfl, dt_max)
        n = max(1, math.ceil(dt / h_cfl - 1e-9))
        state = advance(state, dt / n, n)
        f = fields(state)
        store(i, f)
        if bar is not None:
            bar.update(1)
    if not bool(torch.isfinite(f).all()):
        raise FloatingPointError("the shear-flow simulation blew up; lower cfl")
    return state


def make_shear_flow(
    n_samples=100,
    *,
    reynolds=None,
    reynolds_range=None,
    schmidt=None,
    schmidt_range=(0.1, 1.0),
    n_points=(64, 64),
    extent=(1.0, 1.0),
    n_frames=100,
    t_max=20.0,
    layer_width=0.1,
    perturbation=0.1,
    cfl=0.5,
    noise=0.0,
    precision="double",
    chunk_size=None,
    random_state=None,
    device="auto",
    verbose=False,
    return_X_y=False,
):
    """Simulate 2-D shear flows (incompressible Navier-Stokes with a passive tracer).

    An analogue of The Well's ``shear_flow`` at laptop scale: two opposing tanh shear layers
    roll up into Kelvin-Helmholtz vortices that mix a passive tracer. Pseudo-spectral
    vorticity-streamfunction solver with 2/3 dealiasing and integrating-factor RK4 (exact
    viscous/diffusive factors, CFL-adaptive step). Nondimensionalised by the velocity jump (1)
    and the box width ``Lx``: viscosity ``1/reynolds``, tracer diffusivity
    ``1/(reynolds*schmidt)``.

    Parameters
    ----------
    n_samples : int, default=100
    reynolds : None, float or array-like of shape (n_samples,), default=None
        Reynolds number. None draws it log-uniformly from ``reynolds_range``.
    reynolds_range : (float, float), optional
        Default ``(Re_max / 10, Re_max)`` with ``Re_max = 2000 * (p / 64)^2``, ``p`` the grid
        points per unit length along the coarser axis (64 at the default grid: Re in [200, 2000];
        256 on The Well's (512, 256) grid over a 2 x 1 box: Re_max = 32000). These are the Reynolds numbers whose vorticity the grid resolves (measured:
        less than 1e-4 of the enstrophy in the outer third of the dealiased band, see
        docs/simulators.md). The Well's own values (1e4 to 5e5) are not resolved by a
        pseudo-spectral DNS at these grids.
    schmidt : None, float or array-like of shape (n_samples,), default=None
        Schmidt number (viscosity / tracer diffusivity). None: log-uniform on ``schmidt_range``.
    schmidt_range : (float, float), default=(0.1, 1.0)
        The tracer's finest scales are set by the Peclet number ``reynolds * schmidt``, which the
        grid resolves up to about ``Re_max``; hence Sc <= 1 by default. The Well's range
        (0.1 to 10) needs Reynolds numbers ten times below ``Re_max`` or a finer grid.
    n_points : (int, int), default=(64, 64)
        Grid ``(ny, nx)``; The Well's grid is ``(512, 256)`` in this (y, x) order.
    extent : (float, float), default=(2.0, 1.0)
        Box size ``(Ly, Lx)``; The Well's (Dedalus') box is 2 x 1 with the layers along x.
    n_frames : int, default=100
        Frames at ``0, dt, ..., (n_frames - 1) dt`` with ``dt = t_max / n_frames``.
    t_max : float, default=20.0
        The Well stores 200 frames with dt 0.1 (t_max = 20).
    layer_width : float, default=0.1
        Thickness ``w`` of the tanh shear layers (Dedalus example: 0.1).
    perturbation : float, default=0.1
        Amplitude of the mode-1 vertical-velocity perturbation that seeds the instability.
    cfl : float, default=0.5
        Time step ``h <= cfl / max(|vx|/dx + |vy|/dy)``.
    noise : float, default=0.0
        Gaussian noise added to each stored channel, with standard deviation ``noise`` times
        that channel's RMS over the whole generated dataset.
    precision : {"double", "single"}, default="double"
    chunk_size : int, optional
    random_state : int, RandomState or None
    device : str or torch.device, default="auto"
    verbose : bool, default=False
    return_X_y : bool, default=False

    Returns
    -------
    data : Bunch
        ``data`` (n_samples, n_frames, ny, nx, 4) float32, ``target`` (n_samples, 2),
        ``target_names=["reynolds", "schmidt"]``, ``field_names=["tracer", "pressure",
        "velocity_x", "velocity_y"]`` (The Well's names), ``time``, ``coords=(y, x)``, ``dim_names=("y", "x")``,
        ``boundary_conditions``, ``dt``, ``DESCR``.
    (X, y) : tuple if ``return_X_y``.

    Examples
    --------
    >>> from skphys.datasets import make_shear_flow
    >>> sf = make_shear_flow(2, n_points=(16, 8), n_frames=3, t_max=0.2, random_state=0,
    ...                      device="cpu")
    >>> sf.data.shape, sf.field_names
    ((2, 3, 16, 8, 4), ['tracer', 'pressure', 'velocity_x', 'velocity_y'])
    """
    sim = Driver("shear flow", n_samples, noise=noise, random_state=random_state, device=device,
                 precision=precision, verbose=verbose, return_X_y=return_X_y)
    n_samples = sim.n_samples
    try:
        ny, nx = n_points
    except (TypeError, ValueError) as exc:
        raise TypeError(f"n_points must be a pair (ny, nx), got {n_points!r}") from exc
    ny, nx = C.check_int(ny, "n_points[0] (ny)", 8), C.check_int(nx, "n_points[1] (nx)", 8)
    try:
        ly, lx = extent
    except (TypeError, ValueError) as exc:
        raise TypeError(f"extent must be a pair (Ly, Lx), got {extent!r}") from exc
    ly, lx = C.check_positive(ly, "extent[0] (Ly)"), C.check_positive(lx, "extent[1] (Lx)")
    n_frames = C.check_int(n_frames, "n_frames", 1)
    t_max = C.check_positive(t_max, "t_max")
    layer_width = C.check_positive(layer_width, "layer_width")
    perturbation = C.check_positive(perturbation, "perturbation", strict=False)
    cfl = C.check_positive(cfl, "cfl")
    if cfl > 2.0:
        raise ValueError(f"cfl={cfl} is beyond RK4's stability limit for advection; use <= 2 (0.5 is safe)")
    points_per_length = min(ny / ly, nx / lx)
    if reynolds_range is None:
        reynolds_range = _default_reynolds_range(points_per_length)
    reynolds_range = C.check_range(reynolds_range, "reynolds_range")
    schmidt_range = C.check_range(schmidt_range, "schmidt_range")
    if reynolds_range[0] <= 0 or schmidt_range[0] <= 0:
        raise ValueError("reynolds_range and schmidt_range must be > 0 (negative viscosity or diffusivity)")
    rng, dev, rdtype, cdtype = sim.rng, sim.device, sim.rdtype, sim.cdtype

    re = sim.loguniform(reynolds, "reynolds", reynolds_range)
    sc = sim.loguniform(schmidt, "schmidt", schmidt_range)
    # perturbation phases (mode 1..4, two layers) and amplitudes of modes 2..4
    phases = rng.uniform(0, 2 * np.pi, size=(n_samples, 2, 4))
    amps = np.concatenate(
        [np.full((n_samples, 2, 1), perturbation), rng.normal(0.0, 0.2 * perturbation, size=(n_samples, 2, 3))], axis=2
    )

    grid = _Spectral2D((ny, nx), (ly, lx), dev, rdtype, cdtype)
    y = np.arange(ny) * (ly / ny)
    x = np.arange(nx) * (lx / nx)
    y1, y2 = ly / 4, 3 * ly / 4
    dt = t_max / n_frames
    Y, Xg = np.meshgrid(y, x, indexing="ij")
    profile = 0.5 * (np.tanh((Y - y1) / layer_width) - np.tanh((Y - y2) / layer_width))  # 1 between layers

    def simulate_chunk(start, stop, bar):
        b = stop - start
        vx0 = np.broadcast_to(0.5 - profile, (b, ny, nx)).copy()
        vy0 = np.zeros((b, ny, nx))
        for layer, yl in enumerate((y1, y2)):
            envelope = np.exp(-((Y - yl) ** 2) / 0.01)
            for m in range(4):
                a = amps[start:stop, layer, m, None, None]
                ph = phases[start:stop, layer, m, None, None]
                vy0 = vy0 + a * np.sin(2 * np.pi * (m + 1) * Xg / lx + ph) * envelope
        u = torch.as_tensor(vx0, dtype=rdtype, device=dev)
        v = torch.as_tensor(vy0, dtype=rdtype, device=dev)
        mean_u = (u.mean(dim=(1, 2), keepdim=True), v.mean(dim=(1, 2), keepdim=True))
        omega_hat = grid.ikx * grid.fft(v) - grid.iky * grid.fft(u)
        s_hat = grid.fft(torch.as_tensor(np.broadcast_to(profile, (b, ny, nx)).copy(), dtype=rdtype, device=dev))
        nu = torch.as_tensor(1.0 / re[start:stop], dtype=rdtype, device=dev)[:, None, None]
        diff = nu / torch.as_tensor(sc[start:stop], dtype=rdtype, device=dev)[:, None, None]
        frames = torch.empty((b, n_frames, ny, nx, 4), dtype=torch.float32, device=dev)

        def store(i, f):
            frames[:, i] = f.movedim(1, -1).to(torch.float32)

        _simulate(omega_hat, s_hat, mean_u, nu, diff, grid, dt, n_frames, cfl, store, bar)
        return frames

    X = sim.run(
        simulate_chunk, n_frames=n_frames, frame_shape=(ny, nx, 4), chunk_size=chunk_size,
        bytes_per_sample=16 * (2 * 10 + 12) * ny * (nx // 2 + 1) + 4 * 4 * n_frames * ny * nx,
        elements_per_sample=ny * nx,
    )
    return sim.finish(
        X, np.column_stack([re, sc]), noise_scale="rms", target_names=["reynolds", "schmidt"],
        field_names=FIELD_NAMES, time=np.arange(n_frames) * dt, coords=(y, x), dim_names=("y", "x"), dt=dt,
        descr=_DESCR,
    )
