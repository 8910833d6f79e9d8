"""VICReg loss (Bardes et al., 2022) as used by the JEPA reference: over spatial token rows.

``loss = sim * MSE(a, b) + var * (hinge(a) + hinge(b)) / 2 + cov * (offdiag(a) + offdiag(b))``
with ``hinge(z) = mean_j relu(1 - sqrt(var(z_j) + eps))`` and
``offdiag(z) = sum_{i != j} C_ij(z)^2 / D``, ``C`` the covariance over rows. The rows are all
``B*H*W`` tokens of a batch (``(B, D, *space)`` tensors), shuffled and split into ``n_chunks``
chunks whose losses are averaged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["vicreg_terms", "vicreg_loss", "tokens_as_rows"]


def tokens_as_rows(z: torch.Tensor) -> torch.Tensor:
    """``(B, D, *space)`` -> ``(B * prod(space), D)``; 2-D input is returned as is."""
    if z.ndim == 2:
        return z
    return z.movedim(1, -1).reshape(-1, z.shape[1])


def _hinge_std(z, eps):
    std = torch.sqrt(z.var(dim=0) + eps)
    return F.relu(1.0 - std).mean()


def _off_diagonal_cov(z):
    n, d = z.shape
    z = z - z.mean(dim=0)
    cov = (z.T @ z) / max(n - 1, 1)
    off = cov.pow(2).sum() - torch.diagonal(cov).pow(2).sum()
    return off / d


def vicreg_terms(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Invariance, variance and covariance terms for row matrices ``a``, ``b`` of shape (n, D)."""
    inv = F.mse_loss(a, b)
    var = 0.5 * (_hinge_std(a, eps) + _hinge_std(b, eps))
    cov = _off_diagonal_cov(a) + _off_diagonal_cov(b)
    return inv, var, cov


def vicreg_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    sim_coeff: float = 2.0,
    std_coeff: float = 40.0,
    cov_coeff: float = 2.0,
    n_chunks: int = 5,
    eps: float = 1e-4,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """VICReg loss between ``pred`` and ``target`` token maps, computed in float32.

    Parameters
    ----------
    pred, target : Tensor of shape (B, D, *space) or (n_rows, D)
    sim_coeff, std_coeff, cov_coeff : float
        lambda, mu, nu (the JEPA paper: 2, 40, 2).
    n_chunks : int
        Rows are shuffled and split into this many chunks (fewer if there are too few rows, each
        chunk keeps at least 2 rows); the chunk losses are averaged.
    eps : float
        Added to the variance before the square root of the variance hinge.
    generator : torch.Generator, optional
        For the shuffle.

    Returns
    -------
    loss : Tensor (scalar)
    logs : dict of scalar Tensors ``inv``, ``var``, ``cov`` (chunk averages)
    """
    a = tokens_as_rows(pred).float()
    b = tokens_as_rows(target).float()
    if a.shape != b.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    n = a.shape[0]
    if n < 2:
        raise ValueError("VICReg needs at least 2 token rows")
    chunks = max(1, min(int(n_chunks), n // 2))
    perm = torch.randperm(n, device=a.device, generator=generator)
    a, b = a[perm], b[perm]
    total = inv_s = var_s = cov_s = 0.0
    with torch.autocast(device_type=a.device.type, enabled=False):  # covariances in float32, not bf16
        for ia, ib in zip(a.chunk(chunks), b.chunk(chunks)):
            inv, var, cov = vicreg_terms(ia, ib, eps)
            total = total + sim_coeff * inv + std_coeff * var + cov_coeff * cov
            inv_s, var_s, cov_s = inv_s + inv, var_s + var, cov_s + cov
    k = len(a.chunk(chunks))
    return total / k, {"inv": inv_s / k, "var": var_s / k, "cov": cov_s / k}
