"""How well DynamicsVAE's encoder can estimate the hidden parameters when it is *taught* them
(issue 15), the counterpart of ``oracle_decoder.py``.

The encoder of ``DynamicsVAEModule`` (the given widths and dilations, its inverse-variance
weighting over positions and its position dropout) is trained alone, supervised, on random
encoder crops of the training trajectories: its pooled mean and log-variance are fitted to the
standardized true parameters by the Gaussian negative log-likelihood. On the unseen
trajectories, encoded whole as ``DynamicsVAE.transform`` does, the R^2 of a linear fit of its
means against the truth is then the most an unsupervised latent of this encoder could reach at
this budget and crop size.

    OMP_NUM_THREADS=1 python benchmarks/oracle_encoder.py --system damped_wave --scale-channels \
        --epochs 600 --kw "encoder_crop=(32, 40), encoder_widths=(4, 16, 16, 16)"

Prints the table and appends it, with command, machine and date, to
``benchmarks/results/oracle_encoder.md``. Training uses skphys's engine
(``skphys._training.train``).
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
from skphys.metrics import linear_fit  # noqa: E402
from skphys.nn.dynamics_vae import DynamicsVAEModule  # noqa: E402

DEFAULTS = dict(encoder_crop=(32, 40), encoder_widths=(4, 16, 16, 16), encoder_dilations=(1, 2, 4, 8),
                position_dropout=0.1, batch_size=32, lr=1e-3)


def encoder_crops(X, idx, gen, crop):
    """Encoder crops ``(B, C, t, x)`` of rows ``idx`` (time inside, space periodic)."""
    n, T, P, _ = X.shape
    t0 = torch.randint(0, T - crop[0] + 1, (len(idx),), generator=gen)
    x0 = torch.randint(0, P, (len(idx),), generator=gen)
    ti = t0[:, None] + torch.arange(crop[0])
    xi = (x0[:, None] + torch.arange(crop[1])) % P
    return X[idx[:, None, None], ti[:, :, None], xi[:, None, :]].movedim(-1, 1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--system", default="damped_wave", choices=sorted(unseen_systems.SYSTEMS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=600)
    ap.add_argument("--n-train", type=int, default=256)
    ap.add_argument("--n-test", type=int, default=100)
    ap.add_argument("--scale-channels", action="store_true",
                    help="divide every channel by its training RMS first, as bench_identification --scale-channels")
    ap.add_argument("--kw", default="", help='encoder settings to override, e.g. "encoder_widths=(8, 32, 32, 32)"')
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--notes", default="")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    kw = {**DEFAULTS, **eval(f"dict({args.kw})")}  # a command-line convenience of a benchmark script
    unknown = set(kw) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown encoder settings {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    make, _ = unseen_systems.SYSTEMS[args.system]
    tr = make(args.n_train, random_state=1000 + args.seed)  # the same data as bench_identification
    te = make(args.n_test, random_state=5000 + args.seed)
    Xtr, Xte = tr.data.astype(np.float32), te.data.astype(np.float32)
    if args.scale_channels:
        scale = unseen_systems.channel_rms(Xtr).astype(np.float32)
        Xtr, Xte = Xtr / scale, Xte / scale
    m, s = tr.target.mean(0), tr.target.std(0)
    Ytr = torch.from_numpy(((tr.target - m) / s).astype(np.float32))
    Xtr_t = torch.from_numpy(Xtr)
    n_params = Ytr.shape[1]

    torch.manual_seed(step_seed(args.seed, 0))
    module = DynamicsVAEModule(Xtr.shape[-1], n_params, 1, encoder_widths=tuple(kw["encoder_widths"]),
                               encoder_dilations=tuple(kw["encoder_dilations"]),
                               position_dropout=kw["position_dropout"])
    params = list(module.encoder.parameters())
    n, B = len(Xtr), min(kw["batch_size"], len(Xtr))
    steps_per_epoch = -(-n // B)

    def batches(epoch):
        gen = torch.Generator().manual_seed(step_seed(args.seed, 1, epoch))
        order = torch.randperm(n, generator=gen).repeat(2)[: steps_per_epoch * B]
        for k in range(steps_per_epoch):
            idx = order[k * B : (k + 1) * B]
            yield encoder_crops(Xtr_t, idx, gen, tuple(kw["encoder_crop"])), Ytr[idx]

    def loss(batch):
        x, y = batch
        mu, logvar = module.encode(x)
        nll = 0.5 * torch.mean(logvar + (y - mu) ** 2 * torch.exp(-logvar))
        return nll, {"mse": torch.mean((y - mu) ** 2)}

    module.train()
    t0 = time.perf_counter()
    history = train(params, loss, batches, max_epochs=args.epochs, steps_per_epoch=steps_per_epoch, lr=kw["lr"],
                    desc="oracle encoder")
    seconds = time.perf_counter() - t0
    module.eval()
    with torch.no_grad():
        mu_te = torch.cat([module.encode(torch.from_numpy(Xte[i : i + 10]).movedim(-1, 1))[0]
                           for i in range(0, len(Xte), 10)]).numpy()
    r2 = linear_fit(mu_te, te.target)["r2"]
    train_mse = float(np.mean([h["mse"] for h in history[-20:]]))
    rows = ["| parameter | R^2 on unseen trajectories (linear fit of the means) |", "|---|---|"]
    rows += [f"| {name} | {v:.3f} |" for name, v in zip(tr.target_names, np.atleast_1d(r2))]
    rows.append(f"| (training MSE of the standardized parameters, last 20 epochs) | {train_mse:.3g} |")
    rows.append(f"| (fit s) | {seconds:.0f} |")
    record("oracle_encoder", "\n".join(rows),
           f"{args.system}, seed {args.seed} (training data random_state {1000 + args.seed}, unseen "
           f"{5000 + args.seed}), {args.n_train} training / {args.n_test} unseen trajectories (encoded whole), "
           f"{args.epochs} epochs, encoder settings {kw}"
           f"{'; channels divided by their training RMS' if args.scale_channels else ''}; the encoder of "
           "DynamicsVAEModule trained alone, supervised (Gaussian NLL of the standardized true parameters). "
           + args.notes)


if __name__ == "__main__":
    main()
