"""scikit-learn citizenship of the JEPA embedder, the attentive probe and the feature baseline.

n-D X is tested the aeon way: 5-D trajectory arrays go through every CV splitter, the search and
model-selection helpers, Pipeline caching and FrozenEstimator.
"""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import Ridge
from sklearn.model_selection import (
    GridSearchCV,
    GroupKFold,
    GroupShuffleSplit,
    HalvingGridSearchCV,
    KFold,
    LeaveOneGroupOut,
    LeaveOneOut,
    LeavePGroupsOut,
    LeavePOut,
    PredefinedSplit,
    RepeatedKFold,
    ShuffleSplit,
    TimeSeriesSplit,
    cross_val_score,
    cross_validate,
    learning_curve,
)
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from skphys import AttentiveProbeRegressor, JEPAEmbedder
from skphys._features import SpectralStatsFeatures


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


N = 12
RNG = np.random.default_rng(0)
X5 = RNG.normal(size=(N, 8, 8, 8, 2)).astype(np.float32)  # (n, T, ny, nx, C)
Y = np.c_[X5[..., 0].std(axis=(1, 2, 3)), X5[..., 1].mean(axis=(1, 2, 3))]
GROUPS = np.repeat(np.arange(4), 3)


def _jepa(**kw):
    p = dict(n_frames=4, widths=(4, 8, 8), depths=(1, 1, 1), predictor_width=8, batch_size=4, max_epochs=1, random_state=0)
    p.update(kw)
    return JEPAEmbedder(**p)


def _probe(**kw):
    p = dict(max_epochs=1, batch_size=8, mlp_ratio=1, random_state=0)
    p.update(kw)
    return AttentiveProbeRegressor(**p)


@pytest.fixture(scope="module")
def frozen_jepa():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    fitted = _jepa().fit(X5)
    torch.set_num_threads(n)
    return FrozenEstimator(fitted)


# ---------------------------------------------------------------- standard estimator checks
@parametrize_with_checks(
    [AttentiveProbeRegressor(max_epochs=30, batch_size=32, mlp_ratio=1, n_heads=1, random_state=0)],
    # every check applies: a 1-token probe on 2-D X is a regular regressor
    expected_failed_checks=lambda est: {},
)
def test_probe_passes_sklearn_checks(estimator, check):
    check(estimator)


# ---------------------------------------------------------------- n-D X through every splitter
SPLITTERS = [
    KFold(3),
    KFold(3, shuffle=True, random_state=0),
    RepeatedKFold(n_splits=2, n_repeats=2, random_state=0),
    ShuffleSplit(3, test_size=0.25, random_state=0),
    LeaveOneOut(),
    LeavePOut(2),
    TimeSeriesSplit(3),
    GroupKFold(2),
    GroupShuffleSplit(2, test_size=0.25, random_state=0),
    LeaveOneGroupOut(),
    LeavePGroupsOut(2),
    PredefinedSplit(np.tile([0, 1, -1], 4)),
]


@pytest.mark.parametrize("cv", SPLITTERS, ids=lambda s: type(s).__name__)
def test_nd_X_through_every_splitter(cv, frozen_jepa):
    n = 8 if isinstance(cv, LeavePOut) else N  # 28 splits instead of 66
    X, y, groups = X5[:n], Y[:n], GROUPS[:n]
    baseline = Pipeline([("feat", SpectralStatsFeatures(n_frames=4, n_bins=2)), ("ridge", Ridge())])
    scores = cross_val_score(baseline, X, y, cv=cv, groups=groups, error_score="raise", scoring="neg_mean_squared_error")
    assert np.all(np.isfinite(scores))
    pipe = Pipeline([("jepa", frozen_jepa), ("probe", _probe())])
    scores = cross_val_score(pipe, X, y, cv=cv, groups=groups, error_score="raise", scoring="neg_mean_squared_error")
    assert len(scores) == cv.get_n_splits(X, y, groups) and np.all(np.isfinite(scores))


# ---------------------------------------------------------------- model selection
def test_grid_search_train_fraction_protocol(frozen_jepa):
    """The paper's Table 2 protocol: grid over the labelled fraction."""
    pipe = Pipeline([("jepa", frozen_jepa), ("probe", _probe())])
    gs = GridSearchCV(pipe, {"probe__train_fraction": [0.5, 1.0]}, cv=KFold(3), scoring="neg_mean_squared_error",
                      error_score="raise").fit(X5, Y)
    assert gs.cv_results_["mean_test_score"].shape == (2,)
    assert len(gs.best_estimator_.named_steps["probe"].train_indices_) in (N // 2, N)
    assert gs.predict(X5).shape == Y.shape


def test_halving_grid_search(frozen_jepa):
    pipe = Pipeline([("jepa", frozen_jepa), ("probe", _probe())])
    hs = HalvingGridSearchCV(pipe, {"probe__mlp_ratio": [1, 2]}, cv=2, min_resources=6, factor=2,
                             scoring="neg_mean_squared_error", error_score="raise", random_state=0).fit(X5, Y)
    assert hs.best_params_["probe__mlp_ratio"] in (1, 2)


def test_cross_validate_and_learning_curve(frozen_jepa):
    pipe = Pipeline([("jepa", frozen_jepa), ("probe", _probe())])
    res = cross_validate(pipe, X5, Y, cv=3, return_estimator=True, error_score="raise")
    assert len(res["estimator"]) == 3 and np.all(np.isfinite(res["test_score"]))
    sizes, train_scores, test_scores = learning_curve(pipe, X5, Y, cv=3, train_sizes=[0.5, 1.0], error_score="raise")
    assert train_scores.shape == (2, 3) and np.all(np.isfinite(test_scores))


def test_frozen_estimator_is_not_refit(frozen_jepa):
    before = {k: v.clone() for k, v in frozen_jepa.estimator.encoder_.state_dict().items()}
    pipe = Pipeline([("jepa", frozen_jepa), ("probe", _probe())])
    GridSearchCV(pipe, {"probe__lr": [1e-3, 1e-2]}, cv=2).fit(X5, Y)
    for k, v in frozen_jepa.estimator.encoder_.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)


class CountingJEPA(JEPAEmbedder):
    """Counts real ``fit`` executions (a cache hit in Pipeline(memory=) does not run fit)."""

    calls = 0

    def fit(self, X, y=None):
        type(self).calls += 1
        return super().fit(X, y)


def test_pipeline_memory_caches_pretraining(tmp_path):
    params = dict(n_frames=4, widths=(4, 8, 8), depths=(1, 1, 1), predictor_width=8, batch_size=4, max_epochs=1, random_state=0)
    CountingJEPA.calls = 0
    pipe = Pipeline([("jepa", CountingJEPA(**params)), ("probe", _probe())], memory=str(tmp_path))
    p1 = pipe.fit(X5, Y).predict(X5)
    pipe2 = clone(pipe).set_params(probe__lr=1e-2)  # a new probe on the same cached embedding
    p2 = pipe2.fit(X5, Y).predict(X5)
    assert CountingJEPA.calls == 1
    assert p1.shape == p2.shape == Y.shape


# ---------------------------------------------------------------- clone, params, pickle
@pytest.mark.parametrize("est", [_jepa(), _probe(), SpectralStatsFeatures(n_bins=3)], ids=lambda e: type(e).__name__)
def test_clone_params_pickle(est):
    c = clone(est)
    assert c.get_params() == est.get_params()
    c.set_params(**{k: v for k, v in est.get_params().items()})
    is_probe = isinstance(est, AttentiveProbeRegressor)
    X = _jepa().fit(X5).transform(X5) if is_probe else X5
    fitted = clone(est).fit(X, Y) if is_probe else clone(est).fit(X)
    out = fitted.predict(X) if is_probe else fitted.transform(X)
    restored = pickle.loads(pickle.dumps(fitted))
    out2 = restored.predict(X) if is_probe else restored.transform(X)
    np.testing.assert_array_equal(out, out2)
    assert not hasattr(clone(fitted), "n_channels_") and not hasattr(clone(fitted), "module_")


def test_shared_constructor_names():
    for est in (_jepa(), _probe()):
        params = est.get_params()
        for name in ("max_epochs", "batch_size", "lr", "weight_decay", "device", "random_state", "verbose"):
            assert name in params
        assert params["device"] == "auto"


def test_tags():
    assert JEPAEmbedder().__sklearn_tags__().input_tags.three_d_array
    assert not JEPAEmbedder().__sklearn_tags__().target_tags.required
    tags = AttentiveProbeRegressor().__sklearn_tags__()
    assert tags.input_tags.two_d_array and tags.input_tags.three_d_array and tags.target_tags.multi_output
    assert tags.estimator_type == "regressor"


# ---------------------------------------------------------------- MPP, DISCO and fine-tuning
def _mpp(**kw):
    from skphys import MPPEmbedder

    p = dict(n_frames=4, patch_size=4, embed_dim=8, depth=1, n_heads=2, batch_size=4, max_epochs=1, random_state=0)
    p.update(kw)
    return MPPEmbedder(**p)


def _disco(**kw):
    from skphys import DISCOEmbedder

    p = dict(n_frames=4, patch_size=4, embed_dim=8, depth=1, n_heads=2, operator_width=4, operator_groups=2,
             batch_size=4, max_epochs=1, random_state=0)
    p.update(kw)
    return DISCOEmbedder(**p)


@pytest.mark.parametrize("make", [_mpp, _disco], ids=["mpp", "disco"])
def test_new_embedders_citizenship(make):
    est = make()
    c = clone(est)
    assert c.get_params() == est.get_params()
    for name in ("max_epochs", "batch_size", "lr", "weight_decay", "device", "random_state", "verbose",
                 "checkpoint_dir", "callbacks"):
        assert name in est.get_params()
    fitted = clone(est).fit(X5)
    out = fitted.transform(X5)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(fitted)).transform(X5), out)
    assert not hasattr(clone(fitted), "module_")
    frozen = FrozenEstimator(fitted)
    for cv in (KFold(3), GroupKFold(2), LeaveOneGroupOut()):
        pipe = Pipeline([("emb", frozen), ("probe", _probe())])
        scores = cross_val_score(pipe, X5, Y, cv=cv, groups=GROUPS, error_score="raise",
                                 scoring="neg_mean_squared_error")
        assert np.all(np.isfinite(scores))
    np.testing.assert_array_equal(frozen.estimator.transform(X5), out)  # FrozenEstimator was not refit
    gs = GridSearchCV(Pipeline([("emb", frozen), ("probe", _probe())]), {"probe__train_fraction": [0.5, 1.0]},
                      cv=KFold(3), error_score="raise").fit(X5, Y)
    assert gs.predict(X5).shape == Y.shape


def test_fine_tuned_regressor_citizenship():
    from skphys import FineTunedRegressor

    ft = FineTunedRegressor(FrozenEstimator(_mpp().fit(X5)), probe=_probe(), max_epochs=1, batch_size=4,
                            random_state=0)
    assert clone(ft).get_params()["encoder_lr_scale"] == ft.encoder_lr_scale
    scores = cross_val_score(Pipeline([("ft", ft)]), X5, Y, cv=KFold(3), error_score="raise",
                             scoring="neg_mean_squared_error")
    assert np.all(np.isfinite(scores))
    tags = ft.__sklearn_tags__()
    assert tags.estimator_type == "regressor" and tags.target_tags.required and tags.input_tags.three_d_array
