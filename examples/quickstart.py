"""skphys quickstart: estimate a shear flow's Reynolds and Schmidt numbers from its fields.

1. simulate a small 2-D shear-flow dataset (``skphys.datasets.make_shear_flow``; targets Re, Sc),
2. pretrain a small ``JEPAEmbedder`` on the training trajectories (no labels),
3. embed the first ``n_frames`` frames once (cached), fit an ``AttentiveProbeRegressor`` on
   log10(Re), log10(Sc),
4. compare with an honest non-learned baseline: per-channel mean/std/power-spectrum features +
   ridge regression,
5. print test MSE on standardized log targets (the JEPA paper's metric) and R^2 per parameter, and
   save a parity plot.

Run:  python examples/quickstart.py            (1.5 minutes on 2 busy CPU cores, seconds on a GPU)
      python examples/quickstart.py --device cuda --n-samples 256 --jepa-epochs 30
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="auto", help="'auto', 'cpu' or 'cuda' (simulation and training)")
    p.add_argument("--n-samples", type=int, default=96, help="trajectories to simulate (3/4 train, 1/4 test)")
    p.add_argument("--grid", type=int, default=32, help="grid points per side")
    p.add_argument("--n-frames", type=int, default=8, help="JEPA window length (fit needs 2x; 24 frames are simulated)")
    p.add_argument("--jepa-epochs", type=int, default=10)
    p.add_argument("--probe-epochs", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="parity plot path (default: $SKPHYS_BENCH_DIR or . /quickstart_parity.png)")
    p.add_argument("--threads", default="auto",
                   help="torch CPU threads; 'auto' leaves out the cores other processes keep busy (1-min load "
                        "average), since oversubscribed torch threads are several times slower than fewer threads")
    p.add_argument("--verbose", type=int, default=1)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import torch
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skphys import AttentiveProbeRegressor, JEPAEmbedder, SpectralStatsFeatures, resolve_device
    from skphys.datasets import make_shear_flow

    if args.threads == "auto":
        busy = int(os.getloadavg()[0]) if hasattr(os, "getloadavg") else 0
        torch.set_num_threads(max(1, min(torch.get_num_threads(), (os.cpu_count() or 1) - busy)))
    else:
        torch.set_num_threads(int(args.threads))
    device = resolve_device(args.device)
    print(f"device: {device}  (torch threads: {torch.get_num_threads()})")
    timings = {}

    t0 = time.perf_counter()
    n_total_frames = max(24, 2 * args.n_frames)
    sim = make_shear_flow(
        args.n_samples, n_points=(args.grid, args.grid), n_frames=n_total_frames, t_max=4.0,
        precision="single", random_state=args.seed, device=device,
    )
    X, y = sim.data, sim.target
    timings["simulate"] = time.perf_counter() - t0
    print(f"simulated {X.shape} (n, T, ny, nx, [{', '.join(sim.field_names)}]) in {timings['simulate']:.1f} s; "
          f"targets {sim.target_names}: Re in [{y[:, 0].min():.0f}, {y[:, 0].max():.0f}], "
          f"Sc in [{y[:, 1].min():.2f}, {y[:, 1].max():.2f}]")
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=args.seed)

    # --- self-supervised pretraining (no labels) on the training trajectories
    t0 = time.perf_counter()
    jepa = JEPAEmbedder(
        n_frames=args.n_frames, widths=(8, 16, 32, 64), depths=(1, 1, 2, 1), predictor_width=64,
        max_epochs=args.jepa_epochs, batch_size=8, lr=1e-3, device=args.device,
        random_state=args.seed, verbose=args.verbose,
    ).fit(X_tr)
    timings["jepa pretraining"] = time.perf_counter() - t0

    # --- embeddings computed once, reused by the probe (cache)
    t0 = time.perf_counter()
    E_tr, E_te = jepa.transform(X_tr), jepa.transform(X_te)
    timings["embedding"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    probe = AttentiveProbeRegressor(
        target_transform="log10", mlp_ratio=4, max_epochs=args.probe_epochs, device=args.device,
        random_state=args.seed,
    ).fit(E_tr, y_tr)
    timings["probe"] = time.perf_counter() - t0
    z_te = probe.transform_target(y_te)  # log10 then standardized with the training statistics
    z_jepa = probe.predict_standardized(E_te)

    # --- non-learned baseline on the same frames, same target space
    t0 = time.perf_counter()
    baseline = make_pipeline(
        SpectralStatsFeatures(n_frames=args.n_frames), StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13))
    ).fit(X_tr, np.log10(y_tr))
    z_base = (baseline.predict(X_te) - probe.y_mean_) / probe.y_scale_
    timings["baseline"] = time.perf_counter() - t0

    names = ["log10 Re", "log10 Sc"]
    rows = [
        ("JEPA + attentive probe", z_jepa),
        ("mean/std/spectrum + ridge", z_base),
        ("predict the training mean", np.zeros_like(z_te)),
    ]
    print(f"\ntest set: {len(y_te)} trajectories; MSE on standardized log10 targets (paper metric), R^2 per parameter")
    print(f"{'model':28s} {'MSE':>7s} " + " ".join(f"{'R2 ' + n:>12s}" for n in names))
    for label, z in rows:
        r2 = r2_score(z_te, z, multioutput="raw_values")
        print(f"{label:28s} {np.mean((z - z_te) ** 2):7.3f} " + " ".join(f"{v:12.3f}" for v in r2))
    print("\ntimings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items())
          + f", total {sum(timings.values()):.1f}")

    out = args.out or os.path.join(os.environ.get("SKPHYS_BENCH_DIR", "."), "quickstart_parity.png")
    _parity_plot(out, z_te, [(rows[0][0], z_jepa), (rows[1][0], z_base)], names)
    print(f"parity plot: {out}")


def _parity_plot(path, z_true, preds, names):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from skphys.display import ParameterParityDisplay
    from skphys.utils import atomic_savefig

    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 4), squeeze=False)
    for (label, z), marker in zip(preds, "os"):
        ParameterParityDisplay.from_predictions(
            z_true, z, target_names=[f"{n} (standardized)" for n in names], name=label, ax=axes[0],
            scatter_kwargs={"marker": marker, "s": 18},
        )
    fig.tight_layout()
    try:
        atomic_savefig(fig, path, dpi=120, make_parents=True)  # never a half-written plot
    finally:
        plt.close(fig)


if __name__ == "__main__":
    main()
