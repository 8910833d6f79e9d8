"""Pinned outputs of the four original simulators for fixed seeds.

The numbers were computed with the simulators as they were before they moved onto the shared
driver (skphys/datasets/_driver.py, commit 9e98454): the port must not change any array. Each
case draws 3 trajectories with ``random_state=7`` on the CPU in float64; we compare the sum,
a cosine-weighted sum, the sum of squares and two entries of X, and all of y.
"""

import numpy as np
import pytest

from skphys.datasets import make_system

CASES = {
    "ks": ("kuramoto_sivashinsky", dict(n_points=32, length=8 * np.pi, n_frames=6, t_max=3.0, noise=0.05)),
    "ks_burn": ("kuramoto_sivashinsky", dict(n_points=32, length=8 * np.pi, n_frames=4, t_max=1.0, burn_in=0.5,
                                             dealias=True, chunk_size=2)),
    "nls": ("nonlinear_schrodinger", dict(n_points=32, n_frames=5, t_max=0.2, noise=0.05)),
    "cd": ("convection_diffusion", dict(n_points=16, n_frames=4, noise=0.05)),
    # field order of shear flow is unchanged by the rename vx, vy -> velocity_x, velocity_y
    "sf": ("shear_flow", dict(n_points=(16, 16), n_frames=4, t_max=0.4, noise=0.05)),
    "sf_clean": ("shear_flow", dict(n_points=(16, 8), extent=(2.0, 1.0), n_frames=3, t_max=0.2, chunk_size=2)),
}

PINS = {
    "ks": dict(
        shape=(3, 6, 32, 1), sum=-1.9067064533010125, wsum=-8.517262186037925, sumsq=691.5502048758647,
        first=-0.5115571618080139, last=-1.094131350517273,
        y=[[0.8212296302608082], [1.0964823889000612], [0.9806257845741888]],
    ),
    "ks_burn": dict(
        shape=(3, 4, 32, 1), sum=-4.917383193969727e-07, wsum=-6.324787533728571, sumsq=456.5032340491218,
        first=-0.5604289770126343, last=-1.1053271293640137,
        y=[[0.8212296302608082], [1.0964823889000612], [0.9806257845741888]],
    ),
    "nls": dict(
        shape=(3, 5, 32, 2), sum=-223.4663822823204, wsum=-2.963036927048787, sumsq=965.4904796236115,
        first=-0.6500154733657837, last=-0.6114599704742432,
        y=[[-1.3575407394783836], [-0.8070352221998778], [-1.0387484308516224]],
    ),
    "cd": dict(
        shape=(3, 4, 16, 16, 1), sum=253.40695285820402, wsum=156.8299588824307, sumsq=2714.135395215897,
        first=0.2894647419452667, last=0.7500633001327515,
        y=[[0.06424592605216164, 0.01863321219595035, 0.6401829418235425], [0.11929647778001223, -0.031397731912682185, -0.058026276585832925], [0.09612515691483776, 0.405154304827407, -0.00026561009523163275]],
    ),
    "sf": dict(
        shape=(3, 4, 16, 16, 4), sum=1534.2589332491607, wsum=-1.1160207688484305, sumsq=1357.165978484284,
        first=0.00558895617723465, last=-0.004658035468310118,
        y=[[14.901099078557799, 0.529011578827724], [75.3058656662572, 0.9505818372837345], [34.30198434954951, 0.34553804393378756]],
    ),
    "sf_clean": dict(
        shape=(3, 3, 16, 8, 4), sum=575.9999981023789, wsum=0.7635583365597847, sumsq=640.6261819969977,
        first=0.0018683183006942272, last=-0.0014556845417246222,
        y=[[3.725274769639448, 0.529011578827724], [18.826466416564298, 0.9505818372837345], [8.575496087387377, 0.34553804393378756]],
    ),
}


@pytest.mark.parametrize("key", sorted(CASES))
def test_outputs_pinned(key):
    name, kw = CASES[key]
    X, y = make_system(name, 3, random_state=7, device="cpu", return_X_y=True, **kw)
    pin = PINS[key]
    assert X.shape == pin["shape"] and X.dtype == np.float32
    X = X.astype(np.float64)
    scale = np.sqrt(pin["sumsq"] / X.size)  # RMS of the data: the tolerance is relative to it
    np.testing.assert_allclose(X.sum(), pin["sum"], rtol=0, atol=1e-6 * scale * X.size)
    np.testing.assert_allclose((X.ravel() * np.cos(0.37 * np.arange(X.size))).sum(), pin["wsum"], rtol=0,
                               atol=1e-6 * scale * X.size)
    np.testing.assert_allclose((X**2).sum(), pin["sumsq"], rtol=1e-6)
    np.testing.assert_allclose([X.flat[5], X.flat[-3]], [pin["first"], pin["last"]], rtol=0, atol=1e-6 * scale)
    np.testing.assert_array_equal(y, np.asarray(pin["y"]))
