"""The published PDE-VAE code (peterparity/PDE-VAE-pytorch, ``models/pde1d.py``), loaded at run time
for side-by-side benchmarks; nothing of it is copied into skphys.

Where the code comes from, first found wins:

- ``--published-repo PATH`` / ``$SKPHYS_PDE_VAE_REPO``: a checkout (``PATH/models/pde1d.py``) or a
  git directory (read with ``git show HEAD:models/pde1d.py``);
- ``/work/.mirror/peterparity+PDE-VAE-pytorch/repo`` (the snapshot this project's tools fetch).

:func:`published_like` builds the published ``PDEAutoEncoder`` with the weights of a
:class:`skphys.nn.dynamics_vae.DynamicsVAEModule`, so that both compute the same loss and
gradients on the same crops; :func:`published_loss` is the loss of the published ``run.py``.

Training beside skphys (:func:`train`, :func:`encode`, :func:`latent_record`): a loop written for
this benchmark after the published ``run.py``: Adam (lr 1e-3, eps 1e-8), batch 50 shuffled each
epoch (one crop pair per trajectory per epoch, the last partial batch kept), independent random
encoder crops (64 x 94) and decoder crops (32 x 76) in time inside the trajectory and
periodically in space, boundary "crop", loss ``F.mse_loss(out, target) + beta * 0.5 * mean_b
sum_l (mu^2 + e^logvar - logvar - 1)``. ``run.py`` passes ``param_dropout_prob`` from the input
file, whose default there is 0 (``KS_train.json`` does not set it); ``dropout`` selects it.
Latent statistics are read with the published model's own forward pass in ``eval`` mode on whole
trajectories, as its ``evaluate`` does.
"""

from __future__ import annotations

import os
import subprocess
import time
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

DEFAULT_REPO = "/work/.mirror/peterparity+PDE-VAE-pytorch/repo"


def find_repo(path=None):
    """The published repository to use, or ``None`` when none is available."""
    for cand in (path, os.environ.get("SKPHYS_PDE_VAE_REPO"), DEFAULT_REPO):
        if cand and Path(cand).exists():
            return str(cand)
    return None


def available():
    """Whether the published repository can be found (see :func:`find_repo`)."""
    return find_repo() is not None


def load_pde1d(repo=None):
    """Import ``models/pde1d.py`` of the published repository ``repo`` (default: :func:`find_repo`)
    as a module object."""
    repo = repo or find_repo()
    if repo is None:
        raise FileNotFoundError("the published PDE-VAE repository was not found; set $SKPHYS_PDE_VAE_REPO")
    path = Path(repo) / "models" / "pde1d.py"
    if path.exists():
        src = path.read_text()
    else:
        try:
            src = subprocess.run(
                ["git", "-C", str(repo), "show", "HEAD:models/pde1d.py"], check=True, capture_output=True, text=True
            ).stdout
        except (OSError, subprocess.CalledProcessError) as err:
            raise FileNotFoundError(f"no models/pde1d.py in {repo!r}: {err}") from err
    mod = types.ModuleType("published_pde1d")
    exec(compile(src, f"{repo}/models/pde1d.py", "exec"), mod.__dict__)
    return mod


def _kernel_rows(c_out, c_in, k):
    """Row order that turns skphys's flat kernel (C_out, C_in, k) into the published (k, C_in, C_out)."""
    idx = torch.arange(c_out * c_in * k).reshape(c_out, c_in, k)
    return idx.permute(2, 1, 0).reshape(-1)


def published_like(pde1d, module, param_dropout_prob=0.0):
    """The published ``PDEAutoEncoder`` (crop boundary, one hidden propagation layer) with the
    weights of the 1-D skphys ``DynamicsVAEModule`` ``module``."""
    dec = module.decoder
    enc = module.encoder
    (c_out0, c_in0, k) = dec.layers[0].kernel_shape
    model = pde1d.PDEAutoEncoder(
        param_size=module.n_latents, data_channels=c_in0, data_dimension=1, hidden_channels=c_out0,
        linear_kernel_size=0, nonlin_kernel_size=k, prop_layers=1, boundary_cond="crop",
        param_dropout_prob=param_dropout_prob,
    )
    convs = [m for m in enc.features if isinstance(m, torch.nn.Conv2d)]
    theirs = [m for m in model.encoder if isinstance(m, torch.nn.Conv2d)]
    if len(convs) != len(theirs):
        raise ValueError("the published encoder has four dilated layers; this module has a different encoder")
    with torch.no_grad():
        for a, b in zip(convs, theirs):
            b.weight.copy_(a.weight)
            b.bias.copy_(a.bias)
        for a, b in ((enc.mu_head, model.encoder_to_param[0]), (enc.logvar_head, model.encoder_to_logvar[0])):
            b.weight.copy_(a.weight)
            b.bias.copy_(a.bias)
        names = ("in", "prop", "out")
        for layer, name in zip(dec.layers, names):
            kw, kb = getattr(model, f"param_to_{name}_weight"), getattr(model, f"param_to_{name}_bias")
            rows = _kernel_rows(*layer.kernel_shape)
            kw[0].weight.copy_(layer.kernel_net[0].weight)
            kw[0].bias.copy_(layer.kernel_net[0].bias)
            kw[2].weight.copy_(layer.kernel_net[2].weight[rows])
            kw[2].bias.copy_(layer.kernel_net[2].bias[rows])
            for i in (0, 2):
                kb[i].weight.copy_(layer.bias_net[i].weight)
                kb[i].bias.copy_(layer.bias_net[i].bias)
        model.decoder.cutoff.fill_(float(dec.cutoff))
    return model


def published_loss(model, x, t, beta=0.02):
    """``run.py``'s training loss on an encoder crop ``x`` (N, C, T, X) and a target crop ``t``
    (N, C, depth + 1, X_dec), crop boundary: MSE on the interior plus ``beta`` times the KL."""
    depth = t.shape[2] - 1
    pad = model.decoder.padding
    output, params, logvar = model(x, t[:, :, :depth], depth=depth)
    recon = F.mse_loss(output, t[:, :, 1:, pad:-pad])
    latent = beta * 0.5 * torch.mean(torch.sum(params * params + logvar.exp() - logvar - 1, dim=-1))
    return recon + latent


def grads_in_published_order(pde1d, module):
    """The gradients of the skphys ``module`` as one vector in the published model's parameter
    order (the same mapping as :func:`published_like`), for comparing the two gradients."""
    import copy

    holder = copy.deepcopy(module)
    with torch.no_grad():
        for dst, src in zip(holder.parameters(), module.parameters()):
            dst.copy_(src.grad if src.grad is not None else torch.zeros_like(src))
    return torch.cat([p.detach().flatten() for p in published_like(pde1d, holder).parameters()])


def build(n_channels, n_latents=5, dropout=0.0, seed=0, hidden_channels=16):
    torch.manual_seed(seed)
    return load_pde1d().PDEAutoEncoder(
        param_size=n_latents, data_channels=n_channels, data_dimension=1, hidden_channels=hidden_channels,
        linear_kernel_size=0,
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
          enc_crop=(64, 94), dec_width=76, rollout=31, hidden_channels=16, record_every=None, log=print):
    """Train the published model on X (N, T, x, C) float32; returns (model, records, seconds).

    Its encoder widths (4, 16, 64, 64) and its update prefactor (``dt = 1e-6``) are fixed in its
    source; the crops, rollout, batch, learning rate, KL weight and decoder width are these."""
    model = build(X.shape[3], n_latents, dropout, seed, hidden_channels)
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
