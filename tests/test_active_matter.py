"""Physics tests of the active-matter simulator (moment model of active rods in Stokes flow)."""

import numpy as np
import pytest
import torch

from skphys.datasets import make_active_matter, make_system
from skphys.datasets._common import cpu_settings
from skphys.datasets._spectral import ETDRK4
from skphys.datasets.active_matter import _ActiveMatter, linear_growth_rate

F64 = dict(device="cpu", rdtype=torch.float64, cdtype=torch.complex128)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with cpu_settings("cpu", 1):
        yield


def _model(alpha, zeta, n=16, length=10.0, beta=0.8):
    return _ActiveMatter(n, length, [alpha], [zeta], beta, 0.05, 0.25, **F64)


def _random_state(model, n, amp=0.3, seed=0):
    rng = np.random.RandomState(seed)
    x = np.arange(n) * 10.0 / n
    k = 2 * np.pi / 10.0
    f = np.zeros((1, 3, n, n))
    for ch, base in ((0, 1.0), (1, 0.0), (2, 0.0)):
        for m in (1, 2):
            ph = rng.uniform(0, 2 * np.pi, 2)
            f[0, ch] += amp / 2 * np.cos(m * k * x[None, :] + ph[0]) * np.cos(k * x[:, None] + ph[1])
        f[0, ch] += base
    return f


def test_bingham_closure_matches_quadrature_of_the_distribution():
    """S:T from the closure equals the fourth moment of exp(kappa cos 2(theta - phi)) with the same D."""
    theta = np.linspace(0, 2 * np.pi, 4096, endpoint=False)
    p = np.stack([np.cos(theta), np.sin(theta)])
    m = _model(-1.0, 1.0)
    for kappa, phi, c in ((0.0, 0.0, 1.0), (0.7, 0.3, 1.2), (3.0, -1.1, 0.8), (20.0, 2.0, 1.0)):
        psi = np.exp(kappa * np.cos(2 * (theta - phi)))
        psi *= c / psi.mean()  # normalised to c (mean over theta = integral / 2 pi)
        D = np.einsum("it,jt,t->ij", p, p, psi) / len(theta)
        S = np.einsum("it,jt,kt,lt,t->ijkl", p, p, p, p, psi) / len(theta)
        T = np.array([[0.3, -0.7], [-0.7, 1.1]])
        expected = np.einsum("ijkl,kl->ij", S, T)
        t = lambda v: torch.tensor([[v]], dtype=torch.float64)  # noqa: E731
        cq = (t(c), t((D[0, 0] - D[1, 1]) / 2), t(D[0, 1]))
        c4, s4 = m.closure(*cq)
        got = m.s_contract(*cq, c4, s4, t(T[0, 0]), t(T[0, 1]), t(T[1, 1]))
        np.testing.assert_allclose([float(g) for g in got], [expected[0, 0], expected[0, 1], expected[1, 1]],
                                   atol=2e-5 * c)


@pytest.mark.parametrize("alpha, zeta", [(-3.0, 1.0), (-1.0, 0.2), (2.0, 0.5), (-5.0, 0.0)])
def test_isotropic_state_growth_rate_matches_dispersion_relation(alpha, zeta):
    n, length = 16, 10.0
    m = _model(alpha, zeta, n, length)
    k = 2 * np.pi / length
    x = np.arange(n) * length / n
    f = np.zeros((1, 3, n, n))
    f[:, 0] = 1.0
    f[0, 1] = 1e-7 * np.cos(k * x)[None, :]  # normal component D_xx - D_yy
    f[0, 2] = 1e-7 * np.cos(k * x)[None, :]  # shear component D_xy
    state = m.grid.fft(torch.as_tensor(f))
    stepper = ETDRK4(m.linear_operator(), 0.02, m.nonlinear)
    normal, shear = [], []
    for _ in range(100):
        state = stepper.step(state)
        normal.append(float(state[0, 1, 0, 1].abs()))
        shear.append(float(state[0, 2, 0, 1].abs()))
    t = 0.02 * np.arange(1, 101)
    expected_shear, expected_normal = linear_growth_rate(k, alpha, zeta)
    np.testing.assert_allclose(np.polyfit(t, np.log(shear), 1)[0], expected_shear, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.polyfit(t, np.log(normal), 1)[0], expected_normal, rtol=1e-6, atol=1e-7)
    # stable or unstable as linear theory says; pushers are destabilised by the flow they drive
    assert (shear[-1] > shear[0]) == (expected_shear > 0)
    if alpha < 0:
        assert expected_shear > expected_normal


def test_stokes_balance_with_active_stress_and_divergence_free():
    n = 16
    m = _model(-3.0, 2.0, n)
    f = torch.as_tensor(_random_state(m, n))
    c, q1, q2 = f[:, 0], f[:, 1], f[:, 2]
    fl = m.flow(c, q1, q2)
    g = m.grid
    ux, uy = fl["ux_hat"], fl["uy_hat"]
    assert float((g.ikx * ux + g.iky * uy).abs().max()) < 1e-12 * float(ux.abs().max())
    # the full stress from the converged velocity: Sigma = alpha D + beta S:E - 2 zeta beta (D.D - S:D)
    uxx, uxy, uyx, uyy = m.strain(ux, uy)
    exx, exy, eyy = uxx, (uxy + uyx) / 2, uyy
    c4, s4 = m.closure(c, q1, q2)
    se = m.s_contract(c, q1, q2, c4, s4, exx, exy, eyy)
    dxx, dxy, dyy = c / 2 + q1, q2, c / 2 - q1
    sd = m.s_contract(c, q1, q2, c4, s4, dxx, dxy, dyy)
    dd = (dxx * dxx + dxy * dxy, dxy * (dxx + dyy), dxy * dxy + dyy * dyy)
    sig = [-3.0 * d + 0.8 * e - 2 * 2.0 * 0.8 * (a - b) for d, e, a, b in zip((dxx, dxy, dyy), se, dd, sd)]
    fx = g.ikx * g.fft(sig[0]) + g.iky * g.fft(sig[1])
    fy = g.ikx * g.fft(sig[1]) + g.iky * g.fft(sig[2])
    # -lap u + grad q = div Sigma  <=>  k^2 u_hat = P(div Sigma)^ (P: projection off k)
    proj = (g.kx * fx + g.ky * fy) * g.inv_k2
    rx = (g.k2 * ux - (fx - g.kx * proj)) * m.resolved  # the Nyquist modes hold no velocity by design
    ry = (g.k2 * uy - (fy - g.ky * proj)) * m.resolved
    scale = float(fx.abs().max())
    assert float(torch.maximum(rx.abs(), ry.abs()).max()) < 1e-8 * scale
    assert float(ux.abs().max()) > 1e-3  # a real flow, not a trivial zero


def test_trace_of_orientation_equation_is_the_concentration_equation():
    """Tr of the local D tendency (Jeffery rotation, S:E, steric) vanishes, so Tr D obeys the c equation."""
    n = 16
    m = _model(-2.0, 3.0, n)
    f = torch.as_tensor(_random_state(m, n, amp=0.4, seed=3))
    rxx, _, ryy = m.tendencies(f[:, 0], f[:, 1], f[:, 2])["local"]
    assert float((rxx + ryy).abs().max()) < 1e-12 * float(rxx.abs().max())


@pytest.fixture(scope="module")
def turbulent():
    return make_active_matter(2, n_points=32, alpha=[-4.0, -2.0], zeta=[3.0, 1.5], n_frames=6, t_max=6.0,
                              random_state=0, device="cpu")


def test_concentration_conserved_and_trace_consistent(turbulent):
    X = turbulent.data.astype(np.float64)
    c = X[..., 0]
    total = c.mean(axis=(2, 3))
    np.testing.assert_allclose(total, np.broadcast_to(total[:, :1], total.shape), rtol=1e-6)
    np.testing.assert_allclose(X[..., 3] + X[..., 6], c, atol=1e-6)  # Tr D = c
    np.testing.assert_array_equal(X[..., 4], X[..., 5])  # D symmetric
    assert c.std(axis=(2, 3))[:, -1].min() > 0  # concentration is not trivially uniform
    # the flow has grown from the perturbation to order one: active turbulence
    urms = np.sqrt((X[..., 1:3] ** 2).mean(axis=(2, 3, 4)))
    assert np.all(urms[:, -1] > 3 * urms[:, 0])


def test_strain_rate_channels_are_the_velocity_gradient(turbulent):
    X = turbulent.data.astype(np.float64)[:, -1]
    n = X.shape[1]
    k = 2 * np.pi * np.fft.fftfreq(n, d=10.0 / n)
    d = lambda f, axis: np.fft.ifft(1j * k.reshape((-1, 1) if axis == 1 else (1, -1)) * np.fft.fft(f, axis=axis),  # noqa: E731
                                    axis=axis).real
    u, v = X[..., 1], X[..., 2]
    np.testing.assert_allclose(X[..., 7], d(u, 2), atol=2e-5 * np.abs(X[..., 7]).max() + 1e-6)
    np.testing.assert_allclose(X[..., 8], 0.5 * (d(u, 1) + d(v, 2)), atol=2e-5 * np.abs(X[..., 8]).max() + 1e-6)
    np.testing.assert_allclose(X[..., 7] + X[..., 10], 0.0, atol=1e-5)  # div u = Tr E = 0


def test_make_active_matter_contract():
    b = make_active_matter(3, n_points=16, n_frames=3, t_max=0.3, random_state=0, device="cpu")
    assert b.data.shape == (3, 3, 16, 16, 11) and len(b.field_names) == 11
    assert b.field_names[3:7] == ["D_xx", "D_xy", "D_yx", "D_yy"] and b.field_names[1:3] == ["velocity_x", "velocity_y"]
    assert b.target_names == ["alpha", "zeta"]
    assert np.all((b.target[:, 0] >= -4) & (b.target[:, 0] <= -1) & (b.target[:, 1] >= 1) & (b.target[:, 1] <= 1.5))
    X2, y2 = make_system("active_matter", 3, n_points=16, n_frames=3, t_max=0.3, random_state=0, device="cpu",
                         chunk_size=2, return_X_y=True)
    np.testing.assert_allclose(X2, b.data, atol=1e-6)
    np.testing.assert_array_equal(y2, b.target)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(zeta=-1.0), ValueError, "zeta"),
        (dict(zeta_range=(-1.0, 2.0)), ValueError, "zeta_range"),
        (dict(n_points=(16, 16)), TypeError, "n_points"),
        (dict(translational_diffusion=0.0), ValueError, "translational_diffusion"),
        (dict(alpha=[1.0, 2.0]), ValueError, "shape"),
    ],
)
def test_active_matter_clear_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        make_active_matter(1, device="cpu", **kwargs)
