"""Run the published PDE-VAE code (peterparity/PDE-VAE-pytorch) beside skphys, on the same data.

The published model (``models/pde1d.py``) is read at run time from the local mirror with
``git show`` and executed as a module; nothing of it is copied into skphys. The training loop
below is written for this benchmark after the published ``run.py``: Adam (lr 1e-3, eps 1e-8),
batch 50 shuffled each epoch (one crop pair per trajectory per epoch, the last partial batch
kept), independent random encoder crops (64 x 94) and decoder crops (32 x 76) in time inside the
trajectory and periodically in space, boundary "crop", loss ``F.mse_loss(out, target) + beta * 0.5
* mean_b sum_l (mu^2 + e^logvar - logvar - 1)``. ``run.py`` passes ``param_dropout_prob`` from the
input file, whose default there is 0 (``KS_train.json`` does not set it); ``dropout`` below
selects it.

Latent statistics are read with the published model's own forward pass in ``eval`` mode on
whole trajectories, as its ``evaluate`` does.
"""

from __future__ import annotations

import os
import subprocess
import time
import types

import numpy as np
import torch
import torch.nn.functional as F

MIRROR = os.environ.get("PDE_VAE_MIRROR", "/work/.mirror/peterparity+PDE-VAE-pytorch/repo")


def available():
    return os.path.isdir(MIRROR)


def load_pde1d():
    """The published ``models/pde1d.py`` as a module (read from the mirror, not copied)."""
    src = subprocess.run(["git", "-C", MIRROR, "show", "HEAD:models/pde1d.py"], check=True, capture_output=True,
                         text=True).stdout
    mod = types.ModuleType("published_pde1d")
    exec(compile(src, "published:models/pde1d.py", "exec"), mod.__dict__)
    return mod


def build(n_channels, n_latents=5, dropout=0.0, seed=0):
    torch.manual_seed(seed)
    return load_pde1d().PDEAutoEncoder(
        param_size=n_latents, data_channels=n_channels, data_dimension=1, hidden_channels=16, linear_kernel_size=0,
        nonlin_kernel_size=5, prop_layers=1, prop_noise=0.0, boundary_cond="crop", param_dropout_prob=dropout,
    )


def _crops(X, idx, rng, depth, width):
    """(B, C, depth, width) crops of X (N, T, x, C): time inside, space periodic."""
    T, n = X.shape[1], X.shape[2]
    t0 = rng.integers(0, T - depth + 1, len(idx))
    x0 = rng.integers(0, n, len(idx))
    out = np.empty((len(idx), X.shape[3], depth, width), dtype=np.float32)
    for j, (i, t, x) in enumerate(zip(idx, t0, x0)):
        cols = (x + np.arange(width)) % n
        out[j] = X[i, t : t + depth][:, cols].transpose(2, 0, 1)
    return out


def encode(model, X, batch=50):
    """Latent means and std of whole trajectories X (N, T, x, C), published forward in eval mode."""
    model.eval()
    mus, sds = [], []
    with torch.no_grad():
        for s in range(0, len(X), batch):
            x = torch.from_numpy(np.ascontiguousarray(X[s : s + batch].transpose(0, 3, 1, 2)))
            _, mu, logvar = model(x, x[:, :, :1], depth=1)
            mus.append(mu.numpy())
            sds.append(np.exp(0.5 * logvar.numpy()))
    model.train()
    return np.concatenate(mus).astype(float), np.concatenate(sds).astype(float)


def latent_record(mu, sigma):
    """var(mu), mean sigma^2 and mean KL (nats) per latent."""
    kl = 0.5 * (mu**2 + sigma**2 - np.log(sigma**2) - 1).mean(0)
    return {"mu_variance": mu.var(0), "mean_sigma2": (sigma**2).mean(0), "kl_nats": kl}


def train(X, *, epochs, seed=0, n_latents=5, beta=0.02, lr=1e-3, batch_size=50, dropout=0.0,
          enc_crop=(64, 94), dec_width=76, rollout=31, record_every=None, log=print):
    """Train the published model on X (N, T, x, C) float32; returns (model, records, seconds)."""
    model = build(X.shape[3], n_latents, dropout, seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, eps=1e-8)
    rng = np.random.default_rng(seed)
    pad = 6  # (2 + prop_layers) * (kernel 5 - 1) / 2
    records, t_train = [], 0.0
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(X))
        t0 = time.perf_counter()
        for s in range(0, len(X), batch_size):
            idx = order[s : s + batch_size]
            x = torch.from_numpy(_crops(X, idx, rng, enc_crop[0], enc_crop[1]))
            tgt = torch.from_numpy(_crops(X, idx, rng, rollout + 1, dec_width))
            out, mu, logvar = model(x, tgt[:, :, :rollout], depth=rollout)
            mse = F.mse_loss(out, tgt[:, :, 1 : rollout + 1, pad:-pad])
            kl = 0.5 * torch.mean(torch.sum(mu * mu + logvar.exp() - logvar - 1, dim=-1))
            loss = mse + beta * kl
            opt.zero_grad()
            loss.backward()
            opt.step()
        t_train += time.perf_counter() - t0
        if record_every and (epoch % record_every == 0 or epoch == epochs):
            rec = latent_record(*encode(model, X))
            rec.update(epoch=epoch, mse=mse.item(), kl=kl.item())
            records.append(rec)
            log(f"published epoch {epoch} mse {rec['mse']:.4g} kl {rec['kl']:.3g} var(mu) "
                f"{np.array2string(rec['mu_variance'], precision=3)} sigma2 {np.array2string(rec['mean_sigma2'], precision=3)} "
                f"KL/latent {np.array2string(rec['kl_nats'], precision=3)}")
    return model, records, t_train
