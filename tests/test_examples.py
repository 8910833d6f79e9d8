"""Smoke tests of the comparison examples: argument parsing and a micro scale, in-process."""

import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.utils import Bunch

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))

import compare_embedders as ce  # noqa: E402
import label_efficiency as le  # noqa: E402


def test_compare_parser():
    args = ce.build_parser().parse_args([])
    assert args.scale == "quick" and args.methods == list(ce.METHODS) and args.device == "auto"
    args = ce.build_parser().parse_args(["--full", "--systems", "shear_flow", "--seeds", "5"])
    assert args.scale == "full" and args.systems == ["shear_flow"] and args.seeds == 5
    with pytest.raises(SystemExit):
        ce.build_parser().parse_args(["--smoke", "--quick"])
    with pytest.raises(SystemExit):
        ce.build_parser().parse_args(["--methods", "pca"])
    # full scale uses the paper's architectures (ViT-S/16 defaults, JEPA defaults)
    full = ce.scale_config(ce.build_parser().parse_args(["--full"]))
    assert "embed_dim" not in full["videomae"] and "widths" not in full["jepa"]
    assert full["n_frames"] == 16
    # ... and the paper's DISCO and MPP AViT-Ti; tiny ones at quick scale (the CPU size)
    sizes = ("embed_dim", "depth", "n_heads", "patch_size")
    for scale, want in [("full", {"disco": (384, 12, 6, 16), "mpp": (192, 12, 3, 16)}),
                        ("quick", {"disco": (48, 2, 3, 8), "mpp": (48, 2, 3, 8)})]:
        cfg = ce.scale_config(ce.build_parser().parse_args([f"--{scale}"]))
        for method in ("disco", "mpp", "mpp_ft"):
            emb = ce.make_embedder(method, cfg, 0, "cpu", cfg["n_frames"])
            params = emb.get_params()
            assert tuple(params[k] for k in sizes) == want[method.removesuffix("_ft")], (scale, method)
            assert params["n_frames"] == cfg["n_frames"]
    quick = ce.scale_config(ce.build_parser().parse_args(["--quick", "--pretrain-epochs", "3"]))
    assert {quick[k]["max_epochs"] for k in ("jepa", "videomae", "vae", "disco", "mpp")} == {3}
    # next-frame methods keep a frame to predict when pretraining windows have none to spare
    assert ce.context_frames("mpp", 16, 48) == 16 and ce.context_frames("disco", 16, 16) == 15
    assert ce.context_frames("videomae", 16, 16) == 16


def test_standardize_targets_log10_and_train_statistics():
    ytr = np.array([[10.0, 1.0], [100.0, 2.0], [1000.0, 3.0]])
    yte = np.array([[10000.0, 4.0]])
    a, b, labels = ce.standardize_targets(ytr, yte, ["reynolds", "schmidt"], ["reynolds"])
    np.testing.assert_allclose(a.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(a.std(0), 1)
    # log10 Re of the test row is 4: (4 - 2) / std([1, 2, 3])
    np.testing.assert_allclose(b[0, 0], 2 / np.std([1, 2, 3]))
    assert labels == ["log10 reynolds", "schmidt"]
    with pytest.raises(ValueError, match="positive"):
        ce.standardize_targets(-ytr, yte, ["reynolds", "schmidt"], ["reynolds"])


def test_probe_windows_split_trajectories_in_order():
    X = np.arange(3 * 10 * 2 * 2, dtype=np.float32).reshape(3, 10, 2, 2, 1)
    y = np.array([[0.0], [1.0], [2.0]])
    Xw, yw = ce.windows(X, y, 4)  # two whole 4-frame windows per trajectory, frames 8-9 left out
    assert Xw.shape == (6, 4, 2, 2, 1)
    np.testing.assert_array_equal(Xw[3], X[1, 4:8])
    np.testing.assert_array_equal(yw[:, 0], [0, 0, 1, 1, 2, 2])
    Xf, yf = ce.windows(X, y, 4, "first")
    np.testing.assert_array_equal(Xf, X[:, :4])
    np.testing.assert_array_equal(yf, y)


def test_compare_smoke(tmp_path):
    methods = ["videomae", "disco", "mpp", "mpp_ft", "features"]
    df, wide = ce.main(["--smoke", "--methods", *methods, "--out", str(tmp_path),
                        "--cache-dir", "none", "--device", "cpu"])
    assert set(df["method"]) == set(methods) and list(wide["method"]) == methods
    assert set(df["parameter"]) == {"D", "vx", "vy", "mean"}
    assert np.isfinite(df["mse"]).all()
    for name in ["compare_smoke_raw.csv", "compare_smoke_summary.csv", "compare_smoke.md",
                 "parity_smoke_convection_diffusion.png", "compare_embedders_smoke.md"]:
        assert (tmp_path / name).stat().st_size > 0, name
    assert not list(tmp_path.glob("*.tmp*"))


def _tiny_well(root, rng, name="shear_flow"):
    from skphys.datasets import write_well

    for split, n in [("train", 6), ("valid", 3)]:
        re_ = 10.0 ** rng.uniform(4, 5, size=n)
        bunch = Bunch(
            data=rng.normal(size=(n, 12, 16, 16, 2)).astype(np.float32),
            target=np.c_[re_, rng.uniform(0.1, 10, size=n)], target_names=["Reynolds", "Schmidt"],
            field_names=["tracer", "pressure"], time=np.arange(12) * 0.1,
            coords=(np.arange(16.0), np.arange(16.0)), dim_names=("y", "x"),
            boundary_conditions={"y": "periodic", "x": "periodic"}, dt=0.1,
        )
        write_well(bunch, root, name, split=split)


def test_compare_well_path_is_lazy(tmp_path, rng):
    from skphys.datasets import LazyWindows

    root = tmp_path / "well"
    _tiny_well(root, rng)
    cfg = ce.scale_config(ce.build_parser().parse_args(["--smoke"]))
    data = ce.well_data(root, "shear_flow", cfg, max_windows=None)
    assert isinstance(data[1], LazyWindows) and isinstance(data[2], LazyWindows)
    assert data[1].shape == (18, 4, 16, 16, 2)  # 6 trajectories x 3 windows of 4 frames
    np.testing.assert_allclose(data[5].mean(0), 0, atol=1e-9)  # standardized log10 Re, Sc
    sub = ce.well_data(root, "shear_flow", cfg, max_windows=5)
    assert isinstance(sub[1], ce._Subset) and sub[1].shape[0] == 5 and sub[5].shape == (5, 2)
    np.testing.assert_array_equal(sub[1][[0, 1]], sub[1].X[sub[1].idx[:2]])

    out = tmp_path / "out"
    df, _ = ce.main(["--smoke", "--well-root", str(root), "--well-datasets", "shear_flow",
                     "--methods", "videomae", "vae", "mpp", "--max-windows", "8", "--out", str(out),
                     "--device", "cpu"])
    # the VAE is skipped on 4-frame windows; MPP pretrains on them with a 3-frame context
    assert set(df["method"]) == {"videomae", "mpp"}
    assert set(df["parameter"]) == {"log10 Reynolds", "Schmidt", "mean"}
    assert (out / "parity_smoke_well_shear_flow.png").exists()
    with pytest.raises(SystemExit, match="no results"):  # datasets not present are skipped
        ce.main(["--smoke", "--well-root", str(root), "--well-datasets", "rayleigh_benard",
                 "--out", str(out)])
    _tiny_well(root, rng, name="active_matter")  # lacks the paper's alpha, zeta
    with pytest.raises(ValueError, match="has no parameters"):
        ce.main(["--smoke", "--well-root", str(root), "--well-datasets", "active_matter",
                 "--out", str(out)])


def test_make_probe_fine_tunes_only_mpp_ft():
    from skphys import AttentiveProbeRegressor, FineTunedRegressor

    cfg = ce.scale_config(ce.build_parser().parse_args(["--smoke"]))
    emb = ce.make_embedder("mpp", cfg, 0, "cpu", 4)
    assert isinstance(ce.make_probe("mpp", cfg, 0, "cpu", emb), AttentiveProbeRegressor)
    ft = ce.make_probe("mpp_ft", cfg, 1, "cpu", emb)
    assert isinstance(ft, FineTunedRegressor) and ft.embedder.estimator is emb and ft.random_state == 1
    assert ft.probe.mlp_ratio == cfg["vit_probe_mlp_ratio"] and ft.max_epochs == cfg["finetune"]["max_epochs"]


def test_label_efficiency_smoke(tmp_path):
    with pytest.raises(SystemExit):
        le.main(["--smoke", "--fractions", "0", "1"])
    methods = ["videomae", "disco", "mpp_ft", "features"]
    df, curves = le.main(["--smoke", "--system", "convection_diffusion", "--methods", *methods,
                          "--fractions", "0.5", "1.0", "--curve-sizes", "0.5", "1.0",
                          "--out", str(tmp_path), "--cache-dir", "none", "--device", "cpu"])
    # 8 training trajectories of 32 frames: 8 windows of 4 frames each for the probe
    for method in methods:
        rows = df[df["method"] == method]
        assert list(rows["train_fraction"]) == [0.5, 1.0] and list(rows["n_labelled"]) == [32, 64], method
        sizes, mse = curves[method]
        assert list(sizes) == [32, 64] and np.isfinite(mse).all(), method
    assert np.isfinite(df["mse_mean"]).all()
    assert (tmp_path / "learning_curve_smoke.png").exists()
    table = (tmp_path / "label_efficiency_smoke.md").read_text()
    assert all(table.count(f"| {m} ") == 1 for m in methods)
    assert table.index("| videomae") < table.index("| disco") < table.index("| features")


def test_fd_baseline_tracks_nls_and_conserves_mass_with_substeps():
    """The rollout example's numerical baseline (finite differences + ETDRK4) on the quick NLS
    grid, whose frames are 4 of the paper's dt apart: with one ETDRK4 step per frame the
    trajectories whose focusing peaks grow blow up within 12 frames; the automatic substeps (an
    eighth of the paper's dt) keep every trajectory finite, on the simulator's trajectory, and
    conserve the mass integral |psi|^2 dx that the NLS conserves exactly."""
    import vae_rollout as vr
    from vae_parameters import simulate

    test = simulate("nls", 64, 0.0, 1000, "quick", "cpu")
    X, dt = test.data, float(test.dt)
    dx = float(test.coords[-1][1] - test.coords[-1][0])
    sub = vr.baseline_substeps("nls", dt)
    assert sub == 32 and vr.baseline_substeps("nls", np.pi / 256) == 8 and vr.baseline_substeps("cd", 10.0) == 1
    assert vr.baseline_substeps("ks", 32 * np.pi / 256) == 1
    n = 40
    base = vr.fd_etdrk4_rollout("nls", X[:, 0], test.target, dx, dt, n, substeps=sub)
    assert np.isfinite(base).all()
    mass = (base**2).sum(axis=(2, 3))  # (samples, steps)
    mass0 = (X[:, 0] ** 2).sum(axis=(1, 2))
    np.testing.assert_allclose(mass, np.broadcast_to(mass0[:, None], mass.shape), rtol=1e-3)
    # second-order differences on the data's grid against the spectral simulator: close, not exact
    rms = np.sqrt((X**2).mean())
    err = np.sqrt(((base[:, 0] - X[:, 1]) ** 2).mean()) / rms
    assert err < 0.01, err
    with np.errstate(all="ignore"):
        coarse = vr.fd_etdrk4_rollout("nls", X[:, 0], test.target, dx, dt, n, substeps=1)
    assert not np.isfinite(coarse).all()


def test_cd_table_rows_keep_the_rotated_velocity_subspace_together():
    """Table I for convection-diffusion: D from one latent, (vx, vy) from the rotated 2-D subspace
    of the others; with only the two velocity latents relevant, D is 'not found' instead of
    taking one of them (which would halve the velocities' R^2)."""
    from vae_parameters import r2_rows

    rng = np.random.default_rng(0)
    y = np.column_stack([rng.normal(0.1, 0.02, 200), rng.normal(0, 0.2, (200, 2))])
    mu = rng.normal(0, 0.05, (200, 5))
    mu[:, 0] = y[:, 1] + y[:, 2] + rng.normal(0, 0.01, 200)
    mu[:, 4] = y[:, 1] - y[:, 2] + rng.normal(0, 0.01, 200)
    sigma = np.full_like(mu, 0.05)
    rows, fits = r2_rows("cd", Bunch(relevant_latents_=np.array([0, 4])), mu, sigma, y, ["D", "vx", "vy"])
    by = {r["param"]: r for r in rows}
    assert by["D"]["latents"] == "-" and np.isnan(by["D"]["r2"]) and "D" not in fits
    assert by["vx"]["latents"] == by["vy"]["latents"] == "0,4"
    assert by["vx"]["r2"] > 0.99 and by["vy"]["r2"] > 0.99
    mu[:, 2] = 10 * y[:, 0] + rng.normal(0, 0.01, 200)  # now D has a latent of its own
    rows, fits = r2_rows("cd", Bunch(relevant_latents_=np.array([0, 2, 4])), mu, sigma, y, ["D", "vx", "vy"])
    by = {r["param"]: r for r in rows}
    assert by["D"]["latents"] == "2" and by["D"]["r2"] > 0.99 and by["vx"]["latents"] == "0,4"


def test_vae_parameters_resumes_pickled_models(tmp_path, monkeypatch):
    """``--resume-from`` continues a pickled model (warm start) up to ``--epochs`` in all, and the
    model file is replaced, not left half-written."""
    import pickle

    import vae_parameters as vp

    monkeypatch.setenv("SKPHYS_BENCH_DIR", str(tmp_path))
    args = ["--quick", "--system", "ks", "--noise", "0", "--n-train", "8", "--n-test", "4", "--device", "cpu",
            "--out", str(tmp_path), "--resume-from", str(tmp_path)]
    vp.main(args + ["--epochs", "2"])  # no model there yet: starts afresh
    path = tmp_path / "model_ks_noise0.pkl"
    with open(path, "rb") as fh:
        first = pickle.load(fh)
    assert len(first.history_) == 2
    vp.main(args + ["--epochs", "5"])
    with open(path, "rb") as fh:
        model = pickle.load(fh)
    assert [h["epoch"] for h in model.history_] == [0, 1, 2, 3, 4]
    assert model.history_[:2] == first.history_
    assert not list(tmp_path.glob("*.tmp"))
    with open(path, "wb") as fh:
        pickle.dump({"not": "a model"}, fh)
    with pytest.raises(TypeError, match="not a DynamicsVAE"):
        vp.main(args + ["--epochs", "6"])
    path.write_bytes(b"truncated")
    with pytest.raises(ValueError, match="not a readable model pickle"):
        vp.main(args + ["--epochs", "6"])


def test_vae_parameters_beta_path_reports_the_kept_fit(tmp_path, monkeypatch, capsys):
    """``--beta-path`` fits BetaPathVAE over the given KL weights and reports (and pickles) the
    kept fit; on 8 noise-free KS trajectories and 2 epochs no latent is relevant, so every beta
    is fitted and the last one is kept, with BetaPathVAE's warning."""
    import pickle

    import vae_parameters as vp

    monkeypatch.setenv("SKPHYS_BENCH_DIR", str(tmp_path))
    with pytest.warns(UserWarning, match="no latent was relevant"):
        vp.main(["--quick", "--system", "ks", "--noise", "0", "--n-train", "8", "--n-test", "4", "--device", "cpu",
                 "--out", str(tmp_path), "--epochs", "2", "--beta-path", "1e-1,1e-2"])
    assert "beta path: 0.1: 0 relevant, 0.01: 0 relevant; kept beta 0.01" in capsys.readouterr().out
    with open(tmp_path / "model_ks_noise0.pkl", "rb") as fh:
        model = pickle.load(fh)
    assert model.beta_ == 0.01 and len(model.history_) == 2
    with pytest.raises(SystemExit):  # a path fits new models; it cannot continue pickled ones
        vp.main(["--quick", "--system", "ks", "--beta-path", "1e-1", "--resume-from", str(tmp_path)])
    assert "cannot continue pickled ones" in capsys.readouterr().err
