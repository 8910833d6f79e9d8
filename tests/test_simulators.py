"""Physics tests of the built-in simulators (tiny grids, CPU, float64 solvers)."""

import doctest
import math

import numpy as np
import pytest
import torch

from skphys.datasets import (
    SIMULATORS,
    make_convection_diffusion,
    make_kuramoto_sivashinsky,
    make_nonlinear_schrodinger,
    make_shear_flow,
    make_system,
)
from skphys.datasets._spectral import ETDRK4, etdrk4_coefficients, gaussian_filtered_noise
from skphys.datasets.shear_flow import _simulate, _Spectral2D

CPU = dict(device="cpu")


def spectral_dx(f, length, axis):
    """Spectral derivative; for real fields the Nyquist mode's derivative is dropped (as usual)."""
    n = f.shape[axis]
    k = 2 * np.pi * np.fft.fftfreq(n, d=length / n)
    shape = [1] * f.ndim
    shape[axis] = n
    out = np.fft.ifft(1j * k.reshape(shape) * np.fft.fft(f, axis=axis), axis=axis)
    return out if np.iscomplexobj(f) else out.real


# --------------------------------------------------------------------------- ETDRK4


def test_etdrk4_fourth_order_on_exact_solution():
    # u' = -u + u^2, u(0) = 1/2  =>  u(t) = 1 / (1 + e^t)
    T = 2.0
    errors = []
    for n in (4, 8, 16, 32):
        stepper = ETDRK4(torch.tensor([-1.0 + 0j]), T / n, lambda v: v**2)
        u = stepper.advance(torch.tensor([0.5 + 0j], dtype=torch.complex128), n)
        errors.append(abs(u.real.item() - 1 / (1 + math.exp(T))))
    ratios = [errors[i] / errors[i + 1] for i in range(3)]
    assert all(13 < r < 19 for r in ratios), ratios  # 2^4 = 16


def test_etdrk4_stiff_linear_part_exact():
    # with N = 0 ETDRK4 is exp(hL) for any stiffness, also for complex L
    L = torch.tensor([-1e4 + 0j, -3.0 + 0j, 2j, -5.0 - 40j])
    v0 = torch.ones(4, dtype=torch.complex128)
    v = ETDRK4(L, 0.1, lambda v: torch.zeros_like(v)).advance(v0, 10)
    assert torch.allclose(v, torch.exp(L.to(torch.complex128) * 1.0), rtol=1e-12, atol=1e-300)


def test_etdrk4_contour_coefficients_match_closed_form():
    z = torch.tensor([-2.0 + 0j, 1.5 + 0j, 3j, -4.0 + 2j], dtype=torch.complex128)
    c = etdrk4_coefficients(z, 1.0, 64)
    e = torch.exp(z)
    assert torch.allclose(c["Q"], (torch.exp(z / 2) - 1) / z, rtol=1e-12)
    assert torch.allclose(c["f1"], (-4 - z + e * (4 - 3 * z + z**2)) / z**3, rtol=1e-10)
    assert torch.allclose(c["f2"], (2 + z + e * (z - 2)) / z**3, rtol=1e-10)
    assert torch.allclose(c["f3"], (-4 - 3 * z - z**2 + e * (4 - z)) / z**3, rtol=1e-10)
    # and the small-|z| limits (where the closed forms cancel catastrophically): 1/2, 1/6, 1/6, 1/6
    c0 = etdrk4_coefficients(torch.tensor([1e-10 + 0j]), 1.0, 64)
    for key, ref in (("Q", 0.5), ("f1", 1 / 6), ("f2", 1 / 6), ("f3", 1 / 6)):
        assert abs(c0[key].item() - ref) < 1e-9


def test_ks_time_step_self_convergence():
    kw = dict(n_points=32, length=8 * np.pi, n_frames=5, t_max=4.0, gamma=0.6, random_state=3, **CPU)
    ref = make_kuramoto_sivashinsky(1, dt_max=0.01, **kw).data.astype(float)
    e1 = np.abs(make_kuramoto_sivashinsky(1, dt_max=0.2, **kw).data - ref).max()
    e2 = np.abs(make_kuramoto_sivashinsky(1, dt_max=0.1, **kw).data - ref).max()
    assert e2 < 2e-4
    assert e1 / e2 > 8  # ~9.5 measured (order ~3.2: stiff order reduction of ETDRK4); 16 would be 4th order


def test_gaussian_filtered_noise_spectrum_and_padding():
    rng = np.random.RandomState(0)
    u = gaussian_filtered_noise(rng, 400, (64,), (2 * np.pi,), np.full(400, 4.0))
    power = (np.abs(np.fft.fft(u, axis=1)) ** 2).mean(0)
    k = np.fft.fftfreq(64, 1 / 64)
    expected = 2 * np.exp(-(k**2) / 16.0)  # E|a + ib|^2 = 2 times the squared envelope
    sel = expected > 1e-3
    np.testing.assert_allclose(power[sel], expected[sel], rtol=0.25)
    fine = gaussian_filtered_noise(np.random.RandomState(1), 2, (16,), (1.0,), [20.0, 20.0], out_shape=(48,))
    coarse = gaussian_filtered_noise(np.random.RandomState(1), 2, (16,), (1.0,), [20.0, 20.0])
    np.testing.assert_allclose(fine[:, ::3], coarse, atol=1e-12)


# --------------------------------------------------------------------------- convection-diffusion


def test_convection_diffusion_matches_fourier_decay_and_phase():
    n, length = 16, 2 * np.pi
    b = make_convection_diffusion(2, n_points=n, length=length, n_frames=6, t_max=1.5, random_state=0, **CPU)
    X = b.data[..., 0].astype(float)
    k = 2 * np.pi * np.fft.fftfreq(n, d=length / n)
    ky, kx = k[:, None], k[None, :]
    # Nyquist modes of a real field cannot carry a phase: leave them out
    not_nyquist = (np.abs(np.fft.fftfreq(n, 1 / n)) < n // 2)[:, None] & (np.abs(np.fft.fftfreq(n, 1 / n)) < n // 2)[None, :]
    for i, (D, vx, vy) in enumerate(b.target):
        u0 = np.fft.fft2(X[i, 0])
        for j, t in enumerate(b.time):
            pred = u0 * np.exp(t * (-D * (kx**2 + ky**2) - 1j * (kx * vx + ky * vy)))
            got = np.fft.fft2(X[i, j])
            strong = (np.abs(pred) > 1e-2 * np.abs(pred).max()) & not_nyquist
            np.testing.assert_allclose(got[strong], pred[strong], rtol=2e-4, atol=1e-4 * np.abs(pred).max())
        # the mean is conserved, the variance decays
        np.testing.assert_allclose(X[i].mean(axis=(1, 2)), X[i, 0].mean(), atol=1e-6)
        assert np.all(np.diff(X[i].var(axis=(1, 2))) <= 1e-7)


def test_convection_diffusion_pure_translation_and_normalisation():
    n, length = 32, 2 * np.pi
    cell = length / n
    b = make_convection_diffusion(
        1, n_points=n, length=length, diffusivity=0.0, velocity=(2.0, -1.0), n_frames=3, t_max=3 * cell / 2,
        random_state=1, **CPU,
    )
    X = b.data[0, ..., 0]
    assert abs(np.sqrt((X[0].astype(float) ** 2).mean()) - 1) < 1e-6  # RMS 1 initial state
    # dt = cell / 2: after 2 frames the field moved 2 cells in +x and 1 cell in -y
    np.testing.assert_allclose(X[2], np.roll(np.roll(X[0], 2, axis=1), -1, axis=0), atol=1e-5)


# --------------------------------------------------------------------------- nonlinear Schrodinger


def test_nls_conserves_norm_and_hamiltonian():
    length = 8 * np.pi
    b = make_nonlinear_schrodinger(
        2, n_points=128, oversample=1, n_frames=32, t_max=np.pi / 2, kappa=[-2.0, -0.5], random_state=0, **CPU
    )
    psi = b.data[..., 0].astype(float) + 1j * b.data[..., 1].astype(float)
    norm = (np.abs(psi) ** 2).mean(axis=-1)
    np.testing.assert_allclose(norm[:, 0], 2.0, rtol=1e-6)  # RMS |psi| = sqrt 2
    assert np.abs(norm / norm[:, :1] - 1).max() < 1e-5  # ETDRK4 is not norm-preserving: O(h^4) drift
    kappa = b.target[:, :1]
    psi_x = spectral_dx(psi, length, -1)  # the solver's discrete Hamiltonian (Nyquist mode kept)
    H = (0.5 * np.abs(psi_x) ** 2).mean(-1) + 0.5 * kappa * (np.abs(psi) ** 4).mean(-1)
    assert np.abs(H / H[:, :1] - 1).max() < 1e-3
    # the nonlinearity matters: the modulus profile changes
    assert np.abs(np.abs(psi[:, -1]) - np.abs(psi[:, 0])).max() > 0.1


def test_nls_linear_case_is_exact_dispersion():
    length, n = 8 * np.pi, 32
    b = make_nonlinear_schrodinger(1, n_points=n, n_frames=4, t_max=2.0, kappa=0.0, oversample=1, random_state=2, **CPU)
    psi = b.data[0, ..., 0] + 1j * b.data[0, ..., 1]
    k = 2 * np.pi * np.fft.fftfreq(n, d=length / n)
    pred = np.fft.ifft(np.fft.fft(psi[0]) * np.exp(-0.5j * k**2 * b.time[-1]))
    np.testing.assert_allclose(psi[-1], pred, atol=1e-5)


# --------------------------------------------------------------------------- Kuramoto-Sivashinsky


def test_ks_bounded_and_statistically_stationary():
    b = make_kuramoto_sivashinsky(
        2, n_points=128, length=32 * np.pi, n_frames=48, t_max=240.0, burn_in=60.0, gamma=1.0, dt_max=0.1,
        random_state=0, **CPU,
    )
    u = b.data[..., 0].astype(float)
    assert np.isfinite(u).all() and np.abs(u).max() < 6
    np.testing.assert_allclose(u.mean(axis=-1), 0.0, atol=1e-5)  # mean mode is conserved
    rms1 = np.sqrt((u[:, 8:28] ** 2).mean())
    rms2 = np.sqrt((u[:, 28:48] ** 2).mean())
    assert 0.8 < rms1 < 2.5 and abs(rms1 / rms2 - 1) < 0.15, (rms1, rms2)
    # chaotic, not decayed to a steady state: the field keeps changing
    assert np.abs(u[:, -1] - u[:, -2]).mean() > 0.3


def test_ks_hyperviscosity_controls_the_length_scale():
    kw = dict(n_points=128, length=32 * np.pi, n_frames=8, t_max=40.0, burn_in=60.0, dt_max=0.1, random_state=0)
    lo = make_kuramoto_sivashinsky(2, gamma=0.6, **kw, **CPU).data[..., 0]
    hi = make_kuramoto_sivashinsky(2, gamma=1.4, **kw, **CPU).data[..., 0]

    def mean_k(u):
        p = np.abs(np.fft.rfft(u, axis=-1)) ** 2
        k = np.arange(p.shape[-1])
        return (p * k).sum() / p.sum()

    # the most unstable wavenumber is 1 / sqrt(2 gamma): larger gamma, longer cells
    assert mean_k(lo) > 1.2 * mean_k(hi)


# --------------------------------------------------------------------------- Navier-Stokes / shear flow


def _taylor_green(ny, nx, ly, lx, amp):
    y = np.arange(ny) * ly / ny
    x = np.arange(nx) * lx / nx
    Y, Xg = np.meshgrid(y, x, indexing="ij")
    a, b = 2 * np.pi / lx, 2 * np.pi / ly
    u = amp * b * np.sin(a * Xg) * np.cos(b * Y)
    v = -amp * a * np.cos(a * Xg) * np.sin(b * Y)
    p = amp**2 / 4 * (b**2 * np.cos(2 * a * Xg) + a**2 * np.cos(2 * b * Y))
    return u, v, p, a * a + b * b


def test_navier_stokes_taylor_green_decay_and_pressure():
    ny, nx, ly, lx, nu = 16, 8, 2.0, 1.0, 0.02
    u, v, p, k2 = _taylor_green(ny, nx, ly, lx, 0.3)
    g = _Spectral2D((ny, nx), (ly, lx), torch.device("cpu"), torch.float64, torch.complex128)
    U, V = torch.tensor(u)[None], torch.tensor(v)[None]
    omega = g.ikx * g.fft(V) - g.iky * g.fft(U)
    zero = torch.zeros(1, 1, 1, dtype=torch.float64)
    frames = []
    _simulate(omega, g.fft(torch.zeros_like(U)), (zero, zero), zero + nu, zero + nu, g, 0.5, 5, 0.5,
              lambda i, f: frames.append(f[0].numpy().copy()))
    for i, f in enumerate(frames):
        decay = math.exp(-nu * k2 * 0.5 * i)
        energy = 0.5 * (f[2] ** 2 + f[3] ** 2).mean()
        assert abs(energy / (0.5 * (u**2 + v**2).mean()) - decay**2) < 1e-12  # E ~ exp(-2 nu k^2 t)
        np.testing.assert_allclose(f[1], p * decay**2, atol=1e-12)  # pressure Poisson solution


def test_navier_stokes_perturbed_mode_energy_decay_with_nonlinearity():
    # a Taylor-Green vortex plus a small second mode: nonlinear, but energy can only decay and
    # the flow stays divergence-free; the viscous bound E(t) <= E(0) exp(-2 nu k_min^2 t) holds
    ny = nx = 32
    u, v, _, _ = _taylor_green(ny, nx, 1.0, 1.0, 0.2)
    u2, v2, _, _ = _taylor_green(ny, nx, 0.5, 1.0, 0.05)
    g = _Spectral2D((ny, nx), (1.0, 1.0), torch.device("cpu"), torch.float64, torch.complex128)
    U, V = torch.tensor(u + u2)[None], torch.tensor(v + v2)[None]
    omega = g.ikx * g.fft(V) - g.iky * g.fft(U)
    zero = torch.zeros(1, 1, 1, dtype=torch.float64)
    nu = 0.005
    frames = []
    _simulate(omega, g.fft(torch.zeros_like(U)), (zero, zero), zero + nu, zero + nu, g, 0.5, 6, 0.5,
              lambda i, f: frames.append(f[0].numpy().copy()))
    E = np.array([0.5 * (f[2] ** 2 + f[3] ** 2).mean() for f in frames])
    assert np.all(np.diff(E) < 0)
    t = 0.5 * np.arange(6)
    assert np.all(E <= E[0] * np.exp(-2 * nu * (2 * np.pi) ** 2 * t) * (1 + 1e-10))


def test_shear_flow_divergence_free_tracer_mean_and_fields():
    b = make_shear_flow(2, n_points=(32, 32), n_frames=6, t_max=3.0, reynolds=[500.0, 2000.0], random_state=0, **CPU)
    assert b.field_names == ["tracer", "pressure", "velocity_x", "velocity_y"]
    assert b.target_names == ["reynolds", "schmidt"] and b.data.shape == (2, 6, 32, 32, 4)
    X = b.data.astype(float)
    ly, lx = 1.0, 1.0
    div = spectral_dx(X[..., 2], lx, -1) + spectral_dx(X[..., 3], ly, -2)
    grad = np.abs(spectral_dx(X[..., 2], ly, -2)).max()
    assert np.abs(div).max() < 1e-5 * grad  # divergence-free up to float32 storage
    tracer_mean = X[..., 0].mean(axis=(2, 3))
    assert np.abs(tracer_mean - tracer_mean[:, :1]).max() < 2e-7
    # the layers roll up: vertical velocity grows from the small perturbation
    vy_rms = np.sqrt((X[..., 3] ** 2).mean(axis=(2, 3)))
    assert np.all(vy_rms[:, -1] > 1.5 * vy_rms[:, 0])
    # kinetic energy does not increase (no forcing), faster decay at lower Reynolds
    E = 0.5 * (X[..., 2] ** 2 + X[..., 3] ** 2).mean(axis=(2, 3))
    assert np.all(np.diff(E, axis=1) < 1e-6)
    assert (E[0, 0] - E[0, -1]) > (E[1, 0] - E[1, -1])


def test_shear_flow_default_reynolds_range_scales_with_resolution():
    y64 = make_shear_flow(20, n_points=(64, 64), n_frames=1, random_state=0, return_X_y=True, **CPU)[1]
    assert 200.0 <= y64[:, 0].min() and y64[:, 0].max() <= 2000.0 and y64[:, 0].max() > 1000.0
    assert 0.1 <= y64[:, 1].min() and y64[:, 1].max() <= 1.0
    # 2 x 1 box with 64 x 32 points: 32 points per unit length, Re_max = 2000 / 4
    y32 = make_shear_flow(20, n_points=(64, 32), extent=(2.0, 1.0), n_frames=1, random_state=0,
                          return_X_y=True, **CPU)[1]
    assert 50.0 <= y32[:, 0].min() and y32[:, 0].max() <= 500.0


# --------------------------------------------------------------------------- API


SMALL = {
    "kuramoto_sivashinsky": dict(n_points=16, length=4 * np.pi, n_frames=3, t_max=0.3),
    "nonlinear_schrodinger": dict(n_points=16, n_frames=3, t_max=0.05),
    "convection_diffusion": dict(n_points=8, n_frames=3),
    "shear_flow": dict(n_points=(8, 8), n_frames=3, t_max=0.1),
    "rayleigh_benard": dict(n_points=(9, 16), n_frames=3, t_max=1.0, length=2.0, perturbation=1e-2),
    "active_matter": dict(n_points=16, n_frames=3, t_max=0.3),
}
# boundary conditions other than periodic, per system
WALLS = {"rayleigh_benard": {"y": "wall"}}


@pytest.mark.parametrize("name", sorted(SIMULATORS))
def test_bunch_contract_and_reproducibility(name):
    kw = dict(SMALL[name], **CPU)
    b = make_system(name, 3, random_state=0, **kw)
    X, y = b.data, b.target
    assert X.dtype == np.float32 and X.shape[0] == 3 and X.shape[1] == 3
    assert X.ndim == 2 + len(b.dim_names) + 1 and X.shape[-1] == len(b.field_names)
    assert y.shape == (3, len(b.target_names)) and np.issubdtype(y.dtype, np.floating)
    assert len(b.coords) == len(b.dim_names)
    assert all(len(c) == s for c, s in zip(b.coords, X.shape[2:-1]))
    assert b.boundary_conditions == {d: WALLS.get(name, {}).get(d, "periodic") for d in b.dim_names}
    np.testing.assert_allclose(b.time, np.arange(3) * b.dt)
    assert isinstance(b.DESCR, str) and len(b.DESCR) > 100
    X2, y2 = make_system(name, 3, random_state=0, return_X_y=True, **kw)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    X3, _ = make_system(name, 3, random_state=1, return_X_y=True, **kw)
    assert not np.allclose(X, X3)
    # chunking does not change the result
    X4, y4 = make_system(name, 3, random_state=0, return_X_y=True, chunk_size=2, **kw)
    np.testing.assert_allclose(X4, X, atol=1e-5)
    np.testing.assert_array_equal(y4, y)
    # single precision agrees with double at these short horizons
    X5, _ = make_system(name, 3, random_state=0, return_X_y=True, precision="single", **kw)
    np.testing.assert_allclose(X5, X, atol=1e-3 * max(1.0, np.abs(X).max()))


@pytest.mark.parametrize("name", sorted(SIMULATORS))
def test_noise_level(name):
    kw = dict(SMALL[name], **CPU)
    clean = make_system(name, 4, random_state=0, return_X_y=True, **kw)[0].astype(float)
    noisy = make_system(name, 4, random_state=0, noise=0.1, return_X_y=True, **kw)[0].astype(float)
    diff = (noisy - clean).reshape(-1, clean.shape[-1])
    if name in ("shear_flow", "rayleigh_benard", "active_matter"):  # relative to each channel's RMS
        expected = 0.1 * np.sqrt((clean.reshape(-1, clean.shape[-1]) ** 2).mean(0))
    else:
        expected = np.full(clean.shape[-1], 0.1)
    np.testing.assert_allclose(diff.std(0), expected, rtol=0.1)
    assert np.abs(diff.mean(0)).max() < 0.3 * expected.max()


def test_fixed_parameters_and_ranges():
    y = make_kuramoto_sivashinsky(50, n_points=8, n_frames=1, random_state=0, return_X_y=True, **CPU)[1]
    assert 0.5 <= y.min() and y.max() <= 1.5 and abs(y.mean() - 1.0) < 0.06
    y = make_kuramoto_sivashinsky(3, n_points=8, n_frames=1, gamma=[0.7, 0.8, 0.9], return_X_y=True, **CPU)[1]
    np.testing.assert_array_equal(y[:, 0], [0.7, 0.8, 0.9])
    y = make_nonlinear_schrodinger(40, n_points=8, n_frames=1, kappa_range=(-1.5, -1.0), random_state=0,
                                   return_X_y=True, **CPU)[1]
    assert -1.5 <= y.min() and y.max() <= -1.0
    y = make_convection_diffusion(3, n_points=8, n_frames=1, diffusivity=0.05, velocity=[[0.1, 0.2]] * 3,
                                  return_X_y=True, **CPU)[1]
    np.testing.assert_array_equal(y, [[0.05, 0.1, 0.2]] * 3)


@pytest.mark.parametrize(
    "func, kwargs, exc, match",
    [
        (make_kuramoto_sivashinsky, dict(n_frames=0), ValueError, "n_frames"),
        (make_kuramoto_sivashinsky, dict(gamma=-1.0), ValueError, "negative viscosity"),
        (make_kuramoto_sivashinsky, dict(gamma_range=(-0.5, 1.0)), ValueError, "gamma_range"),
        (make_kuramoto_sivashinsky, dict(gamma=[1.0, 2.0]), ValueError, "shape"),
        (make_kuramoto_sivashinsky, dict(gamma=float("nan")), ValueError, "NaN"),
        (make_kuramoto_sivashinsky, dict(n_points=2.5), TypeError, "n_points"),
        (make_kuramoto_sivashinsky, dict(noise=-0.1), ValueError, "noise"),
        (make_kuramoto_sivashinsky, dict(precision="half"), ValueError, "precision"),
        (make_kuramoto_sivashinsky, dict(bogus=1), TypeError, "bogus"),
        (make_nonlinear_schrodinger, dict(kappa_range=(0.0, -1.0)), ValueError, "low > high"),
        (make_nonlinear_schrodinger, dict(oversample=0), ValueError, "oversample"),
        (make_convection_diffusion, dict(diffusivity=-0.1), ValueError, "diffusivity"),
        (make_convection_diffusion, dict(diffusivity_range=(-0.1, 0.2)), ValueError, "diffusivity_range"),
        (make_convection_diffusion, dict(velocity=[1.0, 2.0, 3.0]), ValueError, "velocity"),
        (make_shear_flow, dict(reynolds=-10.0), ValueError, "reynolds"),
        (make_shear_flow, dict(schmidt_range=(0.0, 1.0)), ValueError, "schmidt_range"),
        (make_shear_flow, dict(n_points=64), TypeError, "n_points"),
        (make_shear_flow, dict(cfl=5.0), ValueError, "cfl"),
        (make_shear_flow, dict(device="nonsense"), ValueError, "device"),
    ],
)
def test_clear_errors(func, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        func(1, **{"device": "cpu", **kwargs})


def test_bad_n_samples_and_unknown_system():
    with pytest.raises(ValueError, match="n_samples"):
        make_kuramoto_sivashinsky(0)
    with pytest.raises(TypeError, match="n_samples"):
        make_convection_diffusion(2.0)
    with pytest.raises(ValueError, match="known systems: active_matter, convection_diffusion, kuramoto_sivashinsky"):
        make_system("lorenz", 2)


def test_blow_up_is_reported():
    # an explicit nonlinear step far too large for the amplitude: clear error, not NaNs
    with pytest.raises(FloatingPointError, match="blew up"):
        make_nonlinear_schrodinger(1, n_points=64, n_frames=20, t_max=10.0, kappa=-2.0, dt_max=1.0,
                                   nonlinear_step=50.0, random_state=0, **CPU)


@pytest.mark.parametrize(
    "module",
    ["kuramoto_sivashinsky", "nonlinear_schrodinger", "convection_diffusion", "shear_flow", "rayleigh_benard",
     "active_matter", "_registry"],
)
def test_docstring_examples(module):
    import importlib

    mod = importlib.import_module(f"skphys.datasets.{module}")
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
