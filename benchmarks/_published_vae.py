"""The published PDE-VAE code (peterparity/PDE-VAE-pytorch, ``models/pde1d.py``), loaded at run time
for side-by-side benchmarks; nothing of it is copied into skphys.

Where the code comes from, first found wins:

- ``--published-repo PATH`` / ``$SKPHYS_PDE_VAE_REPO``: a checkout (``PATH/models/pde1d.py``) or a
  git directory (read with ``git show HEAD:models/pde1d.py``);
- ``/work/.mirror/peterparity+PDE-VAE-pytorch/repo`` (the snapshot this project's tools fetch).

:func:`published_like` builds the published ``PDEAutoEncoder`` with the weights of a
:class:`skphys.nn.dynamics_vae.DynamicsVAEModule`, so that both compute the same loss and
gradients on the same crops; :func:`published_loss` is the loss of the published ``run.py``.
"""

from __future__ import annotations

import os
import subprocess
import types
from pathlib import Path

import torch
import torch.nn.functional as F

DEFAULT_REPO = "/work/.mirror/peterparity+PDE-VAE-pytorch/repo"


def find_repo(path=None):
    """The published repository to use, or ``None`` when none is available."""
    for cand in (path, os.environ.get("SKPHYS_PDE_VAE_REPO"), DEFAULT_REPO):
        if cand and Path(cand).exists():
            return str(cand)
    return None


def load_pde1d(repo):
    """Import ``models/pde1d.py`` of the published repository ``repo`` as a module object."""
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
