"""Identification on systems skphys does not ship (issue 15): how many relevant latents
``DynamicsVAE()`` finds at its default settings, against the truth, and the linear-fit R^2 of those
latents against the true parameters on unseen trajectories; the published PDE-VAE code at equal
epochs on the same data beside it (same relevance rule on its latents), and a non-learned
baseline.

Non-learned baseline: 5 principal components (fitted on the training trajectories) of each
trajectory's time-averaged log spatial power spectrum and its lag-1/2/4 frame autocorrelations,
then the same linear fit on the unseen trajectories.

    OMP_NUM_THREADS=1 python benchmarks/bench_identification.py --systems kdv allen_cahn \
        swift_hohenberg damped_wave --seeds 0 --epochs 100 --n-train 100 --n-test 100

Prints the table and appends it, with command, machine and date, to
benchmarks/results/identification.md.
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
from _record import record  # noqa: E402

from skphys import BetaPathVAE, DynamicsVAE  # noqa: E402
from skphys.metrics import latent_directions, linear_fit, relevant_latents  # noqa: E402


def spectral_features(X):
    """Per trajectory: log of the time-averaged spatial power spectrum (every channel) and the
    frame autocorrelation at lags 1, 2, 4 (every channel)."""
    P = np.abs(np.fft.rfft(X, axis=2)) ** 2  # (n, T, K, C)
    feats = [np.log(P.mean(1) + 1e-8).reshape(len(X), -1)]
    Xc = X - X.mean(axis=(1, 2), keepdims=True)
    var = (Xc**2).mean(axis=(1, 2))
    for lag in (1, 2, 4):
        feats.append(((Xc[:, lag:] * Xc[:, :-lag]).mean(axis=(1, 2)) / np.maximum(var, 1e-12)))
    return np.concatenate(feats, axis=1)


def baseline_r2(Xtr, Xte, yte, k=5):
    Ftr, Fte = spectral_features(Xtr), spectral_features(Xte)
    m, s = Ftr.mean(0), Ftr.std(0) + 1e-12
    _, _, Vt = np.linalg.svd((Ftr - m) / s, full_matrices=False)
    Z = ((Fte - m) / s) @ Vt[:k].T
    return linear_fit(Z, yte)["r2"]


def r2_of(mu_te, idx, yte):
    if len(idx) == 0:
        return np.full(yte.shape[1], np.nan)
    return linear_fit(mu_te[:, idx], yte)["r2"]


def fmt_r2(r2):
    return ", ".join("-" if not np.isfinite(v) else f"{v:.3f}" for v in np.atleast_1d(r2))


def summarize(directory, notes=""):
    """One table from the ``.npz`` files that ``--save-dir`` wrote: per system and seed, the count
    of relevant latents, their R^2 on the unseen trajectories, and the R^2 of a linear fit of *all*
    latent means (does the encoder carry the parameter at all, whatever the amplitude?)."""
    import glob

    rows = [
        "| system | truth | code | seed | relevant | ratios var(mu)/mean sigma^2 (sorted) | R^2 relevant "
        "| R^2 all 5 means | largest var(mu) | final MSE | fit s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for path in sorted(glob.glob(os.path.join(directory, "*.npz"))):
        code, rest = os.path.basename(path)[:-4].split("_", 1)
        name, seed = rest.rsplit("_", 1)
        z = np.load(path)
        ratio = z["mu_tr"].var(0) / (z["sd_tr"] ** 2).mean(0)
        rel = relevant_latents(z["mu_tr"], z["sd_tr"])
        r2_rel = r2_of(z["mu_te"], rel, z["y_te"])
        r2_all = linear_fit(z["mu_te"], z["y_te"])["r2"]
        mse = f"{float(z['mse'][-1]):.3f}" if "mse" in z.files else "-"
        rows.append(
            f"| {name} | {unseen_systems.ALL_SYSTEMS[name][1]} | {code} | {seed} | {len(rel)} | "
            f"{', '.join(f'{v:.2g}' for v in np.sort(ratio)[::-1])} | {fmt_r2(r2_rel)} | {fmt_r2(r2_all)} | "
            f"{z['mu_tr'].var(0).max():.2g} | {mse} | {float(z['seconds']):.0f} |")
    record("identification", "\n".join(rows), notes)


def summarize_path(directory, betas, notes=""):
    """The beta path replayed offline under both relevance rules, from fits saved (``--save-dir``)
    at every beta into ``directory/b<beta>`` (e.g. ``b2e-3``): per system and seed, the counts
    along the path by ``rule="ratio"`` and ``rule="directions"`` (``skphys.metrics``), and the fit
    each rule keeps (the first with a relevant latent), with the R^2 of its relevant latents on the
    unseen trajectories."""
    import glob

    rows = [
        "| system | truth | seed | counts along the path, ratio rule | kept (ratio) | R^2 | "
        "counts along the path, directions rule | kept (directions) | R^2 | direction SNRs of the kept fit |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    runs = {}
    for beta in betas:
        for path in glob.glob(os.path.join(directory, f"b{beta}", "skphys_*.npz")):
            name, seed = os.path.basename(path)[7:-4].rsplit("_", 1)
            runs.setdefault((name, int(seed)), {})[beta] = np.load(path)
    for (name, seed), fits in sorted(runs.items()):
        cells = []
        snr_kept = "-"
        for rule in ("ratio", "directions"):
            counts, kept = [], None
            for beta in betas:
                if beta not in fits:
                    counts.append(f"{beta}: not run")
                    break
                z = fits[beta]
                rel = relevant_latents(z["mu_tr"], z["sd_tr"], rule=rule)
                counts.append(f"{beta}: {len(rel)}")
                if len(rel):
                    kept = (beta, rel, z)
                    break
            if kept is None:
                cells += ["; ".join(counts), "none", "-"]
                continue
            beta, rel, z = kept
            cells += ["; ".join(counts), f"{len(rel)} at {beta}", fmt_r2(r2_of(z["mu_te"], rel, z["y_te"]))]
            if rule == "directions":
                snr_kept = ", ".join(f"{v:.3g}" for v in latent_directions(z["mu_tr"], z["sd_tr"])[0])
        rows.append(f"| {name} | {unseen_systems.ALL_SYSTEMS[name][1]} | {seed} | " + " | ".join(cells) + f" | {snr_kept} |")
    record("identification", "\n".join(rows), notes)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--systems", nargs="+", default=list(unseen_systems.SYSTEMS), choices=list(unseen_systems.ALL_SYSTEMS),
                    help="the test bed's systems (default: all four) or diagnostic variants (unseen_systems.VARIANTS)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--n-train", type=int, default=100)
    ap.add_argument("--n-test", type=int, default=100)
    ap.add_argument("--no-published", action="store_true")
    ap.add_argument("--no-skphys", action="store_true", help="run only the published code")
    ap.add_argument("--notes", default="")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    ap.add_argument("--vae-kw", default="",
                    help='DynamicsVAE parameters to override, e.g. "kl_warmup_epochs=50, init_latent_std=0.05"')
    ap.add_argument("--path", default=None, metavar="BETAS",
                    help="fit skphys.BetaPathVAE over these comma-separated KL weights (e.g. 2e-3,5e-4,1e-4) with "
                         "the DynamicsVAE of the other options (--vae-kw must then not set beta); without "
                         "--scale-channels, BetaPathVAE's default scale_channels='auto' scales data of 2 or more channels")
    ap.add_argument("--published-kw", default="",
                    help='published-code training settings to override (arguments of _published_vae.train), e.g. '
                         '"enc_crop=(32, 40), dec_width=48, rollout=8, batch_size=32, hidden_channels=8"; with --path '
                         "the published code walks the same betas with the same stopping rule")
    ap.add_argument("--scale-channels", action="store_true",
                    help="divide every channel of the training and unseen data by its root mean square over the "
                         "training data before either code sees it (fields of different units weigh alike in the MSE)")
    ap.add_argument("--save-dir", default=None,
                    help="also save each run's latent means/stds (training and unseen) and targets as .npz here")
    ap.add_argument("--summarize-path", metavar="DIR", default=None,
                    help="replay the --path betas offline under both relevance rules from fits saved in DIR/b<beta> "
                         "(one --save-dir per beta), print and record the table, then exit")
    ap.add_argument("--summarize", metavar="DIR", default=None,
                    help="print and record one table from the .npz files of earlier --save-dir runs, then exit")
    args = ap.parse_args(argv)
    if args.summarize:
        return summarize(args.summarize, args.notes)
    if args.summarize_path:
        return summarize_path(args.summarize_path, (args.path or "2e-3,5e-4,1e-4").split(","), args.notes)
    torch.set_num_threads(args.threads)
    vae_kw = eval(f"dict({args.vae_kw})")  # a command-line convenience of a benchmark script
    pub_kw = eval(f"dict({args.published_kw})")
    rows = [
        "| system | truth | seed | skphys: relevant (ratios var(mu)/mean sigma^2, sorted) | skphys R^2 | fit s "
        "| published: relevant (ratios) | published R^2 | fit s | baseline R^2 (non-learned) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in args.systems:
        n_true = unseen_systems.ALL_SYSTEMS[name][1]
        for seed in args.seeds:
            tr, te = unseen_systems.train_test(name, seed, args.n_train, args.n_test, args.scale_channels)
            base = baseline_r2(tr.data, te.data, te.target)
            if args.no_skphys:
                cells = ["not run", "-", "-"]
            else:
                t0 = time.perf_counter()
                vae = DynamicsVAE(max_epochs=args.epochs, random_state=seed, device="cpu", **vae_kw)
                if args.path:
                    betas = tuple(float(b) for b in args.path.split(","))
                    # the data are already scaled with --scale-channels; otherwise BetaPathVAE's own
                    # default ("auto": scale data with 2 or more channels) applies, as for a user
                    scale = False if args.scale_channels else "auto"
                    path = BetaPathVAE(vae, betas=betas, scale_channels=scale).fit(tr.data)
                    print(name, seed, "path", [(p["beta"], p["n_relevant"]) for p in path.path_], flush=True)
                    vae = path
                else:
                    vae.fit(tr.data)
                t_sk = time.perf_counter() - t0
                ratio = vae.latent_stats_["mu_variance"] / vae.latent_stats_["mean_sigma2"]
                if args.save_dir:
                    os.makedirs(args.save_dir, exist_ok=True)
                    mu_tr, sd_tr = vae.transform(tr.data, return_std=True)
                    mu_te, sd_te = vae.transform(te.data, return_std=True)
                    np.savez(os.path.join(args.save_dir, f"skphys_{name}_{seed}.npz"), mu_tr=mu_tr, sd_tr=sd_tr,
                             mu_te=mu_te, sd_te=sd_te, y_tr=tr.target, y_te=te.target,
                             mse=np.array([h["mse"] for h in getattr(vae, "best_estimator_", vae).history_]), seconds=t_sk)
                rel = vae.relevant_latents_
                r2_sk = r2_of(vae.transform(te.data), rel, te.target)
                cells = [f"{len(rel)} ({', '.join(f'{v:.3g}' for v in np.sort(ratio)[::-1])})", fmt_r2(r2_sk), f"{t_sk:.0f}"]
                if args.path:
                    cells[0] += " at beta " + f"{vae.beta_:g}; path " + ", ".join(
                        f"{p['beta']:g}: {p['n_relevant']}" for p in vae.path_)
                print(name, seed, "skphys", cells, flush=True)
            if not args.no_published and pub.available():
                t_pub, pub_path = 0.0, []
                for beta in ([float(b) for b in args.path.split(",")] if args.path else [pub_kw.get("beta", 0.02)]):
                    model, _, t = pub.train(tr.data, epochs=args.epochs, seed=seed, **{**pub_kw, "beta": beta})
                    t_pub += t
                    mu, sd = pub.encode(model, tr.data)
                    n_rel = len(relevant_latents(mu, sd))
                    pub_path.append(f"{beta:g}: {n_rel}")
                    if n_rel:
                        break
                if args.save_dir:
                    os.makedirs(args.save_dir, exist_ok=True)
                    mu_te, sd_te = pub.encode(model, te.data)
                    np.savez(os.path.join(args.save_dir, f"published_{name}_{seed}.npz"), mu_tr=mu, sd_tr=sd,
                             mu_te=mu_te, sd_te=sd_te, y_tr=tr.target, y_te=te.target, seconds=t_pub)
                pratio = mu.var(0) / (sd**2).mean(0)
                prel = relevant_latents(mu, sd)
                r2_pub = r2_of(pub.encode(model, te.data)[0], prel, te.target)
                cells += [f"{len(prel)} ({', '.join(f'{v:.3g}' for v in np.sort(pratio)[::-1])})"
                          + (f" at beta {beta:g}; path {', '.join(pub_path)}" if args.path else ""), fmt_r2(r2_pub),
                          f"{t_pub:.0f}"]
                print(name, seed, "published", cells[3:], flush=True)
            else:
                cells += ["not run", "-", "-"]
            rows.append(f"| {name} ({', '.join(tr.target_names)}) | {n_true} | {seed} | " + " | ".join(cells)
                        + f" | {fmt_r2(base)} |")
    notes = (f"{'BetaPathVAE(betas=' + args.path + ') of ' if args.path else ''}"
             f"DynamicsVAE() defaults{' with ' + args.vae_kw if args.vae_kw else ''}, {args.epochs} epochs on {args.n_train} training trajectories "
             f"(batch {vae_kw.get('batch_size', 50)}), R^2 of a linear fit of the relevant latents on {args.n_test} unseen trajectories; "
             f"published code at the same epochs, data and relevance rule{' with ' + args.published_kw if args.published_kw else ''}"
             f"{' (same beta path and stopping rule)' if args.path and not args.no_published else ''}"
             f"{'; every channel divided by its training RMS' if args.scale_channels else ''}. " + args.notes)
    record("identification", "\n".join(rows), notes)


if __name__ == "__main__":
    main()
