"""Chebyshev collocation helpers for wall-bounded directions (Gauss-Lobatto points).

- :func:`chebyshev_points` / :func:`chebyshev_matrix`: points ``cos(pi j / N)`` on [-1, 1] and the
  differentiation matrix (negative-sum trick for the diagonal),
- :func:`clenshaw_curtis_weights`: quadrature weights on the same points,
- :func:`interpolation_matrix`: barycentric interpolation from the points to any others (exact
  for polynomials of degree N, stable).

All return float64 numpy arrays; callers move them to torch.
"""

from __future__ import annotations

import numpy as np

__all__ = ["chebyshev_points", "chebyshev_matrix", "clenshaw_curtis_weights", "interpolation_matrix"]


def chebyshev_points(n):
    """``n + 1`` Gauss-Lobatto points ``cos(pi j / n)``, from +1 down to -1."""
    return np.cos(np.pi * np.arange(n + 1) / n)


def chebyshev_matrix(n):
    """Differentiation matrix on :func:`chebyshev_points` (``(n+1, n+1)``)."""
    x = chebyshev_points(n)
    c = np.ones(n + 1)
    c[0] = c[-1] = 2.0
    c = c * (-1.0) ** np.arange(n + 1)
    dx = x[:, None] - x[None, :]
    D = np.outer(c, 1.0 / c) / (dx + np.eye(n + 1))
    D -= np.diag(D.sum(axis=1))
    return D


def clenshaw_curtis_weights(n):
    """Weights ``w`` with ``sum(w f(x_j)) = int_{-1}^{1} f`` exactly for polynomials of degree n."""
    theta = np.pi * np.arange(n + 1) / n
    w = np.zeros(n + 1)
    v = np.ones(n - 1)
    inner = theta[1:-1]
    if n % 2 == 0:
        w[0] = w[n] = 1.0 / (n**2 - 1)
        for k in range(1, n // 2):
            v -= 2 * np.cos(2 * k * inner) / (4 * k**2 - 1)
        v -= np.cos(n * inner) / (n**2 - 1)
    else:
        w[0] = w[n] = 1.0 / n**2
        for k in range(1, (n - 1) // 2 + 1):
            v -= 2 * np.cos(2 * k * inner) / (4 * k**2 - 1)
    w[1:-1] = 2 * v / n
    return w


def interpolation_matrix(n, targets):
    """Matrix ``P`` with ``P @ f(x_j) = p(targets)``, ``p`` the degree-n interpolant (barycentric)."""
    x = chebyshev_points(n)
    targets = np.asarray(targets, dtype=float)
    lam = (-1.0) ** np.arange(n + 1)
    lam[0] *= 0.5
    lam[-1] *= 0.5
    diff = targets[:, None] - x[None, :]
    exact = np.isclose(diff, 0.0, atol=1e-14)
    diff[exact] = 1.0
    P = lam / diff
    P /= P.sum(axis=1, keepdims=True)
    rows = exact.any(axis=1)
    P[rows] = exact[rows].astype(float)
    return P
