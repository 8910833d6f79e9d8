"""Display objects: the artists exist and hold the data they claim to show (Agg backend)."""

import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from sklearn.linear_model import BayesianRidge, Ridge  # noqa: E402
from sklearn.metrics import r2_score  # noqa: E402
from sklearn.model_selection import GridSearchCV, PredefinedSplit  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from skphys import DynamicsVAE  # noqa: E402
from skphys.display import (  # noqa: E402
    LabelEfficiencyDisplay,
    LatentStatisticsDisplay,
    ParameterParityDisplay,
    RolloutErrorDisplay,
)
from skphys.metrics import latent_statistics, linear_fit, relevant_latents, rollout_rmse  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def vae_data():
    """A tiny fitted DynamicsVAE on 1-D travelling waves whose speed is the parameter."""
    rng = np.random.default_rng(0)
    n, T, L = 8, 36, 36
    speed = rng.uniform(-1, 1, size=n)
    x = np.arange(L)
    t = np.arange(T)[:, None]
    X = np.stack([np.sin(2 * np.pi * (x - s * t) / L) for s in speed])[..., None].astype(np.float32)
    vae = DynamicsVAE(n_latents=3, encoder_crop=(32, 32), decoder_crop=20, rollout_steps=3, hidden_channels=4,
                      max_epochs=2, batch_size=8, random_state=0, device="cpu").fit(X)
    return vae, X, speed[:, None]


def _latents(rng, n=200):
    mu = np.c_[rng.normal(size=n), 0.01 * rng.normal(size=n), 2 * rng.normal(size=n)]
    sigma = np.c_[np.full(n, 0.05), np.full(n, 0.9), np.full(n, 0.1)]
    return mu, sigma


# --------------------------------------------------------------------------- latent statistics
def test_latent_statistics_from_predictions(rng):
    mu, sigma = _latents(rng)
    disp = LatentStatisticsDisplay.from_predictions(mu, sigma, latent_names=["a", "b", "c"])
    mu_var, s2 = latent_statistics(mu, sigma)
    np.testing.assert_allclose([r.get_height() for r in disp.bars_mu_variance_], mu_var)
    np.testing.assert_allclose([r.get_height() for r in disp.bars_mean_sigma2_], s2)
    # latent 2 varies most, then 0; 1 collapsed
    assert disp.relevant_latents.tolist() == [2, 0]
    assert len(disp.relevant_spans_) == 2
    spans = sorted(p.get_x() + p.get_width() / 2 for p in disp.relevant_spans_)
    np.testing.assert_allclose(spans, [0, 2])  # shading centred on the relevant latents
    assert disp.ax_.get_yscale() == "log"
    assert disp.ax_.get_title() == "relevant latents: c, a"
    bold = [t.get_text() for t in disp.ax_.get_xticklabels() if t.get_fontweight() == "bold"]
    assert sorted(bold) == ["a", "c"]
    assert disp.figure_ is disp.ax_.figure
    # var(mu) / mean(sigma^2) is about 400 for latents 0 and 2: a threshold above that marks none
    strict = LatentStatisticsDisplay.from_predictions(mu, sigma, threshold=1e6)
    assert strict.relevant_spans_ == [] and strict.ax_.get_title() == "relevant latents: none"


def test_latent_statistics_validation(rng):
    with pytest.raises(ValueError, match="shapes"):
        LatentStatisticsDisplay(mu_variance=[1, 2], mean_sigma2=[1, 2, 3]).plot()
    with pytest.raises(ValueError, match="out of range"):
        LatentStatisticsDisplay(mu_variance=[1, 2], mean_sigma2=[1, 2], relevant_latents=[2]).plot()
    with pytest.raises(ValueError, match="latent_names"):
        LatentStatisticsDisplay(mu_variance=[1, 2], mean_sigma2=[1, 2], latent_names=["a"]).plot()
    with pytest.raises(TypeError, match="latent_stats_"):
        LatentStatisticsDisplay.from_estimator(Ridge())
    with pytest.raises(TypeError, match="Axes"):
        LatentStatisticsDisplay(mu_variance=[1, 2], mean_sigma2=[1, 2]).plot(ax="not an axes")


def test_latent_statistics_from_estimator(vae_data):
    vae, X, _ = vae_data
    disp = LatentStatisticsDisplay.from_estimator(vae)
    np.testing.assert_allclose([r.get_height() for r in disp.bars_mu_variance_], vae.latent_stats_["mu_variance"])
    np.testing.assert_allclose([r.get_height() for r in disp.bars_mean_sigma2_], vae.latent_stats_["mean_sigma2"])
    assert len(disp.relevant_spans_) == len(vae.relevant_latents_)
    # the title lists plain indices, never numpy reprs such as np.int64(3)
    assert "np." not in disp.ax_.get_title()
    fig, ax = plt.subplots()
    on_x = LatentStatisticsDisplay.from_estimator(vae, X[:4], ax=ax, log_scale=False)
    assert on_x.ax_ is ax and ax.get_yscale() == "linear"
    mu, sigma = vae.transform(X[:4], return_std=True)
    np.testing.assert_allclose([r.get_height() for r in on_x.bars_mu_variance_], latent_statistics(mu, sigma)[0])
    assert on_x.relevant_latents.tolist() == relevant_latents(mu, sigma, vae.relevance_threshold).tolist()


# --------------------------------------------------------------------------- parity
def test_parity_scatter_and_intervals(rng):
    y = rng.uniform(0, 1, size=(40, 2))
    pred = y + 0.1 * rng.normal(size=y.shape)
    std = rng.uniform(0.01, 0.2, size=y.shape)
    disp = ParameterParityDisplay.from_predictions(y, pred, target_names=["D", "v"], name="m")
    assert disp.ax_.shape == (2,)
    np.testing.assert_allclose(disp.points_[1].get_offsets(), np.c_[y[:, 1], pred[:, 1]])
    np.testing.assert_allclose(disp.r2_, r2_score(y, pred, multioutput="raw_values"))
    legend = disp.ax_[0].get_legend().get_texts()[0].get_text()
    assert legend == f"m, R$^2$ = {disp.r2_[0]:.3f}"
    assert disp.ax_[1].get_xlabel() == "true v" and disp.ax_[1].get_title() == "v"
    # the diagonal is y = x
    diag = disp.diagonals_[0]
    x0, y0 = diag.get_xy1()
    assert np.isclose(x0, y0) and diag.get_slope() == 1

    with_std = ParameterParityDisplay.from_predictions(y, pred, y_std=std, confidence=0.9)
    container = with_std.points_[0]
    data_line, _, (bars,) = container.lines
    np.testing.assert_allclose(data_line.get_xydata(), np.c_[y[:, 0], pred[:, 0]])
    half = np.array([abs(seg[1, 1] - seg[0, 1]) / 2 for seg in bars.get_segments()])
    np.testing.assert_allclose(half, 1.6448536 * std[:, 0], rtol=1e-6)  # 90% Gaussian interval
    assert "bars: 90%" in with_std.ax_[0].get_legend().get_texts()[0].get_text()


def test_parity_overlay_shares_axes_and_diagonal(rng):
    y = rng.uniform(0, 1, size=(30, 2))
    first = ParameterParityDisplay.from_predictions(y, y + 0.01, name="a")
    second = ParameterParityDisplay.from_predictions(y, y * 0 + y.mean(0), name="b", ax=first.ax_)
    assert second.figure_ is first.figure_
    for a, d1, d2 in zip(first.ax_, first.diagonals_, second.diagonals_):
        assert d1 is d2 and len(a.get_legend().get_texts()) == 2
    with pytest.raises(ValueError, match="one per target"):
        ParameterParityDisplay.from_predictions(y, y, ax=first.ax_[:1])
    one = ParameterParityDisplay.from_predictions(y[:, 0], y[:, 0], ax=plt.subplots()[1])
    assert one.ax_.shape == (1,)
    with pytest.raises(ValueError, match="non-negative"):
        ParameterParityDisplay.from_predictions(y, y, y_std=-np.ones_like(y))
    with pytest.raises(ValueError, match="shapes"):
        ParameterParityDisplay.from_predictions(y, y[:, :1])
    with pytest.raises(ValueError, match="confidence"):
        ParameterParityDisplay.from_predictions(y, y, y_std=np.ones_like(y), confidence=95)
    many = ParameterParityDisplay.from_predictions(rng.normal(size=(20, 5)), rng.normal(size=(20, 5)))
    assert many.figure_.axes[5].get_visible() is False and len(many.ax_) == 5  # 4 per row, 6th hidden


def test_parity_from_estimator_regressors(rng):
    X = rng.normal(size=(60, 3))
    y = X @ [1.0, -2.0, 0.5] + 0.1 * rng.normal(size=60)
    pipe = make_pipeline(StandardScaler(), Ridge(alpha=1e-3)).fit(X, y)
    disp = ParameterParityDisplay.from_estimator(pipe, X, y, target_names=["a"])
    np.testing.assert_allclose(disp.points_[0].get_offsets()[:, 1], pipe.predict(X))
    assert disp.ax_[0].get_legend().get_texts()[0].get_text().startswith("Ridge, R$^2$")
    br = BayesianRidge().fit(X, y)
    disp = ParameterParityDisplay.from_estimator(br, X, y, return_std=True)
    _, std = br.predict(X, return_std=True)
    (bars,) = disp.points_[0].lines[2]
    np.testing.assert_allclose([abs(s[1, 1] - s[0, 1]) / 2 for s in bars.get_segments()], 1.959964 * std, rtol=1e-5)
    with pytest.raises(ValueError, match="DynamicsVAE only"):
        ParameterParityDisplay.from_estimator(br, X, y, latents=[0])


def test_parity_from_dynamics_vae(vae_data):
    vae, X, speed = vae_data
    disp = ParameterParityDisplay.from_estimator(vae, X, speed, latents=[0, 1], target_names=["speed"])
    mu, sigma = vae.transform(X, return_std=True)
    fit = linear_fit(mu[:, [0, 1]], speed, sigma[:, [0, 1]])
    np.testing.assert_allclose(disp.points_[0].lines[0].get_ydata(), fit["pred"][:, 0], rtol=1e-6)
    np.testing.assert_allclose(disp.r2_, fit["r2"])
    assert disp.ax_[0].get_legend().get_texts()[0].get_text().startswith("DynamicsVAE, R$^2$")


# --------------------------------------------------------------------------- rollout error
def test_rollout_from_predictions(rng):
    y_true = rng.normal(size=(4, 12, 8, 2))
    a = y_true + 0.1 * rng.normal(size=y_true.shape)
    b = y_true + np.linspace(0, 1, 12)[None, :, None, None]
    base = np.zeros_like(y_true)
    disp = RolloutErrorDisplay.from_predictions(y_true, {"a": a, "b": b}, y_baseline=base, baseline_name="zero",
                                                horizon=5, log_scale=True)
    assert [ln.get_label() for ln in disp.lines_] == ["a", "b"]
    np.testing.assert_allclose(disp.lines_[0].get_ydata(), rollout_rmse(y_true, a))
    np.testing.assert_allclose(disp.lines_[1].get_ydata(), rollout_rmse(y_true, b))
    np.testing.assert_array_equal(disp.lines_[0].get_xdata(), np.arange(1, 13))
    np.testing.assert_allclose(disp.baseline_line_.get_ydata(), rollout_rmse(y_true, base))
    assert disp.baseline_line_.get_label() == "zero"
    assert disp.horizon_line_.get_xdata()[0] == 5 and disp.ax_.get_yscale() == "log"
    listed = RolloutErrorDisplay.from_predictions(y_true, [a, b], names=["x", "y"], time=0.5 * np.arange(1, 13))
    np.testing.assert_allclose(listed.lines_[1].get_xdata(), 0.5 * np.arange(1, 13))
    assert listed.baseline_line_ is None and listed.horizon_line_ is None and listed.ax_.get_xlabel() == "time"
    with pytest.raises(ValueError, match="not both"):
        RolloutErrorDisplay.from_predictions(y_true, {"a": a}, names=["a"])
    with pytest.raises(ValueError, match="same shape"):
        RolloutErrorDisplay.from_predictions(y_true, a[:, :5])
    with pytest.raises(ValueError, match="names"):
        RolloutErrorDisplay.from_predictions(y_true, [a, b], names=["x"])


def test_rollout_from_estimator(vae_data):
    vae, X, _ = vae_data
    disp = RolloutErrorDisplay.from_estimator(vae, X, n_steps=6, boundary=["periodic", "constant"], dt=0.5)
    assert [ln.get_label() for ln in disp.lines_] == ["DynamicsVAE (periodic)", "DynamicsVAE (constant)"]
    pred = vae.predict(X[:, 0], 6, context=X, boundary="constant")
    np.testing.assert_allclose(disp.lines_[1].get_ydata(), rollout_rmse(X[:, 1:7], pred), rtol=1e-6)
    persistence = rollout_rmse(X[:, 1:7], np.repeat(X[:, :1], 6, axis=1))
    np.testing.assert_allclose(disp.baseline_line_.get_ydata(), persistence)
    np.testing.assert_allclose(disp.lines_[0].get_xdata(), 0.5 * np.arange(1, 7))
    assert disp.horizon_line_.get_xdata()[0] == 0.5 * vae.rollout_steps_
    one = RolloutErrorDisplay.from_estimator(vae, X, y_baseline=None)
    assert len(one.lines_[0].get_ydata()) == X.shape[1] - 1 and one.baseline_line_ is None
    with pytest.raises(ValueError, match="n_steps"):
        RolloutErrorDisplay.from_estimator(vae, X, n_steps=X.shape[1])
    with pytest.raises(ValueError, match="persistence"):
        RolloutErrorDisplay.from_estimator(vae, X, y_baseline="exact")


# --------------------------------------------------------------------------- label efficiency
class FractionRidge(Ridge):
    """Ridge on the first ``train_fraction`` of the rows (a cheap stand-in for the probe)."""

    def __init__(self, alpha=1.0, train_fraction=1.0, random_state=None):
        super().__init__(alpha=alpha)
        self.train_fraction = train_fraction
        self.random_state = random_state

    def fit(self, X, y):
        n = max(2, int(round(self.train_fraction * len(X))))
        idx = np.random.default_rng(self.random_state).permutation(len(X))[:n]
        return super().fit(X[idx], y[idx])


def test_label_efficiency_from_cv_results(rng):
    X = rng.normal(size=(80, 4))
    y = X @ [1.0, 2.0, 0.0, -1.0] + 0.5 * rng.normal(size=80)
    split = PredefinedSplit(np.r_[np.full(60, -1), np.zeros(20, int)])
    search = GridSearchCV(
        make_pipeline(FractionRidge(alpha=1e-3)),
        [{"fractionridge__train_fraction": [0.1, 0.5, 1.0], "fractionridge__random_state": [0, 1, 2]},
         {"fractionridge__alpha": [10.0]}],  # a candidate without the fraction: left out
        cv=split, scoring="neg_mean_squared_error", refit=False,
    ).fit(X, y)
    disp = LabelEfficiencyDisplay.from_cv_results(search.cv_results_, param_name="fractionridge__train_fraction",
                                                  name="ridge")
    res = search.cv_results_
    frac = np.ma.getdata(res["param_fractionridge__train_fraction"])
    ok = ~np.ma.getmaskarray(res["param_fractionridge__train_fraction"])
    for i, f in enumerate([0.1, 0.5, 1.0]):
        mse = -res["mean_test_score"][ok & (frac == f)]
        assert disp.n_scores[i] == 3
        np.testing.assert_allclose(disp.scores_mean[i], mse.mean())
        np.testing.assert_allclose(disp.scores_std[i], mse.std(ddof=1))
    np.testing.assert_allclose(disp.line_.get_xdata(), [0.1, 0.5, 1.0])
    np.testing.assert_allclose(disp.line_.get_ydata(), disp.scores_mean)
    (bars,) = disp.errorbar_.lines[2]
    np.testing.assert_allclose([abs(s[1, 1] - s[0, 1]) / 2 for s in bars.get_segments()], disp.scores_std, atol=1e-12)
    assert disp.scores_mean[0] > disp.scores_mean[-1]  # fewer labels, larger error
    assert disp.ax_.get_legend().get_texts()[0].get_text() == "ridge"
    assert disp.ax_.xaxis.get_major_formatter()(0.5, 0) == "50%"
    band = LabelEfficiencyDisplay.from_cv_results(res, param_name="fractionridge__train_fraction",
                                                  std_display_style="fill_between")
    assert band.errorbar_ is None and band.fill_between_ is not None
    with pytest.raises(ValueError, match="searched parameters"):
        LabelEfficiencyDisplay.from_cv_results(res, param_name="probe__train_fraction")
    with pytest.raises(ValueError, match="std_display_style"):
        LabelEfficiencyDisplay.from_cv_results(res, param_name="fractionridge__train_fraction",
                                               std_display_style="band")


def test_label_efficiency_from_estimator(rng):
    X = rng.normal(size=(50, 3))
    y = X[:, 0] + 0.1 * rng.normal(size=50)
    split = PredefinedSplit(np.r_[np.full(40, -1), np.zeros(10, int)])
    disp = LabelEfficiencyDisplay.from_estimator(
        make_pipeline(StandardScaler(), FractionRidge()), X, y, fractions=[0.2, 1.0],
        param_name="fractionridge__train_fraction", param_grid={"fractionridge__random_state": [0, 1]}, cv=split,
    )
    assert disp.n_scores.tolist() == [2, 2] and disp.ax_.get_legend().get_texts()[0].get_text() == "FractionRidge"
    assert len(disp.search_.cv_results_["params"]) == 4
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        LabelEfficiencyDisplay.from_estimator(FractionRidge(), X, y, fractions=[0.0, 1.0])


def test_import_skphys_does_not_import_matplotlib():
    code = ("import sys, skphys, skphys.display, skphys.utils; "
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
