"""What DynamicsVAE's decoder can gain from a hidden parameter when it is *handed* the truth
(issue 15).

The VAE buys a latent for a parameter when the rollout error it saves is worth more than the
latent's KL price (``beta`` per nat). ``unseen_systems.parameter_value`` gives that saving for a
*perfect* decoder. This script measures it for the real one: the decoder of
``DynamicsVAEModule`` (same widths, kernel, update prefactor, rollout length and crops as the
given DynamicsVAE settings) is trained alone, with no encoder, on latents set to the standardized
true parameters, once with every parameter, once with each parameter alone, and once with none.
The difference between two rows is what that parameter is worth to this decoder at this budget.

    OMP_NUM_THREADS=1 python benchmarks/oracle_decoder.py --system damped_wave --scale-channels \
        --epochs 600 --kw "decoder_crop=48, rollout_steps=8, batch_size=32, output_scale=1e-2, \
        lr=1e-3, hidden_channels=8"

Prints the table and appends it, with command, machine and date, to
``benchmarks/results/oracle_decoder.md``. Training uses skphys's engine
(``skphys._training.train``); nothing here is a second training loop.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _oracle  # noqa: E402
from _record import record  # noqa: E402

from skphys._training import step_seed, train  # noqa: E402
from skphys.nn.dynamics_vae import PropagatingDecoder  # noqa: E402

DEFAULTS = dict(hidden_channels=8, decoder_crop=48, rollout_steps=8, batch_size=32, output_scale=1e-2, lr=1e-3,
                kernel_size=5, n_latents=5)


def rollout_mse(decoder, target, z):
    """Mean squared error of the decoder's rollout from the crop's first frame (boundary "crop")."""
    p = decoder.pad
    interior = target[:, :, :, p:-p]
    steps = target.shape[2] - 1
    pred = decoder(interior[:, :, 0], z, steps, "crop", edges=target)
    return torch.mean((pred - interior[:, :, 1:]) ** 2)


def fit_decoder(Xtr, Ztr, Xte, Zte, kw, epochs, seed):
    """Train a fresh decoder on (X, Z); return its training MSE over the last 20 epochs and the
    MSE on fixed crops of the unseen trajectories."""
    torch.manual_seed(step_seed(seed, 0))
    dec = PropagatingDecoder(Xtr.shape[-1], kw["n_latents"], 1, kw["hidden_channels"], kw["kernel_size"],
                             output_scale=kw["output_scale"])
    crop = (kw["rollout_steps"] + 1, kw["decoder_crop"])
    steps_per_epoch, rows = _oracle.epochs(len(Xtr), kw["batch_size"], seed)

    def batches(epoch):
        for idx, gen in rows(epoch):
            yield _oracle.periodic_crops(Xtr, idx, gen, crop), Ztr[idx]

    def loss(batch):
        mse = rollout_mse(dec, *batch)
        return mse, {"mse": mse}

    history = train(dec.parameters(), loss, batches, max_epochs=epochs, steps_per_epoch=steps_per_epoch,
                    lr=kw["lr"], desc="oracle decoder")
    train_mse = float(np.mean([h["mse"] for h in history[-20:]]))
    dec.eval()
    gen = torch.Generator().manual_seed(12345)
    idx = torch.arange(len(Xte))
    with torch.no_grad():  # 4 fixed crops per unseen trajectory
        errs = [float(rollout_mse(dec, _oracle.periodic_crops(Xte, idx, gen, crop), Zte)) for _ in range(4)]
    return train_mse, float(np.mean(errs))


def main(argv=None):
    args, kw = _oracle.parse(__doc__, DEFAULTS, "decoder", argv)
    tr, te = args.train, args.test
    m, s = tr.target.mean(0), tr.target.std(0)
    names = list(tr.target_names)
    if len(names) > kw["n_latents"]:
        raise ValueError(f"{len(names)} parameters do not fit in n_latents={kw['n_latents']}")
    sets = [("all: " + ", ".join(names), names)]
    if len(names) > 1:
        sets += [(f"{k} only", [k]) for k in names]
    sets.append(("none", []))
    Xtr, Xte = _oracle.as_tensor(tr.data), _oracle.as_tensor(te.data)
    rows = ["| latents handed to the decoder | training MSE (last 20 epochs) | unseen MSE | fit s |", "|---|---|---|---|"]
    for label, keep in sets:
        def latents(target):
            Z = np.zeros((len(target), kw["n_latents"]), dtype=np.float32)
            for j, k in enumerate(names):
                if k in keep:
                    Z[:, j] = (target[:, j] - m[j]) / s[j]
            return torch.from_numpy(Z)

        t0 = time.perf_counter()
        train_mse, test_mse = fit_decoder(Xtr, latents(tr.target), Xte, latents(te.target), kw, args.epochs, args.seed)
        rows.append(f"| {label} | {train_mse:.4g} | {test_mse:.4g} | {time.perf_counter() - t0:.0f} |")
        print(rows[-1], flush=True)
    record("oracle_decoder", "\n".join(rows),
           _oracle.data_note(args, kw, "decoder") + "; the decoder of DynamicsVAEModule trained alone on the "
           "standardized true parameters (the rest zero). " + args.notes)


if __name__ == "__main__":
    main()
