"""BetaPathVAE: the path logic (which fit is kept, warnings, checkpoints, validation) on a stand-in
DynamicsVAE whose fit is instantaneous, and one real path on tiny data. The identification it
serves is pinned on a real system in tests/test_unseen_systems.py."""

import os
import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone

from skphys import BetaPathVAE, DynamicsVAE
from skphys._beta_path import SMALL_1D

X = np.random.default_rng(0).normal(size=(6, 40, 40, 1)).astype("float32")


class ThresholdVAE(DynamicsVAE):
    """A stand-in whose fit finds 2 relevant latents when ``beta <= 1e-3`` and none above, and
    records the checkpoint_dir it was given. It adds no constructor parameters, so clone and
    get_params behave as for the real class."""

    seen_dirs = []

    def fit(self, X, y=None):
        cut = 1e-3
        n = 2 if self.beta <= cut else 0
        ThresholdVAE.seen_dirs.append(self.checkpoint_dir)
        ratios = np.array([5.0, 3.0, 0.01, 0.01, 0.01]) if n else np.full(5, 1e-3)
        self.latent_stats_ = {"mu_variance": ratios, "mean_sigma2": np.ones(5), "direction_snr": ratios}
        self.relevant_latents_ = np.arange(n)
        self.beta_ = float(self.beta)
        self.fitted_on_ = len(X)
        return self

    def transform(self, X, return_std=False):
        out = np.full((len(X), 5), self.beta_)
        return (out, out) if return_std else out


def test_path_stops_at_the_first_beta_with_relevant_latents():
    path = BetaPathVAE(ThresholdVAE(), betas=(1e-1, 1e-2, 1e-3, 1e-4)).fit(X)
    assert [p["beta"] for p in path.path_] == [1e-1, 1e-2, 1e-3]  # 1e-4 never fitted
    assert [p["n_relevant"] for p in path.path_] == [0, 0, 2]
    assert path.beta_ == 1e-3 and path.best_estimator_.beta == 1e-3
    np.testing.assert_array_equal(path.relevant_latents_, [0, 1])
    np.testing.assert_allclose(path.path_[-1]["ratios"], [5.0, 3.0, 0.01, 0.01, 0.01])
    np.testing.assert_allclose(path.path_[-1]["direction_snr"], [5.0, 3.0, 0.01, 0.01, 0.01])
    assert path.latent_stats_ is path.best_estimator_.latent_stats_
    np.testing.assert_array_equal(path.transform(X), np.full((6, 5), 1e-3))
    mu, sd = path.transform(X, return_std=True)
    assert mu.shape == sd.shape == (6, 5)
    # the user's estimator is cloned, never fitted itself
    est = ThresholdVAE()
    BetaPathVAE(est, betas=(1e-3,)).fit(X)
    assert not hasattr(est, "relevant_latents_")


def test_no_relevant_latent_anywhere_warns_and_keeps_the_last_fit():
    with pytest.warns(UserWarning, match="no latent was relevant"):
        path = BetaPathVAE(ThresholdVAE(), betas=(1.0, 1e-1)).fit(X)
    assert [p["n_relevant"] for p in path.path_] == [0, 0]
    assert path.beta_ == 1e-1 and len(path.relevant_latents_) == 0


def test_each_beta_checkpoints_in_its_own_subdirectory(tmp_path):
    ThresholdVAE.seen_dirs = []
    BetaPathVAE(ThresholdVAE(checkpoint_dir=tmp_path), betas=(1e-2, 1e-3)).fit(X)
    assert ThresholdVAE.seen_dirs == [os.path.join(tmp_path, "beta_0"), os.path.join(tmp_path, "beta_1")]
    ThresholdVAE.seen_dirs = []
    BetaPathVAE(ThresholdVAE(), betas=(1e-3,)).fit(X)
    assert ThresholdVAE.seen_dirs == [None]


@pytest.mark.parametrize("betas, err, match", [
    ((), ValueError, "at least one"),
    ((1e-3, 1e-2), ValueError, "strictly decreasing"),
    ((1e-3, 1e-3), ValueError, "strictly decreasing"),
    ((1e-3, -1.0), ValueError, "positive"),
    ((1e-3, float("nan")), ValueError, "positive"),
    (("a",), ValueError, "positive"),
    (0.01, (TypeError, ValueError), "betas"),
])
def test_bad_betas_are_refused(betas, err, match):
    with pytest.raises(err, match=match):
        BetaPathVAE(ThresholdVAE(), betas=betas).fit(X)


def test_the_estimator_must_be_a_dynamics_vae():
    from sklearn.decomposition import PCA

    with pytest.raises(TypeError, match="DynamicsVAE"):
        BetaPathVAE(PCA(), betas=(1e-3,)).fit(X)


def test_default_estimator_is_the_small_configuration_and_tags():
    path = BetaPathVAE()
    assert path.estimator is None and path.betas == (2e-3, 2.5e-4, 3e-5)
    base = path._base()
    assert isinstance(base, DynamicsVAE)
    assert {k: base.get_params()[k] for k in SMALL_1D} == SMALL_1D
    tags = path.__sklearn_tags__()
    assert tags.input_tags.three_d_array and not tags.input_tags.two_d_array
    assert not tags.target_tags.required
    assert clone(path).get_params()["betas"] == (2e-3, 2.5e-4, 3e-5)


def test_a_real_path_on_tiny_data_is_reproducible_and_pickles():
    tiny = DynamicsVAE(encoder_crop=(32, 32), decoder_crop=20, rollout_steps=3, hidden_channels=4, max_epochs=1,
                       batch_size=4, random_state=0, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        a = BetaPathVAE(tiny, betas=(1e-2, 1e-3)).fit(X)
        b = BetaPathVAE(tiny, betas=(1e-2, 1e-3)).fit(X)
    assert [p["beta"] for p in a.path_] == [p["beta"] for p in b.path_]
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    again = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(again.transform(X), a.transform(X))
    assert a.transform(X).shape == (6, 5)


def test_multichannel_data_are_scaled_to_unit_rms_per_channel():
    # "auto" scales data with two or more channels: the path is then exactly the one fitted on the
    # data divided by their training RMS, and transform divides new data by the same numbers
    rng = np.random.default_rng(1)
    X2 = np.concatenate([rng.normal(size=(6, 40, 40, 1)), 0.1 * rng.normal(size=(6, 40, 40, 1))], -1).astype("float32")
    tiny = DynamicsVAE(encoder_crop=(32, 32), decoder_crop=20, rollout_steps=3, hidden_channels=4, max_epochs=1,
                       batch_size=4, random_state=0, device="cpu")
    rms = np.sqrt((X2.astype(np.float64) ** 2).mean(axis=(0, 1, 2))).astype(np.float32)
    new = (X2[:3] * 2).astype("float32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        auto = BetaPathVAE(tiny, betas=(1e-2,)).fit(X2)
        manual = BetaPathVAE(tiny, betas=(1e-2,), scale_channels=False).fit(X2 / rms)
        raw = BetaPathVAE(tiny, betas=(1e-2,), scale_channels=False).fit(X2)
        one = BetaPathVAE(tiny, betas=(1e-2,), scale_channels=True).fit(X)
    np.testing.assert_array_equal(auto.channel_scale_, rms)
    assert 8 < rms[0] / rms[1] < 12
    np.testing.assert_array_equal(auto.transform(new), manual.transform(new / rms))
    np.testing.assert_array_equal(raw.channel_scale_, [1.0, 1.0])
    assert not np.array_equal(raw.transform(X2), auto.transform(X2))
    # one channel: "auto" leaves it alone, True scales it
    np.testing.assert_array_equal(BetaPathVAE(ThresholdVAE(), betas=(1e-3,)).fit(X).channel_scale_, [1.0])
    np.testing.assert_allclose(one.channel_scale_, [np.sqrt((X.astype(np.float64) ** 2).mean())], rtol=1e-6)
    # a lazy array-like (shape, __getitem__, __array__, as LazyWindows) is read once and scaled alike
    class Lazy:
        shape, dtype, ndim = X2.shape, X2.dtype, X2.ndim

        def __getitem__(self, key):
            return X2[key]

        def __array__(self, dtype=None, copy=None):
            return X2 if dtype is None else X2.astype(dtype)

    lazy = BetaPathVAE(ThresholdVAE(), betas=(1e-3,)).fit(Lazy())
    np.testing.assert_array_equal(lazy.channel_scale_, rms)
    # bad input is named
    with pytest.raises(ValueError, match="channels"):
        auto.transform(X)
    zero = X2.copy()
    zero[..., 1] = 0
    with pytest.raises(ValueError, match=r"channel\(s\) \[1\].*zero everywhere"):
        BetaPathVAE(ThresholdVAE(), betas=(1e-3,)).fit(zero)
    with pytest.raises(ValueError, match="scale_channels"):
        BetaPathVAE(ThresholdVAE(), betas=(1e-3,), scale_channels="yes").fit(X2)
