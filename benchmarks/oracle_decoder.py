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

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import unseen_systems  # noqa: E402
from _record import record  # noqa: E402

from skphys._training import step_seed, train  # noqa: E402
from skphys.nn.dynamics_vae import PropagatingDecoder  # noqa: E402

DEFAULTS = dict(decoder_crop=48, rollout_steps=8, batch_size=32, output_scale=1e-2, lr=1e-3, hidden_channels=8,
                kernel_size=5, n_latents=5)


def crops(X, Z, idx, gen, width, steps):
    """Decoder crops ``(B, C, steps + 1, width)`` (time inside, space periodic) and the rows' latents."""
    n, T, P, _ = X.shape
    t0 = torch.randint(0, T - steps, (len(idx),), generator=gen)
    x0 = torch.randint(0, P, (len(idx),), generator=gen)
    ti = t0[:, None] + torch.arange(steps + 1)
    xi = (x0[:, None] + torch.arange(width)) % P
    batch = X[idx[:, None, None], ti[:, :, None], xi[:, None, :]]  # (B, steps + 1, width, C)
    return batch.movedim(-1, 1), Z[idx]


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
    n, B = len(Xtr), min(kw["batch_size"], len(Xtr))
    steps_per_epoch = -(-n // B)

    def batches(epoch):
        gen = torch.Generator().manual_seed(step_seed(seed, 1, epoch))
        order = torch.randperm(n, generator=gen).repeat(2)[: steps_per_epoch * B]
        for s in range(steps_per_epoch):
            yield crops(Xtr, Ztr, order[s * B : (s + 1) * B], gen, kw["decoder_crop"], kw["rollout_steps"])

    def loss(batch):
        target, z = batch
        mse = rollout_mse(dec, target, z)
        return mse, {"mse": mse}

    history = train(dec.parameters(), loss, batches, max_epochs=epochs, steps_per_epoch=steps_per_epoch,
                    lr=kw["lr"], desc="oracle decoder")
    train_mse = float(np.mean([h["mse"] for h in history[-20:]]))
    dec.eval()
    gen = torch.Generator().manual_seed(12345)
    with torch.no_grad():
        errs = []
        for _ in range(4):  # 4 fixed crops per unseen trajectory
            idx = torch.arange(len(Xte))
            target, z = crops(Xte, Zte, idx, gen, kw["decoder_crop"], kw["rollout_steps"])
            errs.append(float(rollout_mse(dec, target, z)))
    return train_mse, float(np.mean(errs))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--system", default="damped_wave", choices=sorted(unseen_systems.SYSTEMS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=600)
    ap.add_argument("--n-train", type=int, default=256)
    ap.add_argument("--n-test", type=int, default=100)
    ap.add_argument("--scale-channels", action="store_true",
                    help="divide every channel by its training RMS first, as bench_identification --scale-channels")
    ap.add_argument("--kw", default="", help='decoder settings to override, e.g. "hidden_channels=16, rollout_steps=16"')
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--notes", default="")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    kw = {**DEFAULTS, **eval(f"dict({args.kw})")}  # a command-line convenience of a benchmark script
    unknown = set(kw) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown decoder settings {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    make, _ = unseen_systems.SYSTEMS[args.system]
    tr = make(args.n_train, random_state=1000 + args.seed)  # the same data as bench_identification
    te = make(args.n_test, random_state=5000 + args.seed)
    Xtr, Xte = tr.data.astype(np.float32), te.data.astype(np.float32)
    if args.scale_channels:
        scale = unseen_systems.channel_rms(Xtr).astype(np.float32)
        Xtr, Xte = Xtr / scale, Xte / scale
    m, s = tr.target.mean(0), tr.target.std(0)
    names = list(tr.target_names)
    if len(names) > kw["n_latents"]:
        raise ValueError(f"{len(names)} parameters do not fit in n_latents={kw['n_latents']}")
    sets = [("all: " + ", ".join(names), names)]
    if len(names) > 1:
        sets += [(f"{k} only", [k]) for k in names]
    sets.append(("none", []))
    Xtr_t, Xte_t = torch.from_numpy(Xtr), torch.from_numpy(Xte)
    rows = ["| latents handed to the decoder | training MSE (last 20 epochs) | unseen MSE | fit s |", "|---|---|---|---|"]
    for label, keep in sets:
        def latents(target):
            Z = np.zeros((len(target), kw["n_latents"]), dtype=np.float32)
            for j, k in enumerate(names):
                if k in keep:
                    Z[:, j] = (target[:, j] - m[j]) / s[j]
            return torch.from_numpy(Z)

        t0 = time.perf_counter()
        train_mse, test_mse = fit_decoder(Xtr_t, latents(tr.target), Xte_t, latents(te.target), kw, args.epochs,
                                          args.seed)
        rows.append(f"| {label} | {train_mse:.4g} | {test_mse:.4g} | {time.perf_counter() - t0:.0f} |")
        print(rows[-1], flush=True)
    record("oracle_decoder", "\n".join(rows),
           f"{args.system}, seed {args.seed} (training data random_state {1000 + args.seed}, unseen "
           f"{5000 + args.seed}), {args.n_train} training / {args.n_test} unseen trajectories, {args.epochs} epochs, "
           f"decoder settings {kw}{'; channels divided by their training RMS' if args.scale_channels else ''}; "
           "the decoder of DynamicsVAEModule trained alone on the standardized true parameters (the rest zero). "
           + args.notes)


if __name__ == "__main__":
    main()
