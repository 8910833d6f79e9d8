"""Latent statistics over training, skphys DynamicsVAE beside the published PDE-VAE code, on the
same unseen-system data and at equal settings and epochs (issue 15, part 1).

Every ``--every`` epochs both models encode the whole training trajectories and the script prints
var(mu), mean sigma^2 and the mean KL (nats) per latent. skphys is trained in chunks with
``warm_start=True``, which gives bit for bit the model of one uninterrupted fit.

    OMP_NUM_THREADS=1 python benchmarks/diagnose_vae_collapse.py --system kdv --n-train 100 --epochs 150
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
import _published_vae as pub  # noqa: E402
import unseen_systems  # noqa: E402

from skphys import DynamicsVAE  # noqa: E402
from skphys.metrics import latent_r2  # noqa: E402


def fmt(a):
    return np.array2string(np.asarray(a), precision=3, max_line_width=200)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--system", default="kdv", choices=sorted(unseen_systems.SYSTEMS))
    ap.add_argument("--n-train", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--every", type=int, default=25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--which", default="both", choices=["both", "skphys", "published"])
    ap.add_argument("--dropout", type=float, default=0.0, help="published param_dropout_prob (run.py's default: 0)")
    ap.add_argument("--skphys-kw", default="", help="extra DynamicsVAE parameters, e.g. 'position_dropout=0.0'")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    make, _ = unseen_systems.SYSTEMS[args.system]
    d = make(args.n_train, random_state=1000 + args.seed)
    X = d.data
    print(f"{args.system}: X {X.shape}, {d.target_names}", flush=True)
    if args.which in ("both", "skphys"):
        kw = dict(eval(f"dict({args.skphys_kw})"))
        vae = DynamicsVAE(max_epochs=args.every, random_state=args.seed, device="cpu", warm_start=True, **kw)
        t0 = time.perf_counter()
        done = 0
        while done < args.epochs:
            vae.set_params(max_epochs=min(args.every, args.epochs - done)).fit(X)
            done = len(vae.history_)
            mu, sigma = vae.transform(X, return_std=True)
            rec = pub.latent_record(mu, sigma)
            h = vae.history_[-1]
            print(f"skphys epoch {done} mse {h['mse']:.4g} kl {h['kl']:.3g} var(mu) {fmt(rec['mu_variance'])} "
                  f"sigma2 {fmt(rec['mean_sigma2'])} KL/latent {fmt(rec['kl_nats'])} relevant {vae.relevant_latents_}",
                  flush=True)
        print(f"skphys wall {time.perf_counter() - t0:.0f} s", flush=True)
        te = make(100, random_state=5000 + args.seed)
        mu_te = vae.transform(te.data)
        print("skphys mean mu", fmt(mu.mean(0)), "per-latent R^2 on 100 unseen trajectories",
              fmt(latent_r2(mu_te, te.target)[:, 0]), flush=True)
    if args.which in ("both", "published"):
        t0 = time.perf_counter()
        model, _, _ = pub.train(X, epochs=args.epochs, seed=args.seed, dropout=args.dropout,
                                record_every=args.every, log=lambda s: print(s, flush=True))
        print(f"published wall {time.perf_counter() - t0:.0f} s", flush=True)
        te = make(100, random_state=5000 + args.seed)
        mu, _ = pub.encode(model, X)
        print("published mean mu", fmt(mu.mean(0)), "per-latent R^2 on 100 unseen trajectories",
              fmt(latent_r2(pub.encode(model, te.data)[0], te.target)[:, 0]), flush=True)


if __name__ == "__main__":
    main()
