"""What the latents of saved identification fits hold beyond a linear readout (issue 15).

For each fit that ``bench_identification.py --save-dir DIR`` saved (``skphys_<system>_<seed>.npz``),
the unseen trajectories are drawn again (``unseen_systems.train_test``, the same seeds and sizes;
the script checks that their parameters match the saved ones) and the script reports:

- R^2 of each true parameter from the relevant latents (the directions rule), on the unseen
  trajectories:
  - ``linear``: the benchmark's metric (least squares on the unseen latents);
  - ``quadratic``: the same with squares and cross products of the latents;
  - ``normal scores``: the linear fit to the parameters' normal scores, ``Phi^-1`` of their
    ranks. A VAE whose prior Gaussianizes a uniform parameter would be linear in these;
  - ``kNN`` and ``boosting``: 10-nearest-neighbour and gradient-boosting readouts fitted on the
    *training* latents with their labels. This is close to the most any readout gets from
    these latents;
- ``residual ~ k_c``: how much more of each parameter's linear-fit residual a quadratic in the
  initial state's spectral centroid ``k_c`` (energy-weighted mean ``|k|`` of the first frame) and
  the true parameters explains than a quadratic in the true parameters alone. This shows whether
  the latents mix the parameter with the initial condition, apart from a curved readout;
- per independent direction of the latent means (``skphys.metrics.latent_directions``): its SNR
  and the R^2 of each parameter and of ``k_c`` from it;
- for damped-wave systems, the share of the initial energy in overdamped modes
  (``c |k| < gamma / 2``). Such modes decay at ``gamma/2 - sqrt(gamma^2/4 - c^2 k^2)``, which falls
  as ``gamma`` grows; far in that regime, ``c^2 k^2 / gamma``: the telegraph equation's diffusion
  limit ``u_t = (c^2/gamma) u_xx``, in which only the diffusivity ``c^2/gamma`` is visible. So the
  script also gives the linear R^2 of ``log(c^2/gamma)`` from the relevant latents.

Usage::

    python benchmarks/diagnose_readout.py DIR [DIR ...] [--n-train 256] [--n-test 100] [--scale-channels]

Prints the table and appends it, with command, machine and date, to
``benchmarks/results/diagnose_readout.md``.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import unseen_systems  # noqa: E402
from _record import record  # noqa: E402

from skphys.metrics import latent_directions, linear_fit, relevant_latents  # noqa: E402


def _mode_energy(frames, length):
    """``|U_k|^2`` of each frame (n, x) of a periodic domain of ``length``, and the wavenumbers ``|k|``."""
    frames = np.asarray(frames, dtype=np.float64)
    k = np.fft.rfftfreq(frames.shape[1], d=length / frames.shape[1]) * 2 * np.pi
    return np.abs(np.fft.rfft(frames, axis=1)) ** 2, k


def spectral_centroid(frames, length):
    """Energy-weighted mean ``|k|`` of each frame (n, x) of a periodic domain of ``length``."""
    E, k = _mode_energy(frames, length)
    return (E * k).sum(1) / E.sum(1)


def overdamped_energy_share(u0, c, gamma, length):
    """Share of each initial state's energy (|U_k|^2) in modes with ``c |k| < gamma / 2``."""
    E, k = _mode_energy(u0, length)
    over = c[:, None] * k[None] < gamma[:, None] / 2
    return (E * over).sum(1) / E.sum(1)


def _quadratic(a):
    a = np.atleast_2d(np.asarray(a, dtype=np.float64).T).T
    cols = [a] + [a[:, i : i + 1] * a[:, j : j + 1] for i in range(a.shape[1]) for j in range(i, a.shape[1])]
    return np.concatenate(cols, axis=1)


def _normal_scores(y):
    from scipy.stats import norm, rankdata

    return norm.ppf((rankdata(y, axis=0) - 0.5) / len(y))


def readouts(mu_tr, y_tr, mu_te, y_te):
    """R^2 per parameter of the readouts listed in the module docstring."""
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.metrics import r2_score
    from sklearn.neighbors import KNeighborsRegressor

    out = {
        "linear": linear_fit(mu_te, y_te)["r2"],
        "quadratic": linear_fit(_quadratic(mu_te), y_te)["r2"],
        "normal scores": linear_fit(mu_te, _normal_scores(y_te))["r2"],
    }
    for name, make in (("kNN", lambda: KNeighborsRegressor(10)),
                       ("boosting", lambda: GradientBoostingRegressor(random_state=0))):
        out[name] = np.array([r2_score(y_te[:, j], make().fit(mu_tr, y_tr[:, j]).predict(mu_te))
                              for j in range(y_te.shape[1])])
    return out


def diagnose(path, n_train, n_test, scale_channels):
    m = re.fullmatch(r"skphys_(.+)_(\d+)\.npz", os.path.basename(path))
    if m is None:
        raise ValueError(f"{path}: not a file of bench_identification --save-dir (skphys_<system>_<seed>.npz)")
    name, seed = m.group(1), int(m.group(2))
    z = np.load(path)
    _, te = unseen_systems.train_test(name, seed, n_train, n_test, scale_channels)
    y_te = np.asarray(z["y_te"], dtype=np.float64)
    if te.target.shape != y_te.shape or not np.allclose(te.target, y_te):
        raise ValueError(f"{path}: the redrawn unseen trajectories do not match the saved parameters; "
                         "pass the --n-train/--n-test of the run")
    length = float(te.coords[0][1] * te.data.shape[2])
    kc = spectral_centroid(te.data[:, 0, :, 0], length)
    rel = relevant_latents(z["mu_tr"], z["sd_tr"], rule="directions")
    rel = rel if len(rel) else np.array([0])
    mu_tr, mu_te = z["mu_tr"][:, rel], z["mu_te"][:, rel]
    res = readouts(mu_tr, np.asarray(z["y_tr"], dtype=np.float64), mu_te, y_te)
    resid = y_te - linear_fit(mu_te, y_te)["pred"]
    expl = [linear_fit(_quadratic(np.c_[kc, y_te]), resid[:, j])["r2"][0]
            - linear_fit(_quadratic(y_te), resid[:, j])["r2"][0] for j in range(y_te.shape[1])]
    snr, vec = latent_directions(z["mu_tr"], z["sd_tr"])
    scale = np.sqrt((z["sd_tr"] ** 2).mean(0))
    proj = ((z["mu_te"] - z["mu_tr"].mean(0)) / scale) @ vec
    dirs = []
    for j in range(min(3, len(snr))):
        r_y = linear_fit(proj[:, j], y_te)["r2"]
        r_k = linear_fit(proj[:, j], kc)["r2"][0]
        dirs.append(f"{snr[j]:.3g}: " + ", ".join(f"{n} {r:.2f}" for n, r in zip(te.target_names, r_y)) + f", k_c {r_k:.2f}")
    extra = "- | -"
    if name.startswith("damped_wave"):
        share = overdamped_energy_share(te.data[:, 0, :, 0], y_te[:, 0], y_te[:, 1], length)
        diff = linear_fit(mu_te, np.log(y_te[:, 0] ** 2 / y_te[:, 1]))["r2"][0]
        extra = f"{share.mean():.2f} | {diff:.3f}"
    fmt = lambda a: ", ".join(f"{v:.3f}" for v in a)  # noqa: E731
    return (f"| {name} | {seed} | {len(rel)} | " + " | ".join(fmt(res[k]) for k in res)
            + f" | {fmt(expl)} | " + "; ".join(dirs) + f" | {extra} |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="+", help="--save-dir directories of bench_identification runs")
    ap.add_argument("--n-train", type=int, default=256)
    ap.add_argument("--n-test", type=int, default=100)
    ap.add_argument("--scale-channels", action="store_true",
                    help="the runs used --scale-channels (accepted to rerun their commands; the readouts do not depend on it)")
    ap.add_argument("--notes", default="")
    args = ap.parse_args(argv)
    files = sorted(f for d in args.dirs for f in glob.glob(os.path.join(d, "skphys_*.npz")))
    if not files:
        raise FileNotFoundError(f"no skphys_<system>_<seed>.npz in {args.dirs}")
    rows = [
        "| system | seed | relevant | R^2 linear | quadratic | normal scores | kNN (fit on training latents) "
        "| boosting (same) | residual ~ k_c (share of R^2 added by k_c) "
        "| directions: SNR: R^2 of each parameter and of k_c | overdamped share of initial energy "
        "| R^2 linear of log(c^2/gamma) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows += [diagnose(f, args.n_train, args.n_test, args.scale_channels) for f in files]
    record("diagnose_readout", "\n".join(rows),
           f"fits from {', '.join(args.dirs)}; R^2 on {args.n_test} unseen trajectories. {args.notes}".strip())


if __name__ == "__main__":
    main()
