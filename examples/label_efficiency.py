"""Label efficiency of frozen and fine-tuned embeddings (Table 2 analogue).

The JEPA paper's Table 2 probes frozen encoders on the shear-flow task with 10%, 50% and 100% of
the labelled fine-tuning data. Here that is a scikit-learn grid search: a ``Pipeline`` of a
pretrained embedder wrapped in :class:`sklearn.frozen.FrozenEstimator` (never refitted) and an
:class:`skphys.AttentiveProbeRegressor`, searched over ``probe__train_fraction`` in
``[0.1, 0.5, 1.0]`` and over ``probe__random_state`` (the seeds), with a ``PredefinedSplit``:
the probe trains on (a fraction of) the windows of the training trajectories and is scored on
the windows of the held-out ones, as in the paper. A fraction draws windows at random, so 10% of
the windows come from more than 10% of the trajectories (labels are per trajectory). Scores
are the MSE on standardized targets (log10 Re, Sc), read off ``cv_results_``, mean +- std over
seeds. Beside it, ``sklearn.model_selection.learning_curve``
of the same pipelines over more training sizes.

The methods are those of ``compare_embedders.py`` (the paper's JEPA and VideoMAE; DISCO's
theta-latent and MPP's tokens, frozen; the non-learned ``features`` baseline); 2-D embeddings
(DISCO, features) are standardized (``StandardScaler``) before the probe. ``mpp_ft`` is a
one-step pipeline ``[("probe", FineTunedRegressor(FrozenEstimator(mpp), ...))]``: the same grid
over ``probe__train_fraction`` and ``probe__random_state``, with the pretrained MPP encoder
fine-tuned end to end on each fraction of the labels.

The embeddings are computed once per pipeline fit and cached with the pipeline's ``memory``.

Outputs in ``--out`` (default ``$SKPHYS_BENCH_DIR`` or ``examples/results``):
``label_efficiency_<scale>.csv``/``.md``, ``learning_curve_<scale>.png`` and a dated
record appended to ``label_efficiency_runs_<scale>.md``.

Examples::

    python examples/label_efficiency.py --quick
    python examples/label_efficiency.py --full --device cuda
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import compare_embedders as ce  # noqa: E402

from skphys.utils import atomic_path, atomic_savefig, atomic_write_text, is_main_process  # noqa: E402

FRACTIONS = (0.1, 0.5, 1.0)
METHODS = ("jepa", "videomae", "disco", "mpp", "mpp_ft", "features")


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    scale = p.add_mutually_exclusive_group()
    scale.add_argument("--smoke", dest="scale", action="store_const", const="smoke", help="seconds (CI)")
    scale.add_argument("--quick", dest="scale", action="store_const", const="quick", help="minutes on 2 CPU cores")
    scale.add_argument("--full", dest="scale", action="store_const", const="full", help="paper sizes (GPU)")
    p.set_defaults(scale="quick")
    p.add_argument("--system", default="shear_flow", choices=ce.SYSTEMS)
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--fractions", nargs="+", type=float, default=list(FRACTIONS))
    p.add_argument("--seeds", type=int, default=None, help="probe seeds (default per scale)")
    p.add_argument("--curve-sizes", nargs="+", type=float, default=[0.1, 0.25, 0.5, 0.75, 1.0],
                   help="learning_curve train sizes (fractions of the training set)")
    p.add_argument("--n-train", type=int, default=None)
    p.add_argument("--n-test", type=int, default=None)
    p.add_argument("--pretrain-epochs", type=int, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=None)
    p.add_argument("--cache-dir", default=None)
    return p


def main(argv=None):
    import pandas as pd
    from joblib import Memory
    from sklearn.frozen import FrozenEstimator
    from sklearn.model_selection import GridSearchCV, PredefinedSplit, learning_curve
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    args = build_parser().parse_args(argv)
    # joblib notes that hashing the windows takes time; it is the point of caching the embeddings
    warnings.filterwarnings("ignore", message="Persisting input arguments", category=UserWarning)
    if any(not 0 < f <= 1 for f in args.fractions + args.curve_sizes):
        raise SystemExit("--fractions and --curve-sizes must be in (0, 1]")
    cfg = ce.scale_config(args)
    seeds = list(range(args.seeds if args.seeds else cfg["seeds"]))
    out = Path(args.out or os.environ.get("SKPHYS_BENCH_DIR") or HERE / "results")
    out.mkdir(parents=True, exist_ok=True)
    cache = args.cache_dir or os.environ.get("SKPHYS_CACHE") or Path.home() / ".cache" / "skphys" / "examples"
    cache = None if str(cache).lower() == "none" else cache
    from skphys import resolve_device

    device = str(resolve_device(args.device))

    X_fit, Xtr, Xte, _, _, ytr, yte, labels = ce.builtin_data(args.system, cfg, device, cache)
    X = np.concatenate([Xtr, Xte])
    y = np.concatenate([ytr, yte])
    split = PredefinedSplit(np.r_[np.full(len(Xtr), -1), np.zeros(len(Xte), int)])

    rows, curves, searches = [], {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        memory = Memory(tmp, verbose=0)
        for method in args.methods:
            t0 = time.perf_counter()
            n_frames = ce.context_frames(method, Xtr.shape[1], X_fit.shape[1])
            emb = ce.make_embedder(method, cfg, 0, device, n_frames).fit(X_fit)
            ce.log(f"{method}: pretrained in {time.perf_counter() - t0:.0f} s")
            probe = ce.make_probe(method, cfg, 0, device, emb)
            if ce.METHOD_SPECS[method].get("finetune"):  # the encoder is trained with the head
                steps = [("probe", probe)]
            else:
                scale = [("scale", StandardScaler())] if np.ndim(emb.transform(Xtr[:1])) == 2 else []
                steps = [("embed", FrozenEstimator(emb)), *scale, ("probe", probe)]
            pipe = Pipeline(steps, memory=memory)
            search = GridSearchCV(
                pipe,
                {"probe__train_fraction": list(args.fractions), "probe__random_state": seeds},
                cv=split, scoring="neg_mean_squared_error", refit=False, error_score="raise",
            ).fit(X, y)
            res = pd.DataFrame(search.cv_results_)
            for frac, grp in res.groupby("param_probe__train_fraction"):
                mse = -grp["mean_test_score"].to_numpy()
                rows.append(dict(method=method, train_fraction=float(frac),
                                 n_labelled=max(1, int(round(float(frac) * len(Xtr)))),
                                 mse_mean=mse.mean(), mse_std=mse.std(ddof=1) if len(mse) > 1 else 0.0,
                                 n_seeds=len(mse)))
            sizes, _, test_scores = learning_curve(
                pipe, X, y, train_sizes=list(args.curve_sizes), cv=split,
                scoring="neg_mean_squared_error", error_score="raise",
            )
            curves[method] = (sizes, -test_scores[:, 0])
            searches[method] = search.cv_results_
            ce.log(f"{method}: grid search and learning curve done in {time.perf_counter() - t0:.0f} s")

    df = pd.DataFrame(rows)
    df["mse"] = [f"{m:.3f} ± {s:.3f}" for m, s in zip(df["mse_mean"], df["mse_std"])]
    wide = df.pivot(index="method", columns="train_fraction", values="mse").reindex(args.methods)
    wide.columns = [f"{int(round(100 * c))}% labels" for c in wide.columns]
    wide = wide.reset_index()
    tag = args.scale
    if not is_main_process():  # under torchrun every process computed the same table; one writes it
        return df, curves
    with atomic_path(out / f"label_efficiency_{tag}.csv") as tmp_csv:
        df.drop(columns="mse").to_csv(tmp_csv, index=False)
    table = wide.to_markdown(index=False)
    atomic_write_text(out / f"label_efficiency_{tag}.md", table + "\n")
    _plot(curves, searches, out / f"learning_curve_{tag}.png", f"{args.system} ({tag})")
    notes = (f"scale {tag}; system {args.system}; {len(Xtr)} training / {len(Xte)} held-out windows "
             f"({len(X_fit)} training trajectories); "
             f"GridSearchCV over probe__train_fraction {args.fractions} x probe__random_state {seeds} "
             f"with FrozenEstimator embedders (mpp_ft: FineTunedRegressor); MSE on standardized targets ({', '.join(labels)}), "
             f"mean ± std over probe seeds")
    ce.record_to(out, f"label_efficiency_runs_{tag}", table, notes)
    return df, curves


def _plot(curves, searches, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from skphys.display import LabelEfficiencyDisplay

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for method, cv_results in searches.items():  # mean +- std over the probe seeds per fraction
        LabelEfficiencyDisplay.from_cv_results(cv_results, param_name="probe__train_fraction", name=method,
                                               score_name="held-out MSE (standardized)", ax=axes[0])
    axes[0].set_title("GridSearchCV cv_results_", fontsize=9)
    for method, (sizes, mse) in curves.items():
        axes[1].plot(sizes, mse, marker="o", label=method)
    axes[1].set_xlabel("training windows (learning_curve)")
    axes[1].set_title("learning_curve", fontsize=9)
    for ax in axes:
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    try:
        atomic_savefig(fig, path, dpi=110)
    finally:
        plt.close(fig)


if __name__ == "__main__":
    main()
