"""Shared by ``oracle_decoder.py`` and ``oracle_encoder.py``: their command line, their data
(the same as ``bench_identification``'s) and their random periodic crops."""

from __future__ import annotations

import argparse

import numpy as np
import torch

import unseen_systems
from skphys._training import step_seed


def parse(doc, defaults, half, argv=None):
    """Parse the common options; returns ``(args, settings)`` with ``--kw`` merged into
    ``defaults`` (unknown names refused) and the data in ``args.train`` / ``args.test``."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--system", default="damped_wave", choices=sorted(unseen_systems.SYSTEMS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=600)
    ap.add_argument("--n-train", type=int, default=256)
    ap.add_argument("--n-test", type=int, default=100)
    ap.add_argument("--scale-channels", action="store_true",
                    help="divide every channel by its training RMS first, as bench_identification --scale-channels")
    ap.add_argument("--kw", default="", help=f"{half} settings to override, e.g. \"{next(iter(defaults))}=...\"")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--notes", default="")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    kw = {**defaults, **eval(f"dict({args.kw})")}  # a command-line convenience of a benchmark script
    unknown = set(kw) - set(defaults)
    if unknown:
        raise ValueError(f"unknown {half} settings {sorted(unknown)}; known: {sorted(defaults)}")
    args.train, args.test = unseen_systems.train_test(args.system, args.seed, args.n_train, args.n_test,
                                                      args.scale_channels)
    return args, kw


def data_note(args, kw, half):
    """The record's description of the run's data and settings."""
    return (f"{args.system}, seed {args.seed} (training data random_state {1000 + args.seed}, unseen "
            f"{5000 + args.seed}), {args.n_train} training / {args.n_test} unseen trajectories, {args.epochs} epochs, "
            f"{half} settings {kw}{'; channels divided by their training RMS' if args.scale_channels else ''}")


def as_tensor(X):
    return torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))


def periodic_crops(X, idx, gen, crop):
    """Crops ``(len(idx), C, *crop)`` of rows ``idx`` of ``X`` (n, T, P, C): random start frames
    inside the trajectory, random start points on the periodic space axis."""
    _, T, P, _ = X.shape
    t0 = torch.randint(0, T - crop[0] + 1, (len(idx),), generator=gen)
    x0 = torch.randint(0, P, (len(idx),), generator=gen)
    ti = t0[:, None] + torch.arange(crop[0])
    xi = (x0[:, None] + torch.arange(crop[1])) % P
    return X[idx[:, None, None], ti[:, :, None], xi[:, None, :]].movedim(-1, 1)


def epochs(n, batch_size, seed):
    """``(steps_per_epoch, batches)``: ``batches(epoch)`` yields ``(row indices, generator)`` for
    each step, every trajectory once per epoch in a seeded order (the last batch completed from
    the start of it), the generator then drawing that step's crops."""
    B = min(batch_size, n)
    steps = -(-n // B)

    def batches(epoch):
        gen = torch.Generator().manual_seed(step_seed(seed, 1, epoch))
        order = torch.randperm(n, generator=gen).repeat(2)[: steps * B]
        for k in range(steps):
            yield order[k * B : (k + 1) * B], gen

    return steps, batches
