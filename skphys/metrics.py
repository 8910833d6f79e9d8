"""Metrics for learned physical representations.

- :func:`latent_statistics` and :func:`relevant_latents`: which latent parameters carry
  information (high variance of the means across samples, low mean variance; PDE-VAE Fig. 2);
  :func:`latent_directions`: the same per independent direction of the latent means.
- :func:`latent_r2`: linear-fit R^2 of latents against the true parameters, one latent at a time
  (PDE-VAE Table II) or multivariate on a latent subspace (Table I, e.g. the rotated velocity
  subspace of convection-diffusion).
- :func:`linear_fit`: the fitted predictions and their propagated uncertainties for parity plots.
- :func:`rollout_rmse`: prediction RMSE per time step (PDE-VAE Fig. 6).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["latent_statistics", "latent_directions", "relevant_latents", "latent_r2", "linear_fit", "rollout_rmse"]


def _as_2d(a: ArrayLike, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"{name} must be 1-D or 2-D (n_samples, n_features), got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def latent_statistics(mu: ArrayLike, sigma: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Variance of the latent means across samples and the mean latent variance.

    Parameters
    ----------
    mu, sigma : array-like of shape (n_samples, n_latents)
        Latent means and standard deviations (e.g. ``DynamicsVAE.transform(X, return_std=True)``).

    Returns
    -------
    mu_variance : ndarray of shape (n_latents,)
        Variance of each latent's mean across samples.
    mean_sigma2 : ndarray of shape (n_latents,)
        Mean of each latent's variance ``sigma^2`` over samples.

    See Also
    --------
    relevant_latents : Latents whose ratio of the two exceeds a threshold.
    skphys.display.LatentStatisticsDisplay : Plot of both per latent.

    Examples
    --------
    >>> import numpy as np
    >>> mu = np.array([[1.0, 0.0], [-1.0, 0.0]])
    >>> sigma = np.array([[0.1, 1.0], [0.1, 1.0]])
    >>> mu_variance, mean_sigma2 = latent_statistics(mu, sigma)
    >>> mu_variance.tolist(), mean_sigma2.round(3).tolist()
    ([1.0, 0.0], [0.01, 1.0])
    """
    mu = _as_2d(mu, "mu")
    sigma = _as_2d(sigma, "sigma")
    if mu.shape != sigma.shape:
        raise ValueError(f"mu and sigma must have the same shape, got {mu.shape} and {sigma.shape}")
    if mu.shape[0] < 2:
        raise ValueError("at least 2 samples are needed to estimate the variance of mu")
    return mu.var(axis=0), (sigma**2).mean(axis=0)


def latent_directions(mu: ArrayLike, sigma: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Signal-to-noise ratios of the independent directions along which the latent means vary.

    The eigen-decomposition of ``D^-1/2 Cov(mu) D^-1/2``, where ``D = diag(mean sigma^2)``: the
    covariance of the means measured in units of each latent's own noise. When the latents'
    means are uncorrelated the eigenvalues are the per-latent ratios
    ``var(mu) / mean(sigma^2)``; when two latents carry the same information (correlated
    means), it shows as one large eigenvalue instead of two large ratios. The Gaussian-channel
    information the latents carry together is about ``0.5 * sum(ln(1 + eigenvalues))`` nats.

    Parameters
    ----------
    mu, sigma : array-like of shape (n_samples, n_latents)
        Latent means and standard deviations.

    Returns
    -------
    snr : ndarray of shape (n_latents,)
        The eigenvalues, in decreasing order.
    directions : ndarray of shape (n_latents, n_latents)
        Column ``j`` is the unit direction of ``snr[j]`` in the noise-scaled latent space
        ``mu / sqrt(mean sigma^2)``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> p = rng.normal(size=200)                   # one hidden parameter, seen by two latents
    >>> mu = np.c_[p, p + 0.01 * rng.normal(size=200), 0.01 * rng.normal(size=200)]
    >>> sigma = np.full((200, 3), 0.1)
    >>> snr, _ = latent_directions(mu, sigma)
    >>> int((snr > 1).sum())                       # one direction, although two ratios are ~100
    1
    """
    mu_var, s2 = latent_statistics(mu, sigma)
    scale = np.sqrt(np.maximum(s2, np.finfo(float).tiny))
    cov = np.atleast_2d(np.cov(np.asarray(mu, dtype=np.float64), rowvar=False, bias=True))
    snr, vec = np.linalg.eigh(cov / np.outer(scale, scale))
    order = np.argsort(snr)[::-1]
    return np.maximum(snr[order], 0.0), vec[:, order]


def relevant_latents(mu: ArrayLike, sigma: ArrayLike, threshold: float = 1.0, rule: str = "ratio") -> np.ndarray:
    """Indices of the relevant latents, most informative first.

    A latent is relevant when its means vary across samples more than its own uncertainty:
    ``var(mu) / mean(sigma^2) > threshold``. Collapsed latents sit at the prior (``mu ~ 0``,
    ``sigma ~ 1`` or somewhat less), so their ratio is far below 1; informative ones have
    ``var(mu) ~ 1`` and ``sigma^2 << 1``.

    Why this rule. The ratio is the signal-to-noise ratio of the latent seen as a Gaussian
    channel from the trajectory to the sampled latent the decoder reads; the information it
    carries is about ``0.5 ln(1 + ratio)`` nats, so the default threshold 1 asks for 0.35 nats
    (half a bit). It depends only on what the decoder can use. Two alternatives were measured on
    systems skphys does not ship (docs/dynamics_vae.md, issue 15) and rejected:

    - the per-latent KL in nats also counts a constant offset of the means and a posterior that
      is narrowed for every trajectory alike, neither of which carries information: unused
      latents carried ~0.3 nats of KL each while their means did not vary;
    - a gap statistic over the sorted ratios finds *a* latent that stands apart (a ratio 0.09
      against <= 1e-4 for the rest), but in short runs that latent did not track the hidden
      parameter (R^2 0.38 and 0.005 on unseen trajectories, two seeds), so it would have
      reported a wrong parameter as found.

    A ratio below the threshold is therefore read as "not identified (yet)". ``latent_stats_``
    and :class:`skphys.display.LatentStatisticsDisplay` show the ratios, so a user can judge a
    borderline case.

    The per-latent ratio has one blind spot: two latents whose means move together carry one
    parameter, yet count twice (the published code at a small configuration kept two latents on
    KdV with ratios 300 and 25 whose noise-scaled covariance had one eigenvalue above 1: 325,
    then 0.64). ``rule="directions"`` counts the eigenvalues instead
    (:func:`latent_directions`), the same Gaussian-channel reading applied to independent
    directions rather than to coordinate axes; with uncorrelated means it gives the same answer.

    Parameters
    ----------
    mu, sigma : array-like of shape (n_samples, n_latents)
        Latent means and standard deviations.
    threshold : float, default=1.0
        Smallest ratio ``var(mu) / mean(sigma^2)`` of a relevant latent (``rule="ratio"``), or
        smallest signal-to-noise ratio of a relevant direction (``rule="directions"``).
    rule : {"ratio", "directions"}, default="ratio"
        ``"ratio"``: each latent on its own, as above. ``"directions"``: count the independent
        directions of the latent means whose signal-to-noise ratio exceeds ``threshold``
        (:func:`latent_directions`) and return that many latents, chosen one at a time as the
        latent whose mean varies most, relative to its noise, beyond what a linear fit on the
        latents already chosen explains. The two rules agree when the latents' means are
        uncorrelated; when several latents carry the same information, ``"directions"`` counts
        it once.

    Returns
    -------
    indices : ndarray of int
        Sorted by decreasing ratio (``rule="ratio"``) or in the order chosen
        (``rule="directions"``; the first is the latent of largest ratio).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> mu = np.c_[rng.normal(size=100), 0.01 * rng.normal(size=100)]
    >>> sigma = np.c_[np.full(100, 0.05), np.full(100, 0.9)]
    >>> relevant_latents(mu, sigma)
    array([0])
    """
    if rule not in ("ratio", "directions"):
        raise ValueError(f"rule must be 'ratio' or 'directions', got {rule!r}")
    mu_var, s2 = latent_statistics(mu, sigma)
    ratio = mu_var / np.maximum(s2, np.finfo(float).tiny)
    if rule == "directions":
        n = int((latent_directions(mu, sigma)[0] > threshold).sum())
        m = np.asarray(mu, dtype=np.float64)
        m = m - m.mean(axis=0)
        chosen: list[int] = []
        for _ in range(n):
            # the latent whose mean varies most beyond what the chosen ones already explain
            if chosen:
                coef = np.linalg.lstsq(m[:, chosen], m, rcond=None)[0]
                resid = (m - m[:, chosen] @ coef).var(axis=0)
            else:
                resid = mu_var
            score = resid / np.maximum(s2, np.finfo(float).tiny)
            score[chosen] = -np.inf
            chosen.append(int(np.argmax(score)))
        return np.array(chosen, dtype=int)
    idx = np.flatnonzero(ratio > threshold)
    return idx[np.argsort(-ratio[idx], kind="stable")]


def _r2(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    ss_res = ((y - pred) ** 2).sum(axis=0)
    ss_tot = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    return 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, np.nan)


def linear_fit(latents: ArrayLike, y: ArrayLike, sigma: ArrayLike | None = None) -> dict[str, np.ndarray]:
    """Least-squares fit ``y ~ latents @ A + b`` with the predictions' propagated uncertainty.

    Parameters
    ----------
    latents : array-like of shape (n_samples, k) or (n_samples,)
    y : array-like of shape (n_samples, n_params) or (n_samples,)
    sigma : array-like of the shape of ``latents``, default=None
        Latent standard deviations; the prediction's std is ``sqrt(sum_j (A_jp sigma_j)^2)``
        (use ``1.96 *`` that for the 95% intervals of the paper's parity plots).

    Returns
    -------
    fit : dict
        ``pred`` (n_samples, n_params), ``coef`` (k, n_params), ``intercept`` (n_params,),
        ``r2`` (n_params,) and, with ``sigma``, ``pred_std`` (n_samples, n_params).

    See Also
    --------
    skphys.display.ParameterParityDisplay : Parity plot of ``pred`` with intervals from ``pred_std``.

    Examples
    --------
    >>> import numpy as np
    >>> z = np.array([0.0, 1.0, 2.0, 3.0])
    >>> fit = linear_fit(z, 2 * z + 1, sigma=np.full(4, 0.1))
    >>> fit["coef"].round(6).tolist(), fit["intercept"].round(6).tolist(), fit["r2"].tolist()
    ([[2.0]], [1.0], [1.0])
    >>> fit["pred_std"][:, 0].round(6).tolist()   # |A| * sigma
    [0.2, 0.2, 0.2, 0.2]
    """
    Z = _as_2d(latents, "latents")
    Y = _as_2d(y, "y")
    if Z.shape[0] != Y.shape[0]:
        raise ValueError(f"latents and y have {Z.shape[0]} and {Y.shape[0]} samples")
    if Z.shape[0] <= Z.shape[1]:
        raise ValueError(f"need more samples ({Z.shape[0]}) than latents ({Z.shape[1]}) for a linear fit")
    A = np.c_[Z, np.ones(len(Z))]
    sol, *_ = np.linalg.lstsq(A, Y, rcond=None)
    coef, intercept = sol[:-1], sol[-1]
    pred = A @ sol
    out = {"pred": pred, "coef": coef, "intercept": intercept, "r2": _r2(Y, pred)}
    if sigma is not None:
        S = _as_2d(sigma, "sigma")
        if S.shape != Z.shape:
            raise ValueError(f"sigma must have the shape of latents {Z.shape}, got {S.shape}")
        out["pred_std"] = np.sqrt((S**2) @ (coef**2))
    return out


def latent_r2(latents: ArrayLike, y: ArrayLike, multivariate: bool = False) -> np.ndarray:
    """Linear-fit R^2 of latents against true parameters.

    Parameters
    ----------
    latents : array-like of shape (n_samples, k)
        Usually the relevant latents, ``mu[:, model.relevant_latents_]``.
    y : array-like of shape (n_samples, n_params) or (n_samples,)
    multivariate : bool, default=False
        ``False``: one fit per (latent, parameter) pair, returning a ``(k, n_params)`` matrix
        (the paper's Table II). ``True``: one multivariate fit per parameter on all ``k``
        latents, returning ``(n_params,)`` (used for a rotated subspace, e.g. vx and vy).

    Returns
    -------
    r2 : ndarray of shape (k, n_params) or (n_params,)

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> v = rng.normal(size=(200, 2))
    >>> R = np.array([[np.cos(0.5), -np.sin(0.5)], [np.sin(0.5), np.cos(0.5)]])
    >>> z = v @ R.T                      # a rotated representation of (vx, vy)
    >>> bool((latent_r2(z, v) < 0.9).all()), bool((latent_r2(z, v, multivariate=True) > 0.999).all())
    (True, True)
    """
    Z = _as_2d(latents, "latents")
    Y = _as_2d(y, "y")
    if multivariate:
        return linear_fit(Z, Y)["r2"]
    return np.stack([linear_fit(Z[:, j], Y)["r2"] for j in range(Z.shape[1])])


def rollout_rmse(y_true: ArrayLike, y_pred: ArrayLike, time_axis: int = 1) -> np.ndarray:
    """Root-mean-square prediction error at each time step, averaged over samples.

    For each sample and step the RMSE is taken over space and channels; the result is the mean
    of those over samples (the paper's Fig. 6).

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples, n_steps, \\*space, C)
    time_axis : int, default=1
        Axis of the time steps.

    Returns
    -------
    rmse : ndarray of shape (n_steps,)

    See Also
    --------
    skphys.display.RolloutErrorDisplay : Plot of the RMSE per step against a baseline.

    Examples
    --------
    >>> import numpy as np
    >>> rollout_rmse(np.zeros((2, 3, 4, 1)), np.full((2, 3, 4, 1), 0.5))
    array([0.5, 0.5, 0.5])
    """
    a = np.asarray(y_true, dtype=np.float64)
    b = np.asarray(y_pred, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"y_true and y_pred must have the same shape, got {a.shape} and {b.shape}")
    if a.ndim < 3:
        raise ValueError(f"expected (n_samples, n_steps, *space, C) arrays, got shape {a.shape}")
    a = np.moveaxis(a, time_axis, 1)
    b = np.moveaxis(b, time_axis, 1)
    err = (a - b) ** 2
    per_sample = np.sqrt(err.reshape(err.shape[0], err.shape[1], -1).mean(axis=-1))
    return per_sample.mean(axis=0)
