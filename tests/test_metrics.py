import numpy as np
import pytest

from skphys.metrics import latent_directions, latent_r2, latent_statistics, linear_fit, relevant_latents, rollout_rmse


def test_latent_statistics_and_relevance(rng):
    n = 500
    mu = np.c_[0.01 * rng.normal(size=n), rng.normal(size=n), 0.5 * rng.normal(size=n), 0.02 * rng.normal(size=n)]
    sigma = np.c_[np.full(n, 0.8), np.full(n, 0.05), np.full(n, 0.1), np.full(n, 0.9)]
    var, s2 = latent_statistics(mu, sigma)
    np.testing.assert_allclose(var, mu.var(axis=0))
    np.testing.assert_allclose(s2, [0.64, 0.0025, 0.01, 0.81])
    # most informative first (ratio ~400 for latent 1, ~25 for latent 2)
    np.testing.assert_array_equal(relevant_latents(mu, sigma), [1, 2])
    np.testing.assert_array_equal(relevant_latents(mu, sigma, threshold=100.0), [1])
    assert relevant_latents(mu, sigma, threshold=1e6).size == 0


def test_directions_rule_counts_shared_information_once(rng):
    n = 2000
    p, q = rng.normal(size=n), rng.normal(size=n)
    sigma = np.full((n, 4), 0.1)
    # uncorrelated latents: the eigenvalues are the per-latent ratios, both rules agree
    mu = np.c_[p, 0.5 * q, 0.01 * rng.normal(size=n), 0.02 * rng.normal(size=n)]
    snr, vec = latent_directions(mu, sigma)
    np.testing.assert_allclose(np.sort(snr)[::-1][:2], np.sort(mu.var(0) / 0.01)[::-1][:2], rtol=0.05)
    np.testing.assert_allclose(vec.T @ vec, np.eye(4), atol=1e-12)
    np.testing.assert_array_equal(relevant_latents(mu, sigma, rule="directions"), relevant_latents(mu, sigma))
    # two latents carrying the same parameter (plus their own small noise): one direction
    mu = np.c_[p, 0.8 * p + 0.02 * rng.normal(size=n), 0.01 * rng.normal(size=n), 0.5 * q]
    assert relevant_latents(mu, sigma).size == 3
    # the second relevant latent is the one with new information (q), not the copy of p
    np.testing.assert_array_equal(relevant_latents(mu, sigma, rule="directions"), [0, 3])
    assert (latent_directions(mu, sigma)[0] > 1).sum() == 2
    # several weak latents sharing one signal add up to one relevant direction
    mu = np.c_[[0.07 * p + 0.001 * rng.normal(size=n) for _ in range(4)]].T
    assert relevant_latents(mu, sigma).size == 0
    assert relevant_latents(mu, sigma, rule="directions").size == 1
    with pytest.raises(ValueError, match="rule"):
        relevant_latents(mu, sigma, rule="kl")


def test_latent_r2_single_matches_noise_level(rng):
    n = 20000
    z = rng.normal(size=n)
    y = 3.0 * z + 1.0 + 0.5 * rng.normal(size=n)
    r2 = latent_r2(z[:, None], y)
    assert r2.shape == (1, 1)
    # population R^2 of y = 3 z + e, var(e) = 0.25: 9 / 9.25
    assert r2[0, 0] == pytest.approx(9 / 9.25, abs=3e-3)
    np.testing.assert_allclose(latent_r2(z, 2 * z - 4), [[1.0]])


def test_latent_r2_rotated_subspace(rng):
    """(vx, vy) encoded as a rotated 2-D subspace: single fits share the variance, the
    multivariate fit recovers it (PDE-VAE Table II vs Table I)."""
    n = 4000
    v = rng.normal(size=(n, 2))
    a = np.deg2rad(30)
    R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    z = v @ R.T
    single = latent_r2(z, v)
    assert single.shape == (2, 2)
    np.testing.assert_allclose(single, [[np.cos(a) ** 2, np.sin(a) ** 2], [np.sin(a) ** 2, np.cos(a) ** 2]], atol=0.03)
    np.testing.assert_allclose(latent_r2(z, v, multivariate=True), [1.0, 1.0], atol=1e-12)


def test_linear_fit_uncertainty(rng):
    z = rng.normal(size=(100, 2))
    y = z @ np.array([[2.0], [-1.0]]) + 0.3
    out = linear_fit(z, y, sigma=np.full_like(z, 0.1))
    np.testing.assert_allclose(out["coef"].ravel(), [2.0, -1.0], atol=1e-10)
    np.testing.assert_allclose(out["intercept"], [0.3], atol=1e-10)
    np.testing.assert_allclose(out["pred_std"], np.sqrt(0.01 * 4 + 0.01 * 1), rtol=1e-10)


def test_rollout_rmse_per_step():
    y = np.zeros((2, 3, 4, 1))
    p = np.zeros_like(y)
    p[0, 1] = 1.0  # sample 0, step 1: RMSE 1; sample 1: 0
    p[1, 2, :2] = 2.0  # sample 1, step 2: sqrt(mean([4, 4, 0, 0])) = sqrt(2)
    np.testing.assert_allclose(rollout_rmse(y, p), [0.0, 0.5, np.sqrt(2) / 2])


def test_metric_errors():
    with pytest.raises(ValueError, match="same shape"):
        rollout_rmse(np.zeros((2, 3, 4)), np.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match="NaN"):
        latent_r2(np.array([1.0, np.nan, 2.0]), np.arange(3.0))
    with pytest.raises(ValueError, match="samples"):
        linear_fit(np.zeros((3, 1)), np.zeros((4, 1)))
    with pytest.raises(ValueError, match="same shape"):
        latent_statistics(np.zeros((3, 2)), np.zeros((3, 3)))
