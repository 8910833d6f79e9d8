"""2-D active rod suspension in Stokes flow, moment model (analogue of The Well's ``active_matter``)."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.special import ive

from . import _common as C
from ._driver import Driver
from ._spectral import ETDRK4, Spectral2D, gaussian_filtered_noise

__all__ = ["make_active_matter", "linear_growth_rate"]

_DESCR = """Active-matter trajectories (2-D kinetic theory of active rods in Stokes flow, moment form)
==========================================================================================

Moments of the orientation distribution Psi(x, p, t) of immotile active rods (Saintillan &
Shelley's kinetic theory): concentration c = <1>, second moment D = <p p> (Tr D = c), in a
periodic box [0, L)^2 (default L = 10, as The Well):

    c_t + div(u c) = d_T lap c,
    D_t + div(u D) - (grad u . D + D . grad u^T) + 2 S:E
        = 4 zeta (D . D - S:D) - 4 d_R (D - c I / 2) + d_T lap D,
    -lap u + grad q = div Sigma,  div u = 0,
    Sigma = alpha D + beta S:E - 2 zeta beta (D . D - S:D),

with E the strain rate, (grad u)_ij = d_j u_i, and the fourth moment S closed by the Bingham
closure (exact in 2-D through Bessel-function ratios: the distribution is taken as
exp(kappa cos 2(theta - phi)) with the same second moment). alpha < 0: pushers (active dipole
strength), zeta: steric alignment (Maier-Saupe), beta: constraint-stress coefficient.
Pseudo-spectral (2/3 dealiasing), ETDRK4 on the diffusion / rotational relaxation, the Stokes
problem solved in Fourier space with the linear part of the constraint stress implicit and the
rest by fixed-point iteration. c and the deviatoric part of D are evolved, so Tr D = c exactly.
Initial state: isotropic (c = 1, D = I/2) plus band-limited random perturbations of c and of the
deviatoric part of D. Fields (concentration, velocity_x, velocity_y, D_xx, D_xy, D_yx, D_yy,
E_xx, E_xy, E_yx, E_yy), data (n_samples, n_frames, n, n, 11) float32. Targets (alpha, zeta).
"""

FIELD_NAMES = [
    "concentration", "velocity_x", "velocity_y", "D_xx", "D_xy", "D_yx", "D_yy", "E_xx", "E_xy", "E_yx", "E_yy",
]


def linear_growth_rate(k, alpha, zeta, beta=0.8, d_t=0.05, d_r=0.25):
    """Growth rates of perturbations of the isotropic state (c = 1, D = I/2) at wavenumber ``k``.

    Linearising the moment equations (the Bingham closure is exact at isotropy, so this is also
    the kinetic theory's result) gives, for the deviatoric part of D,

    - the shear component (``D_xy`` for ``k`` along x), coupled to the flow:
      ``sigma = -(alpha - zeta beta / 2) / (4 + beta / 2) + zeta - 4 d_R - d_T k^2``;
    - the normal component (``D_xx - D_yy``), not coupled: ``sigma = zeta - 4 d_R - d_T k^2``;

    and ``-d_T k^2`` for the concentration.

    Returns
    -------
    (sigma_shear, sigma_normal) : arrays broadcast from the inputs

    Examples
    --------
    >>> from skphys.datasets.active_matter import linear_growth_rate
    >>> shear, normal = linear_growth_rate(0.0, alpha=-3.0, zeta=1.0)
    >>> round(float(shear), 4), round(float(normal), 4)
    (0.7727, 0.0)
    """
    k = np.asarray(k, dtype=float)
    normal = zeta - 4 * d_r - d_t * k**2
    shear = normal - (alpha - zeta * beta / 2) / (4 + beta / 2)
    return shear, normal


def _bingham_table(n=4001):
    """g(s) = (I_2 / I_0)(kappa) / s^2 with s = (I_1 / I_0)(kappa), tabulated on s in [0, 1)."""
    kappa = np.concatenate([np.linspace(0, 2, 400, endpoint=False), np.geomspace(2, 5000, 4000)])
    i0, i1, i2 = ive(0, kappa), ive(1, kappa), ive(2, kappa)
    s, r4 = i1 / i0, i2 / i0
    s_grid = np.linspace(0.0, 1.0, n)
    g = np.empty(n)
    g[0] = 0.5  # kappa -> 0: s ~ kappa / 2, I2/I0 ~ kappa^2 / 8
    inner = s_grid[1:] < s[-1]
    g[1:][inner] = np.interp(s_grid[1:][inner], s, r4) / s_grid[1:][inner] ** 2
    g[1:][~inner] = 1.0  # perfectly aligned: I2/I0 -> 1
    return s_grid, g


_S_GRID, _G_TABLE = _bingham_table()


class _ActiveMatter:
    """Right-hand side, Stokes solve and diagnostics on an (n, n) periodic grid for a batch."""

    def __init__(self, n, length, alpha, zeta, beta, d_t, d_r, device, rdtype, cdtype, stokes_tol=1e-9,
                 stokes_iter=60):
        self.grid = Spectral2D((n, n), (length, length), device, rdtype, cdtype)
        self.alpha = torch.as_tensor(alpha, dtype=rdtype, device=device).reshape(-1, 1, 1)
        self.zeta = torch.as_tensor(zeta, dtype=rdtype, device=device).reshape(-1, 1, 1)
        self.beta, self.d_t, self.d_r = float(beta), float(d_t), float(d_r)
        # the fixed point can be approached to round-off only: in single precision to ~1e-6
        self.stokes_tol, self.stokes_iter = max(stokes_tol, 50 * torch.finfo(rdtype).eps), stokes_iter
        self.table = torch.as_tensor(_G_TABLE, dtype=rdtype, device=device)
        self.rdtype = rdtype
        self.u_last = None
        # Nyquist modes carry no odd derivative of a real field: the velocity is kept off them, so
        # that E is exactly its symmetric gradient and the Stokes balance holds on every other mode
        g = self.grid
        ky_nyq = g.ky.abs() >= g.ky.abs().max() if n % 2 == 0 else torch.zeros_like(g.ky, dtype=torch.bool)
        kx_nyq = g.kx.abs() >= g.kx.abs().max() if n % 2 == 0 else torch.zeros_like(g.kx, dtype=torch.bool)
        self.resolved = (~(ky_nyq | kx_nyq)).to(cdtype)

    # -- closure ----------------------------------------------------------------------------
    def closure(self, c, q1, q2):
        """Fourth-harmonic moments (C4, S4) of the Bingham distribution with the given D."""
        cs = c.clamp_min(1e-8)
        m2r, m2i = 2 * q1 / cs, 2 * q2 / cs  # <cos 2 theta>, <sin 2 theta>
        s = torch.sqrt(m2r**2 + m2i**2).clamp(max=1.0)
        pos = s * (len(_G_TABLE) - 1)
        i0 = pos.floor().clamp(max=len(_G_TABLE) - 2)
        w = pos - i0
        i0 = i0.long()
        g = self.table[i0] * (1 - w) + self.table[i0 + 1] * w
        return g * (m2r**2 - m2i**2), g * (2 * m2r * m2i)

    @staticmethod
    def s_contract(c, q1, q2, c4, s4, txx, txy, tyy):
        """(S:T)_xx, _xy, _yy for a symmetric T, S the closed fourth moment."""
        tr = txx + tyy
        t1, t2 = (txx - tyy) / 2, txy
        dxx, dyy = c / 2 + q1, c / 2 - q1
        d_dev = 2 * (q1 * t1 + q2 * t2)  # D : T_dev
        a = (c / 4) * (t1 * (1 + c4) + t2 * s4)
        b = (c / 4) * (t1 * s4 + t2 * (1 - c4))
        return tr / 2 * dxx + d_dev / 2 + a, tr / 2 * q2 + b, tr / 2 * dyy + d_dev / 2 - a

    # -- Stokes -------------------------------------------------------------------------------
    def _velocity_from_stress(self, sxx, sxy, syy, visc):
        g = self.grid
        fx = g.ikx * g.fft(sxx) + g.iky * g.fft(sxy)  # (div Sigma)^
        fy = g.ikx * g.fft(sxy) + g.iky * g.fft(syy)
        kx, ky = g.kx, g.ky
        proj = (kx * fx + ky * fy) * g.inv_k2
        ux = (fx - kx * proj) * (g.inv_k2 / visc) * self.resolved
        uy = (fy - ky * proj) * (g.inv_k2 / visc) * self.resolved
        return ux, uy  # spectra (zero mean)

    def strain(self, ux_hat, uy_hat):
        g = self.grid
        f = g.ifft(torch.stack([g.ikx * ux_hat, g.iky * ux_hat, g.ikx * uy_hat, g.iky * uy_hat], 1))
        return f[:, 0], f[:, 1], f[:, 2], f[:, 3]  # du/dx, du/dy, dv/dx, dv/dy

    def flow(self, c, q1, q2):
        """Velocity spectra and physical gradients solving the Stokes problem for the given moments."""
        c4, s4 = self.closure(c, q1, q2)
        dxx, dxy, dyy = c / 2 + q1, q2, c / 2 - q1
        # steric term T = D.D - S:D
        ddxx, ddxy, ddyy = dxx * dxx + dxy * dxy, dxy * (dxx + dyy), dxy * dxy + dyy * dyy
        sdxx, sdxy, sdyy = self.s_contract(c, q1, q2, c4, s4, dxx, dxy, dyy)
        txx, txy, tyy = ddxx - sdxx, ddxy - sdxy, ddyy - sdyy
        a, z, beta = self.alpha, self.zeta, self.beta
        base = (a * dxx - 2 * z * beta * txx, a * dxy - 2 * z * beta * txy, a * dyy - 2 * z * beta * tyy)
        visc = 1 + beta / 8  # the constraint stress at isotropy, beta E / 4, moved to the left
        if self.u_last is not None and self.u_last[0].shape == c.shape[:1] + self.grid.k2.shape:
            ux, uy = self.u_last  # warm start from the previous solve (the state changed little)
        else:
            ux, uy = self._velocity_from_stress(*base, visc)
        self.iterations = 0
        for _ in range(self.stokes_iter):
            self.iterations += 1
            uxx, uxy, uyx, uyy = self.strain(ux, uy)
            exx, exy, eyy = uxx, (uxy + uyx) / 2, uyy
            sexx, sexy, seyy = self.s_contract(c, q1, q2, c4, s4, exx, exy, eyy)
            new = self._velocity_from_stress(
                base[0] + beta * (sexx - exx / 4), base[1] + beta * (sexy - exy / 4), base[2] + beta * (seyy - eyy / 4),
                visc,
            )
            change = float(torch.sqrt((new[0] - ux).abs() ** 2 + (new[1] - uy).abs() ** 2).amax())
            size = float(torch.sqrt(new[0].abs() ** 2 + new[1].abs() ** 2).amax())
            ux, uy = new
            if change <= self.stokes_tol * max(size, 1e-30):
                break
        else:
            raise FloatingPointError(
                f"the Stokes fixed-point iteration did not converge in {self.stokes_iter} iterations (relative change "
                f"{change / max(size, 1e-30):.1e}); the constraint stress beta S:E is too strong for it: lower beta"
            )
        self.u_last = (ux, uy)
        return dict(ux_hat=ux, uy_hat=uy, closure=(c4, s4), steric=(txx, txy, tyy))

    # -- equations ----------------------------------------------------------------------------
    def tendencies(self, c, q1, q2):
        """Physical-space nonlinear tendencies (dc, dDxx, dDxy, dDyy) without diffusion and
        without the rotational relaxation -4 d_R (D - c I/2), plus the flow."""
        g = self.grid
        fl = self.flow(c, q1, q2)
        ux_hat, uy_hat = fl["ux_hat"], fl["uy_hat"]
        u, v = g.ifft(ux_hat), g.ifft(uy_hat)
        uxx, uxy, uyx, uyy = self.strain(ux_hat, uy_hat)
        exx, exy, eyy = uxx, (uxy + uyx) / 2, uyy
        c4, s4 = fl["closure"]
        dxx, dxy, dyy = c / 2 + q1, q2, c / 2 - q1
        sexx, sexy, seyy = self.s_contract(c, q1, q2, c4, s4, exx, exy, eyy)
        # (grad u . D + D . grad u^T), (grad u)_ij = d_j u_i
        gdxx = 2 * (uxx * dxx + uxy * dxy)
        gdxy = uxx * dxy + uxy * dyy + dxx * uyx + dxy * uyy
        gdyy = 2 * (uyx * dxy + uyy * dyy)
        txx, txy, tyy = fl["steric"]
        z = self.zeta
        rxx = gdxx - 2 * sexx + 4 * z * txx
        rxy = gdxy - 2 * sexy + 4 * z * txy
        ryy = gdyy - 2 * seyy + 4 * z * tyy
        return dict(u=u, v=v, local=(rxx, rxy, ryy), strain=(exx, exy, eyy), flow=fl)

    def nonlinear(self, state_hat):
        """ETDRK4 nonlinear part for the state spectra (B, 3, n, n//2+1): c, q1 = (Dxx-Dyy)/2, q2 = Dxy."""
        g = self.grid
        f = g.ifft(state_hat)
        c, q1, q2 = f[:, 0], f[:, 1], f[:, 2]
        t = self.tendencies(c, q1, q2)
        u, v = t["u"], t["v"]
        rxx, rxy, ryy = t["local"]
        fluxes = g.fft(torch.stack([u * c, v * c, u * q1, v * q1, u * q2, v * q2], 1))
        adv = g.ikx * fluxes[:, 0::2] + g.iky * fluxes[:, 1::2]  # div(u f) for f = c, q1, q2
        local = g.fft(torch.stack([(rxx - ryy) / 2, rxy], 1))
        out = -adv
        out[:, 1:] = out[:, 1:] + local
        return out * g.mask

    def fields(self, state_hat):
        """(B, 11, n, n) physical fields in FIELD_NAMES order."""
        g = self.grid
        f = g.ifft(state_hat)
        c, q1, q2 = f[:, 0], f[:, 1], f[:, 2]
        fl = self.flow(c, q1, q2)
        u, v = g.ifft(fl["ux_hat"]), g.ifft(fl["uy_hat"])
        uxx, uxy, uyx, uyy = self.strain(fl["ux_hat"], fl["uy_hat"])
        exy = (uxy + uyx) / 2
        return torch.stack([c, u, v, c / 2 + q1, q2, q2, c / 2 - q1, uxx, exy, exy, uyy], 1)

    def linear_operator(self):
        g = self.grid
        diff = -self.d_t * g.k2
        return torch.stack([diff, diff - 4 * self.d_r, diff - 4 * self.d_r], 0).to(torch.complex128)


def make_active_matter(
    n_samples=100,
    *,
    alpha=None,
    zeta=None,
    alpha_range=(-4.0, -1.0),
    zeta_range=(1.0, 1.5),
    beta=0.8,
    translational_diffusion=0.05,
    rotational_diffusion=0.25,
    n_points=64,
    length=10.0,
    n_frames=80,
    t_max=20.0,
    perturbation=0.05,
    dt_max=0.05,
    cfl=0.5,
    noise=0.0,
    precision="double",
    chunk_size=None,
    random_state=None,
    device="auto",
    verbose=False,
    return_X_y=False,
):
    """Simulate a 2-D suspension of active rods in Stokes flow (kinetic-theory moment model).

    An analogue of The Well's ``active_matter`` at laptop scale: concentration, velocity,
    orientation tensor ``D = <pp>`` and strain rate ``E`` of immotile active rods
    (Saintillan-Shelley kinetic theory in moment form, Bingham closure), starting near isotropy.
    Pushers (``alpha < 0``) destabilise the isotropic state through the flow they drive; steric
    alignment ``zeta`` orders them nematically; the result is active nematic turbulence.
    See docs/simulators.md for the equations, checks and resolved ranges.

    Parameters
    ----------
    n_samples : int, default=100
    alpha : None, float or array-like of shape (n_samples,), default=None
        Active dipole strength (negative: pushers). None draws it uniformly from ``alpha_range``.
    zeta : None, float or array-like of shape (n_samples,), default=None
        Steric alignment strength (>= 0). None draws it uniformly from ``zeta_range``.
    alpha_range : (float, float), default=(-4.0, -1.0)
        Inside The Well's range (-5 to -1).
    zeta_range : (float, float), default=(1.0, 1.5)
        The bottom of The Well's range (1 to 17). The defaults are what the default 64-point
        grid resolves: less than 1e-3 of the variance of ``D_xy`` and ``E_xy`` in the outer third
        of the dealiased band up to t = 20 at (alpha, zeta) = (-4, 1.5) and (-5, 1), but 1.6e-3
        to 7e-3 at (-3, 2), (-5, 2), (-3, 3) and (-5, 3) (docs/simulators.md). Stronger activity
        and alignment make finer structures; use a finer grid (The Well: 256 points) for them.
    beta : float, default=0.8
        Constraint-stress coefficient (The Well: 0.8).
    translational_diffusion, rotational_diffusion : float, default=0.05, 0.25
        ``d_T`` and ``d_R``.
    n_points : int, default=64
        Grid points per axis (The Well: 256).
    length : float, default=10.0
        Box size (The Well: 10).
    n_frames : int, default=80
        Frames at ``0, dt, ..., (n_frames - 1) dt`` with ``dt = t_max / n_frames``.
    t_max : float, default=20.0
        The Well stores 81 frames with dt 0.25.
    perturbation : float, default=0.05
        RMS of the initial random perturbations of ``c`` and of each deviatoric component of
        ``D`` (band-limited Gaussian noise, wavenumbers up to about a sixth of the grid's).
    dt_max : float, default=0.05
        Largest internal ETDRK4 step.
    cfl : float, default=0.5
        Step also ``<= cfl / max(|u|/dx + |v|/dy)``.
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
        ``data`` (n_samples, n_frames, n, n, 11) float32, ``target`` (n_samples, 2),
        ``target_names=["alpha", "zeta"]``, ``field_names`` (concentration, velocity_x,
        velocity_y, D_xx, D_xy, D_yx, D_yy, E_xx, E_xy, E_yx, E_yy), ``time``,
        ``coords=(y, x)``, ``dim_names=("y", "x")``, ``boundary_conditions``, ``dt``, ``DESCR``.
    (X, y) : tuple if ``return_X_y``.

    Examples
    --------
    >>> from skphys.datasets import make_active_matter
    >>> am = make_active_matter(2, n_points=16, n_frames=3, t_max=0.2, random_state=0, device="cpu")
    >>> am.data.shape, am.field_names[:4]
    ((2, 3, 16, 16, 11), ['concentration', 'velocity_x', 'velocity_y', 'D_xx'])
    """
    sim = Driver("active matter", n_samples, noise=noise, random_state=random_state, device=device,
                 precision=precision, verbose=verbose, return_X_y=return_X_y)
    n = C.check_int(n_points, "n_points", 8)
    length = C.check_positive(length, "length")
    n_frames = C.check_int(n_frames, "n_frames", 1)
    t_max = C.check_positive(t_max, "t_max")
    beta = C.check_positive(beta, "beta", strict=False)
    d_t = C.check_positive(translational_diffusion, "translational_diffusion")
    d_r = C.check_positive(rotational_diffusion, "rotational_diffusion", strict=False)
    perturbation = C.check_positive(perturbation, "perturbation", strict=False)
    dt_max = C.check_positive(dt_max, "dt_max")
    cfl = C.check_positive(cfl, "cfl")
    alpha_range = C.check_range(alpha_range, "alpha_range")
    zeta_range = C.check_range(zeta_range, "zeta_range", lower=0.0)

    def _check_zeta(z):
        if (z < 0).any():
            raise ValueError("zeta must be >= 0 (a negative steric alignment strength)")

    a = sim.parameter(alpha, "alpha", lambda rng, m: rng.uniform(*alpha_range, size=m))
    z = sim.parameter(zeta, "zeta", lambda rng, m: rng.uniform(*zeta_range, size=m), _check_zeta)
    kr = 2 * np.pi / length * max(2.0, n / 12)

    dt = t_max / n_frames
    dx = length / n
    cdtype = sim.cdtype

    def simulate_chunk(start, stop, bar):
        b = stop - start
        model = _ActiveMatter(n, length, a[start:stop], z[start:stop], beta, d_t, d_r, sim.device, sim.rdtype, cdtype)
        pert = gaussian_filtered_noise(sim.rng, 3 * b, (n, n), (length, length), np.full(3 * b, kr)).real
        pert = pert.reshape(b, 3, n, n)
        pert -= pert.mean(axis=(2, 3), keepdims=True)
        pert *= perturbation / np.sqrt((pert**2).mean(axis=(2, 3), keepdims=True))
        pert[:, 0] += 1.0  # concentration 1 on average; q1 = q2 = 0 is isotropic
        state = model.grid.fft(torch.as_tensor(pert, dtype=sim.rdtype, device=sim.device))
        L = model.linear_operator()
        steppers = {}
        frames = torch.empty((b, n_frames, n, n, 11), dtype=torch.float32, device=sim.device)
        f = model.fields(state)
        frames[:, 0] = f.movedim(1, -1).to(torch.float32)
        bar.update(1)
        for i in range(1, n_frames):
            rate = float((f[:, 1].abs() / dx + f[:, 2].abs() / dx).amax())
            if not math.isfinite(rate):
                raise FloatingPointError(f"the active-matter simulation blew up before frame {i}; lower dt_max")
            m = max(C.substeps(dt, dt_max), math.ceil(dt * rate / cfl - 1e-9))
            if m not in steppers:
                steppers.clear()
                steppers[m] = ETDRK4(L, dt / m, model.nonlinear, dtype=cdtype)
            state = steppers[m].advance(state, m)
            f = model.fields(state)
            frames[:, i] = f.movedim(1, -1).to(torch.float32)
            bar.update(1)
        if not bool(torch.isfinite(f).all()):
            raise FloatingPointError("the active-matter simulation blew up; lower dt_max")
        return frames

    X = sim.run(
        simulate_chunk, n_frames=n_frames, frame_shape=(n, n, 11), chunk_size=chunk_size,
        bytes_per_sample=16 * 3 * 40 * n * (n // 2 + 1) + 8 * 60 * n * n + 44 * n_frames * n * n,
        elements_per_sample=n * n,
    )
    coord = np.arange(n) * dx
    return sim.finish(
        X, np.column_stack([a, z]), noise_scale="rms", target_names=["alpha", "zeta"], field_names=FIELD_NAMES,
        time=np.arange(n_frames) * dt, coords=(coord, coord), dim_names=("y", "x"), dt=dt, descr=_DESCR,
    )
