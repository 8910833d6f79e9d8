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

import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _oracle  # noqa: E402
from _record import record  # noqa: E402

from skphys._training import step_seed, train  # noqa: E402
from skphys.metrics import linear_fit  # noqa: E402
from skphys.nn.dynamics_vae import DynamicsVAEModule  # noqa: E402

DEFAULTS = dict(encoder_widths=(4, 16, 16, 16), encoder_crop=(32, 40), encoder_dilations=(1, 2, 4, 8),
                position_dropout=0.1, batch_size=32, lr=1e-3)


def main(argv=None):
    args, kw = _oracle.parse(__doc__, DEFAULTS, "encoder", argv)
    tr, te = args.train, args.test
    Xtr, Xte = _oracle.as_tensor(tr.data), _oracle.as_tensor(te.data)
    m, s = tr.target.mean(0), tr.target.std(0)
    Ytr = torch.from_numpy(((tr.target - m) / s).astype(np.float32))

    torch.manual_seed(step_seed(args.seed, 0))
    module = DynamicsVAEModule(Xtr.shape[-1], Ytr.shape[1], 1, encoder_widths=tuple(kw["encoder_widths"]),
                               encoder_dilations=tuple(kw["encoder_dilations"]),
                               position_dropout=kw["position_dropout"])
    steps_per_epoch, rows = _oracle.epochs(len(Xtr), kw["batch_size"], args.seed)

    def batches(epoch):
        for idx, gen in rows(epoch):
            yield _oracle.periodic_crops(Xtr, idx, gen, tuple(kw["encoder_crop"])), Ytr[idx]

    def loss(batch):
        x, y = batch
        mu, logvar = module.encode(x)
        nll = 0.5 * torch.mean(logvar + (y - mu) ** 2 * torch.exp(-logvar))
        return nll, {"mse": torch.mean((y - mu) ** 2)}

    module.train()
    t0 = time.perf_counter()
    history = train(module.encoder.parameters(), loss, batches, max_epochs=args.epochs,
                    steps_per_epoch=steps_per_epoch, lr=kw["lr"], desc="oracle encoder")
    seconds = time.perf_counter() - t0
    module.eval()
    with torch.no_grad():  # whole unseen trajectories, 10 at a time
        mu_te = torch.cat([module.encode(Xte[i : i + 10].movedim(-1, 1))[0] for i in range(0, len(Xte), 10)]).numpy()
    r2 = linear_fit(mu_te, te.target)["r2"]
    train_mse = float(np.mean([h["mse"] for h in history[-20:]]))
    table = ["| parameter | R^2 on unseen trajectories (linear fit of the means) |", "|---|---|"]
    table += [f"| {name} | {v:.3f} |" for name, v in zip(tr.target_names, np.atleast_1d(r2))]
    table.append(f"| (training MSE of the standardized parameters, last 20 epochs) | {train_mse:.3g} |")
    table.append(f"| (fit s) | {seconds:.0f} |")
    record("oracle_encoder", "\n".join(table),
           _oracle.data_note(args, kw, "encoder") + " (unseen ones encoded whole); the encoder of DynamicsVAEModule "
           "trained alone, supervised (Gaussian NLL of the standardized true parameters). " + args.notes)


if __name__ == "__main__":
    main()
