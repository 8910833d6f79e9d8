"""2-D Rayleigh-Benard convection between no-slip walls (analogue of The Well's ``rayleigh_benard``)."""

from __future__ import annotations

import math

import numpy as np
import torch

from . import _common as C
from ._chebyshev import chebyshev_matrix, chebyshev_points, clenshaw_curtis_weights, interpolation_matrix
from ._driver import Driver
from ._spectral import dealias_mask, rwavenumbers

__all__ = ["make_rayleigh_benard"]

_DESCR = """Rayleigh-Benard trajectories (2-D Boussinesq convection between no-slip walls)
==============================================================================

    u_t + u . grad u = -grad p + nu lap u + b e_y,     div u = 0,
    b_t + u . grad b = kappa lap b,                     nu = (Ra / Pr)^(-1/2), kappa = (Ra Pr)^(-1/2),

in free-fall units (layer height 1, buoyancy jump 1) on x in [0, Lx) periodic (default Lx = 4, as
The Well), y in [0, 1] with no-slip walls u = 0 and fixed buoyancy b = 1 (bottom), b = 0 (top).
Solved as in The Well's Dedalus runs with a Fourier (x) x Chebyshev (y) spectral method, here in
streamfunction form (u = psi_y, v = -psi_x, clamped walls psi = psi_y = 0 by boundary-row
replacement; the x-mean flow is evolved as its own Dirichlet problem) with the 3rd-order
implicit-explicit Runge-Kutta scheme ARS(4,4,3) (diffusion implicit, advection and buoyancy
explicit, CFL-adaptive step). Pressure from the Poisson equation lap p = -div(u . grad u) + b_y
with the wall-normal momentum balance as Neumann condition (zero mean). Initial state: the
conductive profile b = 1 - y plus a smooth random perturbation of RMS ``perturbation``.
Fields (buoyancy, pressure, velocity_x, velocity_y) interpolated to a uniform grid whose first
and last rows are the walls; data (n_samples, n_frames, ny, nx, 4) float32.
Targets (rayleigh, prandtl), log-uniform on ranges the grid resolves (see make_rayleigh_benard).
"""

FIELD_NAMES = ["buoyancy", "pressure", "velocity_x", "velocity_y"]

#: Largest Rayleigh number treated as resolved by the default grid (ny, nx) = (32, 128) over
#: Lx = 4: measured with benchmarks/bench_simulators.py --rb-resolution (docs/simulators.md).
#: It is raised with the resolution as (ny / 32)^4 (boundary layers thin as Ra^(-1/4) or faster).
RESOLVED_RA_32 = 1e5

# ARS(4,4,3) (Ascher, Ruuth & Spiteri 1997): implicit tableau (all diagonal entries 1/2) and the
# explicit one; stage 4 is the step's result (stiffly accurate).
_A_IMP = np.array(
    [[0, 0, 0, 0, 0], [0, 1 / 2, 0, 0, 0], [0, 1 / 6, 1 / 2, 0, 0], [0, -1 / 2, 1 / 2, 1 / 2, 0], [0, 3 / 2, -3 / 2, 1 / 2, 1 / 2]]
)
_A_EXP = np.array(
    [[0, 0, 0, 0, 0], [1 / 2, 0, 0, 0, 0], [11 / 18, 1 / 18, 0, 0, 0], [5 / 6, -5 / 6, 1 / 2, 0, 0], [1 / 4, 7 / 4, 3 / 4, -7 / 4, 0]]
)


def _default_rayleigh_range(ny):
    high = RESOLVED_RA_32 * (ny / 32.0) ** 4
    return (high / 10.0, high)


class _RBSolver:
    """Fourier-Chebyshev solver of 2-D Boussinesq convection for a batch of (nu, kappa).

    The state is a tuple ``(psi, theta)`` of spectra of shape ``(B, nz, nkx)`` (Chebyshev points
    along axis 1, index 0 at the top wall z=1; rfft modes along axis 2): the streamfunction
    (column ``kx = 0`` holds the mean horizontal velocity ``ubar(z)`` instead) and the buoyancy
    deviation ``theta = b - (1 - z)`` from the conductive profile.
    """

    def __init__(self, nz, nx, lx, nu, kappa, device, rdtype, cdtype):
        n = nz - 1
        self.nz, self.nx, self.lx = nz, nx, lx
        self.device, self.rdtype, self.cdtype = device, rdtype, cdtype
        self.z_np = (chebyshev_points(n) + 1) / 2
        D = 2 * chebyshev_matrix(n)  # d/dz on z = (x + 1) / 2
        # powers 0..4 of d/dz: float64 for building the implicit matrices, working precision to apply
        self.D64 = [torch.as_tensor(np.linalg.matrix_power(D, p), dtype=torch.float64, device=device) for p in range(5)]
        self.Dc = [m.to(cdtype) for m in self.D64]
        self.weights = torch.as_tensor(clenshaw_curtis_weights(n) / 2, dtype=rdtype, device=device)  # int_0^1
        self.z = torch.as_tensor(self.z_np, dtype=rdtype, device=device)
        k = rwavenumbers(nx, lx, device=device).to(rdtype)
        self.k = k
        self.ik = (1j * k).to(cdtype)
        self.k2 = (k**2).to(cdtype)
        self.mask = dealias_mask(k, lx, nx).to(cdtype)
        self.meanc = torch.zeros(k.shape[0], dtype=cdtype, device=device)
        self.meanc[0] = 1.0  # selects the kx = 0 column
        self.nu = torch.as_tensor(nu, dtype=torch.float64, device=device).reshape(-1)
        self.kappa = torch.as_tensor(kappa, dtype=torch.float64, device=device).reshape(-1)
        self._inverses = {}
        self._pressure_inverse = None

    # -- spectral helpers -------------------------------------------------------------
    def dz(self, f, p=1):
        return torch.matmul(self.Dc[p], f)

    def to_grid(self, f):
        return torch.fft.irfft(f, n=self.nx, dim=-1)

    def to_spec(self, f):
        return torch.fft.rfft(f, dim=-1)

    def velocity_spec(self, psi):
        """(u_hat, w_hat) from the state's first component."""
        u = self.dz(psi) * (1 - self.meanc) + psi * self.meanc
        w = -self.ik * psi * (1 - self.meanc)
        return u, w

    def vorticity_spec(self, psi):
        lap = self.dz(psi, 2) - self.k2 * psi
        return lap * (1 - self.meanc) + self.dz(psi) * self.meanc

    # -- operators ----------------------------------------------------------------------
    def mass(self, state):
        psi, th = state
        lap = self.dz(psi, 2) - self.k2 * psi
        return lap * (1 - self.meanc) + psi * self.meanc, th

    def linear(self, state):
        psi, th = state
        nu = self.nu.to(self.rdtype)[:, None, None]
        ka = self.kappa.to(self.rdtype)[:, None, None]
        lap2 = self.dz(psi, 4) - 2 * self.k2 * self.dz(psi, 2) + self.k2**2 * psi
        lpsi = nu * (lap2 * (1 - self.meanc) + self.dz(psi, 2) * self.meanc)
        lth = ka * (self.dz(th, 2) - self.k2 * th)
        return lpsi, lth

    def nonlinear(self, state):
        psi, th = state
        u_hat, w_hat = self.velocity_spec(psi)
        om_hat = self.vorticity_spec(psi)
        g = self.to_grid(
            torch.stack(
                [u_hat, w_hat, self.ik * om_hat, self.dz(om_hat), self.ik * th, self.dz(th), self.ik * u_hat,
                 self.dz(u_hat)], dim=1,
            )
        )
        u, w = g[:, 0], g[:, 1]
        adv_om = u * g[:, 2] + w * g[:, 3]
        adv_th = u * g[:, 4] + w * g[:, 5]
        adv_u = u * g[:, 6] + w * g[:, 7]
        s = self.to_spec(torch.stack([adv_om, adv_th, adv_u], dim=1)) * self.mask
        n_psi = -s[:, 0] * (1 - self.meanc) - s[:, 2] * self.meanc - self.ik * th
        n_th = -s[:, 1] + w_hat
        return n_psi, n_th

    def _solvers(self, h):
        key = round(h, 15)
        if key not in self._inverses:
            if len(self._inverses) >= 8:  # the step changes with the flow; keep the few recent ones
                self._inverses.clear()
            self._inverses[key] = self._build(h)
        return self._inverses[key]

    def _build(self, h):
        """Inverses of the stage matrices M - (h/2) L with boundary rows, shape (B, nkx, nz, nz)."""
        n = self.nz - 1
        D = self.D64
        k2 = (self.k.to(torch.float64) ** 2)[None, :, None, None]
        nu = self.nu[:, None, None, None]
        ka = self.kappa[:, None, None, None]
        gam = _A_IMP[1, 1]
        # streamfunction (kx != 0): M = D2 - k2, L = nu (D2 - k2)^2; rows 0, n: psi = 0, rows 1, n-1: psi_z = 0
        I = D[0]
        M = D[2] - k2 * I
        L = nu * (D[4] - 2 * k2 * D[2] + k2**2 * I)
        A = M - h * gam * L
        A = A.clone()
        A[..., 0, :] = I[0]
        A[..., n, :] = I[n]
        A[..., 1, :] = D[1][0]
        A[..., n - 1, :] = D[1][n]
        # mean flow (kx = 0): ubar_t = nu ubar_zz + ..., ubar = 0 at both walls
        A0 = I - h * gam * self.nu[:, None, None] * D[2]
        A0 = A0.clone()
        A0[:, 0, :] = I[0]
        A0[:, n, :] = I[n]
        A[:, 0] = A0
        At = (I - h * gam * ka * (D[2] - k2 * I)).clone()
        At[..., 0, :] = I[0]
        At[..., n, :] = I[n]
        inv = torch.linalg.inv(A).to(self.cdtype)
        inv_t = torch.linalg.inv(At).to(self.cdtype)
        return inv, inv_t

    def _solve(self, inv, rhs, psi_rows):
        rhs = rhs.clone()
        rhs[:, psi_rows, :] = 0
        return torch.einsum("bkij,bjk->bik", inv, rhs)

    def step(self, state, h):
        """One ARS(4,4,3) step of size h."""
        inv, inv_t = self._solvers(h)
        n = self.nz - 1
        mx0 = self.mass(state)
        nl = [self.nonlinear(state)]
        lin = [None]
        x = state
        for i in range(1, 5):
            rp = mx0[0].clone()
            rt = mx0[1].clone()
            for j in range(i):
                if _A_EXP[i, j]:
                    rp = rp + (h * _A_EXP[i, j]) * nl[j][0]
                    rt = rt + (h * _A_EXP[i, j]) * nl[j][1]
                if j >= 1 and _A_IMP[i, j]:
                    rp = rp + (h * _A_IMP[i, j]) * lin[j][0]
                    rt = rt + (h * _A_IMP[i, j]) * lin[j][1]
            # kx = 0 column of the psi system holds ubar: boundary rows 0 and n only
            rp[:, [0, n], :] = 0
            rp[:, [1, n - 1], 1:] = 0
            psi = torch.einsum("bkij,bjk->bik", inv, rp)
            th = self._solve(inv_t, rt, [0, n])
            x = (psi, th)
            if i < 4:
                lin.append(self.linear(x))
                nl.append(self.nonlinear(x))
        return x

    # -- diagnostics ------------------------------------------------------------------------
    def grid_fields(self, state):
        """(b, p, u, w) on the Chebyshev x Fourier grid, shape (B, 4, nz, nx)."""
        psi, th = state
        u_hat, w_hat = self.velocity_spec(psi)
        b_hat = th + ((1 - self.z)[:, None] * self.meanc * self.nx).to(self.cdtype)
        return torch.stack(
            [self.to_grid(b_hat), self.to_grid(self.pressure_spec(state)), self.to_grid(u_hat), self.to_grid(w_hat)], 1
        )

    def pressure_spec(self, state):
        """Zero-mean pressure from lap p = -div(u . grad u) + b_z, Neumann walls."""
        psi, th = state
        n = self.nz - 1
        if self._pressure_inverse is None:
            D = self.D64
            k2 = (self.k.to(torch.float64) ** 2)[:, None, None]
            P = (D[2] - k2 * D[0]).clone()
            P[:, 0, :] = D[1][0]
            P[:, n, :] = D[1][n]
            P0 = D[1].clone()
            P0[0] = torch.as_tensor(clenshaw_curtis_weights(n), dtype=torch.float64, device=self.device)
            P[0] = P0
            self._pressure_inverse = torch.linalg.inv(P).to(self.cdtype)
        u_hat, w_hat = self.velocity_spec(psi)
        g = self.to_grid(torch.stack([u_hat, w_hat, self.ik * u_hat, self.dz(u_hat), self.ik * w_hat, self.dz(w_hat)], 1))
        u, w = g[:, 0], g[:, 1]
        s = self.to_spec(torch.stack([u * g[:, 2] + w * g[:, 3], u * g[:, 4] + w * g[:, 5], w * w], 1)) * self.mask
        a_hat, c_hat, ww_hat = s[:, 0], s[:, 1], s[:, 2]
        b_hat = th + ((1 - self.z)[:, None] * self.meanc * self.nx).to(self.cdtype)
        rhs = -(self.ik * a_hat + self.dz(c_hat)) + self.dz(b_hat)
        nu = self.nu.to(self.rdtype)[:, None]
        wzz = self.dz(w_hat, 2)
        rhs = rhs.clone()
        rhs[:, 0, :] = nu * wzz[:, 0, :] + b_hat[:, 0, :]
        rhs[:, n, :] = nu * wzz[:, n, :] + b_hat[:, n, :]
        # kx = 0: p_z = b - (w^2)_z, zero mean
        rhs[:, :, 0] = b_hat[:, :, 0] - self.dz(ww_hat[:, :, 0:1])[:, :, 0]
        rhs[:, 0, 0] = 0
        return torch.einsum("kij,bjk->bik", self._pressure_inverse, rhs)

    def initial_state(self, theta_grid):
        """State at rest with buoyancy deviation ``theta_grid`` (B, nz, nx) (zero at the walls)."""
        th = self.to_spec(torch.as_tensor(theta_grid, dtype=self.rdtype, device=self.device))
        return torch.zeros_like(th), th

    def max_rate(self, f):
        """CFL rate max(|u|/dx + |w|/dz_local) over the batch from grid fields (B, 4, nz, nx)."""
        dx = self.lx / self.nx
        zz = self.z_np
        dzl = np.empty_like(zz)
        dzl[1:-1] = (zz[:-2] - zz[2:]) / 2
        dzl[0] = zz[0] - zz[1]
        dzl[-1] = zz[-2] - zz[-1]
        dz = torch.as_tensor(dzl, dtype=f.dtype, device=f.device)[:, None]
        return float((f[:, 2].abs() / dx + f[:, 3].abs() / dz).amax())


def _perturbation_field(coef, amplitude, z, x, lx):
    """sum_{m, n} (a cos + b sin)(2 pi m x / Lx) sin(pi n z), scaled to RMS ``amplitude``."""
    _, _, mx, mz = coef.shape
    m = np.arange(1, mx + 1)
    nn = np.arange(1, mz + 1)
    cx = np.cos(2 * np.pi * m[:, None] * x[None, :] / lx)  # (mx, nx)
    sx = np.sin(2 * np.pi * m[:, None] * x[None, :] / lx)
    sz = np.sin(np.pi * nn[:, None] * z[None, :])  # (mz, nz)
    f = np.einsum("bmn,nz,mx->bzx", coef[:, 0], sz, cx) + np.einsum("bmn,nz,mx->bzx", coef[:, 1], sz, sx)
    # exact RMS of the continuous field: each (m, n) term has mean square (a^2 + b^2) / 4
    rms = np.sqrt((coef**2).sum(axis=(1, 2, 3)) / 4)
    return f * (amplitude / rms)[:, None, None]


def _simulate(solver, state, dt, n_frames, cfl, dt_max, store, bar=None):
    """Integrate ``n_frames - 1`` output intervals of length ``dt``; ``store(i, grid_fields)``."""
    f = solver.grid_fields(state)
    store(0, f)
    if bar is not None:
        bar.update(1)
    for i in range(1, n_frames):
        rate = solver.max_rate(f)
        if not math.isfinite(rate):
            raise FloatingPointError(f"the Rayleigh-Benard simulation blew up before frame {i}; lower cfl or dt_max")
        h = min(dt_max, cfl / max(rate, 1e-12))
        n = max(1, math.ceil(dt / h - 1e-9))
        for _ in range(n):
            state = solver.step(state, dt / n)
        f = solver.grid_fields(state)
        store(i, f)
        if bar is not None:
            bar.update(1)
    if not bool(torch.isfinite(f).all()):
        raise FloatingPointError("the Rayleigh-Benard simulation blew up; lower cfl or dt_max")
    return state


def make_rayleigh_benard(
    n_samples=100,
    *,
    rayleigh=None,
    prandtl=None,
    rayleigh_range=None,
    prandtl_range=(0.1, 10.0),
    n_points=(32, 128),
    n_chebyshev=None,
    length=4.0,
    n_frames=100,
    t_max=50.0,
    perturbation=1e-3,
    cfl=0.4,
    dt_max=0.1,
    noise=0.0,
    precision="double",
    chunk_size=None,
    random_state=None,
    device="auto",
    verbose=False,
    return_X_y=False,
):
    """Simulate 2-D Rayleigh-Benard convection between no-slip, fixed-buoyancy walls.

    An analogue of The Well's ``rayleigh_benard`` at laptop scale: a fluid layer heated from
    below (buoyancy 1 at the bottom wall, 0 at the top), periodic in x, starts at rest with the
    conductive profile plus a small perturbation, becomes unstable when the Rayleigh number
    exceeds 1707.76 and convects in plumes and rolls. Fourier (x) x Chebyshev (y) spectral
    solver with the implicit-explicit Runge-Kutta scheme ARS(4,4,3), in free-fall units (layer
    height 1, buoyancy jump 1): viscosity ``(Ra/Pr)^(-1/2)``, diffusivity ``(Ra Pr)^(-1/2)``.
    See docs/simulators.md for the method, its checks and the resolved ranges.

    Parameters
    ----------
    n_samples : int, default=100
    rayleigh : None, float or array-like of shape (n_samples,), default=None
        Rayleigh number. None draws it log-uniformly from ``rayleigh_range``.
    prandtl : None, float or array-like of shape (n_samples,), default=None
        Prandtl number. None draws it log-uniformly from ``prandtl_range``.
    rayleigh_range : (float, float), optional
        Default ``(Ra_max / 10, Ra_max)`` with ``Ra_max = 1e5 (ny / 32)^4``: the Rayleigh
        numbers the default grid resolves (Nusselt number within 1% of a twice finer grid, see
        docs/simulators.md). The Well's (1e6 to 1e10) need ny >= 64 and correspondingly finer x.
    prandtl_range : (float, float), default=(0.1, 10.0)
        The Well's range.
    n_points : (int, int), default=(32, 128)
        Output grid ``(ny, nx)``: ``ny`` uniformly spaced rows from the bottom wall (y=0) to the
        top wall (y=1), ``nx`` periodic columns. The Well's grid is (128, 512) in this order.
    n_chebyshev : int, optional
        Chebyshev points of the solver in y (default ``ny``); the output is the exact
        polynomial interpolant on the uniform rows.
    length : float, default=4.0
        Period ``Lx`` (The Well: 4).
    n_frames : int, default=100
        Frames at ``0, dt, ..., (n_frames - 1) dt`` with ``dt = t_max / n_frames``.
    t_max : float, default=50.0
        The Well stores 200 frames over 50 free-fall times.
    perturbation : float, default=1e-3
        RMS of the initial buoyancy perturbation, a random sum of modes
        ``cos/sin(2 pi m x / Lx) sin(pi n y)``, ``m <= 8``, ``n <= 4`` (zero at the walls).
    cfl : float, default=0.4
        Step ``h <= cfl / max(|u|/dx + |v|/dy)`` with the local Chebyshev spacing ``dy``.
    dt_max : float, default=0.1
        Largest step (bounds the explicit buoyancy coupling while the fluid is at rest).
    noise : float, default=0.0
        Gaussian noise added to each stored channel with standard deviation ``noise`` times that
        channel's RMS over the dataset.
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
        ``target_names=["rayleigh", "prandtl"]``, ``field_names=["buoyancy", "pressure",
        "velocity_x", "velocity_y"]``, ``time``, ``coords=(y, x)``, ``dim_names=("y", "x")``,
        ``boundary_conditions={"y": "wall", "x": "periodic"}``, ``dt``, ``DESCR``.
    (X, y) : tuple if ``return_X_y``.

    Examples
    --------
    >>> from skphys.datasets import make_rayleigh_benard
    >>> rb = make_rayleigh_benard(2, n_points=(9, 16), n_frames=3, t_max=1.0, rayleigh=3000.0,
    ...                           random_state=0, device="cpu")
    >>> rb.data.shape, rb.field_names
    ((2, 3, 9, 16, 4), ['buoyancy', 'pressure', 'velocity_x', 'velocity_y'])
    >>> rb.boundary_conditions
    {'y': 'wall', 'x': 'periodic'}
    """
    sim = Driver("Rayleigh-Benard", n_samples, noise=noise, random_state=random_state, device=device,
                 precision=precision, verbose=verbose, return_X_y=return_X_y)
    try:
        ny, nx = n_points
    except (TypeError, ValueError) as exc:
        raise TypeError(f"n_points must be a pair (ny, nx), got {n_points!r}") from exc
    ny, nx = C.check_int(ny, "n_points[0] (ny)", 5), C.check_int(nx, "n_points[1] (nx)", 4)
    nz = ny if n_chebyshev is None else C.check_int(n_chebyshev, "n_chebyshev", 5)
    length = C.check_positive(length, "length")
    n_frames = C.check_int(n_frames, "n_frames", 1)
    t_max = C.check_positive(t_max, "t_max")
    perturbation = C.check_positive(perturbation, "perturbation", strict=False)
    cfl = C.check_positive(cfl, "cfl")
    if cfl > 1.5:
        raise ValueError(f"cfl={cfl} is beyond the explicit advection's stability limit; use <= 1.5 (0.4 is safe)")
    dt_max = C.check_positive(dt_max, "dt_max")
    if rayleigh_range is None:
        rayleigh_range = _default_rayleigh_range(nz)
    rayleigh_range = C.check_range(rayleigh_range, "rayleigh_range")
    prandtl_range = C.check_range(prandtl_range, "prandtl_range")
    if rayleigh_range[0] <= 0 or prandtl_range[0] <= 0:
        raise ValueError("rayleigh_range and prandtl_range must be > 0")
    ra = sim.loguniform(rayleigh, "rayleigh", rayleigh_range)
    pr = sim.loguniform(prandtl, "prandtl", prandtl_range)
    # coefficients of the initial perturbation (modes m <= 8 in x, n <= 4 in y; grid independent)
    coef = sim.rng.standard_normal((sim.n_samples, 2, 8, 4))

    x = np.arange(nx) * (length / nx)
    y = np.linspace(0.0, 1.0, ny)
    dt = t_max / n_frames
    interp = torch.as_tensor(interpolation_matrix(nz - 1, 2 * y - 1), dtype=sim.rdtype, device=sim.device)
    z_cheb = (chebyshev_points(nz - 1) + 1) / 2

    def simulate_chunk(start, stop, bar):
        nu, ka = np.sqrt(pr[start:stop] / ra[start:stop]), 1.0 / np.sqrt(ra[start:stop] * pr[start:stop])
        solver = _RBSolver(nz, nx, length, nu, ka, sim.device, sim.rdtype, sim.cdtype)
        state = solver.initial_state(_perturbation_field(coef[start:stop], perturbation, z_cheb, x, length))
        frames = torch.empty((stop - start, n_frames, ny, nx, 4), dtype=torch.float32, device=sim.device)

        def store(i, f):
            frames[:, i] = torch.einsum("yz,bczx->byxc", interp, f).to(torch.float32)

        _simulate(solver, state, dt, n_frames, cfl, dt_max, store, bar)
        return frames

    X = sim.run(
        simulate_chunk, n_frames=n_frames, frame_shape=(ny, nx, 4), chunk_size=chunk_size,
        bytes_per_sample=16 * 40 * nz * (nx // 2 + 1) + 16 * 2 * (nx // 2 + 1) * nz * nz + 16 * n_frames * ny * nx,
        elements_per_sample=nz * nx,
    )
    return sim.finish(
        X, np.column_stack([ra, pr]), noise_scale="rms", target_names=["rayleigh", "prandtl"],
        field_names=FIELD_NAMES, time=np.arange(n_frames) * dt, coords=(y, x), dim_names=("y", "x"), dt=dt,
        descr=_DESCR, boundary_conditions={"y": "wall", "x": "periodic"},
    )
