"""Compare learned embeddings by how well a frozen-encoder probe recovers physical parameters.

An analogue of Table 1 of "JEPAs learn physical representations" (papers/jepa-physical-
representations.txt): each method is pretrained without labels on the training trajectories,
its encoder is frozen, embeddings are computed once, and a probe regresses the physical
parameters from them. The metric is the MSE on standardized targets (``log10`` first for
Reynolds/Rayleigh numbers), per parameter and averaged over the parameters, on a held-out split,
over several seeds (mean +- std).

Methods
    ``jepa``      :class:`skphys.JEPAEmbedder` tokens -> :class:`skphys.AttentiveProbeRegressor`
    ``videomae``  :class:`skphys.VideoMAEEmbedder` tokens -> the same attentive probe
    ``vae``       :class:`skphys.DynamicsVAE` latent means -> standardized -> the same probe
    ``disco``     :class:`skphys.DISCOEmbedder` theta-latent -> standardized -> the same probe
    ``mpp``       :class:`skphys.MPPEmbedder` last-step tokens -> the same probe
    ``mpp_ft``    the pretrained MPP encoder and an attentive head trained together on the labels
                  (:class:`skphys.FineTunedRegressor`, the paper's "MPP (full finetuning)" row)
    ``features``  non-learned per-channel statistics and power spectra -> standardized -> probe

DISCO and MPP are pretrained by next-frame prediction, so they need one frame more than their
context: on the built-in systems they read the same ``n_frames`` windows as the others (and are
pretrained on whole trajectories); on The Well, whose pretraining windows have exactly
``n_frames`` frames, their context is ``n_frames - 1`` frames.

Systems (built in, simulated and cached): ``shear_flow`` (targets log10 Re, Sc),
``convection_diffusion`` (D, vx, vy), ``rayleigh_benard`` (log10 Ra, Pr) and ``active_matter``
(alpha, zeta), the last two on square windows (Rayleigh-Benard: a 2 x 1 box; active matter: a box
of side 10 * size / 64, the default grid spacing). With ``--well-root`` the same protocol runs on The Well's
``active_matter`` (alpha, zeta), ``shear_flow`` (log10 Re, Sc) and ``rayleigh_benard``
(log10 Ra, Pr), read lazily in 16-frame windows, the ``valid`` split held out.

Scales: ``--smoke`` (seconds; CI), ``--quick`` (minutes on 2 CPU cores), ``--full`` (the paper's
architecture sizes, thousands of windows; a GPU job). Results: a printed table,
``compare_<scale>_{raw,summary}.csv``, ``compare_<scale>.md`` and ``parity_<scale>_<system>.png``
in ``--out`` (default ``$SKPHYS_BENCH_DIR`` or ``examples/results``).

Examples::

    python examples/compare_embedders.py --quick
    python examples/compare_embedders.py --full --device cuda --systems convection_diffusion
    python examples/compare_embedders.py --full --well-root /data/the_well --device cuda
    torchrun --nproc-per-node 8 examples/compare_embedders.py --full --well-root /data/the_well

Under torchrun every fit is one DDP fit over all processes (the same model as on one device,
see docs/scaling.md); only rank 0 logs and writes the results.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from skphys.utils import atomic_path, atomic_savefig, atomic_savez, atomic_write_text, is_main_process

HERE = Path(__file__).resolve().parent
# One row per method: the skphys embedder class, its settings in SCALES, the probe's MLP-ratio key
# in SCALES, whether it predicts the next frame (needs n_frames + 1 frames to pretrain) and whether
# its encoder is fine-tuned end to end with the probe instead of frozen.
METHOD_SPECS = {
    "jepa": dict(cls="JEPAEmbedder", cfg="jepa", probe="jepa_probe_mlp_ratio"),
    "videomae": dict(cls="VideoMAEEmbedder", cfg="videomae", probe="vit_probe_mlp_ratio"),
    "vae": dict(cls="DynamicsVAE", cfg="vae", probe="jepa_probe_mlp_ratio"),
    "disco": dict(cls="DISCOEmbedder", cfg="disco", probe="vit_probe_mlp_ratio", next_frame=True),
    "mpp": dict(cls="MPPEmbedder", cfg="mpp", probe="vit_probe_mlp_ratio", next_frame=True),
    "mpp_ft": dict(cls="MPPEmbedder", cfg="mpp", probe="vit_probe_mlp_ratio", next_frame=True, finetune=True),
    "features": dict(cls="SpectralStatsFeatures", cfg="features", probe="jepa_probe_mlp_ratio"),
}
METHODS = tuple(METHOD_SPECS)
SYSTEMS = ("shear_flow", "convection_diffusion", "rayleigh_benard", "active_matter")
WELL_DATASETS = ("active_matter", "shear_flow", "rayleigh_benard")
# Parameters the paper reports per The Well dataset, and which get log10.
WELL_TARGETS = {
    "active_matter": (("alpha", "zeta"), ()),
    "shear_flow": (("Reynolds", "Schmidt"), ("Reynolds",)),
    "rayleigh_benard": (("Rayleigh", "Prandtl"), ("Rayleigh",)),
}

# ----------------------------------------------------------------------------- scales
# n_train/n_test: trajectories; size: grid points per side; T: frames simulated; n_frames: window.
SCALES = {
    "smoke": dict(
        n_train={"convection_diffusion": 8, "shear_flow": 8, "rayleigh_benard": 8, "active_matter": 8}, n_test=4,
        size=32, T=32, n_frames=4, sf_t_max=2.0, cd_t_max=4 * math.pi, rb_t_max=5.0, am_t_max=2.0, seeds=1,
        videomae=dict(patch_size=8, tubelet_size=2, embed_dim=12, depth=1, n_heads=2,
                      decoder_embed_dim=12, decoder_depth=1, decoder_n_heads=2, max_epochs=1, batch_size=4),
        jepa=dict(widths=(4, 8, 8), depths=(1, 1, 1), predictor_width=8, max_epochs=1, batch_size=4),
        vae=dict(encoder_crop=(32, 32, 32), decoder_crop=16, rollout_steps=2, hidden_channels=2,
                 kernel_hidden_factor=1, max_epochs=1, batch_size=4),
        disco=dict(patch_size=8, embed_dim=12, depth=1, n_heads=2, operator_width=4, operator_groups=2,
                   adjoint=False, max_epochs=1, batch_size=4),
        mpp=dict(patch_size=8, embed_dim=12, depth=1, n_heads=2, max_epochs=1, batch_size=4),
        features=dict(n_bins=4),
        probe=dict(max_epochs=2, batch_size=8),
        finetune=dict(max_epochs=1, batch_size=8),
        vit_probe_mlp_ratio=1.0, jepa_probe_mlp_ratio=2.0,
    ),
    "quick": dict(
        n_train={"convection_diffusion": 128, "shear_flow": 48, "rayleigh_benard": 48, "active_matter": 48},
        n_test=32, size=32, T=32, n_frames=8, sf_t_max=4.0, cd_t_max=16 * math.pi, rb_t_max=50.0, am_t_max=20.0,
        seeds=2,
        videomae=dict(patch_size=8, tubelet_size=2, embed_dim=48, depth=2, n_heads=3,
                      decoder_embed_dim=24, decoder_depth=1, decoder_n_heads=3, max_epochs=30,
                      batch_size=16, lr=1e-3, mask_ratio=0.75),
        # sized like the quick VideoMAE (72k parameters with its predictor against 75k with its
        # decoder) and trained for as many epochs (~80 s on one core)
        jepa=dict(widths=(8, 16, 32, 32), depths=(1, 1, 1, 1), predictor_width=32, max_epochs=30,
                  batch_size=16, lr=1e-3, warmup_epochs=1),
        vae=dict(encoder_crop=(31, 32, 32), decoder_crop=16, rollout_steps=4, hidden_channels=8,
                 kernel_hidden_factor=2, max_epochs=3, batch_size=16),  # ~0.6 s per trajectory-epoch
        # tiny DISCO and MPP (the CPU size: width 48, patch 8); DISCO backpropagates through
        # its solver steps (adjoint=False, ~3x faster on the CPU) and has fewer epochs: each
        # sample is integrated on its own
        disco=dict(patch_size=8, embed_dim=48, depth=2, n_heads=3, operator_width=8, operator_groups=4,
                   adjoint=False, max_epochs=10, batch_size=8, lr=5e-4),
        mpp=dict(patch_size=8, embed_dim=48, depth=2, n_heads=3, max_epochs=30, batch_size=16, lr=1e-3),
        features=dict(n_bins=8),
        probe=dict(max_epochs=60, batch_size=32),
        # end-to-end fine-tuning (mpp_ft): the encoder at 0.1x the head's learning rate, as many
        # epochs over the labels as the frozen probe (15 left the head undertrained: 2026-12-02)
        finetune=dict(max_epochs=60, batch_size=32, lr=1e-3, encoder_lr_scale=0.1),
        vit_probe_mlp_ratio=1.0, jepa_probe_mlp_ratio=4.0,
    ),
    "full": dict(
        n_train={"convection_diffusion": 1536, "shear_flow": 384, "rayleigh_benard": 384, "active_matter": 384},
        n_test=256, size=64, T=48, n_frames=16, sf_t_max=12.0, cd_t_max=16 * math.pi, rb_t_max=50.0, am_t_max=20.0,
        seeds=3,
        # ViT-S/16 (the paper's VideoMAE) with its decoder; lr above VideoMAE's 1.5e-4 x batch/256
        # because the run is only 30 short epochs
        videomae=dict(max_epochs=30, batch_size=32, lr=6e-4, warmup_epochs=3),
        # the paper's JEPA architecture; fewer epochs than VideoMAE (its step is ~10x dearer)
        jepa=dict(max_epochs=10, batch_size=32, lr=4e-4, warmup_epochs=1),
        # the PDE-VAE paper's 2-D crops (45, 62, 62) need T >= 45; far fewer epochs than its 4000+
        vae=dict(max_epochs=30, batch_size=50),
        # the paper's DISCO (embed 384, depth 12, 6 heads, patch 16) and MPP AViT-Ti (192, 12, 3,
        # patch 16): the estimators' defaults; DISCO with adjoint gradients, as the original
        disco=dict(max_epochs=10, batch_size=16, lr=3e-4),
        mpp=dict(max_epochs=30, batch_size=32, lr=5e-4),
        features=dict(n_bins=16),
        probe=dict(max_epochs=100, batch_size=64),
        finetune=dict(max_epochs=100, batch_size=64, lr=1e-3, encoder_lr_scale=0.1),
        vit_probe_mlp_ratio=0.25, jepa_probe_mlp_ratio=12.0,
    ),
}


def log(msg):
    if not is_main_process():  # under torchrun, one process reports
        return
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ----------------------------------------------------------------------------- data
def simulate(system, n, cfg, seed, device, cache_dir):
    """Trajectories ``(n, T, size, size, C)``, targets ``(n, p)``, names, log10 columns (cached)."""
    from skphys.datasets import make_active_matter, make_convection_diffusion, make_rayleigh_benard, make_shear_flow

    size, T = cfg["size"], cfg["T"]
    t_keys = {"shear_flow": "sf_t_max", "convection_diffusion": "cd_t_max", "rayleigh_benard": "rb_t_max",
              "active_matter": "am_t_max"}
    if system not in t_keys:
        raise ValueError(f"unknown system {system!r}; choose from {SYSTEMS}")
    t_max = cfg[t_keys[system]]
    key = f"{system}_n{n}_s{size}_T{T}_t{t_max:.4g}_seed{seed}.npz"
    path = Path(cache_dir) / key if cache_dir else None
    if path is not None and path.exists():
        with np.load(path, allow_pickle=False) as z:
            return z["X"], z["y"], list(z["names"]), list(z["log10"])
    t0 = time.perf_counter()
    if system == "convection_diffusion":
        # coarse grids need a longer t_max than the paper's 4 pi for the drift to cross cells
        b = make_convection_diffusion(n, n_points=size, n_frames=T, t_max=t_max, random_state=seed,
                                      device=device)
        log10 = []
    elif system == "shear_flow":
        b = make_shear_flow(n, n_points=(size, size), n_frames=T, t_max=cfg["sf_t_max"],
                            random_state=seed, device=device)
        log10 = ["reynolds"]
    elif system == "rayleigh_benard":
        b = make_rayleigh_benard(n, n_points=(size, size), length=2.0, n_frames=T, t_max=t_max, random_state=seed,
                                 device=device)
        log10 = ["rayleigh"]
    elif system == "active_matter":
        b = make_active_matter(n, n_points=size, length=10.0 * size / 64, n_frames=T, t_max=t_max,
                               random_state=seed, device=device)
        log10 = []
    else:
        raise ValueError(f"unknown system {system!r}; choose from {SYSTEMS}")
    log(f"simulated {n} {system} trajectories {b.data.shape} in {time.perf_counter() - t0:.1f} s")
    X, y, names = b.data.astype(np.float32), np.asarray(b.target, float), list(b.target_names)
    if path is not None:
        if is_main_process():
            atomic_savez(path, X=X, y=y, names=np.array(names), log10=np.array(log10, dtype=str), make_parents=True)
    return X, y, names, log10


def standardize_targets(y_train, y_test, names, log10):
    """log10 on the named columns, then z-score with the training statistics."""
    cols = [names.index(c) for c in log10]

    def fwd(y):
        y = np.array(y, dtype=float, copy=True)
        if cols:
            if (y[:, cols] <= 0).any():
                raise ValueError(f"log10 targets {log10} must be positive")
            y[:, cols] = np.log10(y[:, cols])
        return y

    a, b = fwd(y_train), fwd(y_test)
    mean, std = a.mean(0), a.std(0)
    std = np.where(std > 0, std, 1.0)
    labels = [f"log10 {c}" if c in log10 else c for c in names]
    return (a - mean) / std, (b - mean) / std, labels


# ----------------------------------------------------------------------------- methods
def make_embedder(method, cfg, seed, device, n_frames, spatial=None):
    """An unfitted embedder for ``method`` at the scale ``cfg``."""
    import skphys

    if method not in METHOD_SPECS:
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    spec = METHOD_SPECS[method]
    kw = dict(cfg[spec["cfg"]])
    if method == "features":
        return skphys.SpectralStatsFeatures(n_frames=n_frames, **kw)
    if method != "vae":  # the VAE reads whole trajectories
        kw["n_frames"] = n_frames
    return getattr(skphys, spec["cls"])(device=device, random_state=seed, **kw)


def make_probe(method, cfg, seed, device, embedder=None):
    """The attentive probe for ``method``'s frozen embeddings or, for a fine-tuned method, a
    :class:`skphys.FineTunedRegressor` of the fitted ``embedder`` with that probe's head."""
    from skphys import AttentiveProbeRegressor, FineTunedRegressor

    spec = METHOD_SPECS[method]
    probe = AttentiveProbeRegressor(mlp_ratio=cfg[spec["probe"]], device=device, random_state=seed, **cfg["probe"])
    if not spec.get("finetune"):
        return probe
    from sklearn.frozen import FrozenEstimator

    return FineTunedRegressor(FrozenEstimator(embedder), probe=probe, device=device, random_state=seed,
                              **cfg["finetune"])


def context_frames(method, n_frames, fit_frames):
    """The embedder's ``n_frames``: the probe's window, or one frame less for next-frame methods
    when the pretraining data has no frame to spare (The Well's windows)."""
    if METHOD_SPECS[method].get("next_frame") and fit_frames <= n_frames:
        return fit_frames - 1
    return n_frames


def embed(method, embedder, X_fit, X_train_win, X_test_win, X_train_long=None, X_test_long=None):
    """Fit ``embedder`` on ``X_fit`` and return (Z_train, Z_test) for the probe.

    DynamicsVAE needs >= 31 frames, so it encodes ``X_*_long`` (the same trajectories, longer);
    the 2-D outputs of the VAE and of the feature baseline are standardized for the probe.
    """
    from sklearn.preprocessing import StandardScaler

    embedder.fit(X_fit)
    if method == "vae":
        # one latent vector per trajectory, repeated for each of its windows
        a, b = embedder.transform(X_train_long), embedder.transform(X_test_long)
        a = np.repeat(a, len(X_train_win) // len(X_train_long), axis=0)
        b = np.repeat(b, len(X_test_win) // len(X_test_long), axis=0)
    else:
        a, b = embedder.transform(X_train_win), embedder.transform(X_test_win)
    if a.ndim == 2:
        sc = StandardScaler().fit(a)
        a, b = sc.transform(a), sc.transform(b)
    return np.asarray(a, np.float32), np.asarray(b, np.float32)


def run_protocol(system, methods, seeds, cfg, device, data, out_rows, parity, checkpoint=None):
    """Pretrain, embed, probe; append one row per (method, seed, parameter) to ``out_rows`` and
    call ``checkpoint()`` after each fit (so a run cut off by a time limit keeps what it did)."""
    X_fit, Xtr, Xte, Xtr_long, Xte_long, ytr, yte, labels = data
    for method in methods:
        if method == "vae" and (Xtr_long is None or min(Xtr_long.shape[1:-1]) < 31):
            log(f"{system}: skipping vae (DynamicsVAE needs >= 31 frames and points)")
            continue
        for seed in seeds:
            t0 = time.perf_counter()
            emb = make_embedder(method, cfg, seed, device, context_frames(method, Xtr.shape[1], X_fit.shape[1]))
            if METHOD_SPECS[method].get("finetune"):  # the fine-tuned model reads the windows
                emb.fit(X_fit)
                Ztr, Zte = Xtr, Xte
            else:
                Ztr, Zte = embed(method, emb, X_fit if method != "vae" else Xtr_long, Xtr, Xte, Xtr_long, Xte_long)
            t1 = time.perf_counter()
            probe = make_probe(method, cfg, seed, device, emb).fit(Ztr, ytr)
            pred = np.asarray(probe.predict(Zte)).reshape(len(yte), -1)
            t2 = time.perf_counter()
            mse = ((pred - yte) ** 2).mean(0)
            log(f"{system:>22s} {method:>9s} seed {seed}: mse {mse.mean():.3f} "
                f"({', '.join(f'{l} {m:.3f}' for l, m in zip(labels, mse))}); "
                f"pretrain+embed {t1 - t0:.0f} s, probe {t2 - t1:.0f} s, probe input {Ztr.shape[1:]}")
            for label, m in zip(labels, mse):
                out_rows.append(dict(system=system, method=method, seed=seed, parameter=label, mse=float(m)))
            out_rows.append(dict(system=system, method=method, seed=seed, parameter="mean", mse=float(mse.mean())))
            if seed == seeds[0]:
                parity[(system, method)] = (yte, pred, labels)
            if checkpoint is not None:
                checkpoint()


def windows(X, y, n_frames, which="all"):
    """The probe's windows of trajectories ``X`` (n, T, ...) and their targets: every
    non-overlapping ``n_frames`` window (``which="all"``, grouped by trajectory, as the The Well
    path windows its files) or only the first one of each trajectory (``"first"``)."""
    k = 1 if which == "first" else X.shape[1] // n_frames
    Xw = X[:, : k * n_frames].reshape(X.shape[0] * k, n_frames, *X.shape[2:])
    return Xw, np.repeat(y, k, axis=0)


def builtin_data(system, cfg, device, cache_dir, data_seed=0, probe_windows="all"):
    n_train, n_test = cfg["n_train"][system], cfg["n_test"]
    X, y, names, log10 = simulate(system, n_train + n_test, cfg, data_seed, device, cache_dir)
    Xtr_long, Xte_long = X[:n_train], X[n_train:]
    ytr, yte, labels = standardize_targets(y[:n_train], y[n_train:], names, log10)
    # pretraining sees whole training trajectories (random windows); probes see their windows
    nf = cfg["n_frames"]
    Xtr, ytr = windows(Xtr_long, ytr, nf, probe_windows)
    Xte, yte = windows(Xte_long, yte, nf, probe_windows)
    return (Xtr_long, Xtr, Xte, Xtr_long, Xte_long, ytr, yte, labels)


def well_data(root, name, cfg, max_windows):
    """Lazy 16-frame windows of a The Well dataset: train split for pretraining and probe
    training, valid split held out."""
    from skphys.datasets import load_well

    nf = cfg["n_frames"]
    tr = load_well(name, split="train", n_frames=nf, base_path=root, lazy=True)
    te = load_well(name, split="valid", n_frames=nf, base_path=root, lazy=True)
    wanted, log10 = WELL_TARGETS.get(name, (tuple(tr.target_names), ()))
    missing = [c for c in wanted if c not in tr.target_names]
    if missing:
        raise ValueError(f"The Well dataset {name!r} has no parameters {missing}; it has {tr.target_names}")
    cols = [tr.target_names.index(c) for c in wanted]
    rng = np.random.default_rng(0)

    def subset(X, y):
        if max_windows and X.shape[0] > max_windows:
            idx = np.sort(rng.choice(X.shape[0], max_windows, replace=False))
            return _Subset(X, idx), y[idx]
        return X, y

    Xtr, ytr = subset(tr.data, np.asarray(tr.target)[:, cols])
    Xte, yte = subset(te.data, np.asarray(te.target)[:, cols])
    ytr, yte, labels = standardize_targets(ytr, yte, list(wanted), list(log10))
    return (Xtr, Xtr, Xte, None, None, ytr, yte, labels)


class _Subset:
    """Rows ``idx`` of a lazy array-like, still lazy (memory stays bounded)."""

    def __init__(self, X, idx):
        self.X, self.idx = X, np.asarray(idx)
        self.shape = (len(self.idx), *X.shape[1:])
        self.dtype = np.float32
        self.ndim = len(self.shape)

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, key):
        rows = self.idx[key]
        if np.ndim(rows) == 0:
            return self.X[int(rows)]
        return self.X[np.asarray(rows)]


# ----------------------------------------------------------------------------- report
def summarize(rows):
    import pandas as pd

    df = pd.DataFrame(rows)
    g = df.groupby(["system", "method", "parameter"], sort=False)["mse"]
    summary = g.agg(["mean", "std", "count"]).reset_index()
    summary["std"] = summary["std"].fillna(0.0)
    summary["mse"] = [f"{m:.3f} ± {s:.3f}" for m, s in zip(summary["mean"], summary["std"])]
    wide = summary.pivot_table(index=["system", "method"], columns="parameter", values="mse",
                               aggfunc="first", sort=False)
    cols = ["mean"] + [c for c in wide.columns if c != "mean"]
    wide = wide[cols].reset_index()
    return df, summary, wide


def parity_plot(parity, path, title):
    """One row of :class:`skphys.display.ParameterParityDisplay` panels per (system, method, seed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from skphys.display import ParameterParityDisplay

    keys = list(parity)
    n_par = max(len(parity[k][2]) for k in keys)
    fig, axes = plt.subplots(len(keys), n_par, figsize=(3 * n_par, 3 * len(keys)), squeeze=False)
    for i, key in enumerate(keys):
        yt, yp, labels = parity[key]
        for ax in axes[i, len(labels):]:
            ax.axis("off")
        disp = ParameterParityDisplay.from_predictions(
            yt, yp, target_names=[f"{c} (standardized)" for c in labels], name=key[1], ax=axes[i, : len(labels)],
            scatter_kwargs={"s": 6, "alpha": 0.6},
        )
        for j, ax in enumerate(disp.ax_):
            mse = float(((yt[:, j] - yp[:, j]) ** 2).mean())
            ax.set_title(f"{key[1]}: {labels[j]} (MSE {mse:.2f})", fontsize=8)
            ax.xaxis.label.set_fontsize(7)
            ax.yaxis.label.set_fontsize(7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    try:
        atomic_savefig(fig, path, dpi=110)
    finally:
        plt.close(fig)


def record_to(out, name, table, notes):
    """``benchmarks/_record.record`` (command, machine, date) appending to ``out/<name>.md``."""
    sys.path.insert(0, str(HERE.parent / "benchmarks"))
    from _record import record

    old = os.environ.get("SKPHYS_BENCH_DIR")
    os.environ["SKPHYS_BENCH_DIR"] = str(out)
    try:
        record(name, table, notes)
    finally:
        if old is None:
            del os.environ["SKPHYS_BENCH_DIR"]
        else:
            os.environ["SKPHYS_BENCH_DIR"] = old


# ----------------------------------------------------------------------------- CLI
def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    scale = p.add_mutually_exclusive_group()
    scale.add_argument("--smoke", dest="scale", action="store_const", const="smoke", help="seconds (CI)")
    scale.add_argument("--quick", dest="scale", action="store_const", const="quick", help="minutes on 2 CPU cores")
    scale.add_argument("--full", dest="scale", action="store_const", const="full", help="paper sizes (GPU)")
    p.set_defaults(scale="quick")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--systems", nargs="+", default=None, choices=SYSTEMS,
                   help="built-in systems (default: all; --smoke: convection_diffusion)")
    p.add_argument("--seeds", type=int, default=None, help="number of seeds (default per scale)")
    p.add_argument("--first-seed", type=int, default=0, help="seeds are first-seed, first-seed + 1, ...")
    p.add_argument("--n-train", type=int, default=None, help="override the training trajectories per system")
    p.add_argument("--n-test", type=int, default=None, help="override the held-out trajectories")
    p.add_argument("--pretrain-epochs", type=int, default=None,
                   help="override the pretraining epochs of every learned embedder")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=None, help="output folder (default $SKPHYS_BENCH_DIR or examples/results)")
    p.add_argument("--cache-dir", default=None,
                   help="simulation cache (default $SKPHYS_CACHE or ~/.cache/skphys/examples; 'none' disables)")
    p.add_argument("--probe-windows", choices=["all", "first"], default="all",
                   help="built-in systems: the probe trains and is scored on every non-overlapping "
                        "window of each trajectory (default) or only on the first one")
    p.add_argument("--well-root", default=None, help="The Well base path (holding datasets/<name>)")
    p.add_argument("--well-datasets", nargs="+", default=list(WELL_DATASETS))
    p.add_argument("--max-windows", type=int, default=None,
                   help="Well path: at most this many windows per split (random subset)")
    p.add_argument("--tag", default="", help="suffix for the output file names (e.g. the methods run)")
    return p


def scale_config(args):
    cfg = {k: (dict(v) if isinstance(v, dict) else v) for k, v in SCALES[args.scale].items()}
    if args.n_train:
        cfg["n_train"] = {k: args.n_train for k in cfg["n_train"]}
    if args.n_test:
        cfg["n_test"] = args.n_test
    if args.pretrain_epochs:
        for key in {spec["cfg"] for spec in METHOD_SPECS.values()} - {"features"}:
            cfg[key]["max_epochs"] = args.pretrain_epochs
    return cfg


def main(argv=None):
    args = build_parser().parse_args(argv)
    cfg = scale_config(args)
    seeds = [args.first_seed + i for i in range(args.seeds if args.seeds else cfg["seeds"])]
    out = Path(args.out or os.environ.get("SKPHYS_BENCH_DIR") or HERE / "results")
    out.mkdir(parents=True, exist_ok=True)
    cache = args.cache_dir or os.environ.get("SKPHYS_CACHE") or Path.home() / ".cache" / "skphys" / "examples"
    cache = None if str(cache).lower() == "none" else cache
    from skphys import resolve_device

    device = str(resolve_device(args.device))
    if device.startswith("cuda") and "LOCAL_RANK" in os.environ:  # torchrun: one GPU per process
        import torch

        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    rows, parity = [], {}
    tag = args.scale + (f"_{args.tag}" if args.tag else "")

    def checkpoint():  # raw per-fit rows so far, replaced atomically after every fit
        import pandas as pd

        if not is_main_process():
            return
        with atomic_path(out / f"compare_{tag}_raw.csv") as tmp:
            pd.DataFrame(rows).to_csv(tmp, index=False)

    if args.well_root:
        tag = f"{tag}_well"
        for name in args.well_datasets:
            if not any((Path(args.well_root) / d / name).is_dir() for d in ("datasets", ".")):
                log(f"The Well {name}: not found under {args.well_root}; skipped")
                continue
            log(f"The Well {name}: loading lazily from {args.well_root}")
            data = well_data(args.well_root, name, cfg, args.max_windows)
            sub = {}
            run_protocol(f"well/{name}", args.methods, seeds, cfg, device, data, rows, sub, checkpoint)
            if is_main_process():
                parity_plot(sub, out / f"parity_{tag}_{name}.png", f"The Well {name} ({args.scale})")
            parity.update(sub)
    else:
        systems = args.systems or (["convection_diffusion"] if args.scale == "smoke" else list(SYSTEMS))
        for system in systems:
            data = builtin_data(system, cfg, device, cache, probe_windows=args.probe_windows)
            sub = {}
            run_protocol(system, args.methods, seeds, cfg, device, data, rows, sub, checkpoint)
            if is_main_process():
                parity_plot(sub, out / f"parity_{tag}_{system}.png", f"{system} ({args.scale})")
            parity.update(sub)
    if not rows:
        raise SystemExit("no results: every method was skipped")
    df, summary, wide = summarize(rows)
    if not is_main_process():  # every process computed the same table; one writes it
        return df, wide
    with atomic_path(out / f"compare_{tag}_summary.csv") as tmp:
        summary.drop(columns="mse").to_csv(tmp, index=False)
    table = wide.to_markdown(index=False)
    atomic_write_text(out / f"compare_{tag}.md", table + "\n")
    notes = (f"scale {args.scale}; seeds {seeds}; probe windows {args.probe_windows}; "
             f"MSE on standardized targets (held-out split), "
             f"mean ± std over seeds; probe: AttentiveProbeRegressor {cfg['probe']}")
    record_to(out, f"compare_embedders_{tag}", table, notes)
    return df, wide


if __name__ == "__main__":
    main()
